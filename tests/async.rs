//! The async calls (issue 13) on tokio's `current_thread` runtime, where a
//! single blocking call would stall every task. Every peer is a separate
//! process (this test binary run again, see `peer`).
//!
//! The behaviours, in order:
//! 1. a runtime awaiting `recv_async` on an empty channel keeps running
//!    its other tasks (a 1 ms interval keeps ticking), and the idle
//!    process uses under 5% of a core;
//! 2. `tokio::select!` between `recv_async` on two channels and a timer:
//!    dropping the losing futures (with their helpers parked) loses
//!    nothing;
//! 3. 1,000,000 messages async to async, async to blocking and blocking
//!    to async, whole and in order;
//! 4. SIGKILL of the peer wakes a pending `recv_async` or `send_async`
//!    with `Disconnected`, through the kernel's post;
//! 5. dropping handles with a pending future or a parked helper, 10,000
//!    times, leaks no thread and no System V object;
//! 6. `Channel::remove` or `ipcrm` under a pending future gives `Removed`;
//! 7. `recv_from_async` serves four senders while other tasks run.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use common::{
    Cleanup, Gate, GateReader, Peer, env, message_number, numbered_message, say, spawn_on,
};
use shmchan::{Channel, Error, Key, Options, Receiver, SenderId};

/// Env vars the peers read.
const SHMID: &str = "SHMCHAN_ASYNC_SHMID";
const COUNT: &str = "SHMCHAN_ASYNC_COUNT";
const PAUSE_EVERY: &str = "SHMCHAN_ASYNC_PAUSE_EVERY";
const GATE: &str = "SHMCHAN_ASYNC_GATE";

/// How long a side may take to notice a killed peer or a removal: far
/// below what a blocked runtime or a stuck helper would take, far above
/// a wake-up.
const NOTICE: Duration = Duration::from_secs(2);

/// Messages of the streaming tests (point 3).
const MILLION: u64 = 1_000_000;

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(300);
        if role == "cycles" {
            return cycles();
        }
        let chan = Channel::open_id(env(SHMID).parse().expect("shmid")).expect("peer opens");
        match role {
            "send" => send_numbered(&chan, false),
            "send_async" => send_numbered(&chan, true),
            "recv" => recv_numbered(&chan),
            "hang_sender" => {
                let _tx = chan.sender().expect("peer sender");
                say("ready");
                common::hang();
            }
            "hang_receiver" => {
                let _rx = chan.receiver().expect("peer receiver");
                say("ready");
                common::hang();
            }
            "idle_receiver" => idle_receiver(&chan),
            "remove" => {
                let gate = GateReader::open(&env(GATE));
                say("ready");
                gate.wait();
                chan.remove().expect("peer removes the channel");
                say("removed");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A private channel with its cleanup guard.
fn channel(options: &Options) -> (Channel, Cleanup) {
    let chan = Channel::create(Key::PRIVATE, options).expect("create a private channel");
    let guard = Cleanup::of(&chan);
    (chan, guard)
}

/// In a peer: sends COUNT numbered messages (blocking, or with
/// `send_async` on a current-thread runtime), pausing 1 ms every
/// PAUSE_EVERY messages if set, after a GATE if set. Says its id first.
fn send_numbered(chan: &Channel, use_async: bool) {
    let mut tx = chan.sender().expect("peer sender");
    // The gate is opened before the id is told: a fifo opened after its
    // last writer closed would block for ever.
    let gate = std::env::var(GATE).ok().map(|g| GateReader::open(&g));
    say(format!("id {}", tx.id()));
    if let Some(gate) = gate {
        gate.wait();
    }
    let count: u64 = env(COUNT).parse().expect("count");
    let pause_every: u64 = std::env::var(PAUSE_EVERY).map_or(u64::MAX, |v| v.parse().expect("n"));
    let pause = |seq: u64| {
        if seq > 0 && seq % pause_every == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    if use_async {
        runtime().block_on(async {
            for seq in 0..count {
                pause(seq);
                tx.send_async(&numbered_message(seq))
                    .await
                    .expect("send_async");
            }
        });
    } else {
        for seq in 0..count {
            pause(seq);
            tx.send(&numbered_message(seq)).expect("send");
        }
    }
    say("sent");
}

/// In a peer: receives numbered messages with blocking calls until the
/// sender is gone, checking each; reports how many.
fn recv_numbered(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer receiver");
    say("ready");
    let mut next = 0;
    let mut buf = Vec::new();
    loop {
        match rx.recv_into(&mut buf) {
            Ok(_) => {
                assert_eq!(message_number(&buf), next, "out of order");
                next += 1;
            }
            Err(Error::Disconnected) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    say(format!("got {next}"));
}

/// CPU time of this process so far (user + system).
fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: usage is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Ticks a 1 ms interval until stopped; returns the longest gap between
/// two ticks and how many there were.
async fn ticker(stop: std::rc::Rc<std::cell::Cell<bool>>) -> (Duration, u64) {
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let (mut last, mut max_gap, mut ticks) = (Instant::now(), Duration::ZERO, 0);
    while !stop.get() {
        interval.tick().await;
        let now = Instant::now();
        max_gap = max_gap.max(now - last);
        last = now;
        ticks += 1;
    }
    (max_gap, ticks)
}

/// In a peer (point 1): a 1 ms interval ticks alone for 300 ms (the
/// baseline), then beside a `recv_async` on the empty channel until the
/// test sends a message. Reports both, and the CPU used while waiting.
fn idle_receiver(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer receiver");
    let rt = runtime();
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&rt, async move {
        let stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let base = tokio::task::spawn_local(ticker(stop.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.set(true);
        let (base_gap, _) = base.await.expect("baseline ticker");
        stop.set(false);
        let during = tokio::task::spawn_local(ticker(stop.clone()));
        let (cpu0, t0) = (cpu_time(), Instant::now());
        say("waiting");
        let msg = rx.recv_async().await.expect("recv_async");
        let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
        stop.set(true);
        let (gap, ticks) = during.await.expect("ticker");
        assert_eq!(msg, b"wake up");
        format!(
            "base_gap_us {} gap_us {} ticks {ticks} cpu_us {} wall_us {}",
            base_gap.as_micros(),
            gap.as_micros(),
            cpu.as_micros(),
            wall.as_micros()
        )
    });
    say(report);
}

/// Point 1.
#[test]
fn an_idle_recv_async_keeps_the_runtime_ticking_and_the_process_idle() {
    let (chan, _cleanup) = channel(&Options::new().capacity(4096));
    let mut peer = spawn_on("idle_receiver", SHMID, chan.id(), &[]);
    let mut tx = chan.sender().expect("sender");
    peer.expect_line("waiting");
    std::thread::sleep(Duration::from_secs(1));
    tx.send(b"wake up").expect("send");
    let report = peer.next_line().expect("the peer's report");
    peer.join();
    let field = |name: &str| -> u64 {
        let mut words = report.split_whitespace();
        while let Some(w) = words.next() {
            if w == name {
                return words.next().and_then(|v| v.parse().ok()).expect("a number");
            }
        }
        panic!("no {name} in {report:?}")
    };
    let (base_gap, gap, ticks) = (field("base_gap_us"), field("gap_us"), field("ticks"));
    let (cpu, wall) = (field("cpu_us"), field("wall_us"));
    eprintln!("idle receiver: {report}");
    assert!(wall >= 900_000, "the wait ended early: {report}");
    // A runtime blocked by the wait would show one gap of the whole wait
    // (a second) and almost no ticks.
    assert!(
        gap <= (10 * base_gap).max(100_000),
        "the interval stalled while recv_async waited: {report}"
    );
    assert!(ticks * 1000 >= wall / 4, "too few ticks: {report}");
    assert!(
        cpu * 20 < wall,
        "the waiting process used {cpu} us of CPU in {wall} us (5% or more of a core)"
    );
}

/// Receives numbered messages from `rx` with `recv_async` until
/// `Disconnected`; returns how many, checking each.
async fn drain_async(rx: &mut Receiver) -> u64 {
    let mut next = 0;
    let mut buf = Vec::new();
    loop {
        match rx.recv_into_async(&mut buf).await {
            Ok(_) => {
                assert_eq!(message_number(&buf), next, "out of order");
                next += 1;
            }
            Err(Error::Disconnected) => return next,
            Err(e) => panic!("recv_into_async: {e}"),
        }
    }
}

/// Point 2.
#[test]
fn select_over_two_channels_and_a_timer_loses_nothing_when_losers_drop() {
    const N: u64 = 20_000;
    let opts = Options::new().capacity(4096);
    let ((c1, _g1), (c2, _g2)) = (channel(&opts), channel(&opts));
    let (mut rx1, mut rx2) = (c1.receiver().expect("rx1"), c2.receiver().expect("rx2"));
    let mut gate = Gate::new();
    let vars = [
        (COUNT, N.to_string()),
        (PAUSE_EVERY, "500".to_string()),
        (GATE, gate.env_value()),
    ];
    let mut p1 = spawn_on("send", SHMID, c1.id(), &vars);
    let mut p2 = spawn_on("send", SHMID, c2.id(), &vars);
    p1.line_after("id");
    p2.line_after("id");
    let (mut got1, mut got2) = (Vec::new(), Vec::new());
    let mut timer_won = 0u64;
    runtime().block_on(async {
        let (mut done1, mut done2) = (false, false);
        while !(done1 && done2) {
            // The senders wait at the gate until both receive futures have
            // been dropped, parked, twenty times.
            if timer_won == 20 {
                gate.open();
            }
            tokio::select! {
                r = rx1.recv_async(), if !done1 => match r {
                    Ok(m) => got1.push(message_number(&m)),
                    Err(Error::Disconnected) => done1 = true,
                    Err(e) => panic!("rx1: {e}"),
                },
                r = rx2.recv_async(), if !done2 => match r {
                    Ok(m) => got2.push(message_number(&m)),
                    Err(Error::Disconnected) => done2 = true,
                    Err(e) => panic!("rx2: {e}"),
                },
                _ = tokio::time::sleep(Duration::from_millis(1)) => timer_won += 1,
            }
        }
    });
    p1.expect_line("sent");
    p2.expect_line("sent");
    let all: Vec<u64> = (0..N).collect();
    assert_eq!(got1, all, "channel 1: each message exactly once, in order");
    assert_eq!(got2, all, "channel 2: each message exactly once, in order");
    assert!(timer_won >= 20);
    assert!(matches!(rx1.try_recv(), Err(Error::Disconnected)));
}

/// Point 3: an async sender in a peer, the test receiving with the
/// stream (async to async).
#[test]
fn a_million_messages_async_to_async() {
    let (chan, _cleanup) = channel(&Options::new().capacity(64 * 1024));
    let mut rx = chan.receiver().expect("receiver");
    let mut peer = spawn_on(
        "send_async",
        SHMID,
        chan.id(),
        &[(COUNT, MILLION.to_string())],
    );
    peer.line_after("id");
    let mut stream = rx.stream();
    let got = runtime().block_on(async {
        let mut next = 0;
        while let Some(msg) = next_item(&mut stream).await {
            assert_eq!(message_number(&msg), next, "out of order");
            next += 1;
        }
        next
    });
    assert!(
        stream.take_error().is_none(),
        "the stream ended at Disconnected"
    );
    assert_eq!(got, MILLION);
    peer.expect_line("sent");
}

/// The next item of a stream (what `StreamExt::next` does).
async fn next_item<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// Point 3: an async sender in a peer, a blocking receiver here.
#[test]
fn a_million_messages_async_sender_blocking_receiver() {
    let (chan, _cleanup) = channel(&Options::new().capacity(64 * 1024));
    let mut rx = chan.receiver().expect("receiver");
    let mut peer = spawn_on(
        "send_async",
        SHMID,
        chan.id(),
        &[(COUNT, MILLION.to_string())],
    );
    peer.line_after("id");
    let mut next = 0;
    for msg in rx.iter() {
        assert_eq!(message_number(&msg), next, "out of order");
        next += 1;
    }
    assert_eq!(next, MILLION);
    peer.expect_line("sent");
}

/// Point 3: a blocking sender in a peer, the test receiving with
/// `recv_into_async`; and the reverse: `send_async` here, a blocking
/// receiver in a peer.
#[test]
fn a_million_messages_blocking_to_async_and_back() {
    let (chan, _cleanup) = channel(&Options::new().capacity(64 * 1024));
    let mut rx = chan.receiver().expect("receiver");
    let mut peer = spawn_on("send", SHMID, chan.id(), &[(COUNT, MILLION.to_string())]);
    peer.line_after("id");
    assert_eq!(runtime().block_on(drain_async(&mut rx)), MILLION);
    peer.expect_line("sent");
    drop(rx);

    let mut tx = chan.sender().expect("sender");
    let mut peer = spawn_on("recv", SHMID, chan.id(), &[]);
    peer.expect_line("ready");
    runtime().block_on(async {
        for seq in 0..MILLION {
            tx.send_async(&numbered_message(seq))
                .await
                .expect("send_async");
        }
    });
    drop(tx);
    assert_eq!(peer.line_after("got"), MILLION.to_string());
}

/// Polls `fut` for `settle` (long enough for its helper to park), checks
/// it is still pending, then runs `act` and gives the future [`NOTICE`]
/// to resolve.
async fn pending_then<T: std::fmt::Debug>(fut: impl Future<Output = T>, act: impl FnOnce()) -> T {
    let mut fut = std::pin::pin!(fut);
    tokio::select! {
        r = &mut fut => panic!("resolved before its cue: {r:?}"),
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
    act();
    tokio::time::timeout(NOTICE, fut)
        .await
        .expect("the pending future was woken")
}

/// Park slices that ran out (the helper's park returned without a post)
/// on the receiver's side and on lane 0's sender side.
fn expired(chan: &Channel) -> (u64, u64) {
    let info = common::channel_info(chan.id());
    (info.received.expired, info.sent.expired)
}

/// Point 4: SIGKILL of the sender wakes `recv_async`.
#[test]
fn sigkill_of_the_sender_wakes_a_pending_recv_async() {
    let (chan, _cleanup) = channel(&Options::new().capacity(4096));
    let mut rx = chan.receiver().expect("receiver");
    let mut peer = spawn_on("hang_sender", SHMID, chan.id(), &[]);
    peer.expect_line("ready");
    let before = expired(&chan);
    let r = runtime().block_on(pending_then(rx.recv_async(), || peer.kill()));
    assert!(matches!(r, Err(Error::Disconnected)), "got {r:?}");
    // Woken by the post the kernel made for the dead sender, not by a
    // park slice running out.
    assert_eq!(expired(&chan).0, before.0, "a park slice ran out");
}

/// Point 4: SIGKILL of the receiver wakes `send_async` on a full ring.
#[test]
fn sigkill_of_the_receiver_wakes_a_pending_send_async() {
    let (chan, _cleanup) = channel(&Options::new().capacity(4096));
    let mut tx = chan.sender().expect("sender");
    let mut peer = spawn_on("hang_receiver", SHMID, chan.id(), &[]);
    peer.expect_line("ready");
    while tx.try_send(&[7; 100]).is_ok() {}
    let before = expired(&chan);
    let r = runtime().block_on(pending_then(tx.send_async(&[7; 100]), || peer.kill()));
    assert!(matches!(r, Err(Error::Disconnected)), "got {r:?}");
    assert_eq!(expired(&chan).1, before.1, "a park slice ran out");
    drop(tx);
    chan.remove().expect("remove the full channel");
}

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// In a peer (point 5): 10,000 cycles of create, await, drop, on a
/// current-thread runtime, alternating a receiver whose `recv_async` is
/// left pending (its helper parked) and a sender whose `send_async` on a
/// full ring is, with every fourth cycle completing its future instead.
/// Reports the threads before and after, and how many of the cycles'
/// segments and semaphore sets are still there.
fn cycles() {
    let rt = runtime();
    let before = threads();
    let mut ids = Vec::new();
    rt.block_on(async {
        for i in 0..10_000u32 {
            let chan =
                Channel::create(Key::PRIVATE, &Options::new().capacity(4096)).expect("create");
            ids.push((chan.id(), chan.sem_id()));
            let mut rx = chan.receiver().expect("receiver");
            let mut tx = chan.sender().expect("sender");
            rx.set_spin(Duration::ZERO);
            tx.set_spin(Duration::ZERO);
            let complete = i % 4 == 3;
            if i % 2 == 0 {
                if complete {
                    let fut = rx.recv_async();
                    tx.send(b"x").expect("send");
                    assert_eq!(fut.await.expect("recv_async"), b"x");
                } else {
                    let r = tokio::time::timeout(Duration::ZERO, rx.recv_async()).await;
                    assert!(r.is_err(), "nothing was sent");
                }
                drop(rx); // its helper parked, or done
                drop(tx);
            } else {
                while tx.try_send(&[1; 512]).is_ok() {}
                if complete {
                    let fut = tx.send_async(&[2; 512]);
                    // Room for the frame and the refill slack (a
                    // waiting sender asks for an eighth of the ring more).
                    for _ in 0..3 {
                        rx.recv().expect("recv");
                    }
                    fut.await.expect("send_async");
                } else {
                    let r = tokio::time::timeout(Duration::ZERO, tx.send_async(&[2; 512])).await;
                    assert!(r.is_err(), "the ring is full");
                }
                drop(tx);
                drop(rx);
            }
            chan.remove().expect("remove");
        }
    });
    let after = threads();
    let left = ids
        .iter()
        .filter(|&&(shm, sem)| common::shm_exists(shm) || common::sem_exists(sem))
        .count();
    say(format!("threads {before} {after} left {left}"));
}

/// Point 5.
#[test]
fn dropping_handles_with_pending_futures_leaks_no_thread_and_no_object() {
    let mut peer = common::spawn_peer("peer", "cycles", &[]);
    let report = peer.line_after("threads");
    peer.join();
    let n: Vec<usize> = report
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(n.len(), 3, "report {report:?}");
    assert_eq!(n[0], n[1], "threads before and after 10,000 cycles");
    assert_eq!(n[2], 0, "segments or semaphore sets left");
}

/// Point 6: `Channel::remove` by another process under a pending
/// `recv_async`, and under a pending `send_async`.
#[test]
fn removal_by_another_process_ends_pending_futures_with_removed() {
    for side in ["receiver", "sender"] {
        let (chan, _cleanup) = channel(&Options::new().capacity(4096));
        let mut rx = chan.receiver().expect("receiver");
        let mut tx = chan.sender().expect("sender");
        let mut gate = Gate::new();
        let mut peer = spawn_on("remove", SHMID, chan.id(), &[(GATE, gate.env_value())]);
        peer.expect_line("ready");
        let r = if side == "receiver" {
            runtime()
                .block_on(pending_then(rx.recv_async(), || gate.open()))
                .map(drop)
        } else {
            while tx.try_send(&[3; 200]).is_ok() {}
            runtime().block_on(pending_then(tx.send_async(&[3; 200]), || gate.open()))
        };
        assert!(matches!(r, Err(Error::Removed { .. })), "{side}: got {r:?}");
        peer.expect_line("removed");
    }
}

/// Point 6: `ipcrm -s` (the semaphore set) under a pending `recv_async`.
#[test]
fn ipcrm_under_a_pending_recv_async_gives_removed() {
    let (chan, _cleanup) = channel(&Options::new().capacity(4096));
    let mut rx = chan.receiver().expect("receiver");
    let _tx = chan.sender().expect("sender");
    let semid = chan.sem_id().to_string();
    let r = runtime().block_on(pending_then(rx.recv_async(), || {
        let status = std::process::Command::new("ipcrm")
            .args(["-s", &semid])
            .status()
            .expect("run ipcrm");
        assert!(status.success(), "ipcrm -s {semid}: {status}");
    }));
    assert!(matches!(r, Err(Error::Removed { .. })), "got {r:?}");
}

/// Point 7: four sender processes into one receiver served by
/// `recv_from_async` in one task, while another task ticks.
#[test]
fn recv_from_async_serves_four_senders_while_other_tasks_run() {
    const N: u64 = 20_000;
    let (chan, _cleanup) = channel(&Options::new().capacity(4096).max_senders(4));
    let mut rx = chan.receiver().expect("receiver");
    let mut gate = Gate::new();
    let vars = [
        (COUNT, N.to_string()),
        (PAUSE_EVERY, "1000".to_string()),
        (GATE, gate.env_value()),
    ];
    let mut peers: Vec<Peer> = (0..4)
        .map(|_| spawn_on("send", SHMID, chan.id(), &vars))
        .collect();
    let ids: Vec<String> = peers.iter_mut().map(|p| p.line_after("id")).collect();
    gate.open();
    let rt = runtime();
    let local = tokio::task::LocalSet::new();
    let (per_sender, ticks_while_receiving) = local.block_on(&rt, async {
        let stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let ticks = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let ticker = {
            let (stop, ticks) = (stop.clone(), ticks.clone());
            tokio::task::spawn_local(async move {
                let mut interval = tokio::time::interval(Duration::from_millis(1));
                while !stop.get() {
                    interval.tick().await;
                    ticks.borrow_mut().push(Instant::now());
                }
            })
        };
        let mut per_sender: std::collections::HashMap<SenderId, Vec<u64>> = Default::default();
        let mut first = None;
        for _ in 0..4 * N {
            let (msg, from) = rx.recv_from_async().await.expect("recv_from_async");
            first.get_or_insert_with(Instant::now);
            per_sender
                .entry(from)
                .or_default()
                .push(message_number(&msg));
        }
        let (first, last) = (first.expect("messages"), Instant::now());
        stop.set(true);
        ticker.await.expect("ticker");
        let during = ticks
            .borrow()
            .iter()
            .filter(|&&t| t > first && t < last)
            .count();
        (per_sender, during)
    });
    for p in &mut peers {
        p.expect_line("sent");
    }
    assert_eq!(per_sender.len(), 4, "four senders");
    for (id, seqs) in &per_sender {
        assert!(ids.contains(&id.to_string()), "unknown sender {id}");
        assert_eq!(
            seqs,
            &(0..N).collect::<Vec<_>>(),
            "sender {id}: once, in order"
        );
    }
    // The senders pause 1 ms every 1,000 messages: the receive spans at
    // least 19 ms, and a task that blocked its runtime meanwhile would
    // let no tick in before its last message.
    assert!(
        ticks_while_receiving >= 3,
        "{ticks_while_receiving} ticks while receiving"
    );
}

/// A sender's `send_async` and a receiver's `recv_ref_async` and
/// `recv_from_async` in one process keep the blocking calls' results:
/// `MessageTooLarge` for a message over the maximum, nothing consumed by
/// a dropped future, and a guard that releases on drop.
#[test]
fn async_calls_keep_the_blocking_contract() {
    let (chan, _cleanup) = channel(&Options::new().capacity(4096));
    let mut rx = chan.receiver().expect("receiver");
    let mut tx = chan.sender().expect("sender");
    runtime().block_on(async {
        let too_big = vec![0; tx.max_message_len() + 1];
        assert!(matches!(
            tx.send_async(&too_big).await,
            Err(Error::MessageTooLarge { .. })
        ));
        // A receive future dropped before a message arrived consumed
        // nothing; the message sent next is the next one received.
        let r = tokio::time::timeout(Duration::from_millis(5), rx.recv_async()).await;
        assert!(r.is_err());
        tx.send_async(b"first").await.expect("send_async");
        tx.send_async(b"second").await.expect("send_async");
        {
            let guard = rx.recv_ref_async().await.expect("recv_ref_async");
            assert_eq!(&*guard, b"first");
        }
        let (msg, from) = rx.recv_from_async().await.expect("recv_from_async");
        assert_eq!((msg.as_slice(), from), (&b"second"[..], tx.id()));
        // A blocking call after a dropped async one (its helper parked)
        // recalls the helper and still gets its wake-up.
        let r = tokio::time::timeout(Duration::from_millis(5), rx.recv_async()).await;
        assert!(r.is_err());
    });
    let got = std::thread::scope(|s| {
        let waiting = s.spawn(|| rx.recv_timeout(NOTICE));
        std::thread::sleep(Duration::from_millis(50));
        tx.send(b"third").expect("send");
        waiting.join().expect("receiver thread")
    });
    assert_eq!(got.expect("the blocking recv was woken"), b"third");
}

/// A waker that records its wake-ups and unparks the test's thread.
struct Flag {
    woken: std::sync::atomic::AtomicBool,
    thread: std::thread::Thread,
}

impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.woken.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// The public poll calls, with a waker of the test's own and no runtime:
/// `Pending` consumes nothing and wakes the waker when a peer process
/// sends; the next poll takes the message.
#[test]
fn poll_recv_into_wakes_its_waker_when_a_peer_process_sends() {
    let (chan, _cleanup) = channel(&Options::new().capacity(4096));
    let mut rx = chan.receiver().expect("receiver");
    rx.set_spin(Duration::ZERO); // park at the first poll that finds nothing
    let flag = std::sync::Arc::new(Flag {
        woken: false.into(),
        thread: std::thread::current(),
    });
    let waker = std::task::Waker::from(flag.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let mut buf = Vec::new();
    assert!(rx.poll_recv_into(&mut cx, &mut buf).is_pending());
    let mut peer = spawn_on("send", SHMID, chan.id(), &[(COUNT, "1".into())]);
    peer.line_after("id");
    let start = Instant::now();
    while !flag.woken.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(start.elapsed() < NOTICE, "the waker was not woken");
        std::thread::park_timeout(NOTICE);
    }
    match rx.poll_recv_into(&mut cx, &mut buf) {
        std::task::Poll::Ready(Ok(len)) => assert_eq!(message_number(&buf[..len]), 0),
        other => panic!("expected the message, got {other:?}"),
    }
    peer.expect_line("sent");
}
