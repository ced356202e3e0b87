//! Issue 5, check 3: crash soak. A sender and a receiver run in separate
//! processes (this test binary again); N times the parent SIGKILLs one of
//! them at a random moment, or at a chosen one (mid-reserve: a grant held
//! and half written; mid-recv_ref: a guard held, before or after the
//! receiver logged it), and starts it again. One restart in eight is
//! killed again while it starts (opening the channel, joining, claiming
//! its role), so that deaths inside those semops are part of the soak too.
//! At the end it checks, from the log each receiver incarnation appends
//! (one `write(2)` per message, made before the message is released):
//!
//! - every committed message was seen, in order (lost = 0);
//! - none is torn (length and checksum of the payload);
//! - duplicates are only the at-least-once case: the first message of a
//!   receiver incarnation may repeat the last one logged by the
//!   incarnation killed before it, nothing else;
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
//! file both processes map. A sender killed between the two leaves one
//! message uncertain (it may or may not have been published); it may be
//! missing from the logs without counting as lost.

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
    /// Receiver: inside `recv_ref` (maybe waiting).
    pub(super) const WAITING: u64 = 2;
    /// Receiver: holding a guard, not logged yet.
    pub(super) const HELD: u64 = 3;
    /// Receiver: holding a guard, logged, not released.
    pub(super) const LOGGED: u64 = 4;
}

const TX_PHASES: [&str; 5] = ["starting", "idle", "in reserve", "grant held", "in commit"];
const RX_PHASES: [&str; 5] = [
    "starting",
    "idle",
    "in recv_ref",
    "guard held",
    "guard held, logged",
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

fn run_receiver(chan: &Channel, st: &State, log: &Path) {
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    rx.set_spin(Duration::from_micros(20));
    let mut log = File::create(log).expect("create receiver log");
    st.set(word::RX_PHASE, phase::IDLE);
    say("attached");
    let mut rng = Rng(std::process::id() as u64 | 1);
    loop {
        let done_before = st.get(word::DONE) != 0;
        st.set(word::RX_PHASE, phase::WAITING);
        let guard = match rx.recv_ref() {
            Ok(g) => g,
            Err(Error::Disconnected) if done_before => return,
            Err(Error::Disconnected) => {
                st.set(word::RX_PHASE, phase::IDLE);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => panic!("receiver: {e}"),
        };
        st.set(word::RX_PHASE, phase::HELD);
        let seq = u64::from_le_bytes(guard[..8].try_into().expect("8 bytes at least"));
        let mut record = [0u8; 24];
        record[..8].copy_from_slice(&seq.to_le_bytes());
        record[8..16].copy_from_slice(&(guard.len() as u64).to_le_bytes());
        record[16..].copy_from_slice(&fnv(&guard).to_le_bytes());
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
        st.set(word::RX_PHASE, phase::IDLE);
    }
}

/// How a run went, for the report and the checks.
#[derive(Default, Debug)]
struct Tally {
    kills: [u64; 2],
    tx_kill_phases: [u64; 5],
    rx_kill_phases: [u64; 5],
    uncertain: HashSet<u64>,
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
            if attempt > committed {
                self.tally.uncertain.insert(attempt - 1);
            }
        } else {
            self.tally.rx_kill_phases[at] += 1;
        }
    }

    /// One round: a victim, a moment, a kill, a restart.
    fn round(&mut self, rng: &mut Rng) {
        let who = rng.below(2) as usize;
        // Let some traffic through first.
        std::thread::sleep(Duration::from_micros(rng.below(4_000)));
        let target = match rng.below(4) {
            0 => None,
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
    let mut prev: Option<u64> = None;
    for log in &tally.rx_logs {
        let bytes = std::fs::read(log).unwrap_or_default();
        v.partial_records += (bytes.len() % 24 != 0) as u64;
        // A new incarnation: the message in hand when the last one died
        // may come again, once.
        let mut boundary = true;
        for rec in bytes.chunks_exact(24) {
            let word = |i: usize| u64::from_le_bytes(rec[i * 8..i * 8 + 8].try_into().unwrap());
            let (seq, len, hash) = (word(0), word(1), word(2));
            v.checked += 1;
            if len != len_of(seq) as u64 || hash != expected_hash(seq) {
                v.torn += 1;
            }
            match prev {
                Some(p) if seq == p && boundary => v.duplicated += 1,
                Some(p) => assert!(
                    seq > p,
                    "{}: message {seq} after {p}: reordered or duplicated",
                    log.display()
                ),
                None => {}
            }
            assert!(seq < attempted, "message {seq} was never attempted");
            seen.insert(seq);
            prev = Some(seq);
            boundary = false;
        }
    }
    for seq in 0..committed {
        if !seen.contains(&seq) && !tally.uncertain.contains(&seq) {
            v.lost += 1;
        }
    }
    v.uncertain_seen = tally.uncertain.iter().filter(|s| seen.contains(s)).count() as u64;
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
        v.duplicated <= s.tally.kills[RECEIVER],
        "more duplicates than receiver kills"
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
