//! shmchan against its peers, interleaved: for each message size, rounds of
//! shmchan, shmchan zero-copy, ipmpsc, iceoryx2, a pipe, a Unix socket, a
//! System V message queue, crossbeam-channel and a bare ring (the ceiling),
//! one after the other (A, B, C, ..., A, B, C, ...), each round a fresh link to a fresh receiver
//! process; medians over rounds, and ratios paired by round. crossbeam, the
//! in-process reference, runs both its threads in that child.
//!
//! ```text
//! cargo run --release --manifest-path benchmarks/Cargo.toml -- \
//!     [--mode throughput|roundtrip|all] [--sizes 8,64,1024,65536,1048576] \
//!     [--rounds 5] [--seconds 1] [--warmup 0.2] [--pin] [--capacity BYTES] \
//!     [--transports shmchan,shmchan-zc,ipmpsc,iceoryx2,pipe,socket,msgq,crossbeam,bare] \
//!     [--rt-sizes 8,64]
//! ```
//!
//! See README.md for what each mode measures.

mod bare;
/// The transports the criterion benches run too: one file, so that a
/// transport is the same work in both harnesses.
#[path = "../../benches/support/transport.rs"]
mod shared;
mod transport;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shared::{Rx, Sink, Source, Tx, touch};
use transport::{AnyRx, AnyTx, Kind, Link, RunDirs, Use};

/// Env var naming a child's job (`sink`, `echo`).
const ROLE_ENV: &str = "SHMCHAN_PEER_BENCH_ROLE";
/// Env var: the CPU a child pins itself to (with `--pin`).
const PIN_ENV: &str = "SHMCHAN_PEER_BENCH_CPU";
/// Env var: warmup and measured seconds, for a child that plays the
/// parent's part too (crossbeam's in-process rounds).
const TIMES_ENV: &str = "SHMCHAN_PEER_BENCH_TIMES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Throughput,
    RoundTrip,
    All,
}

#[derive(Debug, Clone)]
struct Args {
    mode: Mode,
    sizes: Vec<usize>,
    rt_sizes: Vec<usize>,
    rounds: usize,
    seconds: f64,
    warmup: f64,
    pin: bool,
    kinds: Vec<Kind>,
    iceoryx2_buffer: Option<usize>,
    /// Ring bytes for every transport (`--capacity`); None: `capacity_for`.
    capacity: Option<usize>,
}

impl Args {
    /// The ring bytes of a link for messages of `size`.
    fn ring(&self, size: usize) -> usize {
        self.capacity.unwrap_or_else(|| shared::capacity_for(size))
    }
}

const USAGE: &str = "usage: shmchan-peer-benchmarks [--mode throughput|roundtrip|all] \
[--sizes 8,64,1024,65536,1048576] [--rt-sizes 8,64] [--rounds 5] [--seconds 1] \
[--warmup 0.2] [--pin] \
[--transports shmchan,shmchan-zc,ipmpsc,iceoryx2,pipe,socket,msgq,crossbeam,bare] \
[--iceoryx2-buffer N] [--capacity BYTES]";

fn parse_args() -> Args {
    let mut a = Args {
        mode: Mode::All,
        sizes: vec![8, 64, 1024, 65536, 1 << 20],
        rt_sizes: vec![8, 64],
        rounds: 5,
        seconds: 1.0,
        warmup: 0.2,
        pin: false,
        kinds: transport::ALL
            .into_iter()
            .filter(|&k| {
                !matches!(
                    k,
                    Kind::ShmFence | Kind::ShmEager | Kind::Shm8Lanes | Kind::PipeRaw
                )
            })
            .collect(),
        iceoryx2_buffer: None,
        capacity: None,
    };
    let mut it = std::env::args().skip(1);
    let list = |v: Option<String>| -> Vec<usize> {
        v.expect(USAGE)
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| die(&format!("bad size {s:?}")))
            })
            .collect()
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mode" => {
                a.mode = match it.next().as_deref() {
                    Some("throughput") => Mode::Throughput,
                    Some("roundtrip") => Mode::RoundTrip,
                    Some("all") => Mode::All,
                    _ => die(USAGE),
                }
            }
            "--sizes" => a.sizes = list(it.next()),
            "--rt-sizes" => a.rt_sizes = list(it.next()),
            "--rounds" => a.rounds = value(&mut it),
            "--seconds" => a.seconds = value(&mut it),
            "--warmup" => a.warmup = value(&mut it),
            "--iceoryx2-buffer" => a.iceoryx2_buffer = Some(value(&mut it)),
            "--capacity" => a.capacity = Some(value(&mut it)),
            "--pin" => a.pin = true,
            "--transports" => {
                a.kinds = it
                    .next()
                    .expect(USAGE)
                    .split(',')
                    .map(|s| {
                        Kind::parse(s.trim())
                            .unwrap_or_else(|| die(&format!("unknown transport {s:?}")))
                    })
                    .collect()
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.rounds == 0
        || a.seconds <= 0.0
        || a.kinds.is_empty()
        || a.sizes.contains(&0)
        || a.rt_sizes.contains(&0)
    {
        die(USAGE);
    }
    if let Some(cap) = a.capacity {
        let largest = a
            .sizes
            .iter()
            .chain(&a.rt_sizes)
            .max()
            .copied()
            .unwrap_or(0);
        if cap < largest + shared::FRAMING {
            let need = largest + shared::FRAMING;
            die(&format!(
                "--capacity {cap} cannot hold a {largest}-byte message and its framing \
                 ({need} bytes)"
            ));
        }
    }
    a
}

/// The next argument as a `T`; else the usage, and exit.
fn value<T: std::str::FromStr>(it: &mut impl Iterator<Item = String>) -> T {
    it.next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| die(USAGE))
}

fn die(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2);
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        // The parent blocks the termination signals (its signal thread
        // waits for them) and the mask is inherited: a child takes the
        // default action again, so a Ctrl-C ends it.
        set_termination_signals(libc::SIG_UNBLOCK);
        child_main(&role);
        return;
    }
    let args = parse_args();
    let dirs = RunDirs::new();
    dirs.create();
    *CLEANUP.lock().unwrap() = Some(dirs.clone());
    watch_termination_signals();
    if args.pin {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if n < 2 {
            cleanup();
            die("--pin needs two CPUs");
        }
        if let Err(e) = pin_to(0) {
            cleanup();
            die(&format!("sched_setaffinity(CPU 0): {e}"));
        }
    }
    // A failed round (a panic: a child that died, a count that does not
    // match) unwinds to here, so that the run's resources are still
    // removed.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&args, &dirs)));
    let leftovers = cleanup();
    if outcome.is_err() {
        eprintln!(
            "the run failed; removed what it had made ({} leftovers: {leftovers:?})",
            leftovers.len()
        );
        std::process::exit(101);
    }
    println!();
    println!("Load at end: {}", sh("uptime"));
    println!();
    if leftovers.is_empty() {
        println!(
            "Cleanup: nothing of this run is left (shmchan segments and semaphore sets, \
             message queues, ipmpsc files, iceoryx2 files; iceoryx2's persistent global \
             management segment removed by prefix)."
        );
    } else {
        println!("Cleanup: had to remove leftovers: {}", leftovers.join(", "));
    }
}

fn run(args: &Args, dirs: &RunDirs) {
    print_header(args);
    if matches!(args.mode, Mode::Throughput | Mode::All) {
        let results = run_throughput(args, dirs);
        print_throughput(args, &results);
    }
    if matches!(args.mode, Mode::RoundTrip | Mode::All) {
        let results = run_roundtrip(args, dirs);
        print_roundtrip(args, &results);
    }
}

/// The signals that end a run early.
const TERMINATION: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn set_termination_signals(how: libc::c_int) -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is initialised by sigemptyset; the calls
    // change this thread's mask only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in TERMINATION {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
        set
    }
}

/// Blocks SIGINT/SIGTERM/SIGHUP in every thread (before any is spawned)
/// and has one thread wait for them: it kills the running child, removes
/// what the run made and exits, so that a Ctrl-C leaves nothing behind.
fn watch_termination_signals() {
    let set = set_termination_signals(libc::SIG_BLOCK);
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: set holds the blocked signals; sig receives one.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        let pid = CHILD.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let left = cleanup();
        eprintln!(
            "signal {sig}: stopped; removed what the run had made ({} leftovers: {left:?})",
            left.len()
        );
        std::process::exit(130);
    });
}

/// The running child's pid (0: none), for the signal thread.
static CHILD: AtomicI32 = AtomicI32::new(0);

// ---------------------------------------------------------------------------
// Resources and cleanup

/// The run's directories and the System V ids of every shmchan channel and
/// message queue it made: checked (and removed, if a crash left them) at
/// the end or by the watchdog.
static CLEANUP: Mutex<Option<RunDirs>> = Mutex::new(None);
static SYSV_IDS: Mutex<Vec<(i32, i32)>> = Mutex::new(Vec::new());
static MSQ_IDS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn remember(link: &Link) {
    if let Some(ids) = link.shm_ids() {
        SYSV_IDS.lock().unwrap().push(ids);
    }
    if let Some(id) = link.msq_id() {
        MSQ_IDS.lock().unwrap().push(id);
    }
}

/// Removes what the run made; returns what was still there.
fn cleanup() -> Vec<String> {
    let mut left = Vec::new();
    if let Some(dirs) = CLEANUP.lock().unwrap().take() {
        left.extend(dirs.remove());
    }
    let shm = sysv_ids("/proc/sysvipc/shm");
    let sem = sysv_ids("/proc/sysvipc/sem");
    for &(shmid, semid) in SYSV_IDS.lock().unwrap().iter() {
        if shm.contains(&shmid) {
            left.push(format!("shm segment {shmid}"));
            // SAFETY: IPC_RMID on a segment this run created.
            unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
        }
        if sem.contains(&semid) {
            left.push(format!("semaphore set {semid}"));
            // SAFETY: IPC_RMID on a set this run created.
            unsafe { libc::semctl(semid, 0, libc::IPC_RMID) };
        }
    }
    // A link removes its queue when it drops; one still listed outlived
    // its round (a signal, the watchdog).
    let msg = sysv_ids("/proc/sysvipc/msg");
    for &id in MSQ_IDS.lock().unwrap().iter() {
        if msg.contains(&id) {
            left.push(format!("message queue {id}"));
            // SAFETY: IPC_RMID on a queue this run created; no buffer.
            unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
    left
}

/// The ids (second column) listed in /proc/sysvipc/{shm,sem,msg}.
fn sysv_ids(path: &str) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity on our own process with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Runs `$body` with `$r` and `$t` bound to the ends inside a shared
/// transport's `Rx` and `Tx` of one kind: one monomorphised loop per end
/// type, as the other transports get.
macro_rules! shared_pair {
    ($rx:expr, $tx:expr, |$r:ident, $t:ident| $body:expr) => {
        match ($rx, $tx) {
            (Rx::ShmCopy(mut $r), Tx::ShmCopy(mut $t)) => $body,
            (Rx::ShmZc(mut $r), Tx::ShmZc(mut $t)) => $body,
            (Rx::Framed(mut $r), Tx::Framed(mut $t)) => $body,
            (Rx::Packet(mut $r), Tx::Packet(mut $t)) => $body,
            (Rx::Msgq(mut $r), Tx::Msgq(mut $t)) => $body,
            _ => unreachable!("links of one kind"),
        }
    };
}

// ---------------------------------------------------------------------------
// Child processes

/// A running child (this binary again, with `ROLE_ENV` set). Killed on
/// drop unless `finish` saw it exit.
struct Peer {
    child: Child,
    _ctl: ChildStdin,
    out: BufReader<ChildStdout>,
    watchdog: Option<mpsc::Sender<()>>,
    exited: bool,
}

impl Peer {
    fn spawn(role: &str, links: &[&Link], args: &Args, dirs: &RunDirs, limit: Duration) -> Peer {
        let mut cmd = Command::new(std::env::current_exe().expect("own executable"));
        cmd.env(ROLE_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd.envs(dirs.to_env());
        for link in links {
            cmd.envs(link.env.iter().map(|(k, v)| (k, v)));
        }
        if args.pin {
            cmd.env(PIN_ENV, "1");
        }
        cmd.env(TIMES_ENV, format!("{} {}", args.warmup, args.seconds));
        let mut child = cmd.spawn().expect("spawn child");
        let pid = child.id() as libc::pid_t;
        CHILD.store(pid, Ordering::SeqCst);
        let ctl = child.stdin.take().expect("stdin");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        // A transport that waits for ever on a dead peer (ipmpsc, iceoryx2
        // with RetryUntilDelivered) would hang the run: past `limit`, kill
        // the child, clean up and exit.
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("round took longer than {limit:?}: killing child {pid} and giving up");
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let left = cleanup();
                eprintln!(
                    "removed what the run had made ({} leftovers: {left:?})",
                    left.len()
                );
                std::process::exit(3);
            }
        });
        Peer {
            child,
            _ctl: ctl,
            out,
            watchdog: Some(tx),
            exited: false,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("child answer");
        if line.is_empty() {
            let status = self.child.wait();
            self.exited = true;
            panic!("child exited early: {status:?}");
        }
        line.trim_end().to_owned()
    }

    fn expect_ready(&mut self) {
        let l = self.line();
        assert_eq!(l, "ready", "child said {l:?}");
    }

    fn finish(mut self) {
        let status = self.child.wait().expect("wait child");
        self.exited = true;
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        CHILD.store(0, Ordering::SeqCst);
        drop(self.watchdog.take());
    }
}

fn child_main(role: &str) {
    if let Ok(cpu) = std::env::var(PIN_ENV) {
        pin_to(cpu.parse().expect("cpu")).expect("sched_setaffinity in the child");
    }
    let dirs = RunDirs::from_env();
    let mut out = std::io::stdout().lock();
    match role {
        "sink" => {
            let mut a = Link::from_env("A", &dirs);
            let rx = a.rx();
            let (n, bytes, ns, sum) = match rx {
                AnyRx::Shared(Rx::ShmCopy(mut r)) => sink(&mut r, &mut out),
                AnyRx::Shared(Rx::ShmZc(mut r)) => sink(&mut r, &mut out),
                AnyRx::Shared(Rx::Framed(mut r)) => sink(&mut r, &mut out),
                AnyRx::Shared(Rx::Packet(mut r)) => sink(&mut r, &mut out),
                AnyRx::Shared(Rx::Msgq(mut r)) => sink(&mut r, &mut out),
                AnyRx::Ipmpsc(mut r) => sink(&mut r, &mut out),
                AnyRx::Iceoryx2(mut r) => sink(&mut r, &mut out),
                AnyRx::Bare(mut r) => sink(&mut r, &mut out),
                AnyRx::Crossbeam(mut r) => {
                    // In-process: a second thread of this process sends,
                    // as the parent does for the others.
                    let AnyTx::Crossbeam(mut t) = a.tx() else {
                        unreachable!("both ends here")
                    };
                    let size = a.size;
                    let sender =
                        parent_thread(move |warm, measure| stream(&mut t, size, warm, measure));
                    let counted = sink(&mut r, &mut out);
                    let sent = sender.join().expect("sending thread");
                    assert_eq!(
                        counted.0, sent,
                        "crossbeam: the receiver counted {}, the sender sent {sent}",
                        counted.0
                    );
                    counted
                }
                AnyRx::InChild => unreachable!("the parent's end"),
            };
            writeln!(out, "{n} {bytes} {ns} {sum}")
                .and_then(|()| out.flush())
                .expect("answer");
        }
        "echo" => {
            let mut a = Link::from_env("A", &dirs);
            let mut b = Link::from_env("B", &dirs);
            let (rx, tx) = (a.rx(), b.tx());
            match (rx, tx) {
                (AnyRx::Shared(rx), AnyTx::Shared(tx)) => {
                    shared_pair!(rx, tx, |r, t| echo(&mut r, &mut t, &mut out))
                }
                (AnyRx::Ipmpsc(mut r), AnyTx::Ipmpsc(mut t)) => echo(&mut r, &mut t, &mut out),
                (AnyRx::Iceoryx2(mut r), AnyTx::Iceoryx2(mut t)) => echo(&mut r, &mut t, &mut out),
                (AnyRx::Bare(mut r), AnyTx::Bare(mut t)) => echo(&mut r, &mut t, &mut out),
                (AnyRx::Crossbeam(mut r), AnyTx::Crossbeam(mut t)) => {
                    // In-process: a second thread of this process pings, as
                    // the parent does for the others, and this process
                    // reports the round.
                    let (AnyTx::Crossbeam(mut pt), AnyRx::Crossbeam(mut pr)) = (a.tx(), b.rx())
                    else {
                        unreachable!("both ends here")
                    };
                    let size = a.size;
                    let pinger = parent_thread(move |warm, measure| {
                        ping(&mut pt, &mut pr, size, warm, measure)
                    });
                    echo(&mut r, &mut t, &mut out);
                    let trip = Trip::of(pinger.join().expect("pinging thread"));
                    writeln!(out, "{} {} {}", trip.median, trip.p99, trip.samples)
                        .and_then(|()| out.flush())
                        .expect("answer");
                }
                _ => unreachable!("links of one kind"),
            }
        }
        other => die(&format!("unknown role {other}")),
    }
}

/// Runs the parent's part of an in-process round (sending, pinging) on a
/// second thread of the child, with the parent's times and, with `--pin`,
/// on the parent's CPU.
fn parent_thread<T: Send + 'static>(
    part: impl FnOnce(Duration, Duration) -> T + Send + 'static,
) -> JoinHandle<T> {
    let times = std::env::var(TIMES_ENV).expect("times");
    let secs: Vec<f64> = times
        .split_whitespace()
        .map(|v| v.parse().expect("seconds"))
        .collect();
    let [warm, measure] = secs[..] else {
        panic!("bad times {times:?}")
    };
    let pin = std::env::var(PIN_ENV).is_ok();
    std::thread::spawn(move || {
        if pin {
            pin_to(0).expect("sched_setaffinity in the child's second thread");
        }
        part(
            Duration::from_secs_f64(warm),
            Duration::from_secs_f64(measure),
        )
    })
}

/// The receiving child of a throughput round: counts and touches every
/// message between the two empty markers; returns (messages, bytes, ns
/// between the markers, checksum).
fn sink<K: Sink>(rx: &mut K, out: &mut impl Write) -> (u64, u64, u64, u64) {
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .expect("ready");
    let mut started: Option<Instant> = None;
    let (mut n, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    loop {
        let (len, s) = rx.recv_with(|m| (m.len(), touch(m)));
        if len == 0 {
            match started {
                None => {
                    started = Some(Instant::now());
                    (n, bytes, sum) = (0, 0, 0);
                }
                Some(t0) => return (n, bytes, t0.elapsed().as_nanos() as u64, sum),
            }
        } else {
            n += 1;
            bytes += len as u64;
            sum = sum.wrapping_add(s);
        }
    }
}

/// The echoing child of a round-trip round: sends every message back as
/// received, until an empty one (echoed too).
fn echo<K: Sink, S: Source>(rx: &mut K, tx: &mut S, out: &mut impl Write) {
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .expect("ready");
    loop {
        let last = rx.recv_with(|m| {
            tx.send(m);
            m.is_empty()
        });
        if last {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// Throughput

/// One throughput round as the receiver measured it.
#[derive(Debug, Clone, Copy)]
struct Rate {
    msgs: f64,
    bytes: f64,
}

/// results[size index][kind index] = one Rate per round.
type Throughput = Vec<Vec<Vec<Rate>>>;

fn run_throughput(args: &Args, dirs: &RunDirs) -> Throughput {
    let mut results = vec![vec![Vec::new(); args.kinds.len()]; args.sizes.len()];
    for (si, &size) in args.sizes.iter().enumerate() {
        for round in 0..args.rounds {
            for (ki, &kind) in args.kinds.iter().enumerate() {
                if !kind.fits(size) {
                    skipped("throughput", kind, size, round);
                    continue;
                }
                let r = throughput_round(args, dirs, kind, size);
                eprintln!(
                    "throughput {:>8} B  round {}/{}  {:<11} {:>12.0} msg/s {:>10.1} MB/s",
                    size,
                    round + 1,
                    args.rounds,
                    kind.name(),
                    r.msgs,
                    r.bytes / 1e6
                );
                results[si][ki].push(r);
            }
        }
    }
    results
}

/// Says (once per size) that a transport does not run at a size.
fn skipped(what: &str, kind: Kind, size: usize, round: usize) {
    if let (0, Some((max, limit))) = (round, kind.max_size()) {
        eprintln!(
            "{what} {size:>8} B  {:<11} n/a: above {limit} ({max} B)",
            kind.name()
        );
    }
}

fn throughput_round(args: &Args, dirs: &RunDirs, kind: Kind, size: usize) -> Rate {
    let mut link = Link::new(
        kind,
        size,
        args.ring(size),
        "A",
        dirs,
        Use::Stream,
        args.iceoryx2_buffer,
    );
    remember(&link);
    let limit = Duration::from_secs_f64(args.warmup + args.seconds) * 3 + Duration::from_secs(30);
    let mut peer = Peer::spawn("sink", &[&link], args, dirs, limit);
    link.close_child_end(true);
    let tx = link.tx();
    peer.expect_ready();
    let (warm, measure) = (
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.seconds),
    );
    let sent = match tx {
        AnyTx::Shared(Tx::ShmCopy(mut t)) => Some(stream(&mut t, size, warm, measure)),
        AnyTx::Shared(Tx::ShmZc(mut t)) => Some(stream(&mut t, size, warm, measure)),
        AnyTx::Shared(Tx::Framed(mut t)) => Some(stream(&mut t, size, warm, measure)),
        AnyTx::Shared(Tx::Packet(mut t)) => Some(stream(&mut t, size, warm, measure)),
        AnyTx::Shared(Tx::Msgq(mut t)) => Some(stream(&mut t, size, warm, measure)),
        AnyTx::Ipmpsc(mut t) => Some(stream(&mut t, size, warm, measure)),
        AnyTx::Iceoryx2(mut t) => Some(stream(&mut t, size, warm, measure)),
        AnyTx::Bare(mut t) => Some(stream(&mut t, size, warm, measure)),
        // In-process: the child streams to itself and checks the count.
        AnyTx::InChild => None,
        AnyTx::Crossbeam(_) => unreachable!("the child's end"),
    };
    let answer = peer.line();
    peer.finish();
    drop(link);
    let f: Vec<u64> = answer
        .split_whitespace()
        .map(|v| v.parse().expect("number"))
        .collect();
    let [n, bytes, ns, _sum] = f[..] else {
        panic!("bad answer {answer:?}")
    };
    if let Some(sent) = sent {
        assert_eq!(
            n,
            sent,
            "{}: the receiver counted {n} messages, the sender sent {sent}",
            kind.name()
        );
    }
    assert_eq!(bytes, n * size as u64);
    let secs = ns as f64 / 1e9;
    Rate {
        msgs: n as f64 / secs,
        bytes: bytes as f64 / secs,
    }
}

/// The sending parent of a throughput round: streams for `warm`, sends the
/// start marker (an empty message), streams for `measure`, sends the end
/// marker; returns the messages sent between the markers. The clock is read
/// once per batch of about 64 KiB.
fn stream<S: Source>(tx: &mut S, size: usize, warm: Duration, measure: Duration) -> u64 {
    let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let batch = (65536 / size).clamp(1, 256) as u64;
    burst(tx, &msg, batch, warm);
    tx.send(&[]);
    let n = burst(tx, &msg, batch, measure);
    tx.send(&[]);
    n
}

/// Sends `msg` for `d`, reading the clock once per `batch`.
#[inline(never)]
fn burst<S: Source>(tx: &mut S, msg: &[u8], batch: u64, d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut n = 0;
    loop {
        for _ in 0..batch {
            tx.send(msg);
        }
        n += batch;
        if Instant::now() >= end {
            return n;
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print_throughput(args: &Args, res: &Throughput) {
    println!();
    println!(
        "### Throughput ({}; {} interleaved rounds of {} s per transport and size; medians)",
        if args.pin {
            "pinned: sender CPU 0, receiver CPU 1"
        } else {
            "unpinned"
        },
        args.rounds,
        args.seconds
    );
    println!();
    println!("| size | transport | msg/s | MB/s | min..max msg/s |");
    println!("|---:|:---|---:|---:|---:|");
    for (si, &size) in args.sizes.iter().enumerate() {
        for (ki, &kind) in args.kinds.iter().enumerate() {
            let rates = &res[si][ki];
            if rates.is_empty() {
                let size = if ki == 0 {
                    human_size(size)
                } else {
                    String::new()
                };
                println!("| {size} | {} | n/a | n/a | n/a |", kind.name());
                continue;
            }
            let mut m: Vec<f64> = rates.iter().map(|r| r.msgs).collect();
            let mut b: Vec<f64> = rates.iter().map(|r| r.bytes).collect();
            let lo = m.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = m.iter().cloned().fold(0.0, f64::max);
            println!(
                "| {} | {} | {} | {:.0} | {}..{} |",
                if ki == 0 {
                    human_size(size)
                } else {
                    String::new()
                },
                kind.name(),
                si_count(median(&mut m)),
                median(&mut b) / 1e6,
                si_count(lo),
                si_count(hi)
            );
        }
    }
    print_limits(args, &args.sizes);
    let pairs = ratio_pairs(args);
    if pairs.is_empty() {
        return;
    }
    println!();
    println!("Ratios (msg/s, median over rounds of the ratio within each round):");
    println!();
    let head: Vec<String> = pairs
        .iter()
        .map(|&(a, b)| format!("{}/{}", a.name(), b.name()))
        .collect();
    println!("| size | {} |", head.join(" | "));
    println!("|---:|{}", "---:|".repeat(pairs.len()));
    for (si, &size) in args.sizes.iter().enumerate() {
        let cells: Vec<String> = pairs
            .iter()
            .map(|&(a, b)| {
                let (ia, ib) = (index(args, a), index(args, b));
                let mut r: Vec<f64> = res[si][ia]
                    .iter()
                    .zip(&res[si][ib])
                    .map(|(x, y)| x.msgs / y.msgs)
                    .collect();
                ratio_cell(&mut r)
            })
            .collect();
        println!("| {} | {} |", human_size(size), cells.join(" | "));
    }
}

/// A ratio's table cell: the median, or "n/a" where a transport did not
/// run at that size.
fn ratio_cell(r: &mut [f64]) -> String {
    if r.is_empty() {
        "n/a".into()
    } else {
        format!("{:.2}x", median(r))
    }
}

/// After a table: why some of its cells are "n/a", and where a transport
/// got fewer bytes than the ring.
fn print_limits(args: &Args, sizes: &[usize]) {
    for &kind in &args.kinds {
        if let Some((max, limit)) = kind.max_size()
            && sizes.iter().any(|&s| s > max)
        {
            println!();
            println!(
                "n/a: {} carries messages up to {limit} = {max} B; larger sizes were not run.",
                kind.name()
            );
        }
    }
    if let Some(bytes) = shared::queue_capped() {
        println!();
        println!(
            "msgq: queues held at most kernel.msgmnb = {bytes} B, not the ring bytes: raising \
             msg_qbytes above msgmnb takes CAP_SYS_RESOURCE, which this run lacked."
        );
    }
}

fn index(args: &Args, k: Kind) -> usize {
    args.kinds
        .iter()
        .position(|&x| x == k)
        .expect("kind in run")
}

/// (numerator, denominator) of the ratios printed, each when both ran:
/// each shmchan flavour against ipmpsc, iceoryx2 and the pipe; shmchan
/// against the socket, the message queue and crossbeam; zero-copy
/// shmchan against copying shmchan; each shmchan flavour against the bare
/// ring (the fraction of the ceiling it reaches), and the bare ring
/// against the pipe (the ceiling of the pipe ratios).
fn ratio_pairs(args: &Args) -> Vec<(Kind, Kind)> {
    let mut v = Vec::new();
    for a in [Kind::Shm, Kind::ShmZc] {
        for b in [Kind::Ipmpsc, Kind::Iceoryx2, Kind::Pipe] {
            v.push((a, b));
        }
    }
    v.extend([
        (Kind::Shm, Kind::Socket),
        (Kind::Shm, Kind::Msgq),
        (Kind::Shm, Kind::Crossbeam),
        (Kind::ShmZc, Kind::Shm),
        (Kind::Shm, Kind::ShmFence),
        (Kind::Shm, Kind::ShmEager),
        (Kind::Shm8Lanes, Kind::Shm),
        (Kind::Shm, Kind::Bare),
        (Kind::ShmZc, Kind::Bare),
        (Kind::Bare, Kind::Pipe),
        (Kind::Shm, Kind::PipeRaw),
        (Kind::Bare, Kind::PipeRaw),
    ]);
    v.retain(|(a, b)| args.kinds.contains(a) && args.kinds.contains(b));
    v
}

// ---------------------------------------------------------------------------
// Round trip

/// One round-trip round: median and p99 in ns, and the sample count.
#[derive(Debug, Clone, Copy)]
struct Trip {
    median: f64,
    p99: f64,
    samples: usize,
}

impl Trip {
    /// A round's figures from its round trips (ns).
    fn of(mut samples: Vec<u32>) -> Trip {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64;
        Trip {
            median: at(0.5),
            p99: at(0.99),
            samples: samples.len(),
        }
    }

    /// A child's report of an in-process round: "median p99 samples".
    fn parse(line: &str) -> Trip {
        let f: Vec<f64> = line
            .split_whitespace()
            .map(|v| v.parse().expect("number"))
            .collect();
        let [median, p99, samples] = f[..] else {
            panic!("bad answer {line:?}")
        };
        Trip {
            median,
            p99,
            samples: samples as usize,
        }
    }
}

type RoundTrips = Vec<Vec<Vec<Trip>>>;

fn run_roundtrip(args: &Args, dirs: &RunDirs) -> RoundTrips {
    let mut results = vec![vec![Vec::new(); args.kinds.len()]; args.rt_sizes.len()];
    for (si, &size) in args.rt_sizes.iter().enumerate() {
        for round in 0..args.rounds {
            for (ki, &kind) in args.kinds.iter().enumerate() {
                if !kind.fits(size) {
                    skipped("round trip", kind, size, round);
                    continue;
                }
                let t = roundtrip_round(args, dirs, kind, size);
                eprintln!(
                    "round trip {:>8} B  round {}/{}  {:<11} median {:>9.2} us  \
                     p99 {:>9.2} us  ({} samples)",
                    size,
                    round + 1,
                    args.rounds,
                    kind.name(),
                    t.median / 1e3,
                    t.p99 / 1e3,
                    t.samples
                );
                results[si][ki].push(t);
            }
        }
    }
    results
}

fn roundtrip_round(args: &Args, dirs: &RunDirs, kind: Kind, size: usize) -> Trip {
    let mut a = Link::new(kind, size, args.ring(size), "A", dirs, Use::PingPong, None);
    let mut b = Link::new(kind, size, args.ring(size), "B", dirs, Use::PingPong, None);
    remember(&a);
    remember(&b);
    let limit = Duration::from_secs_f64(args.warmup + args.seconds) * 3 + Duration::from_secs(30);
    let mut peer = Peer::spawn("echo", &[&a, &b], args, dirs, limit);
    a.close_child_end(true);
    b.close_child_end(false);
    let (tx, rx) = (a.tx(), b.rx());
    peer.expect_ready();
    let (warm, measure) = (
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.seconds),
    );
    let trip = match (tx, rx) {
        (AnyTx::Shared(tx), AnyRx::Shared(rx)) => Trip::of(shared_pair!(rx, tx, |r, t| ping(
            &mut t, &mut r, size, warm, measure
        ))),
        (AnyTx::Ipmpsc(mut t), AnyRx::Ipmpsc(mut r)) => {
            Trip::of(ping(&mut t, &mut r, size, warm, measure))
        }
        (AnyTx::Iceoryx2(mut t), AnyRx::Iceoryx2(mut r)) => {
            Trip::of(ping(&mut t, &mut r, size, warm, measure))
        }
        (AnyTx::Bare(mut t), AnyRx::Bare(mut r)) => {
            Trip::of(ping(&mut t, &mut r, size, warm, measure))
        }
        // In-process: the child pings itself and reports the round.
        (AnyTx::InChild, AnyRx::InChild) => Trip::parse(&peer.line()),
        _ => unreachable!("links of one kind"),
    };
    peer.finish();
    drop((a, b));
    trip
}

/// The pinging parent: one message out, its echo back, timed one by one
/// (two clock reads per round trip are included in each figure).
fn ping<S: Source, K: Sink>(
    tx: &mut S,
    rx: &mut K,
    size: usize,
    warm: Duration,
    measure: Duration,
) -> Vec<u32> {
    let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let end = Instant::now() + warm;
    while Instant::now() < end {
        tx.send(&msg);
        std::hint::black_box(rx.recv_with(touch));
    }
    let mut samples = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        tx.send(&msg);
        let n = rx.recv_with(|m| {
            std::hint::black_box(touch(m));
            m.len()
        });
        let dt = t0.elapsed();
        assert_eq!(n, size);
        samples.push(dt.as_nanos().min(u32::MAX as u128) as u32);
        if t0 - start >= measure {
            break;
        }
    }
    tx.send(&[]);
    assert_eq!(rx.recv_with(|m| m.len()), 0);
    samples
}

fn print_roundtrip(args: &Args, res: &RoundTrips) {
    println!();
    println!(
        "### Round trip ({}; ping-pong, {} interleaved rounds of {} s; \
         medians over rounds of each round's median and p99)",
        if args.pin {
            "pinned: pinger CPU 0, echoer CPU 1"
        } else {
            "unpinned"
        },
        args.rounds,
        args.seconds
    );
    println!();
    println!("| size | transport | median | p99 | round trips/round |");
    println!("|---:|:---|---:|---:|---:|");
    for (si, &size) in args.rt_sizes.iter().enumerate() {
        for (ki, &kind) in args.kinds.iter().enumerate() {
            let t = &res[si][ki];
            if t.is_empty() {
                let size = if ki == 0 {
                    human_size(size)
                } else {
                    String::new()
                };
                println!("| {size} | {} | n/a | n/a | n/a |", kind.name());
                continue;
            }
            let mut m: Vec<f64> = t.iter().map(|x| x.median).collect();
            let mut p: Vec<f64> = t.iter().map(|x| x.p99).collect();
            let mut n: Vec<f64> = t.iter().map(|x| x.samples as f64).collect();
            println!(
                "| {} | {} | {} | {} | {} |",
                if ki == 0 {
                    human_size(size)
                } else {
                    String::new()
                },
                kind.name(),
                human_ns(median(&mut m)),
                human_ns(median(&mut p)),
                si_count(median(&mut n))
            );
        }
    }
    print_limits(args, &args.rt_sizes);
    let pairs = ratio_pairs(args);
    if pairs.is_empty() {
        return;
    }
    println!();
    println!(
        "Ratios of median round trips (x/y: above 1 means y, shmchan or shmchan-zc, is faster; \
         median over rounds):"
    );
    println!();
    let head: Vec<String> = pairs
        .iter()
        .map(|&(a, b)| format!("{}/{}", b.name(), a.name()))
        .collect();
    println!("| size | {} |", head.join(" | "));
    println!("|---:|{}", "---:|".repeat(pairs.len()));
    for (si, &size) in args.rt_sizes.iter().enumerate() {
        let cells: Vec<String> = pairs
            .iter()
            .map(|&(a, b)| {
                let (ia, ib) = (index(args, a), index(args, b));
                let mut r: Vec<f64> = res[si][ia]
                    .iter()
                    .zip(&res[si][ib])
                    .map(|(x, y)| y.median / x.median)
                    .collect();
                ratio_cell(&mut r)
            })
            .collect();
        println!("| {} | {} |", human_size(size), cells.join(" | "));
    }
}

// ---------------------------------------------------------------------------
// Formatting

/// A shell command's trimmed output (empty on failure), for the report.
fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn print_header(args: &Args) {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    println!(
        "## shmchan vs ipmpsc 0.5, iceoryx2 0.10, a pipe, a Unix socket, a System V message queue \
         and crossbeam-channel 0.5"
    );
    println!();
    println!(
        "- command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    // SHMCHAN_REV names the source when it is not a git work tree (an
    // exported snapshot of a commit).
    let rev = std::env::var("SHMCHAN_REV").unwrap_or_else(|_| {
        sh(&format!(
            "git -C {repo} describe --always --dirty 2>/dev/null"
        ))
    });
    println!("- shmchan: {rev}");
    println!("- build: {}", env!("BENCH_BUILD"));
    println!(
        "- machine: {}, {} CPUs, {}",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        sh("nproc --all"),
        sh("uname -sr")
    );
    println!("- load at start: {}", sh("uptime"));
    println!(
        "- transports: {}; mode {:?}; {}",
        args.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", "),
        args.mode,
        if args.pin { "pinned" } else { "unpinned" }
    );
    match args.capacity {
        Some(cap) => println!("- ring bytes: {cap} for every size (--capacity)"),
        None => println!(
            "- ring bytes: max(4 MiB, next power of two of 2 x (size + {}))",
            shared::FRAMING
        ),
    }
}

fn human_size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn si_count(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} µs", ns / 1e3)
    }
}
