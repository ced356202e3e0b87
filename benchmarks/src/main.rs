//! shmchan against its peers, interleaved: for each message size, rounds of
//! shmchan, shmchan zero-copy, ipmpsc, iceoryx2, a pipe, a Unix socket, a
//! System V message queue, crossbeam-channel and a bare ring (the ceiling),
//! one after the other (A, B, C, ..., A, B, C, ...), each round a fresh link to a fresh receiver
//! process; medians over rounds, and ratios paired by round. crossbeam, the
//! in-process reference, runs both its threads in that child. Named with
//! `--transports`, the typed transports (`typed.rs`: shmchan's
//! `send_value` and `send_pod`, and ipc-channel, a 64-byte struct per
//! message) run at
//! 64 B, and the async ones (`aio.rs`: shmchan's async calls and tokio's
//! `UnixStream`, each end on a `current_thread` runtime) at any size.
//! `--mode wakeup` measures how soon a parked receiver gets a message
//! sent every 100 µs.
//!
//! ```text
//! cargo run --release --manifest-path benchmarks/Cargo.toml -- \
//!     [--mode throughput|roundtrip|all|wakeup] [--sizes 8,64,1024,65536,1048576] \
//!     [--rounds 5] [--seconds 1] [--warmup 0.2] [--pin] [--capacity BYTES] \
//!     [--transports shmchan,shmchan-zc,ipmpsc,iceoryx2,pipe,socket,msgq,crossbeam,bare] \
//!     [--rt-sizes 8,64] [--senders 1,2] [--wake-interval 100]
//! ```
//!
//! See README.md for what each mode measures.

mod aio;
mod bare;
/// The transports the criterion benches run too: one file, so that a
/// transport is the same work in both harnesses.
#[path = "../../benches/support/transport.rs"]
mod shared;
mod transport;
mod typed;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shared::{Rx, Sink, Source, Tx, monotonic_ns, touch};
use transport::{AnyRx, AnyTx, Kind, Link, RunDirs, Use};

/// Env var naming a child's job (`sink`, `echo`, `source`).
const ROLE_ENV: &str = "SHMCHAN_PEER_BENCH_ROLE";
/// Env var: the CPU a child pins itself to (with `--pin`).
const PIN_ENV: &str = "SHMCHAN_PEER_BENCH_CPU";
/// Env var: warmup and measured seconds, for a child that plays the
/// parent's part too (crossbeam's in-process rounds).
const TIMES_ENV: &str = "SHMCHAN_PEER_BENCH_TIMES";
/// Env var: how many processes send in a throughput round (the sink's
/// markers; 1 if unset).
const SENDERS_ENV: &str = "SHMCHAN_PEER_BENCH_SENDERS";
/// Env var, set when the round's messages carry a tag (see [`Stamp`]): the
/// sink checks each sender's order, crossbeam's sending thread tags.
const TAGGED_ENV: &str = "SHMCHAN_PEER_BENCH_TAGGED";
/// Env var: a `source` child's sender index (the parent is sender 0).
const INDEX_ENV: &str = "SHMCHAN_PEER_BENCH_INDEX";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Throughput,
    RoundTrip,
    /// Throughput and round trip.
    All,
    /// A parked receiver woken by a message every `--wake-interval`.
    Wakeup,
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
    /// Sending processes per throughput round (`--senders`), one set of
    /// rounds for each count, interleaved with the others.
    senders: Vec<usize>,
    /// Wake-up mode: the time between two sends.
    wake_interval: Duration,
}

impl Args {
    /// The ring bytes of a link for messages of `size`.
    fn ring(&self, size: usize) -> usize {
        self.capacity.unwrap_or_else(|| shared::capacity_for(size))
    }

    /// Whether the throughput messages of `size` carry a tag (see
    /// [`Stamp`]): in every round of a run with a count of senders above
    /// 1, so that its one-sender rounds do the same work; never in a
    /// one-sender run, whose messages stay as they were; never below
    /// 8 bytes, which hold no tag.
    fn tagged(&self, size: usize) -> bool {
        self.senders.iter().any(|&n| n > 1) && size >= TAG_BYTES
    }
}

const USAGE: &str = "usage: shmchan-peer-benchmarks [--mode throughput|roundtrip|all|wakeup] \
[--sizes 8,64,1024,65536,1048576] [--rt-sizes 8,64] [--rounds 5] [--seconds 1] \
[--warmup 0.2] [--pin] \
[--transports shmchan,shmchan-zc,ipmpsc,iceoryx2,pipe,socket,msgq,crossbeam,bare] \
[--iceoryx2-buffer N] [--capacity BYTES] [--senders 1,2] [--wake-interval 100]";

fn parse_args() -> Args {
    let mut a = Args {
        mode: Mode::All,
        sizes: vec![8, 64, 1024, 65536, 1 << 20],
        rt_sizes: vec![8, 64],
        rounds: 5,
        seconds: 1.0,
        warmup: 0.2,
        pin: false,
        kinds: Vec::new(),
        iceoryx2_buffer: None,
        capacity: None,
        senders: vec![1],
        wake_interval: Duration::from_micros(100),
    };
    let mut it = std::env::args().skip(1);
    let list = |v: Option<String>| -> Vec<usize> {
        v.expect(USAGE)
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| die(&format!("bad number {s:?} in a list")))
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
                    Some("wakeup") => Mode::Wakeup,
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
            "--senders" => a.senders = list(it.next()),
            "--wake-interval" => a.wake_interval = Duration::from_micros(value(&mut it)),
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
    if a.kinds.is_empty() {
        a.kinds = transport::ALL
            .into_iter()
            .filter(|&k| match a.mode {
                Mode::Wakeup => WAKE_KINDS.contains(&k),
                _ => k.in_default_set(),
            })
            .collect();
    }
    if a.mode == Mode::Wakeup
        && let Some(k) = a.kinds.iter().find(|k| !k.wakes())
    {
        die(&format!(
            "--mode wakeup: {} cannot carry the send time (in one process, or a typed struct)",
            k.name()
        ));
    }
    if a.rounds == 0
        || a.seconds <= 0.0
        || a.wake_interval.is_zero()
        || a.sizes.contains(&0)
        || a.rt_sizes.contains(&0)
    {
        die(USAGE);
    }
    check_senders(&a);
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

/// `--senders`: counts of 1 to shmchan's `MAX_SENDERS`, for throughput
/// rounds, unpinned, with at least one transport that takes several
/// senders when a count is above 1; else a message, and exit.
fn check_senders(a: &Args) {
    let max = shmchan::MAX_SENDERS as usize;
    if let Some(n) = a.senders.iter().find(|&&n| !(1..=max).contains(&n)) {
        die(&format!("--senders {n}: a count of senders is 1 to {max}"));
    }
    if let Some(n) = (1..a.senders.len()).find_map(|i| {
        let n = a.senders[i];
        a.senders[..i].contains(&n).then_some(n)
    }) {
        die(&format!("--senders: {n} twice"));
    }
    if !a.senders.iter().any(|&n| n > 1) {
        return;
    }
    if matches!(a.mode, Mode::RoundTrip | Mode::Wakeup) {
        die("--senders above 1 is for throughput rounds (--mode throughput or all)");
    }
    if a.pin {
        die(
            "--pin puts every sender on CPU 0 and the receiver on CPU 1: with --senders above 1, \
             two busy senders would share one CPU; run several senders unpinned",
        );
    }
    if !a.kinds.iter().any(|k| k.many_senders()) {
        die(
            "--senders above 1: none of these transports takes several senders \
             (the shmchan flavours and ipmpsc do)",
        );
    }
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
    if args.kinds.contains(&Kind::IpcChannel) {
        // ipc-channel's one-shot servers each make a directory for their
        // socket under TMPDIR: under the run's, which the run removes
        // whatever happens (a signal, a hung round).
        // SAFETY: no other thread runs yet (the signal thread and every
        // watchdog start below), so none reads the environment meanwhile.
        unsafe { std::env::set_var("TMPDIR", &dirs.tmp) };
    }
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
    if args.mode == Mode::Wakeup {
        let results = run_wakeup(args, dirs);
        print_wakeup(args, &results);
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
/// and has one thread wait for them: it kills the running children, removes
/// what the run made and exits, so that a Ctrl-C leaves nothing behind.
fn watch_termination_signals() {
    let set = set_termination_signals(libc::SIG_BLOCK);
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: set holds the blocked signals; sig receives one.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        kill_children();
        let left = cleanup();
        eprintln!(
            "signal {sig}: stopped; removed what the run had made ({} leftovers: {left:?})",
            left.len()
        );
        std::process::exit(130);
    });
}

/// The running children's pids (the receiver's and, with `--senders`,
/// the other senders'), for the signal thread and the watchdogs.
static CHILDREN: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// The list of running children (a panic elsewhere does not lock the
/// signal thread out of it).
fn children() -> MutexGuard<'static, Vec<libc::pid_t>> {
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// SIGKILLs every running child.
fn kill_children() {
    for &pid in children().iter() {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

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

/// Runs `$body` with `$t` bound to a sending end of any kind that sends
/// one message per call (one monomorphised loop per end type); the other
/// variants go to the arms given after it.
macro_rules! each_tx {
    ($tx:expr, |$t:ident| $body:expr, $($p:pat => $e:expr),* $(,)?) => {
        match $tx {
            AnyTx::Shared(Tx::ShmCopy(mut $t)) => $body,
            AnyTx::Shared(Tx::ShmZc(mut $t)) => $body,
            AnyTx::Shared(Tx::Framed(mut $t)) => $body,
            AnyTx::Shared(Tx::Packet(mut $t)) => $body,
            AnyTx::Shared(Tx::Msgq(mut $t)) => $body,
            AnyTx::Ipmpsc(mut $t) => $body,
            AnyTx::Iceoryx2(mut $t) => $body,
            AnyTx::Bare(mut $t) => $body,
            AnyTx::Value(mut $t) => $body,
            AnyTx::Ipc(mut $t) => $body,
            $($p => $e),*
        }
    };
}

/// [`each_tx`] for a blocking receiving end of any kind that a process
/// reaches alone (not crossbeam's, not an async one).
macro_rules! each_rx {
    ($rx:expr, |$r:ident| $body:expr, $($p:pat => $e:expr),* $(,)?) => {
        match $rx {
            AnyRx::Shared(Rx::ShmCopy(mut $r)) => $body,
            AnyRx::Shared(Rx::ShmZc(mut $r)) => $body,
            AnyRx::Shared(Rx::ShmMany(mut $r)) => $body,
            AnyRx::Shared(Rx::ShmEach(mut $r)) => $body,
            AnyRx::Shared(Rx::Framed(mut $r)) => $body,
            AnyRx::Shared(Rx::Packet(mut $r)) => $body,
            AnyRx::Shared(Rx::Msgq(mut $r)) => $body,
            AnyRx::Ipmpsc(mut $r) => $body,
            AnyRx::Iceoryx2(mut $r) => $body,
            AnyRx::Bare(mut $r) => $body,
            AnyRx::Value(mut $r) => $body,
            AnyRx::Ipc(mut $r) => $body,
            $($p => $e),*
        }
    };
}

// ---------------------------------------------------------------------------
// Child processes

/// A running child (this binary again, with `ROLE_ENV` set). Killed on
/// drop unless `finish` saw it exit.
struct Peer {
    child: Child,
    ctl: ChildStdin,
    out: BufReader<ChildStdout>,
    watchdog: Option<mpsc::Sender<()>>,
    exited: bool,
}

impl Peer {
    /// Spawns a child of `role` that reaches `links`, with `extra` env
    /// entries (the round's senders, tags, a source's index).
    fn spawn(
        role: &str,
        links: &[&Link],
        args: &Args,
        dirs: &RunDirs,
        limit: Duration,
        extra: &[(&str, String)],
    ) -> Peer {
        let mut cmd = Command::new(std::env::current_exe().expect("own executable"));
        cmd.env(ROLE_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd.envs(dirs.to_env());
        cmd.envs(extra.iter().map(|(k, v)| (k, v)));
        for link in links {
            cmd.envs(link.env.iter().map(|(k, v)| (k, v)));
        }
        if args.pin {
            cmd.env(PIN_ENV, "1");
        }
        cmd.env(TIMES_ENV, format!("{} {}", args.warmup, args.seconds));
        let mut child = cmd.spawn().expect("spawn child");
        let pid = child.id() as libc::pid_t;
        children().push(pid);
        let ctl = child.stdin.take().expect("stdin");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        // A transport that waits for ever on a dead peer (ipmpsc, iceoryx2
        // with RetryUntilDelivered) would hang the run: past `limit`, kill
        // the round's children, clean up and exit.
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "round took longer than {limit:?}: killing child {pid} (and the round's \
                     others) and giving up"
                );
                kill_children();
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
            ctl,
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

    /// Writes `line` to the child's stdin.
    fn say(&mut self, line: &str) {
        writeln!(self.ctl, "{line}")
            .and_then(|()| self.ctl.flush())
            .expect("line to child");
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
        let pid = self.child.id() as libc::pid_t;
        children().retain(|&p| p != pid);
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
            let plan = Plan::from_env();
            let rx = a.rx();
            let c = each_rx! { rx, |r| sink(&mut r, &mut out, plan),
                AnyRx::Async(r) => aio::sink(r, &mut out, plan),
                AnyRx::Crossbeam(mut r) => {
                    // In-process: a second thread of this process sends,
                    // as the parent does for the others.
                    let AnyTx::Crossbeam(mut t) = a.tx() else {
                        unreachable!("both ends here")
                    };
                    let size = a.size;
                    let tag = plan.tagged.then_some(0);
                    let sender = parent_thread(move |warm, measure| {
                        stream(&mut t, size, warm, measure, tag)
                    });
                    let counted = sink(&mut r, &mut out, plan);
                    let sent = sender.join().expect("sending thread");
                    assert_eq!(
                        counted.n, sent,
                        "crossbeam: the receiver counted {}, the sender sent {sent}",
                        counted.n
                    );
                    counted
                },
                AnyRx::InChild => unreachable!("the parent's end"),
            };
            writeln!(out, "{} {} {} {} {}", c.n, c.bytes, c.ns, c.sum, c.disorder)
                .and_then(|()| out.flush())
                .expect("answer");
        }
        "source" => {
            // One more sender of a throughput round with `--senders`: it
            // takes its sending end (a lane of the channel, or its own
            // ipmpsc `Sender`), says so, waits for the parent's "go" so
            // that all senders start together, streams as the parent does
            // and reports what it sent between its two markers.
            let mut a = Link::from_env("A", &dirs);
            let size = a.size;
            let index: u8 = std::env::var(INDEX_ENV)
                .expect("sender index")
                .parse()
                .expect("sender index");
            let tag = std::env::var_os(TAGGED_ENV).map(|_| index);
            let tx = a.tx();
            say_ready(&mut out);
            let mut go = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut go)
                .expect("the parent's go");
            if go.trim_end() != "go" {
                // The parent is gone (end of file) or out of step.
                die(&format!("source {index}: the parent said {go:?}, not go"));
            }
            let (warm, measure) = times();
            let Some(sent) = stream_any(tx, size, warm, measure, tag) else {
                unreachable!("a source's link has a sending end here")
            };
            writeln!(out, "{sent}")
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
                (AnyRx::Value(mut r), AnyTx::Value(mut t)) => echo(&mut r, &mut t, &mut out),
                (AnyRx::Ipc(mut r), AnyTx::Ipc(mut t)) => echo(&mut r, &mut t, &mut out),
                (AnyRx::Async(r), AnyTx::Async(t)) => aio::echo(r, t, &mut out),
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
        "stamp" => {
            // The receiver of a wake-up round: each message's latency from
            // the send time it carries (see `run_wakeup`).
            let mut a = Link::from_env("A", &dirs);
            let lat = each_rx! { a.rx(), |r| stamps(&mut r, &mut out),
                AnyRx::Async(r) => aio::stamps(r, &mut out),
                AnyRx::Crossbeam(_) | AnyRx::InChild => unreachable!("not in wake-up rounds"),
            };
            let trip = Trip::of(lat);
            writeln!(out, "{} {} {}", trip.median, trip.p99, trip.samples)
                .and_then(|()| out.flush())
                .expect("answer");
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
    let (warm, measure) = times();
    let pin = std::env::var(PIN_ENV).is_ok();
    std::thread::spawn(move || {
        if pin {
            pin_to(0).expect("sched_setaffinity in the child's second thread");
        }
        part(warm, measure)
    })
}

/// The parent's warmup and measured times, for a child that plays a
/// sender's part (crossbeam's second thread, a `source`).
fn times() -> (Duration, Duration) {
    let times = std::env::var(TIMES_ENV).expect("times");
    let secs: Vec<f64> = times
        .split_whitespace()
        .map(|v| v.parse().expect("seconds"))
        .collect();
    let [warm, measure] = secs[..] else {
        panic!("bad times {times:?}")
    };
    (
        Duration::from_secs_f64(warm),
        Duration::from_secs_f64(measure),
    )
}

/// What a sink is told about its round: how many processes send (each
/// sends two markers) and whether the messages carry tags (see [`Stamp`]).
#[derive(Debug, Clone, Copy)]
struct Plan {
    senders: usize,
    tagged: bool,
}

impl Plan {
    fn from_env() -> Plan {
        Plan {
            senders: std::env::var(SENDERS_ENV).map_or(1, |v| v.parse().expect("count of senders")),
            tagged: std::env::var_os(TAGGED_ENV).is_some(),
        }
    }
}

/// What a sink counted in its window: messages, bytes, ns, a checksum,
/// and the messages that came out of their sender's order (tagged rounds).
#[derive(Debug, Clone, Copy, Default)]
struct Counted {
    n: u64,
    bytes: u64,
    ns: u64,
    sum: u64,
    disorder: u64,
}

/// The receiving child of a throughput round (see [`count`]), with the
/// tag check compiled in or out.
fn sink<K: Sink>(rx: &mut K, out: &mut impl Write, plan: Plan) -> Counted {
    if plan.tagged {
        count::<K, true>(rx, out, plan.senders)
    } else {
        count::<K, false>(rx, out, plan.senders)
    }
}

/// Counts and touches every message (see [`Tally`]), timed with this
/// process's clock.
fn count<K: Sink, const TAGGED: bool>(rx: &mut K, out: &mut impl Write, senders: usize) -> Counted {
    say_ready(out);
    let mut tally = Tally::<TAGGED>::new(senders);
    loop {
        let mut done = None;
        // Untagged messages are counted in locals and folded into the
        // tally before a marker and after the call, as a caller of
        // `recv_many_with` would write it: the tally's address escapes
        // (`marker` is a call), so counting into it directly kept its
        // fields in memory, each message's add waiting for the last one's
        // store, which bounded a batch receiver's loop.
        let (mut n, mut bytes, mut sum) = (0u64, 0u64, 0u64);
        rx.recv_some(|m| {
            let (len, s, tag) = Tally::<TAGGED>::read(m);
            if len != 0 && !TAGGED {
                n += 1;
                bytes += len as u64;
                sum = sum.wrapping_add(s);
                return;
            }
            tally.fold(
                std::mem::take(&mut n),
                std::mem::take(&mut bytes),
                std::mem::take(&mut sum),
            );
            if let Some(c) = tally.add(len, s, tag) {
                done = Some(c);
            }
        });
        tally.fold(n, bytes, sum);
        if let Some(c) = done {
            return c;
        }
    }
}

/// A sink's count: the messages between the `senders`-th empty marker
/// (the last sender's start marker: every sender is measuring) and the
/// next one (the first sender's end marker), timed with this process's
/// clock; then it takes messages until all `2 × senders` markers are in,
/// so that no sender waits for room for ever. With one sender, the
/// messages between its two markers. `TAGGED`: also checks that each
/// sender's messages arrive in the order it sent them (a tag's sequence
/// number is the one after the sender's previous one).
struct Tally<const TAGGED: bool> {
    senders: usize,
    t0: Instant,
    n: u64,
    bytes: u64,
    sum: u64,
    window: Counted,
    markers: usize,
    /// Each sender's next sequence number, and the misses.
    next: Vec<u64>,
    disorder: u64,
}

impl<const TAGGED: bool> Tally<TAGGED> {
    fn new(senders: usize) -> Self {
        Tally {
            senders,
            t0: Instant::now(),
            n: 0,
            bytes: 0,
            sum: 0,
            window: Counted::default(),
            markers: 0,
            next: vec![0; senders],
            disorder: 0,
        }
    }

    /// What the count takes from a message: its length, the sum of its
    /// words (every byte read) and its tag (0 untagged).
    #[inline(always)]
    fn read(m: &[u8]) -> (usize, u64, u64) {
        let tag = if TAGGED { tag_of(m) } else { 0 };
        (m.len(), touch(m), tag)
    }

    /// Counts `n` messages of `bytes` bytes whose words sum to `sum`, none
    /// of them a marker.
    #[inline(always)]
    fn fold(&mut self, n: u64, bytes: u64, sum: u64) {
        self.n += n;
        self.bytes += bytes;
        self.sum = self.sum.wrapping_add(sum);
    }

    /// Counts one message ([`Tally::read`]); the round's figures once
    /// the last marker is in.
    #[inline(always)]
    fn add(&mut self, len: usize, sum: u64, tag: u64) -> Option<Counted> {
        if len == 0 {
            return self.marker();
        }
        self.n += 1;
        self.bytes += len as u64;
        self.sum = self.sum.wrapping_add(sum);
        if TAGGED {
            let (i, seq) = ((tag >> SEQ_BITS) as usize, tag & SEQ_MASK);
            match self.next.get_mut(i) {
                Some(want) if *want == seq => *want += 1,
                Some(want) => {
                    self.disorder += 1;
                    *want = seq + 1;
                }
                None => self.disorder += 1,
            }
        }
        None
    }

    /// Out of line and cold: inlined into the counting loop (LTO did),
    /// its clock calls took registers the loop's counts then lost.
    #[cold]
    #[inline(never)]
    fn marker(&mut self) -> Option<Counted> {
        self.markers += 1;
        if self.markers == self.senders {
            self.t0 = Instant::now();
            (self.n, self.bytes, self.sum) = (0, 0, 0);
        }
        if self.markers == self.senders + 1 {
            self.window = Counted {
                n: self.n,
                bytes: self.bytes,
                ns: self.t0.elapsed().as_nanos() as u64,
                sum: self.sum,
                disorder: 0,
            };
        }
        (self.markers == 2 * self.senders).then_some(Counted {
            disorder: self.disorder,
            ..self.window
        })
    }
}

/// Tells the parent that this child holds its end and is receiving.
fn say_ready(out: &mut impl Write) {
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .expect("ready");
}

/// The echoing child of a round-trip round: sends every message back as
/// received, until an empty one (echoed too).
fn echo<K: Sink, S: Source>(rx: &mut K, tx: &mut S, out: &mut impl Write) {
    say_ready(out);
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
    /// The receiver's window in seconds: about `--seconds`, less the
    /// spread of the senders' starts when there are several.
    window: f64,
    /// shmchan's counters over the whole round (warmup, window and tail).
    waits: Option<Waits>,
}

/// How a shmchan round waited: the receiver's counters and its senders'
/// (added up over the lanes). A stall is a wait (the ring found empty by
/// the receiver, full by a sender), a park a wait that outlasted the spin
/// budget and slept on the semaphore.
#[derive(Debug, Clone, Copy)]
struct Waits {
    rx: shmchan::admin::Counters,
    tx: shmchan::admin::Counters,
}

impl Waits {
    /// Stalls per 1000 messages of one side.
    fn per_k(c: &shmchan::admin::Counters) -> f64 {
        c.stalls as f64 * 1e3 / c.messages.max(1) as f64
    }

    /// Parks per stall of one side (NaN without stalls).
    fn parked(c: &shmchan::admin::Counters) -> f64 {
        c.parks as f64 / c.stalls as f64
    }
}

/// results[size index][kind index] = one Rate per round, for one count of
/// senders.
type Throughput = Vec<Vec<Vec<Rate>>>;

/// One [`Throughput`] per count of senders (`--senders`), in its order.
/// For each size and round, every count runs every transport (the counts
/// in turn, the transports in turn within each), so that the counts are
/// interleaved as the transports are.
fn run_throughput(args: &Args, dirs: &RunDirs) -> Vec<Throughput> {
    let mut results =
        vec![vec![vec![Vec::new(); args.kinds.len()]; args.sizes.len()]; args.senders.len()];
    for (si, &size) in args.sizes.iter().enumerate() {
        for round in 0..args.rounds {
            for (ci, &senders) in args.senders.iter().enumerate() {
                for (ki, &kind) in args.kinds.iter().enumerate() {
                    if !kind.fits(size) {
                        if ci == 0 {
                            skipped("throughput", kind, size, round);
                        }
                        continue;
                    }
                    if senders > 1 && !kind.many_senders() {
                        if round == 0 {
                            eprintln!(
                                "throughput {size:>8} B  {:<11} n/a: one sender only",
                                label(kind, senders)
                            );
                        }
                        continue;
                    }
                    let r = throughput_round(args, dirs, kind, size, senders);
                    let mut more = String::new();
                    if senders > 1 {
                        more += &format!("  window {:.3} s", r.window);
                    }
                    if let Some(w) = r.waits {
                        more += &format!(
                            "  waits rx {} (parked {}) tx {} (parked {})",
                            w.rx.stalls, w.rx.parks, w.tx.stalls, w.tx.parks
                        );
                    }
                    eprintln!(
                        "throughput {:>8} B  round {}/{}  {:<11} {:>12.0} msg/s {:>10.1} MB/s{more}",
                        size,
                        round + 1,
                        args.rounds,
                        label(kind, senders),
                        r.msgs,
                        r.bytes / 1e6
                    );
                    results[ci][si][ki].push(r);
                }
            }
        }
    }
    results
}

/// A transport's name in progress lines: with `senders` above 1, followed
/// by ` xN` (two words, so that `ab-commits.sh`, which reads one-sender
/// lines, passes over these).
fn label(kind: Kind, senders: usize) -> String {
    if senders > 1 {
        format!("{} x{senders}", kind.name())
    } else {
        kind.name().to_owned()
    }
}

/// Says (once per size) that a transport does not run at a size.
fn skipped(what: &str, kind: Kind, size: usize, round: usize) {
    if round != 0 {
        return;
    }
    if let Some(only) = kind.only_size() {
        eprintln!(
            "{what} {size:>8} B  {:<11} n/a: its message is a {only}-byte struct",
            kind.name()
        );
    } else if let Some((max, limit)) = kind.max_size() {
        eprintln!(
            "{what} {size:>8} B  {:<11} n/a: above {limit} ({max} B)",
            kind.name()
        );
    }
}

/// One throughput round with `senders` sending processes: the parent and
/// `senders - 1` `source` children, all on one link to one `sink` child.
fn throughput_round(args: &Args, dirs: &RunDirs, kind: Kind, size: usize, senders: usize) -> Rate {
    let mut link = Link::new(
        kind,
        size,
        args.ring(size),
        "A",
        dirs,
        Use::Stream {
            senders: senders as u32,
        },
        args.iceoryx2_buffer,
    );
    remember(&link);
    let limit = Duration::from_secs_f64(args.warmup + args.seconds) * 3 + Duration::from_secs(30);
    let tagged = args.tagged(size);
    let mut env = vec![(SENDERS_ENV, senders.to_string())];
    if tagged {
        env.push((TAGGED_ENV, "1".to_owned()));
    }
    let mut peer = Peer::spawn("sink", &[&link], args, dirs, limit, &env);
    // The other senders (only transports that take several: no file
    // descriptors to hand over), each killed on drop as the sink is.
    let mut sources: Vec<Peer> = (1..senders)
        .map(|i| {
            let mut env = env.clone();
            env.push((INDEX_ENV, i.to_string()));
            Peer::spawn("source", &[&link], args, dirs, limit, &env)
        })
        .collect();
    link.close_child_end(true);
    let tx = link.tx();
    peer.expect_ready();
    for s in &mut sources {
        s.expect_ready();
    }
    // Every sender holds its end: start them together (the parent is
    // sender 0).
    for s in &mut sources {
        s.say("go");
    }
    let (warm, measure) = (
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.seconds),
    );
    let sent = stream_any(tx, size, warm, measure, tagged.then_some(0));
    let others: u64 = sources
        .into_iter()
        .map(|mut s| {
            let line = s.line();
            s.finish();
            line.parse::<u64>().expect("a source's count")
        })
        .sum();
    let answer = peer.line();
    peer.finish();
    let waits = link.shm_counters().map(|(rx, tx)| Waits { rx, tx });
    drop(link);
    let f: Vec<u64> = answer
        .split_whitespace()
        .map(|v| v.parse().expect("number"))
        .collect();
    let [n, bytes, ns, _sum, disorder] = f[..] else {
        panic!("bad answer {answer:?}")
    };
    match sent {
        Some(sent) if senders == 1 => assert_eq!(
            n,
            sent,
            "{}: the receiver counted {n} messages, the sender sent {sent}",
            kind.name()
        ),
        // Several senders: the receiver's window runs from the last start
        // marker to the first end marker. Each sender's messages arrive in
        // its order, so a message in the window came after its sender's
        // start marker (all were in) and before its end marker (none was):
        // it is one its sender counted. The senders start and stop a few
        // milliseconds apart, so the window holds fewer than they sent
        // between their markers together: no exact count, a bound. (This
        // takes every start marker to arrive before any end marker, which
        // a common start gives: warmup and seconds against the time a
        // child takes to read "go"; the window's length is in the
        // progress line.)
        Some(sent) => {
            let total = sent + others;
            assert!(
                n <= total,
                "{}: the receiver counted {n} messages in its window, the {senders} senders \
                 sent {total} between their markers",
                kind.name()
            );
        }
        None => {}
    }
    assert_eq!(
        disorder,
        0,
        "{}: {disorder} messages came out of their sender's order",
        kind.name()
    );
    assert_eq!(bytes, n * size as u64);
    let secs = ns as f64 / 1e9;
    Rate {
        msgs: n as f64 / secs,
        bytes: bytes as f64 / secs,
        window: secs,
        waits,
    }
}

/// Streams on any sending end (see [`stream`]); None for the parent's end
/// of an in-process link (the child streams to itself and checks the
/// count).
fn stream_any(
    tx: AnyTx,
    size: usize,
    warm: Duration,
    measure: Duration,
    tag: Option<u8>,
) -> Option<u64> {
    each_tx! { tx, |t| Some(stream(&mut t, size, warm, measure, tag)),
        AnyTx::Shared(Tx::ShmBatch(mut t)) => Some(stream_batched(&mut t, size, warm, measure, tag)),
        AnyTx::Async(t) => Some(aio::stream(t, size, warm, measure, tag)),
        AnyTx::InChild => None,
        AnyTx::Crossbeam(_) => unreachable!("the child's end"),
    }
}

/// The sending side of a throughput round: streams for `warm`, sends the
/// start marker (an empty message), streams for `measure`, sends the end
/// marker; returns the messages sent between the markers. The clock is read
/// once per batch of about 64 KiB. `tag`: this sender's index, written
/// with a sequence number into each message (see [`Stamp`]).
fn stream<S: Source>(
    tx: &mut S,
    size: usize,
    warm: Duration,
    measure: Duration,
    tag: Option<u8>,
) -> u64 {
    match tag {
        None => stream_stamped(tx, size, warm, measure, &mut Plain),
        Some(i) => stream_stamped(tx, size, warm, measure, &mut Tag::first(i)),
    }
}

fn stream_stamped<S: Source, T: Stamp>(
    tx: &mut S,
    size: usize,
    warm: Duration,
    measure: Duration,
    stamp: &mut T,
) -> u64 {
    let mut msg = message(size);
    let batch = batch_for(size);
    burst(tx, &mut msg, batch, warm, stamp);
    tx.send(&[]);
    let n = burst(tx, &mut msg, batch, measure, stamp);
    tx.send(&[]);
    n
}

/// Messages a sender sends between two reads of the clock: about 64 KiB.
fn batch_for(size: usize) -> u64 {
    (65536 / size).clamp(1, 256) as u64
}

/// Sends `msg` for `d`, reading the clock once per `batch`.
#[inline(never)]
fn burst<S: Source, T: Stamp>(
    tx: &mut S,
    msg: &mut [u8],
    batch: u64,
    d: Duration,
    stamp: &mut T,
) -> u64 {
    let end = Instant::now() + d;
    let mut n = 0;
    loop {
        for _ in 0..batch {
            stamp.stamp(msg);
            tx.send(msg);
        }
        n += batch;
        if Instant::now() >= end {
            return n;
        }
    }
}

/// [`stream`] for an end that sends [`shared::BATCH`] messages at a time
/// ([`Source::send_all`]): the same messages, stamped one by one as
/// `stream` stamps them, handed over in batches; the markers go alone.
fn stream_batched<S: Source>(
    tx: &mut S,
    size: usize,
    warm: Duration,
    measure: Duration,
    tag: Option<u8>,
) -> u64 {
    let msgs = vec![message(size); shared::BATCH];
    match tag {
        None => stream_batched_stamped(tx, msgs, warm, measure, &mut Plain),
        Some(i) => stream_batched_stamped(tx, msgs, warm, measure, &mut Tag::first(i)),
    }
}

fn stream_batched_stamped<S: Source, T: Stamp>(
    tx: &mut S,
    mut msgs: Vec<Vec<u8>>,
    warm: Duration,
    measure: Duration,
    stamp: &mut T,
) -> u64 {
    let size = msgs[0].len();
    // Batches between two clock reads: about 64 KiB, as `stream`'s.
    let batches = (batch_for(size) / msgs.len() as u64).max(1);
    burst_batched(tx, &mut msgs, batches, warm, stamp);
    tx.send(&[]);
    let n = burst_batched(tx, &mut msgs, batches, measure, stamp);
    tx.send(&[]);
    n
}

/// Sends batches of `msgs` for `d`, reading the clock once per `batches`.
#[inline(never)]
fn burst_batched<S: Source, T: Stamp>(
    tx: &mut S,
    msgs: &mut [Vec<u8>],
    batches: u64,
    d: Duration,
    stamp: &mut T,
) -> u64 {
    let end = Instant::now() + d;
    let mut n = 0;
    loop {
        for _ in 0..batches {
            for msg in msgs.iter_mut() {
                stamp.stamp(msg);
            }
            tx.send_all(msgs);
        }
        n += batches * msgs.len() as u64;
        if Instant::now() >= end {
            return n;
        }
    }
}

/// The bytes of a message's tag: its first 8, a little-endian word of
/// the sender's index (top 8 bits) and the sender's sequence number (the
/// low [`SEQ_BITS`], from 0 at the first message of the warmup).
const TAG_BYTES: usize = 8;
const SEQ_BITS: u32 = 56;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// What a sender writes into each message before it sends it. In a run
/// with `--senders` above 1, every message of 8 bytes or more carries a
/// tag ([`Tag`]: one 8-byte store per message; the receiver's check is a
/// load of a word it reads anyway, a compare and a store), in every round
/// of the run, one-sender rounds included, so that the counts compare
/// like for like; other runs send the same bytes as before ([`Plain`]).
trait Stamp {
    fn stamp(&mut self, msg: &mut [u8]);
}

/// No tag: the message as it is.
struct Plain;

impl Stamp for Plain {
    #[inline(always)]
    fn stamp(&mut self, _: &mut [u8]) {}
}

/// The next tag: the sender's index and sequence number.
struct Tag(u64);

impl Tag {
    /// Sender `index`'s first tag.
    fn first(index: u8) -> Tag {
        Tag(u64::from(index) << SEQ_BITS)
    }
}

/// The bytes every harness sends (a sender's copy of them is its
/// message): 0, 1, 2, ... wrapping.
fn message(size: usize) -> Vec<u8> {
    (0..size).map(|i| i as u8).collect()
}

impl Stamp for Tag {
    #[inline(always)]
    fn stamp(&mut self, msg: &mut [u8]) {
        if let Some(word) = msg.first_chunk_mut::<TAG_BYTES>() {
            *word = self.0.to_le_bytes();
        }
        self.0 = self.0.wrapping_add(1);
    }
}

/// A received message's tag (0 for a message too short to hold one).
#[inline(always)]
fn tag_of(m: &[u8]) -> u64 {
    m.first_chunk::<TAG_BYTES>()
        .map_or(0, |w| u64::from_le_bytes(*w))
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

fn print_throughput(args: &Args, all: &[Throughput]) {
    for (ci, (&senders, res)) in args.senders.iter().zip(all).enumerate() {
        print_throughput_table(args, senders, res, ci == 0);
    }
    print_senders_ratios(args, all);
}

/// The table and ratios of one count of senders; `first`: with the notes
/// on limits that hold for every count.
fn print_throughput_table(args: &Args, senders: usize, res: &Throughput, first: bool) {
    println!();
    let count = match senders {
        _ if args.senders == [1] => String::new(),
        1 => "; 1 sender".to_owned(),
        n => format!("; {n} senders into one receiver"),
    };
    println!(
        "### Throughput ({}{count}; {} interleaved rounds of {} s per transport and size; medians)",
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
    if first {
        print_limits(args, &args.sizes);
    }
    if senders > 1 {
        let single: Vec<&str> = args
            .kinds
            .iter()
            .filter(|k| !k.many_senders())
            .map(|k| k.name())
            .collect();
        if !single.is_empty() {
            println!();
            println!(
                "n/a: {} run with one sender only (several senders: the shmchan flavours and \
                 ipmpsc).",
                single.join(", ")
            );
        }
        println!();
        println!(
            "msg/s: all {senders} senders together, as the receiver counted them from the last \
             sender's start marker to the first one's end marker."
        );
    }
    print_waits(args, res);
    let mut pairs = ratio_pairs(args);
    if senders > 1 {
        pairs.retain(|(a, b)| a.many_senders() && b.many_senders());
    }
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

/// The shmchan rows' waits (see [`Waits`]), medians over rounds.
fn print_waits(args: &Args, res: &Throughput) {
    // (size index, kind index, each round's waits) of the shmchan rows.
    let mut rows = Vec::new();
    for (si, by_kind) in res.iter().enumerate() {
        for (ki, rates) in by_kind.iter().enumerate() {
            let w: Vec<Waits> = rates.iter().filter_map(|r| r.waits).collect();
            if !w.is_empty() {
                rows.push((si, ki, w));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "Waits of the shmchan rows over the whole round (warmup, window and tail; medians over \
         rounds): how often the receiver found every lane empty and the senders their lane \
         full, per 1000 messages, and the parks per wait (a park: a wait that outlasted the \
         spin budget; `-`: no waits):"
    );
    println!();
    println!(
        "| size | transport | rx waits/1k msg | rx parks/wait | tx waits/1k msg | tx parks/wait |"
    );
    println!("|---:|:---|---:|---:|---:|---:|");
    let mut last = None;
    for (si, ki, w) in rows {
        let cell = |f: &dyn Fn(&Waits) -> f64, pct: bool| {
            let mut v: Vec<f64> = w.iter().map(f).filter(|x| !x.is_nan()).collect();
            match (v.is_empty(), pct) {
                (true, _) => "-".to_owned(),
                (false, true) => format!("{:.1} %", median(&mut v) * 100.0),
                (false, false) => format!("{:.2}", median(&mut v)),
            }
        };
        let size = if last == Some(si) {
            String::new()
        } else {
            human_size(args.sizes[si])
        };
        last = Some(si);
        println!(
            "| {size} | {} | {} | {} | {} | {} |",
            args.kinds[ki].name(),
            cell(&|x| Waits::per_k(&x.rx), false),
            cell(&|x| Waits::parked(&x.rx), true),
            cell(&|x| Waits::per_k(&x.tx), false),
            cell(&|x| Waits::parked(&x.tx), true),
        );
    }
}

/// With several counts of senders: each transport that takes several,
/// its msg/s with each further count over its msg/s with the first count
/// (`shmchan 2/1`: two senders together against one), paired by round.
fn print_senders_ratios(args: &Args, all: &[Throughput]) {
    let Some(&base) = args.senders.first() else {
        return;
    };
    // (count index, kind index, kind) of each column.
    let mut cols = Vec::new();
    for ci in 1..args.senders.len() {
        for (ki, &kind) in args.kinds.iter().enumerate() {
            if kind.many_senders() {
                cols.push((ci, ki, kind));
            }
        }
    }
    if cols.is_empty() {
        return;
    }
    println!();
    println!(
        "Senders (msg/s of all senders together with each count over msg/s with {base}, \
         same transport, median over rounds of the ratio within each round):"
    );
    println!();
    let head: Vec<String> = cols
        .iter()
        .map(|&(ci, _, k)| format!("{} {}/{base}", k.name(), args.senders[ci]))
        .collect();
    println!("| size | {} |", head.join(" | "));
    println!("|---:|{}", "---:|".repeat(cols.len()));
    for (si, &size) in args.sizes.iter().enumerate() {
        let cells: Vec<String> = cols
            .iter()
            .map(|&(ci, ki, _)| {
                let mut r: Vec<f64> = all[ci][si][ki]
                    .iter()
                    .zip(&all[0][si][ki])
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
    let typed: Vec<&str> = args
        .kinds
        .iter()
        .filter(|k| {
            k.only_size()
                .is_some_and(|only| sizes.iter().any(|&s| s != only))
        })
        .map(|k| k.name())
        .collect();
    if !typed.is_empty() {
        println!();
        println!(
            "n/a: {} carry one {}-byte struct per message (see the header) and run at that \
             size only.",
            typed.join(" and "),
            typed::SAMPLE_SIZE
        );
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
/// shmchan against copying shmchan; the batching flavours against
/// shmchan; each shmchan flavour against the bare ring (the fraction of
/// the ceiling it reaches), and the bare ring against the pipe (the
/// ceiling of the pipe ratios); the async shmchan flavours against
/// `shmchan` and, with `shmchan`, against `tokio-uds`.
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
        (Kind::Shm, Kind::ShmPark),
        (Kind::Shm8Lanes, Kind::Shm),
        (Kind::ShmBatch32, Kind::Shm),
        (Kind::ShmMany, Kind::Shm),
        (Kind::ShmBatch32Many, Kind::Shm),
        (Kind::ShmBatch32Many, Kind::ShmMany),
        (Kind::ShmBatch32Each, Kind::ShmEach),
        (Kind::Shm, Kind::Bare),
        (Kind::ShmZc, Kind::Bare),
        (Kind::Bare, Kind::Pipe),
        (Kind::Shm, Kind::PipeRaw),
        (Kind::Bare, Kind::PipeRaw),
        // Issue 12's targets for typed values, at 64 B: against the raw
        // bytes of the same size, and against ipc-channel.
        (Kind::ShmValue, Kind::Shm),
        (Kind::ShmValue, Kind::IpcChannel),
        (Kind::ShmValueFixint, Kind::Shm),
        (Kind::ShmPod, Kind::Shm),
        // Issue 13's targets: the async API against the blocking one, and
        // against tokio's UnixStream (the blocking API too, for scale).
        (Kind::ShmAsync, Kind::Shm),
        (Kind::ShmAsyncRx, Kind::Shm),
        (Kind::ShmAsync, Kind::TokioUds),
        (Kind::Shm, Kind::TokioUds),
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
                if kind.throughput_only() {
                    if round == 0 {
                        eprintln!(
                            "round trip {size:>8} B  {:<11} n/a: throughput only",
                            kind.name()
                        );
                    }
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
    let mut peer = Peer::spawn("echo", &[&a, &b], args, dirs, limit, &[]);
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
        (AnyTx::Value(mut t), AnyRx::Value(mut r)) => {
            Trip::of(ping(&mut t, &mut r, size, warm, measure))
        }
        (AnyTx::Ipc(mut t), AnyRx::Ipc(mut r)) => {
            Trip::of(ping(&mut t, &mut r, size, warm, measure))
        }
        (AnyTx::Async(t), AnyRx::Async(r)) => Trip::of(aio::ping(t, r, size, warm, measure)),
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
    let msg = message(size);
    let end = Instant::now() + warm;
    while Instant::now() < end {
        tx.send(&msg);
        std::hint::black_box(rx.recv_with(touch));
    }
    let mut log = TripLog::new(size, measure);
    loop {
        let t0 = Instant::now();
        tx.send(&msg);
        let n = rx.recv_with(TripLog::read);
        if !log.add(t0, n) {
            break;
        }
    }
    tx.send(&[]);
    assert_eq!(rx.recv_with(|m| m.len()), 0);
    log.samples
}

/// The round trips of a ping's measured part, timed one by one.
struct TripLog {
    size: usize,
    start: Instant,
    measure: Duration,
    /// ns each.
    samples: Vec<u32>,
}

impl TripLog {
    fn new(size: usize, measure: Duration) -> TripLog {
        TripLog {
            size,
            start: Instant::now(),
            measure,
            samples: Vec::with_capacity(1 << 20),
        }
    }

    /// What a ping takes from the echo: it reads every byte, and checks
    /// the length.
    #[inline(always)]
    fn read(m: &[u8]) -> usize {
        std::hint::black_box(touch(m));
        m.len()
    }

    /// Records the round trip that began at `t0`, whose echo of `n` bytes
    /// just came back; `false` once the measured time is over.
    #[inline(always)]
    fn add(&mut self, t0: Instant, n: usize) -> bool {
        let dt = t0.elapsed();
        assert_eq!(n, self.size);
        self.samples
            .push(dt.as_nanos().min(u32::MAX as u128) as u32);
        t0 - self.start < self.measure
    }
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
    let mut pairs = ratio_pairs(args);
    pairs.retain(|(a, b)| !a.throughput_only() && !b.throughput_only());
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
// Wake-up

/// The transports of `--mode wakeup` when `--transports` does not name
/// them: the blocking receive, the async one, and tokio's `UnixStream`.
const WAKE_KINDS: [Kind; 3] = [Kind::Shm, Kind::ShmAsyncRx, Kind::TokioUds];

/// Bytes of a wake-up round's message: the send time (CLOCK_MONOTONIC,
/// ns, little-endian) and padding.
const WAKE_SIZE: usize = 64;

/// One wake-up round: the latencies, and for shmchan the receiver's
/// counters over the round.
#[derive(Debug, Clone, Copy)]
struct Wake {
    trip: Trip,
    rx: Option<shmchan::admin::Counters>,
}

/// results[kind index] = one Wake per round.
type Wakeups = Vec<Vec<Wake>>;

fn run_wakeup(args: &Args, dirs: &RunDirs) -> Wakeups {
    let mut results = vec![Vec::new(); args.kinds.len()];
    for round in 0..args.rounds {
        for (ki, &kind) in args.kinds.iter().enumerate() {
            let w = wake_round(args, dirs, kind);
            let parks = w.rx.map_or(String::new(), |c| {
                format!("  parks {} of {} messages", c.parks, c.messages)
            });
            eprintln!(
                "wake-up {:>4} B  round {}/{}  {:<16} median {:>9.2} us  p99 {:>9.2} us  \
                 ({} wake-ups){parks}",
                WAKE_SIZE,
                round + 1,
                args.rounds,
                kind.name(),
                w.trip.median / 1e3,
                w.trip.p99 / 1e3,
                w.trip.samples
            );
            results[ki].push(w);
        }
    }
    results
}

/// One wake-up round: the parent sends a message stamped with the time
/// every `--wake-interval` (sleeping in between, see [`tick`]), `--warmup`
/// seconds unmeasured, a start marker,
/// `--seconds` measured, an end marker; the `stamp` child takes the time
/// as soon as it has each message and answers the median and p99 of
/// (its time - the send time).
fn wake_round(args: &Args, dirs: &RunDirs, kind: Kind) -> Wake {
    let mut link = Link::new(
        kind,
        WAKE_SIZE,
        args.ring(WAKE_SIZE),
        "A",
        dirs,
        Use::Stream { senders: 1 },
        args.iceoryx2_buffer,
    );
    remember(&link);
    let limit = Duration::from_secs_f64(args.warmup + args.seconds) * 3 + Duration::from_secs(30);
    let mut peer = Peer::spawn("stamp", &[&link], args, dirs, limit, &[]);
    link.close_child_end(true);
    let tx = link.tx();
    peer.expect_ready();
    let (warm, measure) = (
        Duration::from_secs_f64(args.warmup),
        Duration::from_secs_f64(args.seconds),
    );
    let every = args.wake_interval;
    // Every end sends blocking, an async link's too (`AsyncTx`): the same
    // send wakes each receiver.
    let sent = each_tx! { tx, |t| tick(&mut t, every, warm, measure),
        AnyTx::Shared(Tx::ShmBatch(mut t)) => tick(&mut t, every, warm, measure),
        AnyTx::Async(mut t) => tick(&mut t, every, warm, measure),
        AnyTx::InChild | AnyTx::Crossbeam(_) => unreachable!("not in wake-up rounds"),
    };
    let trip = Trip::parse(&peer.line());
    peer.finish();
    assert_eq!(
        trip.samples as u64,
        sent,
        "{}: the receiver timed {} messages, the sender sent {sent}",
        kind.name(),
        trip.samples
    );
    let rx = link.shm_counters().map(|(rx, _)| rx);
    Wake { trip, rx }
}

/// The sending side of a wake-up round (see [`wake_round`]); returns the
/// messages sent between the markers.
///
/// It sleeps between sends (until the next multiple of `every`, with a
/// timer slack of 1 ns): a sender that spun there would hold a CPU, and
/// on this 2-CPU machine, when other jobs hold the other one, the
/// receiver's spin, which yields past its first 10 µs, would hand that
/// CPU to the spinning sender for a whole time slice (milliseconds of
/// "latency" that measure the scheduler, not the wake-up). The send time
/// is read after the sleep, right before the send.
fn tick<S: Source>(tx: &mut S, every: Duration, warm: Duration, measure: Duration) -> u64 {
    // SAFETY: sets this thread's timer slack; no pointer.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut msg = message(WAKE_SIZE);
    let every = every.as_nanos() as u64;
    let mut send_for = |tx: &mut S, d: Duration| {
        let mut next = monotonic_ns();
        let end = next + d.as_nanos() as u64;
        let mut n = 0;
        while next < end {
            next += every;
            sleep_until(next);
            msg[..8].copy_from_slice(&monotonic_ns().to_le_bytes());
            tx.send(&msg);
            n += 1;
        }
        n
    };
    send_for(tx, warm);
    tx.send(&[]);
    let n = send_for(tx, measure);
    tx.send(&[]);
    n
}

/// The receiving child of a wake-up round (see [`Stamps`]).
fn stamps<K: Sink>(rx: &mut K, out: &mut impl Write) -> Vec<u32> {
    say_ready(out);
    let mut st = Stamps::default();
    while rx.recv_with(|m| st.add(m, monotonic_ns())) {}
    st.latencies
}

/// A wake-up round's receiver: the latency of each message between the
/// start and the end marker, its receive time less the send time it
/// carries.
#[derive(Debug, Default)]
struct Stamps {
    markers: u32,
    /// ns each.
    latencies: Vec<u32>,
}

impl Stamps {
    /// Takes message `m`, received at `now`; `false` at the end marker.
    fn add(&mut self, m: &[u8], now: u64) -> bool {
        let Some(sent) = m.first_chunk::<8>() else {
            self.markers += 1;
            return self.markers < 2;
        };
        if self.markers == 1 {
            let ns = now.saturating_sub(u64::from_le_bytes(*sent));
            self.latencies.push(ns.min(u64::from(u32::MAX)) as u32);
        }
        true
    }
}

/// Sleeps until CLOCK_MONOTONIC reads `ns`.
fn sleep_until(ns: u64) {
    let at = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `at` is a valid timespec; no remainder is asked for (an
    // absolute sleep is resumed by calling again).
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &at,
            std::ptr::null_mut(),
        )
    } == libc::EINTR
    {}
}

/// (numerator, denominator) of the wake-up ratios, each when both ran:
/// the async receive against the blocking one and against tokio's
/// `UnixStream` (issue 13's targets), and the references against the
/// blocking receive.
const WAKE_PAIRS: [(Kind, Kind); 8] = [
    (Kind::ShmAsyncRx, Kind::Shm),
    (Kind::ShmAsync, Kind::Shm),
    (Kind::ShmAsyncRx, Kind::TokioUds),
    (Kind::ShmAsync, Kind::TokioUds),
    (Kind::TokioUds, Kind::Shm),
    (Kind::ShmPark, Kind::Shm),
    (Kind::Pipe, Kind::Shm),
    (Kind::Socket, Kind::Shm),
];

fn print_wakeup(args: &Args, res: &Wakeups) {
    println!();
    println!(
        "### Wake-up ({}; one {WAKE_SIZE}-byte message every {} µs to a receiver that \
         waits for it; send to receipt, {} interleaved rounds of {} s; medians over rounds of \
         each round's median and p99)",
        if args.pin {
            "pinned: sender CPU 0, receiver CPU 1"
        } else {
            "unpinned"
        },
        args.wake_interval.as_micros(),
        args.rounds,
        args.seconds
    );
    println!();
    println!("| transport | median | p99 | wake-ups/round | rx parks/message |");
    println!("|:---|---:|---:|---:|---:|");
    for (ki, &kind) in args.kinds.iter().enumerate() {
        let w = &res[ki];
        let mut m: Vec<f64> = w.iter().map(|x| x.trip.median).collect();
        let mut p: Vec<f64> = w.iter().map(|x| x.trip.p99).collect();
        let mut n: Vec<f64> = w.iter().map(|x| x.trip.samples as f64).collect();
        let mut parks: Vec<f64> = w
            .iter()
            .filter_map(|x| x.rx)
            .map(|c| c.parks as f64 / c.messages.max(1) as f64)
            .collect();
        let parks = match parks.is_empty() {
            true => "n/a".to_owned(),
            false => format!("{:.2}", median(&mut parks)),
        };
        println!(
            "| {} | {} | {} | {} | {parks} |",
            kind.name(),
            human_ns(median(&mut m)),
            human_ns(median(&mut p)),
            si_count(median(&mut n))
        );
    }
    let pairs: Vec<_> = WAKE_PAIRS
        .into_iter()
        .filter(|(a, b)| args.kinds.contains(a) && args.kinds.contains(b))
        .collect();
    if pairs.is_empty() {
        return;
    }
    println!();
    println!(
        "Ratios of latencies (x/y: below 1 means x is woken sooner; median over rounds of the \
         ratio within each round):"
    );
    println!();
    println!("| x/y | median | p99 |");
    println!("|:---|---:|---:|");
    for (a, b) in pairs {
        let (ia, ib) = (index(args, a), index(args, b));
        let rounds = res[ia].iter().zip(&res[ib]);
        let mut m: Vec<f64> = rounds
            .clone()
            .map(|(x, y)| x.trip.median / y.trip.median)
            .collect();
        let mut p: Vec<f64> = rounds.map(|(x, y)| x.trip.p99 / y.trip.p99).collect();
        println!(
            "| {}/{} | {} | {} |",
            a.name(),
            b.name(),
            ratio_cell(&mut m),
            ratio_cell(&mut p)
        );
    }
    println!();
    println!(
        "rx parks/message: the receiver's parks over its messages in the whole round (warmup \
         included), from the channel's counters; about 1 means it parked for every message."
    );
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
    if args.kinds.iter().any(|k| k.async_rx()) {
        println!(
            "- async ends (shmchan-async, shmchan-async-rx, tokio-uds): a tokio \
             `current_thread` runtime (IO and timers enabled) in each process whose end is \
             async, the loop in a spawned task"
        );
    }
    if args.senders != [1] {
        let counts: Vec<String> = args.senders.iter().map(|n| n.to_string()).collect();
        println!(
            "- senders per throughput round: {} (--senders; the counts interleaved within each \
             round); messages of 8 B and more carry a tag (sender index and sequence number in \
             their first 8 bytes) in every throughput round, which the receiver checks",
            counts.join(", ")
        );
    }
    if args.kinds.iter().any(|k| k.only_size().is_some()) {
        let (sent, marker) = typed::encoded_sizes();
        println!(
            "- typed transports (shmchan-value, shmchan-value-fixint, shmchan-pod, ipc-channel): \
             one `Sample` per message, a `#[repr(C)]` struct of {} bytes in memory (id u64, t \
             u64, x [f32; 8], flags u32, tag u32, seq u64), {sent} bytes in postcard (the \
             markers {marker}); with its integers fixed-width (`postcard::fixint::le`, \
             shmchan-value-fixint) and through shmchan-pod, the 64 bytes as they are; run at {} \
             B only",
            typed::SAMPLE_SIZE,
            typed::SAMPLE_SIZE
        );
    }
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
