//! Issue 2, time and CPU: a side parked in `recv` costs no CPU and wakes
//! when a message arrives; `*_timeout` calls give up on time and `try_*`
//! calls at once; a stop/continue or a handled signal neither breaks a wait
//! nor stretches its deadline. The peer is always a separate process (this
//! test binary run again, see `peer`), holding the other role.
//!
//! These tests measure CPU and time, so they never run at the same time as
//! each other: each holds `SERIAL`. Bounds are generous (a noisy 2-core VM);
//! none asserts speed.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{Peer, gettid, monotonic_ns, numbered_message_of_len, say, wait_for};
use shmchan::{Channel, Error};

/// Env var that tells the peer which channel to open.
const SHMID_ENV: &str = "SHMCHAN_TIMING_SHMID";
/// A peer that outlives this is killed by its own alarm: a hung peer must
/// not hang the parent reading its output.
const PEER_ALARM_SECS: u32 = 30;
/// How long to wait for another process's visible state (not a timing bound).
const LIMIT: Duration = Duration::from_secs(10);
/// Slack allowed past a timeout.
const MARGIN: Duration = Duration::from_millis(500);
/// Largest share of a core a waiting side may use.
const CPU_SHARE: f64 = 0.05;
/// A parked receiver must wake well before this after a send. A wake-up takes
/// microseconds; a lost one is only found by the library's periodic removal
/// check, whose period (500 ms) this stays below.
const WAKE_LIMIT: Duration = Duration::from_millis(250);
/// The timeouts tried; the last one outlasts one park slice of the library.
const TIMEOUTS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(20),
    Duration::from_millis(700),
];
/// The timeout of the peer's `recv_timeout` that signals interrupt.
const DEADLINE: Duration = Duration::from_secs(1);
/// When the parent interrupts that wait. A wait restarted with the full
/// timeout after the last of these would end past `DEADLINE + MARGIN`.
const SIGNAL_AT: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_millis(450),
    Duration::from_millis(700),
];
/// Payload length of the messages that fill the ring.
const MSG_LEN: usize = 64;
/// Frame header bytes in front of every payload (DESIGN.md, framing).
const FRAME_HEADER: usize = 8;
/// The signal that tells an idle peer to go on.
const GO: libc::c_int = libc::SIGUSR2;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------- the peer

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(PEER_ALARM_SECS);
        let shmid = common::env(SHMID_ENV).parse().expect("shmid in the env");
        let chan = Channel::open_id(shmid).expect("peer opens the channel");
        match role {
            "blocked-receiver" => blocked_receiver(&chan),
            "deadline-receiver" => deadline_receiver(&chan),
            "deadline-receiver-usr1" => {
                install_usr1_handler();
                deadline_receiver(&chan);
            }
            "idle-sender" => idle_sender(&chan),
            "idle-receiver" => idle_receiver(&chan),
            other => panic!("unknown peer role {other}"),
        }
    });
}

/// Parks in `recv` on an empty channel; reports what it got, the wall and
/// CPU time the call took, and when it returned (CLOCK_MONOTONIC).
fn blocked_receiver(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    say(format!("tid {}", gettid()));
    say("recv");
    let (cpu0, start) = (cpu_time(libc::RUSAGE_SELF), Instant::now());
    let got = rx.recv();
    let woke = monotonic_ns();
    let (wall, cpu) = (start.elapsed(), cpu_time(libc::RUSAGE_SELF) - cpu0);
    match got {
        Ok(msg) => say(format!(
            "got={} woke_ns={woke} wall_us={} cpu_us={}",
            String::from_utf8_lossy(&msg),
            wall.as_micros(),
            cpu.as_micros()
        )),
        Err(e) => say(format!("err={}", token(&e))),
    }
}

/// Waits in `recv_timeout(DEADLINE)` with a connected, silent sender;
/// reports how long it took, how many SIGUSR1 it handled, and the result.
fn deadline_receiver(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    say(format!("tid {}", gettid()));
    say("recv");
    let start = Instant::now();
    let got = rx.recv_timeout(DEADLINE);
    let elapsed = start.elapsed();
    let handled = HANDLED.load(Ordering::SeqCst);
    let outcome = match got {
        Ok(msg) => format!("message:{}", String::from_utf8_lossy(&msg)),
        Err(e) => token(&e),
    };
    say(format!(
        "elapsed_us={} handled={handled} err={outcome}",
        elapsed.as_micros()
    ));
}

/// Holds the sender role without sending until the parent says go, then
/// sends one message.
fn idle_sender(chan: &Channel) {
    let mut tx = chan.sender().expect("peer takes the sender role");
    let go = block_go();
    say(format!("tid {}", gettid()));
    say("idle");
    await_go(&go);
    tx.send(b"still-connected").expect("peer sends after go");
}

/// Holds the receiver role without reading until the parent says go, then
/// reads the numbered messages up to "after" and reports how many.
fn idle_receiver(chan: &Channel) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    let go = block_go();
    say(format!("tid {}", gettid()));
    say("idle");
    await_go(&go);
    let mut count = 0;
    loop {
        let msg = rx.recv().expect("peer receives after go");
        if msg == b"after" {
            break;
        }
        assert_eq!(
            msg,
            numbered_message_of_len(count, MSG_LEN),
            "message {count} out of order"
        );
        count += 1;
    }
    say(format!("received={count}"));
}

static HANDLED: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// Installs a SIGUSR1 handler that only counts (glibc's `signal` sets
/// SA_RESTART, which semop never honours: it fails with EINTR regardless).
fn install_usr1_handler() {
    let handler: extern "C" fn(libc::c_int) = on_usr1;
    // SAFETY: the handler only does an atomic add, which is
    // async-signal-safe.
    let old = unsafe { libc::signal(libc::SIGUSR1, handler as libc::sighandler_t) };
    assert_ne!(old, libc::SIG_ERR, "signal(SIGUSR1)");
}

/// Blocks `GO` in this thread, so that the parent's thread-directed `GO`
/// stays pending until `await_go` takes it, whenever it is sent.
fn block_go() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t; a null old-mask pointer is allowed.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, GO);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    assert_eq!(rc, 0, "pthread_sigmask");
    set
}

fn await_go(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: set is initialised and sig is a valid place for the result.
    let rc = unsafe { libc::sigwait(set, &mut sig) };
    assert_eq!((rc, sig), (0, GO), "sigwait");
}

/// An error as one whitespace-free word for a report line.
fn token(e: &Error) -> String {
    format!("{e:?}").replace(char::is_whitespace, "_")
}

// -------------------------------------------------------------- the tests

/// Behaviour 3: a receiver parked in `recv` for a second uses under 5% of a
/// core, by the kernel's account (/proc) and its own (getrusage), and wakes
/// with the message the parent sends.
#[test]
fn parked_receiver_costs_no_cpu_and_wakes_on_a_message() {
    let _serial = serial();
    let (chan, _cleanup) = common::private_channel(64 * 1024);
    let mut tx = chan.sender().expect("sender role");
    let mut peer = spawn("blocked-receiver", &chan);
    await_parked(&mut peer);
    let pid = peer.pid();
    let (cpu0, start) = (proc_cpu(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, window) = (proc_cpu(pid) - cpu0, start.elapsed());
    assert!(
        cpu.as_secs_f64() < CPU_SHARE * window.as_secs_f64(),
        "peer parked in recv used {cpu:?} of CPU in {window:?} (/proc/{pid}/stat)"
    );
    let still_waiting = peer.child.try_wait().expect("peer status").is_none();
    assert!(still_waiting, "peer left recv on an empty channel");

    let sent_ns = monotonic_ns();
    tx.send(b"wake-up").expect("send");
    let line = peer.next_line().expect("peer reports what it got");
    assert_eq!(field(&line, "got"), "wake-up", "peer said {line:?}");
    let wall = Duration::from_micros(number(&line, "wall_us"));
    let own_cpu = Duration::from_micros(number(&line, "cpu_us"));
    assert!(
        wall >= window,
        "peer's recv took {wall:?}, less than {window:?}"
    );
    assert!(
        own_cpu.as_secs_f64() < CPU_SHARE * wall.as_secs_f64(),
        "peer's recv used {own_cpu:?} of CPU in {wall:?} (getrusage)"
    );
    let latency = Duration::from_nanos(number(&line, "woke_ns").saturating_sub(sent_ns));
    assert!(
        latency < WAKE_LIMIT,
        "peer woke {latency:?} after the send: no wake-up, only a timer"
    );
    peer.join();
}

/// Behaviour 4, receiving side: with a connected sender process that sends
/// nothing, `try_recv` says `Empty` and `recv_timeout` says `Timeout` on
/// time, sleeping meanwhile; the channel still works afterwards.
#[test]
fn try_recv_is_empty_and_recv_timeout_keeps_time_with_an_idle_sender() {
    let _serial = serial();
    let (chan, _cleanup) = common::private_channel(64 * 1024);
    let mut rx = chan.receiver().expect("receiver role");
    let mut peer = spawn("idle-sender", &chan);
    let tid = await_idle(&mut peer);

    let got = rx.try_recv();
    assert!(
        matches!(got, Err(Error::Empty)),
        "try_recv on an empty channel gave {got:?}"
    );
    for timeout in TIMEOUTS {
        assert_times_out("recv_timeout", timeout, || {
            rx.recv_timeout(timeout).map(drop)
        });
    }

    go(&peer, tid);
    let msg = rx.recv_timeout(LIMIT).expect("the idle sender's message");
    assert_eq!(msg, b"still-connected");
    peer.join();
}

/// Behaviour 4, sending side: with a connected receiver process that reads
/// nothing, `try_send` fills the ring exactly and then says `Full`, and
/// `send_timeout` says `Timeout` on time, writing nothing; the receiver then
/// gets every message and nothing more.
#[test]
fn try_send_is_full_and_send_timeout_keeps_time_with_an_idle_receiver() {
    let _serial = serial();
    let (chan, _cleanup) = common::private_channel(4096);
    let mut tx = chan.sender().expect("sender role");
    let mut peer = spawn("idle-receiver", &chan);
    let tid = await_idle(&mut peer);

    let fits = chan.capacity() / (FRAME_HEADER + MSG_LEN);
    let mut sent = 0;
    let full = loop {
        match tx.try_send(&numbered_message_of_len(sent as u64, MSG_LEN)) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent <= fits, "try_send took {sent} messages; {fits} fit");
    };
    assert!(
        matches!(full, Error::Full),
        "try_send on a full ring gave {full:?}"
    );
    assert_eq!(sent, fits, "try_send said Full before the ring was full");
    for timeout in TIMEOUTS {
        assert_times_out("send_timeout", timeout, || {
            tx.send_timeout(&numbered_message_of_len(sent as u64, MSG_LEN), timeout)
        });
    }

    go(&peer, tid);
    tx.send(b"after").expect("send once the receiver reads");
    let line = peer.next_line().expect("peer reports what it received");
    assert_eq!(number(&line, "received"), fits as u64, "peer said {line:?}");
    peer.join();
}

/// Behaviour 10: a receiver parked in `recv`, stopped and continued three
/// times, goes back to waiting (no error, no phantom message) and receives
/// the message sent afterwards.
#[test]
fn stopped_and_continued_receiver_keeps_waiting_then_receives() {
    let _serial = serial();
    let (chan, _cleanup) = common::private_channel(64 * 1024);
    let mut tx = chan.sender().expect("sender role");
    let mut peer = spawn("blocked-receiver", &chan);
    let tid = await_parked(&mut peer);
    let pid = peer.pid();
    for _ in 0..3 {
        stop_and_continue(&peer, tid);
        wait_for(LIMIT, "the peer to wait again after SIGCONT", || {
            matches!(task_state(pid, tid), Some('S' | 'Z') | None)
        });
        if task_state(pid, tid) != Some('S') {
            break; // it left recv: its report below says how
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    tx.send(b"after-stop").expect("send");
    let line = peer.next_line().expect("peer reports what it got");
    assert_eq!(field(&line, "got"), "after-stop", "peer said {line:?}");
    peer.join();
}

/// Behaviour 10: `recv_timeout(1 s)` stopped and continued along the way
/// still times out at its deadline, not earlier and not a restart later.
#[test]
fn recv_timeout_keeps_its_deadline_across_stop_and_continue() {
    let _serial = serial();
    let (sent, line) = deadline_across_signals("deadline-receiver", stop_and_continue);
    assert_deadline_kept(&line);
    assert!(sent >= 1, "no stop reached the waiting peer");
}

/// Behaviour 10: the same with SIGUSR1 caught by a handler in the waiting
/// thread.
#[test]
fn recv_timeout_keeps_its_deadline_across_a_handled_signal() {
    let _serial = serial();
    let (sent, line) = deadline_across_signals("deadline-receiver-usr1", |peer, tid| {
        tgkill(peer.pid(), tid, libc::SIGUSR1);
    });
    assert_deadline_kept(&line);
    let handled = number(&line, "handled");
    assert!(
        (1..=sent).contains(&handled),
        "peer handled {handled} of the {sent} SIGUSR1 sent while it waited"
    );
}

// ------------------------------------------------------- parent's helpers

fn spawn(role: &str, chan: &Channel) -> Peer {
    common::spawn_peer("peer", role, &[(SHMID_ENV, chan.id().to_string())])
}

/// Reads the "tid N" line every peer starts with.
fn read_tid(peer: &mut Peer) -> i32 {
    let line = peer.next_line().expect("peer says its thread id");
    line.strip_prefix("tid ")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("peer said {line:?}, expected its tid"))
}

/// Waits until the peer has said it is about to receive and its thread is
/// asleep: parked in the wait. Returns the thread id.
fn await_parked(peer: &mut Peer) -> i32 {
    let tid = read_tid(peer);
    peer.expect_line("recv");
    let pid = peer.pid();
    wait_for(LIMIT, "the peer to sleep in its wait", || {
        common::proc_state(pid) == Some('S') && task_state(pid, tid) == Some('S')
    });
    tid
}

/// Waits until an idle peer holds its role and waits for go.
fn await_idle(peer: &mut Peer) -> i32 {
    let tid = read_tid(peer);
    peer.expect_line("idle");
    tid
}

fn go(peer: &Peer, tid: i32) {
    tgkill(peer.pid(), tid, GO);
}

/// Runs `call`, which must time out after `timeout` (within `MARGIN`)
/// without burning the calling thread's CPU.
fn assert_times_out(what: &str, timeout: Duration, call: impl FnOnce() -> Result<(), Error>) {
    let (cpu0, start) = (cpu_time(libc::RUSAGE_THREAD), Instant::now());
    let got = call();
    let (elapsed, cpu) = (start.elapsed(), cpu_time(libc::RUSAGE_THREAD) - cpu0);
    assert!(
        matches!(got, Err(Error::Timeout)),
        "{what}({timeout:?}) gave {got:?}"
    );
    assert!(
        elapsed >= timeout,
        "{what}({timeout:?}) gave up after {elapsed:?}"
    );
    assert!(
        elapsed < timeout + MARGIN,
        "{what}({timeout:?}) took {elapsed:?}"
    );
    if timeout >= Duration::from_millis(100) {
        assert!(
            cpu.as_secs_f64() < CPU_SHARE * elapsed.as_secs_f64(),
            "{what}({timeout:?}) used {cpu:?} of CPU in {elapsed:?}"
        );
    }
}

/// Stops the peer (SIGSTOP, seen as state 'T') and continues it (SIGCONT).
fn stop_and_continue(peer: &Peer, tid: i32) {
    let pid = peer.pid();
    peer.signal(libc::SIGSTOP);
    wait_for(LIMIT, "the peer to stop", || {
        common::proc_state(pid) == Some('T') && task_state(pid, tid) == Some('T')
    });
    peer.signal(libc::SIGCONT);
    wait_for(LIMIT, "the peer to continue", || {
        common::proc_state(pid) != Some('T') && task_state(pid, tid) != Some('T')
    });
}

/// A peer waits in `recv_timeout(DEADLINE)` with a connected, silent sender
/// (this process) while `interrupt` hits it at each of `SIGNAL_AT`.
/// Returns how many interrupts reached it before it finished, and its report.
fn deadline_across_signals(role: &str, interrupt: impl Fn(&Peer, i32)) -> (u64, String) {
    let (chan, _cleanup) = common::private_channel(64 * 1024);
    let _tx = chan.sender().expect("sender role");
    let mut peer = spawn(role, &chan);
    let tid = await_parked(&mut peer);
    let start = Instant::now();
    let mut sent = 0;
    for at in SIGNAL_AT {
        std::thread::sleep((start + at).saturating_duration_since(Instant::now()));
        if matches!(task_state(peer.pid(), tid), Some('Z') | None) {
            break; // already finished; the report says how
        }
        interrupt(&peer, tid);
        sent += 1;
    }
    let line = peer.next_line().expect("peer reports its wait");
    peer.join();
    (sent, line)
}

fn assert_deadline_kept(line: &str) {
    assert_eq!(field(line, "err"), "Timeout", "peer said {line:?}");
    let elapsed = Duration::from_micros(number(line, "elapsed_us"));
    assert!(
        elapsed >= DEADLINE,
        "recv_timeout({DEADLINE:?}) gave up after {elapsed:?}"
    );
    assert!(
        elapsed < DEADLINE + MARGIN,
        "recv_timeout({DEADLINE:?}) took {elapsed:?}"
    );
}

/// The value of `name=value` in a peer's report line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("peer said {line:?}, which has no {name}="))
}

fn number(line: &str, name: &str) -> u64 {
    let value = field(line, name);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name}={value} is not a number in {line:?}"))
}

// ------------------------------------------------------ /proc and libc

/// State of one thread of a process ('S' sleeping, 'T' stopped, ...).
fn task_state(pid: i32, tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// CPU time a process has used (utime + stime from /proc/PID/stat).
fn proc_cpu(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("peer's stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat has a command in parentheses")
        .1
        .split_whitespace()
        .collect();
    // After the command: state is field 3 of proc(5), utime 14, stime 15.
    let ticks: u64 = [11, 12]
        .iter()
        .map(|&i| fields[i].parse::<u64>().expect("utime/stime in ticks"))
        .sum();
    // SAFETY: sysconf takes a plain integer.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(hz > 0, "sysconf(_SC_CLK_TCK)");
    Duration::from_nanos(ticks * 1_000_000_000 / hz as u64)
}

/// CPU time (user + system) of this process or thread, from getrusage.
fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(who, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(ru.ru_utime) + time(ru.ru_stime)
}

/// Sends `sig` to one thread of a process (our own child).
fn tgkill(pid: i32, tid: i32, sig: libc::c_int) {
    // SAFETY: tgkill takes plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
    assert_eq!(rc, 0, "tgkill: {}", std::io::Error::last_os_error());
}
