//! Shared test helpers: unique keys, a cleanup guard, and peers that are
//! separate processes (this test binary run again, with an env var naming
//! the role).
#![allow(dead_code, unreachable_pub)]

pub mod layout;
pub mod scribble;
pub mod seccomp;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmchan::{Channel, Key, Options};

/// Env var that turns a run of the test binary into a peer.
pub const PEER_ENV: &str = "SHMCHAN_TEST_PEER";
/// Prefix of the lines a peer prints for the parent to read.
pub const OUT: &str = "@peer ";

/// A fresh file for ftok; removed on drop.
pub struct TempKey {
    pub key: Key,
    pub path: PathBuf,
}

impl TempKey {
    pub fn new() -> TempKey {
        TempKey::in_dir(&std::env::temp_dir())
    }

    /// A key file in `dir` (e.g. [`AsNobody::dir`], for a child run as
    /// another user to find).
    ///
    /// ftok keeps only the low 16 bits of the inode, so a fresh file's key
    /// may already hold another program's segment or set. Such files are
    /// kept (so that the next one gets another inode) until one with a key
    /// nothing uses is made, then removed.
    pub fn in_dir(dir: &Path) -> TempKey {
        let mut taken = Vec::new();
        let found = loop {
            let path = fresh_file(dir);
            let key = Key::ftok(&path, b'T').expect("ftok on a fresh file");
            if key_unused(key) {
                break TempKey { key, path };
            }
            assert!(taken.len() < 1000, "no free ftok key in {}", dir.display());
            taken.push(path);
        };
        for path in taken {
            let _ = std::fs::remove_file(path); // ours, in a temporary dir
        }
        found
    }
}

impl Drop for TempKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A new empty file in `dir`.
fn fresh_file(dir: &Path) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = dir.join(format!(
        "shmchan-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, b"").expect("create temp key file");
    path
}

/// Whether no segment and no semaphore set has `key` (one this process may
/// not read counts as used).
fn key_unused(key: Key) -> bool {
    let absent =
        |rc: i32| rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT);
    // SAFETY: lookups only: size 0, no flags.
    let shm = unsafe { libc::shmget(key.raw(), 0, 0) };
    if !absent(shm) {
        return false;
    }
    // SAFETY: a lookup only: no semaphores, no flags.
    absent(unsafe { libc::semget(key.raw(), 0, 0) })
}

/// Removes a channel's segment and semaphore set when dropped, whatever
/// the test did (a failing test leaves nothing behind).
pub struct Cleanup {
    pub shmid: i32,
    pub semid: i32,
}

impl Cleanup {
    pub fn of(chan: &Channel) -> Cleanup {
        Cleanup {
            shmid: chan.id(),
            semid: chan.sem_id(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no buffer; a stale id just fails (ignored).
        unsafe {
            libc::shmctl(self.shmid, libc::IPC_RMID, std::ptr::null_mut());
            libc::semctl(self.semid, 0, libc::IPC_RMID);
        }
    }
}

/// A private channel with its cleanup guard.
pub fn private_channel(capacity: usize) -> (Channel, Cleanup) {
    let chan = Channel::create(Key::PRIVATE, &Options::new().capacity(capacity))
        .expect("create a private channel");
    let guard = Cleanup::of(&chan);
    (chan, guard)
}

/// The channel at segment `shmid`, as `admin::inspect` reads it (panics if
/// it is not a channel).
pub fn channel_info(shmid: i32) -> shmchan::admin::ChannelInfo {
    match shmchan::admin::inspect(shmid).expect("inspect").kind {
        shmchan::admin::Kind::Channel(c) => c,
        other => panic!("not a channel: {other:?}"),
    }
}

/// xorshift64*: the tests' randomness, without a crate; reproducible from
/// its seed (which must not be 0).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Whether a segment id is still listed by the kernel (what `ipcs -m` shows).
pub fn shm_exists(shmid: i32) -> bool {
    listed("/proc/sysvipc/shm", 1, shmid)
}

/// Whether a semaphore set id is still listed (what `ipcs -s` shows).
pub fn sem_exists(semid: i32) -> bool {
    listed("/proc/sysvipc/sem", 1, semid)
}

fn listed(file: &str, column: usize, id: i32) -> bool {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .skip(1)
        .any(|line| line.split_whitespace().nth(column) == Some(id.to_string().as_str()))
}

/// Runs `role` in a new process: this test binary again, running only the
/// test named `entry` (which must call [`peer_main`]), with `env` set.
pub fn spawn_peer(entry: &str, role: &str, env: &[(&str, String)]) -> Peer {
    let exe = std::env::current_exe().expect("current test binary");
    spawn_peer_by(Command::new(exe), entry, role, env)
}

/// [`spawn_peer`] for a peer of the channel `shmid`, named to it in the
/// env var `var` (the peer entry's convention), with `extra` env too.
pub fn spawn_on(role: &str, var: &str, shmid: i32, extra: &[(&str, String)]) -> Peer {
    let mut vars = vec![(var, shmid.to_string())];
    vars.extend(extra.iter().cloned());
    spawn_peer("peer", role, &vars)
}

/// [`spawn_peer`], run by `cmd`: a command for this test binary or a copy
/// of it, set up beforehand (e.g. [`AsNobody::command`], to start the peer
/// as another user: a peer must not switch users itself, since libtest runs
/// it on a second thread and glibc's set*id broadcast can race the
/// runtime's exit).
pub fn spawn_peer_by(mut cmd: Command, entry: &str, role: &str, env: &[(&str, String)]) -> Peer {
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(PEER_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn peer");
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    Peer { child, stdout }
}

// ---- Running a child as another user ----

/// The uid and gid a root test runs a child as (nobody / nogroup).
pub const NOBODY: u32 = 65534;

/// Whether this process runs as root (and so may start a child as another
/// user).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A copy of an executable that user nobody, or any other user, can run,
/// in a fresh directory that every user can enter; removed on drop, with
/// all that is in it. The checkout, and the build in it, may lie where
/// nobody cannot reach (a `mktemp -d` clone, root's 0700 home). A file the
/// child must find (a key file for ftok) goes in [`AsNobody::dir`] too.
pub struct AsNobody {
    dir: PathBuf,
    exe: PathBuf,
}

impl AsNobody {
    /// Copies `exe` (mode 0755) into a new directory (mode 0755) under a
    /// temporary directory that every user can reach.
    pub fn copy(exe: impl AsRef<Path>) -> AsNobody {
        let exe = exe.as_ref();
        let dir = shared_dir();
        let copy = dir.join(exe.file_name().expect("the executable's file name"));
        let made = AsNobody { dir, exe: copy };
        // cp, not std::fs::copy: this process never holds the copy open for
        // writing, so no child that another test thread forks meanwhile can
        // inherit that descriptor and make the exec fail with ETXTBSY.
        let status = Command::new("cp")
            .arg(exe)
            .arg(&made.exe)
            .status()
            .expect("run cp");
        assert!(status.success(), "cp {}: {status}", exe.display());
        set_mode(&made.exe, 0o755);
        made
    }

    /// The directory: every user may enter it and read what is in it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command that runs the copy as uid and gid [`NOBODY`] (std drops
    /// the supplementary groups too), in [`AsNobody::dir`].
    pub fn command(&self) -> Command {
        self.command_as(NOBODY, NOBODY)
    }

    /// A command that runs the copy as `uid` with the one group `gid` (no
    /// supplementary groups; neither needs to exist in /etc/passwd or
    /// /etc/group), in [`AsNobody::dir`].
    pub fn command_as(&self, uid: u32, gid: u32) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.uid(uid).gid(gid).current_dir(&self.dir);
        cmd
    }
}

impl Drop for AsNobody {
    fn drop(&mut self) {
        // A temporary directory left behind harms no test; nothing to do.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new directory, mode 0755, under the first temporary directory that
/// every user may reach.
fn shared_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = [std::env::temp_dir(), "/tmp".into(), "/var/tmp".into()]
        .into_iter()
        .find(|d| searchable_by_all(d))
        .expect("a temporary directory that every user can reach");
    loop {
        let dir = base.join(format!(
            "shmchan-nobody-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => {
                set_mode(&dir, 0o755); // whatever the umask
                return dir;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("mkdir {}: {e}", dir.display()),
        }
    }
}

/// Whether any user may search `dir` and every directory above it.
fn searchable_by_all(dir: &Path) -> bool {
    dir.is_absolute()
        && dir.ancestors().all(|d| {
            std::fs::metadata(d).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 != 0)
        })
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// A peer process; killed on drop if still running.
pub struct Peer {
    pub child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    /// The next line the peer printed with [`say`], without the prefix;
    /// `None` at end of output.
    pub fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(rest) = line.strip_prefix(OUT) {
                return Some(rest.trim_end().to_owned());
            }
        }
    }

    /// The rest of the peer's next line, which must be `prefix <rest>`.
    pub fn line_after(&mut self, prefix: &str) -> String {
        match self.next_line() {
            Some(l) => match l.strip_prefix(prefix) {
                Some(rest) => rest.trim_start().to_owned(),
                None => panic!("peer said {l:?}, expected {prefix:?} ..."),
            },
            None => panic!("peer ended its output, expected {prefix:?} ..."),
        }
    }

    /// Waits for the peer to print `what` (panics if it exits first).
    pub fn expect_line(&mut self, what: &str) {
        match self.next_line() {
            Some(l) if l == what => {}
            other => panic!("peer said {other:?}, expected {what:?}"),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// SIGKILLs the peer and reaps it.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits for the peer to exit and asserts it succeeded.
    pub fn join(mut self) {
        let status = self.child.wait().expect("wait for peer");
        assert!(status.success(), "peer failed: {status}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Prints a line for the parent ([`Peer::next_line`]).
pub fn say(what: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{OUT}{what}");
    let _ = out.flush();
}

/// In the test named by `spawn_peer`'s `entry`: runs the role named in the
/// env, then exits the process; does nothing in a normal test run.
pub fn peer_main(run: impl FnOnce(&str)) {
    if let Ok(role) = std::env::var(PEER_ENV) {
        run(&role);
        std::process::exit(0);
    }
}

/// An env value the peer reads back.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("peer needs {name}"))
}

/// Waits until `cond` holds, polling; panics after `limit`. For waiting on
/// another process's visible state (e.g. a kernel listing), not for timing.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether a process is in state `state` (e.g. 'S' sleeping, 'T' stopped),
/// from /proc/PID/stat.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

// ---- In a peer, and watching one ----

/// In a peer: ends the process with SIGALRM after `secs` seconds, whatever
/// it is doing, so that a peer stuck on a library bug ends its output (the
/// parent's `next_line` returns `None` and the test fails) instead of
/// hanging the test run.
pub fn peer_watchdog(secs: u32) {
    // SAFETY: alarm(2) takes a plain integer and cannot fail.
    unsafe { libc::alarm(secs) };
}

/// The calling thread's id, as /proc/PID/task/TID names it.
pub fn gettid() -> i32 {
    // SAFETY: gettid(2) has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the host.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// In a peer: blocks for ever (until the parent kills it, or the watchdog).
pub fn hang() -> ! {
    loop {
        std::thread::park();
    }
}

/// System calls a side is parked in: `semtimedop` (and `semop`, should a
/// park ever use it).
pub const SEM_WAIT_SYSCALLS: &[libc::c_long] = &[libc::SYS_semtimedop, libc::SYS_semop];

/// Whether thread `tid` of process `pid` is asleep ('S') inside one of
/// `syscalls` (from /proc/PID/task/TID/stat and .../syscall).
pub fn task_blocked_in(pid: i32, tid: i32, syscalls: &[libc::c_long]) -> bool {
    let dir = format!("/proc/{pid}/task/{tid}");
    let sleeping = std::fs::read_to_string(format!("{dir}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1.to_owned();
            after.trim_start().chars().next()
        })
        == Some('S');
    let nr = std::fs::read_to_string(format!("{dir}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<libc::c_long>().ok());
    sleeping && nr.is_some_and(|nr| syscalls.contains(&nr))
}

/// Whether some thread of process `pid` is asleep inside one of
/// `syscalls`. Use this rather than `proc_state(pid) == Some('S')` to know
/// that a peer is parked: libtest runs the test (even with
/// `--test-threads=1`) on a thread of its own while the main thread sleeps
/// in a futex, so the main thread's state is 'S' all along.
pub fn blocked_in(pid: i32, syscalls: &[libc::c_long]) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse().ok())
        .any(|tid| task_blocked_in(pid, tid, syscalls))
}

/// Whether some thread of `pid` is parked on a semaphore.
pub fn parked_on_sem(pid: i32) -> bool {
    blocked_in(pid, SEM_WAIT_SYSCALLS)
}

/// A fifo that peers block on until the parent opens it: every peer
/// blocked in [`GateReader::wait`] is released at the same moment.
pub struct Gate {
    pub path: PathBuf,
    writer: Option<std::fs::File>,
}

impl Gate {
    pub fn new() -> Gate {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "shmchan-gate-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let cpath = std::ffi::CString::new(path.to_str().expect("utf-8 temp path")).unwrap();
        // SAFETY: cpath is a valid NUL-terminated string.
        let rc = unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
        // O_RDWR on a fifo never blocks on Linux; holding this writer keeps
        // the peers' reads blocked (and lets them open without blocking).
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open gate fifo");
        Gate {
            path,
            writer: Some(writer),
        }
    }

    /// The path to give a peer (env value).
    pub fn env_value(&self) -> String {
        self.path.to_str().expect("utf-8 temp path").to_owned()
    }

    /// Closes the only writer: every reader's blocked read returns at once.
    pub fn open(&mut self) {
        self.writer = None;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // The fifo may already be gone; nothing else to do then.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A peer's end of a [`Gate`]: open it (before telling the parent it is
/// ready), then `wait`.
pub struct GateReader(std::fs::File);

impl GateReader {
    pub fn open(path: &str) -> GateReader {
        GateReader(std::fs::File::open(path).expect("open gate fifo for reading"))
    }

    /// Blocks in read(2) until the parent opens the gate.
    pub fn wait(mut self) {
        use std::io::Read;
        let mut buf = [0u8; 16];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read gate fifo: {e}"),
            }
        }
    }
}

/// Message number `seq`: its 8 bytes little-endian, then `seq % 37` bytes
/// of filler derived from it (lengths vary, so frames wrap and pad).
pub fn numbered_message(seq: u64) -> Vec<u8> {
    numbered_message_of_len(seq, 8 + (seq % 37) as usize)
}

/// Message number `seq`, `len` (at least 8) bytes long: its number, 8 bytes
/// little-endian, then filler derived from it.
pub fn numbered_message_of_len(seq: u64, len: usize) -> Vec<u8> {
    let mut msg = seq.to_le_bytes().to_vec();
    msg.extend((0..len - 8).map(|i| (seq as u8).wrapping_add(i as u8)));
    msg
}

/// The number of a [`numbered_message`], checking every byte of it.
pub fn message_number(msg: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(msg[..8].try_into().expect("message of at least 8 bytes"));
    assert_eq!(msg, numbered_message(seq), "message {seq} is damaged");
    seq
}

/// In a peer: receives until an error, then reports the sequence numbers
/// it got (`seqs 0,1,2`) and the error that ended it (`end Disconnected`).
pub fn receive_and_report(rx: &mut shmchan::Receiver) {
    let mut seqs = Vec::new();
    let end = loop {
        match rx.recv() {
            Ok(m) => seqs.push(message_number(&m).to_string()),
            Err(e) => break e,
        }
    };
    say(format!("seqs {}", seqs.join(",")));
    say(format!("end {end:?}"));
}

/// Reads the peer's "ids SHMID SEMID" line into a cleanup guard.
pub fn expect_ids(peer: &mut Peer) -> Cleanup {
    let line = peer.next_line().expect("peer reports its channel's ids");
    let ids: Vec<i32> = line
        .strip_prefix("ids ")
        .unwrap_or_else(|| panic!("peer said {line:?}"))
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    Cleanup {
        shmid: ids[0],
        semid: ids[1],
    }
}

/// Where the next frame of a ring of `capacity` bytes starts, simulated
/// from the payload lengths sent (docs/layout.md: a frame is 8 + len
/// rounded up to 8; one that does not fit before the end is preceded by
/// padding to it), for tests that aim messages at the wrap point.
pub struct RingPos {
    capacity: u64,
    pos: u64,
}

impl RingPos {
    /// A ring that has carried nothing yet.
    pub fn new(capacity: usize) -> RingPos {
        RingPos {
            capacity: capacity as u64,
            pos: 0,
        }
    }

    /// A ring whose next frame goes at byte position `pos` (e.g. a lane's
    /// `head`, to walk the frames queued there).
    pub fn at(capacity: usize, pos: u64) -> RingPos {
        RingPos {
            capacity: capacity as u64,
            pos,
        }
    }

    /// Where, in the region, a frame of `len` payload bytes sent next would
    /// start: here, or at 0 behind a padding frame when it does not fit
    /// before the end.
    pub fn frame_start(&self, len: u64) -> u64 {
        let frame = 8 + len.div_ceil(8) * 8;
        if frame > self.to_end() {
            0
        } else {
            self.pos % self.capacity
        }
    }

    /// Bytes from the next frame's start to the end of the region.
    pub fn to_end(&self) -> u64 {
        self.capacity - self.pos % self.capacity
    }

    /// Accounts for a message of `len` payload bytes.
    pub fn advance(&mut self, len: u64) {
        let frame = 8 + len.div_ceil(8) * 8;
        let to_end = self.to_end();
        if frame > to_end {
            self.pos += to_end;
        }
        self.pos += frame;
    }
}
