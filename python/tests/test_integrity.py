"""Test 1: a million numbered messages between Python processes, none
lost, torn, reordered or duplicated; from one sender, and from four
senders into one receiver (each attributed by ``recv_from``)."""

import seqmsg
import shmchan

MESSAGES = 1_000_000
# Small rings, so that they fill, wrap and pad thousands of times.
RING = 64 * 1024


def test_a_million_messages_from_one_python_process_to_another(new_channel, peers):
    with new_channel(capacity=RING) as chan, chan.receiver() as rx:
        sender = peers("send-seq", chan.id, 0, MESSAGES)
        sender.expect("id")
        seq = 0
        check = seqmsg.check
        for msg in rx:  # until the sender is gone
            check(msg, 0, seq)
            seq += 1
        assert seq == MESSAGES
        assert sender.expect("done") == ""
        sender.finish()


def test_a_million_messages_from_four_python_senders_into_one_receiver(new_channel, peers):
    senders = 4
    each = MESSAGES // senders
    with new_channel(capacity=RING, max_senders=senders) as chan, chan.receiver() as rx:
        procs = [peers("send-seq", chan.id, i, each) for i in range(senders)]
        ids = {p.expect("id"): i for i, p in enumerate(procs)}
        assert len(ids) == senders, f"four distinct sender ids: {ids}"
        # Each message's sender id (from recv_from) must be the one its
        # process announced, and each sender's messages must come in order.
        index_of = {}
        next_seq = [0] * senders
        check = seqmsg.check
        while True:
            try:
                msg, sender = rx.recv_from()
            except shmchan.Disconnected:
                break
            index = index_of.get(sender)
            if index is None:
                index = index_of[sender] = ids[str(sender)]
            check(msg, index, next_seq[index])
            next_seq[index] += 1
        assert next_seq == [each] * senders
        assert sorted(index_of.values()) == list(range(senders))
        for p in procs:
            p.expect("done")
            p.finish()
