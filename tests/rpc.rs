//! The rpc examples (examples/rpc_server.rs, examples/rpc_client.rs) run
//! as a person would run them: the built example programs, each a
//! process of its own, on a fresh ftok key, with every segment and
//! semaphore set removed by a guard however a test ends.
//!
//! Cargo gives integration tests the path of bins (`CARGO_BIN_EXE_*`) but
//! not of examples, and `cargo test --test rpc` does not build examples:
//! so the first test to need them runs `cargo build --example rpc_server
//! --example rpc_client` with this test binary's profile and target
//! directory (nothing to do when they are fresh), and takes them from
//! that profile's `examples` directory.
//!
//! The tests synchronise on the lines the programs print (the server's
//! first line says it is listening), never on sleeps.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Cleanup, TempKey, sem_exists, shm_exists, wait_for};
use shmchan::{Channel, Error, Key, Options};

/// Generous limit for a program to print its next line or exit (not a
/// timing bound: only a hang exceeds it).
const SETTLE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- programs

/// The example `name`, built (once per run) as this test binary was.
fn example(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build_examples).join(name)
}

/// Builds both examples into this test binary's target directory, with
/// its profile, and returns the directory they are in.
fn build_examples() -> PathBuf {
    // This binary is TARGET_DIR/PROFILE_DIR/deps/rpc-HASH.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lies in PROFILE_DIR/deps");
    let target_dir = profile_dir.parent().expect("PROFILE_DIR has a parent");
    // `cargo test` builds into `debug` with the test profile, and
    // `--release` into `release`; a custom profile's dir is its name.
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "test",
        Some(name) => name,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--example", "rpc_server", "--example"])
        .args(["rpc_client", "--example", "async_server"])
        .args(["--profile", profile, "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build of the rpc examples: {status}"
    );
    profile_dir.join("examples")
}

/// A running program, its stdout read line by line on a thread of its own
/// (so that a read can time out) and its stderr collected; killed and
/// reaped on drop if still running.
struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

/// How a program ended.
struct Ended {
    status: ExitStatus,
    /// Its stdout lines not read before it ended.
    lines: Vec<String>,
    stderr: String,
}

impl Proc {
    fn start(program: &str, args: &[&str], stdin: Stdio) -> Proc {
        let mut child = Command::new(example(program))
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s); // what it said before failing
            s
        });
        Proc {
            name: format!("{program} (pid {})", child.id()),
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line it prints (panics if it exits first or hangs).
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(SETTLE) {
            Ok(line) => line,
            Err(e) => panic!("{}: no next line ({e:?})", self.name),
        }
    }

    /// Reads lines until one equals `want` (panics if it exits first).
    fn wait_line(&mut self, want: &str) {
        while self.line() != want {}
    }

    fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("piped stdin")
    }

    /// Waits for it to exit, and for the rest of its output.
    fn finish(mut self) -> Ended {
        let child = &mut self.child;
        wait_for(SETTLE, &self.name, || {
            child.try_wait().expect("try_wait").is_some()
        });
        let status = self.child.wait().expect("wait");
        let lines = self.lines.iter().collect(); // ends at end of output
        let stderr = self.stderr.take().expect("once").join().expect("stderr");
        Ended {
            status,
            lines,
            stderr,
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Ended {
    fn assert_success(&self, who: &str) {
        assert!(
            self.status.success(),
            "{who}: {}\nstdout: {:#?}\nstderr: {}",
            self.status,
            self.lines,
            self.stderr
        );
    }

    fn has(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }
}

/// The number after `word ` in `line`.
fn number_after(line: &str, word: &str) -> i32 {
    let rest = line
        .split(&format!("{word} "))
        .nth(1)
        .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {word:?} in {line:?}"))
}

// ---------------------------------------------------------------- server and clients

/// An rpc_server on a fresh key, listening. Drops in order: the process,
/// then its channel's objects, then the key file.
struct Server {
    proc: Proc,
    guard: Cleanup,
    key: TempKey,
    /// `rpc_server` or `async_server`.
    program: &'static str,
}

impl Server {
    fn start(options: &[&str]) -> Server {
        Server::start_as("rpc_server", options)
    }

    /// Starts `program` (`rpc_server`, or `async_server`: the same server
    /// on tokio).
    fn start_as(program: &'static str, options: &[&str]) -> Server {
        let key = TempKey::new();
        let path = key.path.to_str().expect("utf-8 temp path").to_owned();
        let mut args = options.to_vec();
        args.extend([path.as_str(), "T"]);
        let mut proc = Proc::start(program, &args, Stdio::null());
        let listening = proc.line();
        assert!(
            listening.starts_with(&format!("{program}: listening at ")),
            "{listening}"
        );
        let guard = Cleanup {
            shmid: number_after(&listening, "shmid"),
            semid: number_after(&listening, "semid"),
        };
        Server {
            proc,
            guard,
            key,
            program,
        }
    }

    /// `[PATH PROJ]` for a client of this server.
    fn key_args(&self) -> [&str; 2] {
        [self.key.path.to_str().expect("utf-8 temp path"), "T"]
    }

    /// Waits for it to exit, successfully; returns the guard of its
    /// channel, which is gone once every client has left it too (the
    /// server removes it as it exits, and the kernel frees a removed
    /// segment at its last detach).
    fn finish(self) -> (Ended, Cleanup) {
        let Server {
            proc,
            guard,
            key,
            program,
        } = self;
        let ended = proc.finish();
        ended.assert_success(program);
        drop(key);
        (ended, guard)
    }
}

/// A running rpc_client, past its first line.
struct Client {
    proc: Proc,
    /// Its SenderId, as it printed it.
    id: String,
    /// Its private channel's objects.
    guard: Cleanup,
}

impl Client {
    /// Starts a client with `options` (e.g. `--requests 3`) and reads its
    /// first line.
    fn start(server: &Server, options: &[&str], stdin: Stdio) -> Client {
        Client::connected(Client::spawn(server, options, stdin))
    }

    /// Starts a client, without waiting for anything.
    fn spawn(server: &Server, options: &[&str], stdin: Stdio) -> Proc {
        let mut args = options.to_vec();
        args.extend(server.key_args());
        Proc::start("rpc_client", &args, stdin)
    }

    /// Reads a started client's first line.
    fn connected(mut proc: Proc) -> Client {
        let first = proc.line();
        let id = first
            .strip_prefix("rpc_client ")
            .and_then(|rest| rest.split_once(": connected to "))
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .0
            .to_owned();
        let guard = Cleanup {
            shmid: number_after(&first, "shmid"),
            semid: number_after(&first, "semid"),
        };
        Client { proc, id, guard }
    }

    /// The line it prints for call `seq` of `text`.
    fn call_line(&self, seq: u64, text: &str) -> String {
        let upper = text.to_ascii_uppercase();
        format!(
            "rpc_client {}: call {seq} {text:?} answered {upper:?}",
            self.id
        )
    }

    /// Its last line, after `n` calls.
    fn bye_line(&self, n: u64) -> String {
        let calls = if n == 1 { "call" } else { "calls" };
        format!(
            "rpc_client {}: {n} {calls} answered and checked, bye",
            self.id
        )
    }

    /// Waits for it to exit, successfully, having printed `want` since
    /// the last line read; returns its private channel's guard.
    fn finish(self, want: &[String]) -> Cleanup {
        let Client { proc, id, guard } = self;
        let ended = proc.finish();
        ended.assert_success(&format!("rpc_client {id}"));
        assert_eq!(ended.lines, want, "rpc_client {id}");
        guard
    }

    /// [`finish`](Self::finish) for a `--requests k` client.
    fn finish_numbered(self, k: u64) -> Cleanup {
        let mut want: Vec<String> = (1..=k)
            .map(|i| self.call_line(i, &format!("hello {i} from {}", self.id)))
            .collect();
        want.push(self.bye_line(k));
        self.finish(&want)
    }
}

/// Neither the segment nor the semaphore set of `ids` exists any more.
fn assert_gone(ids: &Cleanup) {
    assert!(
        !shm_exists(ids.shmid) && !sem_exists(ids.semid),
        "shmid {} / semid {} left behind",
        ids.shmid,
        ids.semid
    );
}

// ---------------------------------------------------------------- tests

/// The README's run: one server, three `--requests` clients started
/// together, each checking all its answers; the server exits once the
/// three are done, and nothing is left behind.
#[test]
fn three_clients_at_once() {
    three_clients_at_once_on("rpc_server");
}

/// The same run against the tokio server, examples/async_server.rs.
#[test]
fn three_clients_at_once_on_the_async_server() {
    three_clients_at_once_on("async_server");
}

fn three_clients_at_once_on(program: &'static str) {
    let server = Server::start_as(program, &["--clients", "3"]);
    let procs: Vec<Proc> = (0..3)
        .map(|_| Client::spawn(&server, &["--requests", "20"], Stdio::null()))
        .collect();
    let clients: Vec<Client> = procs.into_iter().map(Client::connected).collect();
    let ids: Vec<String> = clients.iter().map(|c| c.id.clone()).collect();
    let reply_ids: Vec<i32> = clients.iter().map(|c| c.guard.shmid).collect();
    let guards: Vec<Cleanup> = clients.into_iter().map(|c| c.finish_numbered(20)).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "ids {ids:?}");

    let (ended, server) = server.finish();
    for (id, shmid) in ids.iter().zip(&reply_ids) {
        let connected = format!("{program}: {id} connected, answers go to shmid {shmid}");
        assert!(ended.has(&connected), "{connected:?} in {:#?}", ended.lines);
        assert!(ended.has(&format!("{program}: {id} said bye after 20 calls")));
    }
    let last = ended.lines.last().map(String::as_str);
    let summary = format!("{program}: 3 clients finished (3 said bye, 0 lost)");
    assert_eq!(last, Some(summary.as_str()));
    guards.iter().for_each(assert_gone);
    assert_gone(&server);
}

/// Three clients connected at the same moment (each holds its lane until
/// its input ends), their calls interleaved: each gets its own answers,
/// on its own channel, in order.
#[test]
fn three_connected_clients_with_interleaved_calls() {
    let server = Server::start(&["--clients", "3"]);
    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::start(&server, &[], Stdio::piped()))
        .collect();
    let ids: HashSet<String> = clients.iter().map(|c| c.id.clone()).collect();
    let lanes = ["0:1", "1:1", "2:1"].map(String::from);
    assert_eq!(ids, HashSet::from(lanes), "a lane each, held at once");
    let mut inputs: Vec<ChildStdin> = clients.iter_mut().map(|c| c.proc.stdin()).collect();
    for seq in 1..=4 {
        for (client, input) in clients.iter_mut().zip(&mut inputs) {
            let text = format!("call {seq} of {}", client.id);
            writeln!(input, "{text}").expect("write to a client");
            assert_eq!(client.proc.line(), client.call_line(seq, &text));
        }
    }
    drop(inputs); // end of input: each says bye
    let guards: Vec<Cleanup> = clients
        .into_iter()
        .map(|c| {
            let bye = c.bye_line(4);
            c.finish(&[bye])
        })
        .collect();

    let (ended, server) = server.finish();
    for id in &ids {
        assert!(ended.has(&format!("rpc_server: {id} said bye after 4 calls")));
    }
    guards.iter().for_each(assert_gone);
    assert_gone(&server);
}

/// A receiver whose senders have all gone gets `Disconnected` at once:
/// the server, idle, still serves the clients that come later, on the
/// lanes the first one freed.
#[test]
fn clients_that_come_after_the_server_went_idle_are_served() {
    clients_after_idle_on("rpc_server");
}

/// The same against the tokio server.
#[test]
fn clients_that_come_after_the_async_server_went_idle_are_served() {
    clients_after_idle_on("async_server");
}

fn clients_after_idle_on(program: &'static str) {
    let mut server = Server::start_as(program, &["--clients", "3"]);
    let first = Client::start(&server, &["--requests", "2"], Stdio::null());
    assert_eq!(first.id, "0:1", "the first sender on an empty channel");
    let mut guards = vec![first.finish_numbered(2)];
    server
        .proc
        .wait_line(&format!("{program}: no client connected"));

    // Both hold their lanes until their input ends. Lanes are claimed in
    // order: lane 0's second session, and lane 1.
    let mut later: Vec<Client> = (0..2)
        .map(|_| Client::start(&server, &[], Stdio::piped()))
        .collect();
    let ids: HashSet<String> = later.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, HashSet::from(["0:2".to_owned(), "1:1".to_owned()]));
    for client in &mut later {
        let mut input = client.proc.stdin();
        writeln!(input, "later").expect("write to a client");
        drop(input); // end of input: the client says bye after its call
        let (call, bye) = (client.call_line(1, "later"), client.bye_line(1));
        assert_eq!([client.proc.line(), client.proc.line()], [call, bye]);
    }
    guards.extend(later.into_iter().map(|c| c.finish(&[])));

    let (ended, server) = server.finish();
    let last = ended.lines.last().map(String::as_str);
    let summary = format!("{program}: 3 clients finished (3 said bye, 0 lost)");
    assert_eq!(last, Some(summary.as_str()));
    guards.iter().for_each(assert_gone);
    assert_gone(&server);
}

/// A client killed without bye is forgotten once no client is left, and
/// the server removes its private channel (which the client created).
#[test]
fn a_killed_client_is_forgotten_and_its_channel_removed() {
    let server = Server::start(&["--clients", "2"]);
    let mut killed = Client::start(&server, &[], Stdio::piped());
    let mut stdin = killed.proc.stdin();
    writeln!(stdin, "before the kill").expect("write to the client");
    let answered = killed.call_line(1, "before the kill");
    assert_eq!(killed.proc.line(), answered);
    killed.proc.signal(libc::SIGKILL);
    let ended = killed.proc.finish();
    assert!(!ended.status.success());

    let other = Client::start(&server, &["--requests", "3"], Stdio::null());
    let other_id = other.id.clone();
    let other_guard = other.finish_numbered(3);

    let (ended, server) = server.finish();
    let lost = format!("rpc_server: {} lost: gone without bye", killed.id);
    assert!(ended.has(&lost), "{lost:?} in {:#?}", ended.lines);
    assert!(ended.has(&format!("rpc_server: {other_id} said bye after 3 calls")));
    let last = ended.lines.last().map(String::as_str);
    assert_eq!(
        last,
        Some("rpc_server: 2 clients finished (1 said bye, 1 lost)")
    );
    assert_gone(&killed.guard);
    assert_gone(&other_guard);
    assert_gone(&server);
}

/// A client that sends calls and never reads its answers cannot stall the
/// server: once its answer channel is full the server drops it (and
/// removes that channel), and serves the next client meanwhile. This test
/// is that client, speaking the protocol itself.
#[test]
fn a_client_that_reads_no_answers_is_dropped_and_others_are_served() {
    let mut server = Server::start(&["--clients", "2"]);
    let chan = Channel::open(server.key.key).expect("open the server's channel");
    let mine = Channel::create(Key::PRIVATE, &Options::new().capacity(4096))
        .expect("create a private channel");
    let mine_guard = Cleanup::of(&mine);
    let mut answers = mine.receiver().expect("receiver");
    let mut calls = chan.sender().expect("a lane");
    let me = calls.id();
    calls
        .send(format!("hello {}", mine.id()).as_bytes())
        .expect("send hello");
    // 200 answers of 32 bytes do not fit in 4 KiB; 200 calls fit in the lane.
    for seq in 1..=200 {
        let call = format!("call {seq} never read");
        calls.send(call.as_bytes()).expect("send a call");
    }
    let dropped = format!(
        "rpc_server: {me} dropped: its answer channel is full: it does not read its answers"
    );
    server.proc.wait_line(&dropped);
    assert!(
        matches!(answers.try_recv(), Err(Error::Removed { .. })),
        "the server removes the channel of a client it drops"
    );

    // Our lane is still held, and may still hold calls: another client is
    // served all the same.
    let other = Client::start(&server, &["--requests", "3"], Stdio::null());
    let other_guard = other.finish_numbered(3);

    let (ended, server) = server.finish();
    let last = ended.lines.last().map(String::as_str);
    assert_eq!(
        last,
        Some("rpc_server: 2 clients finished (1 said bye, 1 lost)")
    );
    // The server removed its channel at exit, under our sender.
    assert!(matches!(calls.send(b"bye"), Err(Error::Removed { .. })));
    drop((calls, answers, chan, mine));
    assert_gone(&mine_guard);
    assert_gone(&other_guard);
    assert_gone(&server);
}

/// Ctrl-C stops the server cleanly: it removes its channel and the
/// private channel of the client still connected, which then fails with
/// a message saying the server went away.
#[test]
fn ctrl_c_stops_the_server_and_removes_every_channel() {
    ctrl_c_on("rpc_server");
}

/// The same against the tokio server (tokio::signal catches the SIGINT).
#[test]
fn ctrl_c_stops_the_async_server_and_removes_every_channel() {
    ctrl_c_on("async_server");
}

fn ctrl_c_on(program: &'static str) {
    let mut server = Server::start_as(program, &[]);
    let mut client = Client::start(&server, &[], Stdio::piped());
    let mut stdin = client.proc.stdin();
    writeln!(stdin, "one").expect("write to the client");
    assert_eq!(client.proc.line(), client.call_line(1, "one"));

    server.proc.signal(libc::SIGINT);
    server.proc.wait_line(&format!("{program}: interrupted"));
    let Client { proc, id, guard } = client;
    let (ended, server) = server.finish();
    let removed = format!("{program}: {id} still connected at exit; its answer channel is removed");
    assert!(ended.has(&removed), "{removed:?} in {:#?}", ended.lines);

    writeln!(stdin, "two").expect("write to the client");
    drop(stdin);
    let ended = proc.finish();
    assert_eq!(ended.status.code(), Some(1), "{}", ended.stderr);
    assert!(
        ended.stderr.contains("hint: the server has gone away"),
        "{}",
        ended.stderr
    );
    assert_gone(&guard);
    assert_gone(&server);
}

/// `--max-clients 1`: a second client at once gets `RoleTaken`, with a
/// hint; the first is served to the end.
#[test]
fn a_client_beyond_max_clients_is_refused() {
    let server = Server::start(&["--clients", "1", "--max-clients", "1"]);
    let mut first = Client::start(&server, &[], Stdio::piped());
    let stdin = first.proc.stdin();

    let refused = Proc::start("rpc_client", &server.key_args(), Stdio::null()).finish();
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("hint: the server has no free lane"),
        "{}",
        refused.stderr
    );

    drop(stdin); // no calls: hello, then bye
    let id = first.id.clone();
    let guard = first.finish_numbered(0);
    let (ended, server) = server.finish();
    assert!(ended.has(&format!("rpc_server: {id} said bye after 0 calls")));
    assert_gone(&guard);
    assert_gone(&server);
}
