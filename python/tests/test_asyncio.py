"""Test 7: asyncio. ``await rx.recv_async()``, ``await
rx.recv_from_async()``, ``await tx.send_async(data)`` and ``async for msg
in rx`` never block the event loop: a 1 ms ``asyncio.sleep`` loop keeps
ticking while a task awaits a message that another process sends later.
Cancelling a waiting task consumes nothing. Every peer is a separate
process."""

import asyncio
import time

import pytest

import seqmsg
import shmchan

RING = 64 * 1024


async def ticker(ticks, stop):
    """Sleeps 1 ms at a time until ``stop`` is set, recording when each
    sleep ended."""
    while not stop.is_set():
        await asyncio.sleep(0.001)
        ticks.append(time.monotonic())


def test_the_event_loop_keeps_ticking_while_recv_async_waits(new_channel, peers):
    with new_channel(capacity=RING) as chan, chan.receiver() as rx:
        peer = peers("send-later", chan.id, 0.5)
        peer.expect("ready")

        async def main():
            ticks, stop = [], asyncio.Event()
            tick_task = asyncio.create_task(ticker(ticks, stop))
            start = time.monotonic()
            msg = await rx.recv_async()
            end = time.monotonic()
            stop.set()
            await tick_task
            return msg, start, end, ticks

        msg, start, end, ticks = asyncio.run(main())
        assert msg == b"late"
        waited = end - start
        assert waited >= 0.3, f"the message came after {waited:.3f} s, before it was sent"
        during = [t for t in ticks if start < t < end]
        # A loop blocked by the wait would tick not at all until the
        # message came; a free one ticks about once a millisecond (allow
        # a slow, loaded machine a tenth of that).
        assert len(during) >= waited * 100, f"{len(during)} ticks in {waited:.3f} s"
        gaps = [b - a for a, b in zip(during, during[1:])]
        assert max(gaps) < 0.2, f"the loop stalled for {max(gaps):.3f} s"
        peer.expect("done")
        peer.finish()


def test_async_for_and_recv_from_async_receive_every_message_in_order(new_channel, peers):
    count = 20_000
    with new_channel(capacity=RING, max_senders=2) as chan, chan.receiver() as rx:
        sender = peers("send-async-seq", chan.id, 0, count)
        sid = sender.expect("id")

        async def main():
            seq = 0
            msg, who = await rx.recv_from_async()
            assert str(who) == sid
            seqmsg.check(msg, 0, seq)
            seq += 1
            async for msg in rx:  # until the sender is gone
                seqmsg.check(msg, 0, seq)
                seq += 1
            return seq

        assert asyncio.run(main()) == count
        sender.expect("done")
        sender.finish()


def test_a_cancelled_recv_async_consumes_nothing(new_channel):
    with new_channel(capacity=RING) as chan, chan.receiver() as rx, chan.sender() as tx:

        async def main():
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(rx.recv_async(), 0.05)
            tx.send(b"after the cancel")
            return await asyncio.wait_for(rx.recv_async(), 5)

        assert asyncio.run(main()) == b"after the cancel"
        # The blocking calls still work after an async one was cancelled.
        tx.send(b"blocking")
        assert rx.recv(timeout=5) == b"blocking"


def test_send_async_waits_for_room_without_blocking_the_loop(new_channel, peers):
    # About 40 KiB in all: ten times the ring, and less than the pipe
    # that carries what the peer received back (read only at the end).
    count = 300
    with new_channel(capacity=4096) as chan, chan.sender() as tx:
        receiver = peers("recv-dump", chan.id, binary_out=True)

        async def main():
            ticks, stop = [], asyncio.Event()
            tick_task = asyncio.create_task(ticker(ticks, stop))
            for seq in range(count):  # 4 KiB ring: it fills over and over
                await tx.send_async(seqmsg.make(1, seq))
            stop.set()
            await tick_task

        asyncio.run(main())
        tx.close()
        out = receiver.finish()
        from helpers import parse_records

        got = parse_records(out)
        assert len(got) == count
        for seq, msg in enumerate(got):
            seqmsg.check(msg, 1, seq)


def test_recv_async_raises_disconnected_when_the_sender_is_killed(new_channel, peers):
    with new_channel(capacity=RING) as chan, chan.receiver() as rx:
        peer = peers("hold", chan.id, "sender")
        peer.expect("ready")

        async def main():
            task = asyncio.create_task(rx.recv_async())
            await asyncio.sleep(0.1)
            assert not task.done()
            peer.kill()
            with pytest.raises(shmchan.Disconnected):
                await asyncio.wait_for(task, 5)

        asyncio.run(main())
