//! Issue 5, check 3: crash soak. A sender and a receiver run in separate
//! processes (this test binary again); N times the parent SIGKILLs one of
//! them at a random moment, or at a chosen one (mid-reserve: a grant held
//! and half written; mid-recv_ref: a guard held, before or after the
//! receiver logged it; issue 12's batches: inside `send_batch`, or inside
//! `recv_many_with` with part of a run logged and none of it released),
//! and starts it again. One message in four goes by `send_batch` of 1 to
//! 8, one receive in four by `recv_many_with` of up to 8, each message
//! logged in place before the run is released. One restart in eight is
//! killed again while it starts (opening the channel, joining, claiming
//! its role), so that deaths inside those semops are part of the soak too.
//! At the end it checks, from the log each receiver incarnation appends
//! (one `write(2)` per message, made before the message is released):
//!
//! - every committed message was seen, in order (lost = 0);
//! - none is torn (length and checksum of the payload);
//! - duplicates are only the at-least-once case: the first messages of a
//!   receiver incarnation may repeat those the incarnation killed before
//!   it had logged and not yet released (the receiver logs a release
//!   marker after each release): in order from where the head was, and
//!   all of them before any new message (unless it is killed first);
//!   nothing else;
//! - no segment or semaphore set is left behind.
//!
//! `crash_soak_short` runs in CI (200 rounds, a few seconds). The full
//! soak is ignored by default:
//!
//! ```text
//! SOAK_KILLS=1000 cargo test --test crash_soak -- --ignored --nocapture
//! ```
//!
//! `SOAK_SEED` replays a run (the seed is printed).
//!
//! Committed means `commit()` returned: the sender records the message it
//! attempts before `reserve` and the one it committed after `commit`, in a
//! file both processes map (for a batch: before `send_batch`, the last
//! message of the batch; after it, the last one sent). A sender killed
//! between the two leaves the messages between them uncertain (each may or
//! may not have been published, in order); they may be missing from the
//! logs without counting as lost.

mod common;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Cleanup, Peer, Rng, env, peer_main, say, spawn_peer};
use shmchan::{Channel, Error, Key, Options};

const ID: &str = "SOAK_SHMID";
const STATE: &str = "SOAK_STATE";
const LOG: &str = "SOAK_LOG";
const WATCHDOG: &str = "SOAK_WATCHDOG";

/// Ring size: small, so that both sides keep meeting it full and empty,
/// and frames wrap (with padding) every few messages.
const RING: usize = 8192;

/// The most messages in one `send_batch` or one `recv_many_with`.
const MAX_BATCH: u64 = 8;

/// Bytes of a receiver log record: seq, length, checksum and `head`, a
/// power of two, so that no record straddles a page of the file. A
/// `write(2)` that crosses a page can be cut short by SIGKILL between the
/// pages (the kernel checks for a fatal signal before each page), which
/// would leave a partial record that no receive left; one within a page
/// is whole or absent.
const RECORD: usize = 32;

/// The receiver's log record written after each release (`seq` field):
/// the records before it, back to the last such marker, were released.
const RELEASED: u64 = u64::MAX;

/// Words of the shared state file.
mod word {
    /// `seq + 1` of the message the sender is attempting (0: none yet).
    pub(super) const TX_ATTEMPT: usize = 0;
    /// `seq + 1` of the last message whose `commit` returned.
    pub(super) const TX_COMMITTED: usize = 1;
    pub(super) const TX_PHASE: usize = 2;
    pub(super) const RX_PHASE: usize = 3;
    /// Set by the parent: the sender finishes after its next commit.
    pub(super) const STOP: usize = 4;
    /// Set by the last sender before it detaches cleanly.
    pub(super) const DONE: usize = 5;
    pub(super) const COUNT: usize = 8;
}

/// Phases, as the parent sees them at a kill.
mod phase {
    pub(super) const STARTING: u64 = 0;
    pub(super) const IDLE: u64 = 1;
    /// Sender: inside `reserve` (maybe waiting for room).
    pub(super) const RESERVING: u64 = 2;
    /// Sender: holding a grant, payload partly written.
    pub(super) const FILLING: u64 = 3;
    /// Sender: inside `commit`.
    pub(super) const COMMITTING: u64 = 4;
    /// Sender: inside `send_batch` (maybe waiting for room).
    pub(super) const BATCHING: u64 = 5;
    /// Receiver: inside `recv_ref` (maybe waiting).
    pub(super) const WAITING: u64 = 2;
    /// Receiver: holding a guard, not logged yet.
    pub(super) const HELD: u64 = 3;
    /// Receiver: holding a guard, logged, not released.
    pub(super) const LOGGED: u64 = 4;
    /// Receiver: inside `recv_many_with`, one message or more of the run
    /// logged, none released.
    pub(super) const RUN_LOGGED: u64 = 5;
}

const TX_PHASES: [&str; 6] = [
    "starting",
    "idle",
    "in reserve",
    "grant held",
    "in commit",
    "in send_batch",
];
const RX_PHASES: [&str; 6] = [
    "starting",
    "idle",
    "in recv_ref or recv_many_with",
    "guard held",
    "guard held, logged",
    "in recv_many_with, part of a run logged",
];

/// The state file, mapped shared by the parent and every peer: it
/// survives a SIGKILL of the writer.
struct State {
    words: &'static [AtomicU64; word::COUNT],
}

impl State {
    fn create(path: &Path) -> State {
        std::fs::write(path, [0u8; 4096]).expect("create state file");
        State::map(path)
    }

    fn map(path: &Path) -> State {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open state file");
        use std::os::fd::AsRawFd;
        // SAFETY: a shared mapping of a 4096-byte file we just opened; it
        // is never unmapped (leaked for the life of the process).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap state file");
        // SAFETY: page-aligned, 4096 bytes, zero-initialised; atomics are
        // valid for any bits; the mapping is never unmapped.
        let words = unsafe { &*(p as *const [AtomicU64; word::COUNT]) };
        State { words }
    }

    fn get(&self, w: usize) -> u64 {
        self.words[w].load(Ordering::SeqCst)
    }

    fn set(&self, w: usize, v: u64) {
        self.words[w].store(v, Ordering::SeqCst);
    }
}

/// Length of message `seq`: from 8 bytes to 5000, so that frames of every
/// size meet the end of the 8 KiB ring.
fn len_of(seq: u64) -> usize {
    let x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    match x % 8 {
        0 => 8 + (x % 5000) as usize,
        _ => 8 + (x % 200) as usize,
    }
}

/// Byte `i` of message `seq` (bytes 0..8 are the number itself).
fn byte_of(seq: u64, i: usize) -> u8 {
    if i < 8 {
        seq.to_le_bytes()[i]
    } else {
        (seq as u8)
            .wrapping_mul(13)
            .wrapping_add((i as u8).wrapping_mul(7))
            ^ (i >> 8) as u8
    }
}

/// FNV-1a of a payload.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn expected_hash(seq: u64) -> u64 {
    let msg: Vec<u8> = (0..len_of(seq)).map(|i| byte_of(seq, i)).collect();
    fnv(&msg)
}

#[test]
fn peer() {
    peer_main(|role| {
        common::peer_watchdog(env(WATCHDOG).parse().unwrap());
        let chan = Channel::open_id(env(ID).parse().unwrap()).expect("peer opens");
        let state = State::map(Path::new(&env(STATE)));
        match role {
            "sender" => run_sender(&chan, &state),
            "receiver" => run_receiver(&chan, &state, Path::new(&env(LOG))),
            other => panic!("unknown role {other}"),
        }
    });
}

fn run_sender(chan: &Channel, st: &State) {
    let mut tx = chan.sender().expect("peer takes the sender role");
    tx.set_spin(Duration::from_micros(20));
    st.set(word::TX_PHASE, phase::IDLE);
    say("attached");
    let mut seq = st.get(word::TX_ATTEMPT);
    let mut rng = Rng(seq.wrapping_mul(2654435761) | 1);
    loop {
        if st.get(word::STOP) != 0 {
            st.set(word::DONE, 1);
            return;
        }
        if rng.below(4) == 0 {
            seq = send_batch(&mut tx, st, seq, 1 + rng.below(MAX_BATCH));
            continue;
        }
        st.set(word::TX_ATTEMPT, seq + 1);
        st.set(word::TX_PHASE, phase::RESERVING);
        let len = len_of(seq);
        let mut grant = match tx.reserve(len) {
            Ok(g) => g,
            Err(Error::Disconnected) => {
                // The receiver was killed; a new one is coming. Nothing
                // was published: this message is not attempted yet.
                st.set(word::TX_ATTEMPT, seq);
                st.set(word::TX_PHASE, phase::IDLE);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => panic!("sender: {e}"),
        };
        st.set(word::TX_PHASE, phase::FILLING);
        let slow = rng.below(16) == 0;
        for (i, b) in grant.iter_mut().enumerate() {
            *b = byte_of(seq, i);
            if slow && i == len / 2 {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        st.set(word::TX_PHASE, phase::COMMITTING);
        grant.commit().expect("commit");
        st.set(word::TX_COMMITTED, seq + 1);
        st.set(word::TX_PHASE, phase::IDLE);
        seq += 1;
    }
}

/// Sends messages `seq..seq + k` with one `send_batch`; returns the next
/// `seq`.
fn send_batch(tx: &mut shmchan::Sender, st: &State, seq: u64, k: u64) -> u64 {
    let msgs: Vec<Vec<u8>> = (seq..seq + k)
        .map(|s| (0..len_of(s)).map(|i| byte_of(s, i)).collect())
        .collect();
    st.set(word::TX_ATTEMPT, seq + k);
    st.set(word::TX_PHASE, phase::BATCHING);
    let next = match tx.send_batch(&msgs) {
        Ok(()) => seq + k,
        Err(Error::BatchIncomplete { sent, source }) if matches!(*source, Error::Disconnected) => {
            // The receiver was killed; a new one is coming. The first
            // `sent` are committed; the rest are not attempted yet.
            let next = seq + sent as u64;
            st.set(word::TX_COMMITTED, next);
            st.set(word::TX_ATTEMPT, next);
            st.set(word::TX_PHASE, phase::IDLE);
            std::thread::sleep(Duration::from_millis(1));
            return next;
        }
        Err(e) => panic!("sender: {e}"),
    };
    st.set(word::TX_COMMITTED, next);
    st.set(word::TX_PHASE, phase::IDLE);
    next
}

/// The log record of message `m`: its seq, length and checksum, and the
/// ring's `head` as the receiver found it then (read from a raw attach):
/// a `head` that moved since the record before means that everything
/// logged before was released, even inside one `recv_many_with` call,
/// which releases each run of frames as it ends.
fn record_of(m: &[u8], head: u64) -> [u8; RECORD] {
    let seq = u64::from_le_bytes(m[..8].try_into().expect("8 bytes at least"));
    let mut record = [0u8; RECORD];
    record[..8].copy_from_slice(&seq.to_le_bytes());
    record[8..16].copy_from_slice(&(m.len() as u64).to_le_bytes());
    record[16..24].copy_from_slice(&fnv(m).to_le_bytes());
    record[24..].copy_from_slice(&head.to_le_bytes());
    record
}

/// The record that says the messages logged before it were released.
fn released() -> [u8; RECORD] {
    let mut record = [0u8; RECORD];
    record[..8].copy_from_slice(&RELEASED.to_le_bytes());
    record
}

/// What a receive's error `e` means to the receiver's loop: `true`, the
/// end (the last sender was done before the call); `false`, try again (a
/// new sender is coming), after a pause. Anything but `Disconnected`
/// fails the peer.
fn the_end(st: &State, e: Error, done_before: bool) -> bool {
    match e {
        Error::Disconnected if done_before => true,
        Error::Disconnected => {
            st.set(word::RX_PHASE, phase::IDLE);
            std::thread::sleep(Duration::from_millis(1));
            false
        }
        e => panic!("receiver: {e}"),
    }
}

fn run_receiver(chan: &Channel, st: &State, log: &Path) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    // Declared after `rx`, so dropped before it: the receiver that leaves
    // last must find no attach but its own.
    let seg = common::scribble::Scribbler::attach(chan.id());
    let head = || seg.read_u64(common::layout::HEAD_AT);
    rx.set_spin(Duration::from_micros(20));
    let mut log = File::create(log).expect("create receiver log");
    st.set(word::RX_PHASE, phase::IDLE);
    say("attached");
    let mut rng = Rng(std::process::id() as u64 | 1);
    loop {
        let done_before = st.get(word::DONE) != 0;
        st.set(word::RX_PHASE, phase::WAITING);
        if rng.below(4) == 0 {
            // Issue 12's in-place batch: each message logged where it is
            // in the ring, the run released when the call returns.
            let max = 1 + rng.below(MAX_BATCH) as usize;
            let slow = rng.below(8) == 0;
            let r = rx.recv_many_with(max, |m| {
                log.write_all(&record_of(m, head()))
                    .expect("append to receiver log");
                st.set(word::RX_PHASE, phase::RUN_LOGGED);
                if slow {
                    std::thread::sleep(Duration::from_micros(300));
                }
            });
            if let Err(e) = r {
                match the_end(st, e, done_before) {
                    true => return,
                    false => continue,
                }
            }
            log.write_all(&released()).expect("append to receiver log");
            st.set(word::RX_PHASE, phase::IDLE);
            continue;
        }
        let guard = match rx.recv_ref() {
            Ok(g) => g,
            Err(e) => match the_end(st, e, done_before) {
                true => return,
                false => continue,
            },
        };
        st.set(word::RX_PHASE, phase::HELD);
        let record = record_of(&guard, head());
        if rng.below(16) == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
        // One write(2), before the release: the log is the receiver's
        // account of what it had in hand.
        log.write_all(&record).expect("append to receiver log");
        st.set(word::RX_PHASE, phase::LOGGED);
        if rng.below(16) == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
        drop(guard);
        log.write_all(&released()).expect("append to receiver log");
        st.set(word::RX_PHASE, phase::IDLE);
    }
}

/// How a run went, for the report and the checks.
#[derive(Default, Debug)]
struct Tally {
    kills: [u64; 2],
    tx_kill_phases: [u64; 6],
    rx_kill_phases: [u64; 6],
    uncertain: HashSet<u64>,
    /// The same, per sender kill, from where that incarnation began: it
    /// publishes in order, so of each range what was delivered is a prefix.
    uncertain_runs: Vec<std::ops::Range<u64>>,
    rx_logs: Vec<PathBuf>,
}

/// The running soak: channel, peers, state, logs.
struct Soak {
    dir: PathBuf,
    shmid: i32,
    state: State,
    peers: [Option<Peer>; 2],
    incarnations: [u64; 2],
    tally: Tally,
    watchdog_secs: u64,
    /// Where the running sender incarnation began: the attempt mark at the
    /// last sender kill. What a killed sender left uncertain begins there
    /// at the earliest (before it: an earlier incarnation's, unpublished).
    tx_start: u64,
}

const SENDER: usize = 0;
const RECEIVER: usize = 1;

impl Soak {
    /// Starts an incarnation of `who`; waits for it to attach if `settle`.
    fn spawn(&mut self, who: usize, settle: bool) {
        let n = self.incarnations[who];
        self.incarnations[who] += 1;
        let log = self.dir.join(format!("rx-{n:06}.log"));
        let mut env = vec![
            (ID, self.shmid.to_string()),
            (STATE, self.dir.join("state").display().to_string()),
            (WATCHDOG, self.watchdog_secs.to_string()),
        ];
        let role = if who == SENDER { "sender" } else { "receiver" };
        if who == RECEIVER {
            self.state.set(word::RX_PHASE, phase::STARTING);
            env.push((LOG, log.display().to_string()));
            self.tally.rx_logs.push(log);
        } else {
            self.state.set(word::TX_PHASE, phase::STARTING);
        }
        let mut peer = spawn_peer("peer", role, &env);
        if settle {
            peer.expect_line("attached");
        }
        self.peers[who] = Some(peer);
    }

    /// Kills `who` now, or once it reaches `target` (waiting at most
    /// 50 ms for it), and records where it was.
    fn kill(&mut self, who: usize, target: Option<u64>) {
        let w = if who == SENDER {
            word::TX_PHASE
        } else {
            word::RX_PHASE
        };
        if let Some(target) = target {
            let deadline = Instant::now() + Duration::from_millis(50);
            while self.state.get(w) != target && Instant::now() < deadline {
                std::hint::spin_loop();
            }
        }
        self.peers[who].take().expect("a running peer").kill();
        let at = self.state.get(w) as usize;
        self.tally.kills[who] += 1;
        if who == SENDER {
            self.tally.tx_kill_phases[at] += 1;
            let (attempt, committed) = (
                self.state.get(word::TX_ATTEMPT),
                self.state.get(word::TX_COMMITTED),
            );
            self.tally.uncertain.extend(committed..attempt);
            let start = committed.max(self.tx_start);
            if attempt > start {
                self.tally.uncertain_runs.push(start..attempt);
            }
            self.tx_start = attempt;
        } else {
            self.tally.rx_kill_phases[at] += 1;
        }
    }

    /// One round: a victim, a moment, a kill, a restart.
    fn round(&mut self, rng: &mut Rng) {
        let who = rng.below(2) as usize;
        // Let some traffic through first.
        std::thread::sleep(Duration::from_micros(rng.below(4_000)));
        let target = match rng.below(5) {
            0 => None,
            3 if who == SENDER => Some(phase::BATCHING),
            3 => Some(phase::RUN_LOGGED),
            1 if who == SENDER => Some(phase::FILLING),
            1 => Some(phase::HELD),
            2 if who == SENDER => Some(phase::RESERVING),
            2 => Some(phase::LOGGED),
            _ => {
                std::thread::sleep(Duration::from_micros(rng.below(20_000)));
                None
            }
        };
        self.kill(who, target);
        if rng.below(8) == 0 {
            // Killed again while starting: in open, join or role claim.
            self.spawn(who, false);
            std::thread::sleep(Duration::from_micros(rng.below(2_500)));
            self.kill(who, None);
        }
        self.spawn(who, true);
    }

    /// Stops the sender cleanly and lets the receiver drain and leave.
    fn finish(&mut self) {
        self.state.set(word::STOP, 1);
        for who in [SENDER, RECEIVER] {
            let mut peer = self.peers[who].take().expect("a running peer");
            let status = peer.child.wait().expect("wait for peer");
            assert!(status.success(), "peer {who} failed at the end: {status}");
        }
    }
}

/// What the receiver logs say.
#[derive(Default, Debug)]
struct Verdict {
    checked: u64,
    lost: u64,
    torn: u64,
    duplicated: u64,
    uncertain_seen: u64,
    partial_records: u64,
}

fn check_logs(tally: &Tally, committed: u64, attempted: u64) -> Verdict {
    let mut v = Verdict::default();
    let mut seen = HashSet::new();
    // The highest message logged so far.
    let mut prev: Option<u64> = None;
    // The messages logged and maybe not released, in order, from where the
    // ring's head may be: what a new incarnation may receive again.
    let mut unreleased: Vec<u64> = Vec::new();
    for log in &tally.rx_logs {
        let bytes = std::fs::read(log).unwrap_or_default();
        v.partial_records += (bytes.len() % RECORD != 0) as u64;
        if bytes.len() < RECORD {
            continue; // nothing received: nothing released either
        }
        // A new incarnation: its first messages may be some of those logged
        // and not released before it, received again in order from where
        // the head was (a contiguous part of `unreleased`), each once; it
        // goes on to new messages only after the last of them.
        let mut again: Vec<u64> = Vec::new();
        let mut fresh: Vec<u64> = Vec::new();
        // Its records after its last release (`None`: none seen): a
        // marker, or a `head` that moved since the record before.
        let mut since_release: Option<Vec<u64>> = None;
        let mut last_head: Option<u64> = None;
        for rec in bytes.chunks_exact(RECORD) {
            let word = |i: usize| u64::from_le_bytes(rec[i * 8..i * 8 + 8].try_into().unwrap());
            let (seq, len, hash, head) = (word(0), word(1), word(2), word(3));
            if seq == RELEASED {
                since_release = Some(Vec::new());
                last_head = None;
                continue;
            }
            if last_head.is_some_and(|h| h != head) {
                since_release = Some(Vec::new());
            }
            last_head = Some(head);
            if let Some(r) = &mut since_release {
                r.push(seq);
            }
            v.checked += 1;
            if len != len_of(seq) as u64 || hash != expected_hash(seq) {
                v.torn += 1;
            }
            match prev {
                Some(p) if seq <= p && fresh.is_empty() => again.push(seq),
                Some(p) => {
                    assert!(
                        seq > p,
                        "{}: message {seq} after {p}: reordered or duplicated",
                        log.display()
                    );
                    fresh.push(seq);
                }
                None => fresh.push(seq),
            }
            assert!(seq < attempted, "message {seq} was never attempted");
            seen.insert(seq);
            if fresh.last() == Some(&seq) {
                prev = Some(seq);
            }
        }
        let from = match again.first() {
            None => unreleased.len(),
            Some(first) => unreleased.iter().position(|s| s == first).unwrap_or_else(|| {
                panic!(
                    "{}: received {first} again, which was not in hand unreleased ({unreleased:?})",
                    log.display()
                )
            }),
        };
        let rest = &unreleased[from..];
        assert!(
            rest.starts_with(&again) && (fresh.is_empty() || again.len() == rest.len()),
            "{}: received again {again:?} then {} new, but {rest:?} were in hand unreleased",
            log.display(),
            fresh.len()
        );
        v.duplicated += again.len() as u64;
        // In hand now: what it logged after its last release (all of it
        // without one), then, if it never got past them, the messages of
        // `rest` it had not received again yet.
        let not_again = if fresh.is_empty() {
            &rest[again.len()..]
        } else {
            &[]
        };
        let logged = since_release.unwrap_or_else(|| again.iter().chain(&fresh).copied().collect());
        unreleased = logged
            .into_iter()
            .chain(not_again.iter().copied())
            .collect();
    }
    for seq in 0..committed {
        if !seen.contains(&seq) && !tally.uncertain.contains(&seq) {
            v.lost += 1;
        }
    }
    v.uncertain_seen = tally.uncertain.iter().filter(|s| seen.contains(s)).count() as u64;
    for run in &tally.uncertain_runs {
        let delivered = run.clone().take_while(|s| seen.contains(s)).count() as u64;
        let after: Vec<u64> = (run.start + delivered..run.end)
            .filter(|s| seen.contains(s))
            .collect();
        assert!(
            after.is_empty(),
            "of the messages {run:?} a killed sender left uncertain, {after:?} arrived without \
             message {} before them",
            run.start + delivered
        );
    }
    v
}

fn soak(kills: u64) {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash soak: {kills} kills, SOAK_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("shmchan-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("soak dir");
    let _rm = RemoveDir(dir.clone());
    let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(RING)).expect("create");
    let cleanup = Cleanup::of(&chan);
    let mut s = Soak {
        state: State::create(&dir.join("state")),
        dir: dir.clone(),
        shmid: chan.id(),
        peers: [None, None],
        incarnations: [0, 0],
        tally: Tally::default(),
        watchdog_secs: 120 + kills / 4,
        tx_start: 0,
    };
    let start = Instant::now();
    s.spawn(SENDER, true);
    s.spawn(RECEIVER, true);
    // From here on the peers alone keep the channel alive.
    drop(chan);
    for _ in 0..kills {
        s.round(&mut rng);
    }
    s.finish();
    let committed = s.state.get(word::TX_COMMITTED);
    let attempted = s.state.get(word::TX_ATTEMPT);
    let v = check_logs(&s.tally, committed, attempted);
    report(&s.tally, &v, committed, start.elapsed());
    assert_eq!(v.lost, 0, "committed messages lost");
    assert_eq!(v.torn, 0, "torn messages");
    assert_eq!(v.partial_records, 0, "a log record was cut short");
    assert!(
        v.duplicated <= s.tally.kills[RECEIVER] * MAX_BATCH,
        "more duplicates than the receiver kills could leave in hand"
    );
    let gone = !common::shm_exists(cleanup.shmid) && !common::sem_exists(cleanup.semid);
    assert!(
        gone,
        "the last party out left the segment or the semaphore set behind"
    );
}

/// Removes the soak's directory (state file, logs), pass or fail.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        // Nothing to do if it is gone already.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn report(t: &Tally, v: &Verdict, committed: u64, took: Duration) {
    let phases = |names: &[&str], counts: &[u64]| {
        names
            .iter()
            .zip(counts)
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "crash soak: {} kills in {:.1} s (sender {}: {}; receiver {}: {})",
        t.kills[0] + t.kills[1],
        took.as_secs_f64(),
        t.kills[SENDER],
        phases(&TX_PHASES, &t.tx_kill_phases),
        t.kills[RECEIVER],
        phases(&RX_PHASES, &t.rx_kill_phases),
    );
    eprintln!(
        "crash soak: {committed} messages committed, {} log records checked, lost {}, torn {}, \
         duplicated {}, uncertain (sender killed between attempt and commit) {}, of them seen {}",
        v.checked,
        v.lost,
        v.torn,
        v.duplicated,
        t.uncertain.len(),
        v.uncertain_seen
    );
}

/// The CI version: 200 kills, a few seconds.
#[test]
fn crash_soak_short() {
    if std::env::var(common::PEER_ENV).is_ok() {
        return;
    }
    soak(200);
}

/// The full soak: `SOAK_KILLS` kills (default 1000).
#[test]
#[ignore = "long: SOAK_KILLS=1000 cargo test --test crash_soak -- --ignored --nocapture"]
fn crash_soak_long() {
    if std::env::var(common::PEER_ENV).is_ok() {
        return;
    }
    let kills = std::env::var("SOAK_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    soak(kills);
}
