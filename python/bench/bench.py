"""Throughput of shmchan's Python API against what a Python program would
use instead, between two Python processes, in one interleaved run.

    python python/bench/bench.py [--rounds 5] [--sizes 64,4096,1048576]
                                 [--transports shmchan,mp-queue,...]

Transports (a message is a ``bytes`` object of the size given; the
receiver gets each as a new ``bytes`` object, except ``shmchan-into``,
which fills one ``bytearray``):

- ``shmchan``: ``Sender.send`` / ``Receiver.recv`` (4 MiB ring).
- ``shmchan-into``: ``Sender.send`` / ``Receiver.recv_into``.
- ``mp-queue``: ``multiprocessing.Queue`` ``put`` / ``get``.
- ``mp-pipe``: ``multiprocessing.Pipe`` ``send_bytes`` / ``recv_bytes``.
- ``socketpair``: a Unix stream socket pair, a 4-byte length before each
  message, ``sendall`` / a buffered reader.
- ``faster-fifo``: ``faster_fifo.Queue`` ``put`` / ``get`` (16 MiB).
- ``pyzmq``: PUSH/PULL over ``ipc://``; ``copy=False`` from 64 KiB up.
- ``iceoryx2``: publish/subscribe of ``Slice[c_uint8]``, safe overflow off
  and ``RetryUntilDelivered`` (no message dropped), about 4 MiB of samples
  in flight; its subscriber has no blocking receive, so it polls.

The third-party packages are installed for the benchmark only (``pip
install faster-fifo pyzmq iceoryx2``); one that does not import is
reported and skipped. Each round runs every size and every transport once,
in a rotating order, with a new receiving process each time; the table
gives each pair's median over the rounds (messages per second and MB/s)
and shmchan's ratio to each other transport, from the same run.
"""

import argparse
import ctypes
import functools
import multiprocessing as mp
import os
import platform
import socket
import statistics
import struct
import sys
import time
import uuid

LEN = struct.Struct("<I")
# Messages per run, per size: each run takes a fraction of a second or so.
COUNTS = {64: 200_000, 4096: 50_000, 1 << 20: 400}
SHMCHAN_RING = 4 << 20


def count_for(size):
    return COUNTS.get(size) or max(200, min(200_000, (200 << 20) // size))


# ---- receivers: each in its own process; each reports (ready) then the
# time after its last message, through `ctl`.


def drain(ctl, recv, count):
    """Says it is ready, calls ``recv()`` ``count`` times, then reports the
    time after the last call."""
    ctl.send("ready")
    for _ in range(count):
        recv()
    ctl.send(time.perf_counter())


def recv_shmchan(ctl, arg, size, count):
    import shmchan

    with shmchan.Channel.open_id(arg) as chan, chan.receiver() as rx:
        drain(ctl, rx.recv, count)


def recv_shmchan_into(ctl, arg, size, count):
    import shmchan

    with shmchan.Channel.open_id(arg) as chan, chan.receiver() as rx:
        # Not drain(): a partial around recv_into would cost more than the
        # call itself at 64 B.
        buf, recv_into = bytearray(size), rx.recv_into
        ctl.send("ready")
        for _ in range(count):
            recv_into(buf)
        ctl.send(time.perf_counter())


def recv_queue(ctl, q, size, count):
    drain(ctl, q.get, count)


def recv_pipe(ctl, conn, size, count):
    drain(ctl, conn.recv_bytes, count)


def recv_socket(ctl, sock, size, count):
    read = sock.makefile("rb", buffering=1 << 20).read
    unpack = LEN.unpack

    def recv():
        (n,) = unpack(read(4))
        return read(n)

    drain(ctl, recv, count)


def recv_zmq(ctl, endpoint, size, count):
    import zmq

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect(endpoint)
    drain(ctl, pull.recv, count)
    pull.close()
    ctx.term()


def iox_service(iox2, node, name, size, create):
    service = (
        node.service_builder(iox2.ServiceName.new(name))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .enable_safe_overflow(False)
        .subscriber_max_buffer_size(max(2, min(256, SHMCHAN_RING // size)))
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(1)
    )
    return service.create() if create else service.open()


def recv_iceoryx2(ctl, name, size, count):
    import iceoryx2 as iox2

    quiet(iox2)
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    service = iox_service(iox2, node, name, size, create=True)
    sub = service.subscriber_builder().create()
    ctl.send("ready")
    receive = sub.receive
    string_at = ctypes.string_at
    # Connected once a warm-up sample arrives; then every sample up to the
    # fence (first byte 2) is a warm-up one.
    first, told = 0, False
    while first != 2:
        sample = receive()
        if sample is not None:
            first = string_at(sample.payload_ptr, 1)[0]
            sample.delete()
            if not told:
                ctl.send("connected")
                told = True
    # The measured messages: the last has first byte 1. A sample lost on
    # the way (which iceoryx2 0.10 was seen to do right after connecting,
    # backpressure notwithstanding) ends the count short, not a hang.
    got = 0
    while True:
        sample = receive()
        if sample is None:
            continue
        last = string_at(sample.payload_ptr, size)[0] == 1
        sample.delete()
        got += 1
        if last:
            break
    ctl.send((time.perf_counter(), got))
    ctl.recv()  # the sender is done with the service


def quiet(iox2):
    """iceoryx2 logs at info level ("No config file was loaded")."""
    iox2.set_log_level_from_env_or(iox2.LogLevel.Warn)


# ---- senders: in this process. Each makes the transport, starts the
# receiver, and returns (send-loop, cleanup).


class Run:
    """One measured run of a transport at a size."""

    def __init__(self, target, args, size, count):
        self.ctl, child_ctl = mp.Pipe()
        args = (child_ctl, *args, size, count)
        self.proc = mp.Process(target=target, args=args, daemon=True)
        self.proc.start()
        child_ctl.close()

    def ready(self):
        if not self.ctl.poll(60):
            raise RuntimeError("the receiver did not start")
        assert self.ctl.recv() == "ready"

    def end_time(self):
        if not self.ctl.poll(300):
            raise RuntimeError("the receiver did not finish")
        return self.ctl.recv()

    def close(self):
        self.proc.join(60)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def blast(run, send, data, count):
    """Once the receiver is ready, calls ``send(data)`` ``count`` times;
    the time before the first call and the receiver's after its last."""
    run.ready()
    start = time.perf_counter()
    for _ in range(count):
        send(data)
    return start, run.end_time()


def send_shmchan(size, count, receiver=recv_shmchan):
    import shmchan

    with shmchan.Channel.create(capacity=SHMCHAN_RING) as chan:
        run = Run(receiver, (chan.id,), size, count)
        with chan.sender() as tx:
            times = blast(run, tx.send, bytes(size), count)
    run.close()
    return times


def send_shmchan_into(size, count):
    return send_shmchan(size, count, receiver=recv_shmchan_into)


def send_queue(size, count):
    q = mp.Queue()
    run = Run(recv_queue, (q,), size, count)
    times = blast(run, q.put, bytes(size), count)
    run.close()
    q.close()
    return times


def send_pipe(size, count):
    a, b = mp.Pipe()
    run = Run(recv_pipe, (b,), size, count)
    b.close()
    times = blast(run, a.send_bytes, bytes(size), count)
    run.close()
    a.close()
    return times


def send_socket(size, count):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    run = Run(recv_socket, (b,), size, count)
    b.close()
    times = blast(run, a.sendall, LEN.pack(size) + bytes(size), count)
    run.close()
    a.close()
    return times


def send_faster_fifo(size, count):
    import faster_fifo
    import faster_fifo_reduction  # noqa: F401 (lets multiprocessing pass the queue)

    q = faster_fifo.Queue(max_size_bytes=16 << 20)
    run = Run(recv_queue, (q,), size, count)
    times = blast(run, functools.partial(q.put, timeout=60), bytes(size), count)
    run.close()
    return times


def send_zmq(size, count):
    import zmq

    endpoint = f"ipc:///tmp/shmchan-bench-{os.getpid()}-{uuid.uuid4().hex}"
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind(endpoint)
    run = Run(recv_zmq, (endpoint,), size, count)
    send = functools.partial(push.send, copy=size < 65536)
    times = blast(run, send, bytes(size), count)
    run.close()
    push.close(linger=0)
    ctx.term()
    return times


def send_iceoryx2(size, count):
    import iceoryx2 as iox2

    quiet(iox2)
    name = f"shmchan-bench/{os.getpid()}/{uuid.uuid4().hex}"
    run = Run(recv_iceoryx2, (name,), size, count)
    run.ready()
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    service = iox_service(iox2, node, name, size, create=False)
    publisher = (
        service.publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
        .create()
    )
    publisher.update_connections()
    loan = publisher.loan_slice_uninit
    memmove = ctypes.memmove

    def send(data):
        sample = loan(size)
        memmove(sample.payload_ptr, data, size)
        sample.assume_init().send()

    # Warm-up samples (first byte 3) until the subscriber has one, then a
    # fence (first byte 2): measured messages start after it.
    while not run.ctl.poll(0.001):
        send(b"\x03" * size)
    assert run.ctl.recv() == "connected"
    send(b"\x02" * size)
    data, last = bytes(size), b"\x01" + bytes(size - 1)
    start = time.perf_counter()
    for _ in range(count - 1):
        send(data)
    send(last)
    end, got = run.end_time()
    publisher.delete()
    run.ctl.send("done")
    run.close()
    if got != count:
        print(f"# iceoryx2 at {size} B: {count - got} of {count} messages lost", flush=True)
    return start, end


TRANSPORTS = {
    "shmchan": (send_shmchan, "shmchan"),
    "shmchan-into": (send_shmchan_into, "shmchan"),
    "mp-queue": (send_queue, None),
    "mp-pipe": (send_pipe, None),
    "socketpair": (send_socket, None),
    "faster-fifo": (send_faster_fifo, "faster_fifo"),
    "pyzmq": (send_zmq, "zmq"),
    "iceoryx2": (send_iceoryx2, "iceoryx2"),
}


def available(names):
    """The transports whose package imports; says which do not."""
    out = []
    for name in names:
        module = TRANSPORTS[name][1]
        if module:
            try:
                __import__(module)
            except ImportError as e:
                print(f"# {name}: not installed ({e}); skipped", flush=True)
                continue
        out.append(name)
    return out


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def versions(names):
    out = []
    for name, dist in (("faster-fifo", "faster-fifo"), ("pyzmq", "pyzmq"), ("iceoryx2", "iceoryx2")):
        if name in names:
            from importlib.metadata import version

            out.append(f"{name} {version(dist)}")
    return ", ".join(out)


def human(size):
    for unit, n in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= n and size % n == 0:
            return f"{size // n} {unit}"
    return f"{size} B"


def report(results, sizes, names):
    print()
    print("| size | transport | msg/s | MB/s | shmchan ratio |")
    print("|---|---|---:|---:|---:|")
    for size in sizes:
        med = {n: statistics.median(results[(n, size)]) for n in names if results[(n, size)]}
        ours = med.get("shmchan")
        for n in names:
            if n not in med:
                continue
            rate = med[n]
            ratio = "" if n == "shmchan" or ours is None else f"{ours / rate:.1f}x"
            print(f"| {human(size)} | {n} | {rate:,.0f} | {rate * size / 1e6:,.0f} | {ratio} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sizes", default="64,4096,1048576")
    p.add_argument("--transports", default=",".join(TRANSPORTS))
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    names = available(a.transports.split(","))
    mp.set_start_method("spawn")
    print(f"# {machine()}", flush=True)
    print(f"# {versions(names)}; {a.rounds} rounds, median", flush=True)
    results = {(n, s): [] for n in names for s in sizes}
    for r in range(a.rounds):
        for size in sizes:
            count = count_for(size)
            # A rotating order: no transport always runs first or last.
            order = names[r % len(names) :] + names[: r % len(names)]
            for n in order:
                start, end = TRANSPORTS[n][0](size, count)
                results[(n, size)].append(count / (end - start))
        print(f"# round {r + 1} of {a.rounds} done", flush=True)
    report(results, sizes, names)


if __name__ == "__main__":
    sys.exit(main())
