//! The `shmchan` command, run as a person would run it: the built binary
//! (CARGO_BIN_EXE_shmchan), its parties and peers separate processes,
//! every segment and semaphore set removed by a guard however a test ends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Rng, TempKey, wait_for};
use serde_json::Value;
use shmchan::admin::{self, Kind};

/// Generous limit for a process to reach an expected state.
const SETTLE: Duration = Duration::from_secs(20);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shmchan")
}

// ---- Running the command ----

/// Runs `shmchan ARGS` to the end, stdin empty.
fn run(args: &[&str]) -> Output {
    run_with(args, b"")
}

/// Runs `shmchan ARGS` to the end with `input` on stdin.
fn run_with(args: &[&str], input: &[u8]) -> Output {
    let mut p = start(args, Stdio::piped(), Stdio::piped());
    let feeder = p.feed(input.to_vec());
    let out = p.finish();
    feeder.join().expect("feeder thread");
    out
}

/// A `shmchan` process; SIGKILLed and reaped on drop if still running.
struct Proc {
    child: Child,
}

fn start(args: &[&str], stdin: Stdio, stdout: Stdio) -> Proc {
    let child = Command::new(bin())
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shmchan");
    Proc { child }
}

impl Proc {
    /// Writes `data` to its stdin from a thread, then closes stdin.
    fn feed(&mut self, data: Vec<u8>) -> JoinHandle<()> {
        let mut stdin = self.child.stdin.take().expect("piped stdin");
        // A writer that fails (the process exited early) is not this
        // helper's business: the caller checks the exit status.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    }

    fn stdout_lines(&mut self) -> std::io::Lines<BufReader<ChildStdout>> {
        BufReader::new(self.child.stdout.take().expect("piped stdout")).lines()
    }

    /// Waits for the exit (at most SETTLE) and collects what is left of
    /// stdout and stderr.
    fn finish(mut self) -> Output {
        let stdout = drain(self.child.stdout.take());
        let stderr = drain(self.child.stderr.take());
        let status = self.wait();
        Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// Waits for the exit, at most SETTLE (then it fails the test).
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(start.elapsed() < SETTLE, "shmchan did not exit in time");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Reads a pipe to its end on a thread (so that the process never blocks
/// on a full pipe while we wait for it).
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            // A read error ends the output; the exit status tells the rest.
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a run succeeded, with nothing on stderr; returns stdout as
/// text.
fn ok(out: &Output) -> String {
    text(succeeded(out))
}

/// Asserts a run succeeded, with nothing on stderr; returns stdout.
fn succeeded(out: &Output) -> &[u8] {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "status {}, stderr {:?}",
        out.status,
        text(&out.stderr)
    );
    &out.stdout
}

/// Asserts a run failed with `code` and exactly one line on stderr that
/// contains `needle`; returns that line.
fn fails(out: &Output, code: i32, needle: &str) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr {err:?}");
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.ends_with('\n'), "{err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
    err
}

// ---- Keys and cleanup ----

/// A fresh key (from a temporary file) whose segment and semaphore set,
/// whoever made them, are removed on drop.
struct ChanKey {
    file: TempKey,
}

impl ChanKey {
    fn new() -> ChanKey {
        ChanKey {
            file: TempKey::new(),
        }
    }

    fn raw(&self) -> i32 {
        self.file.key.raw()
    }

    /// The key as a KEY argument: `0x…`.
    fn hex(&self) -> String {
        format!("{:#010x}", self.raw() as u32)
    }

    /// The path as a KEY argument (use with `--proj 84`: TempKey's b'T').
    fn path(&self) -> &str {
        self.file.path.to_str().expect("utf-8 temp path")
    }

    fn shmid(&self) -> Option<i32> {
        // SAFETY: shmget with size 0 and no flags only looks the key up.
        let id = unsafe { libc::shmget(self.raw(), 0, 0) };
        (id >= 0).then_some(id)
    }

    fn semid(&self) -> Option<i32> {
        // SAFETY: semget with nsems 0 and no flags only looks the key up.
        let id = unsafe { libc::semget(self.raw(), 0, 0) };
        (id >= 0).then_some(id)
    }
}

impl Drop for ChanKey {
    fn drop(&mut self) {
        remove_ids(self.shmid(), self.semid());
    }
}

/// Removes a segment and a semaphore set by id (a stale id just fails).
fn remove_ids(shmid: Option<i32>, semid: Option<i32>) {
    // SAFETY: IPC_RMID takes no buffer.
    unsafe {
        if let Some(id) = shmid {
            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
        }
        if let Some(id) = semid {
            libc::semctl(id, 0, libc::IPC_RMID);
        }
    }
}

/// Removes ids on drop.
struct IdGuard(Option<i32>, Option<i32>);

impl Drop for IdGuard {
    fn drop(&mut self) {
        remove_ids(self.0, self.1);
    }
}

// ---- Test data ----

/// 1.5 MiB of random bytes, with runs of empty lines, ending in a newline.
fn binary_lines() -> Vec<u8> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut data = Vec::new();
    while data.len() < 3 << 19 {
        let n = rng.below(2000) as usize;
        data.extend(rng.bytes(n));
        data.extend(std::iter::repeat_n(b'\n', rng.below(3) as usize + 1));
    }
    data.push(b'\n');
    data
}

/// len32 records: text, random binary, empty records and one large one,
/// more than 1 MiB in all.
fn len32_records() -> Vec<u8> {
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let mut payloads: Vec<Vec<u8>> = vec![b"hello".to_vec(), Vec::new(), b"world\n".to_vec()];
    payloads.push(rng.bytes(600 << 10));
    while payloads.iter().map(Vec::len).sum::<usize>() < 3 << 19 {
        let n = rng.below(5000) as usize;
        payloads.push(if n % 7 == 0 { Vec::new() } else { rng.bytes(n) });
    }
    payloads.push(Vec::new());
    let mut data = Vec::new();
    for p in payloads {
        data.extend((p.len() as u32).to_le_bytes());
        data.extend(p);
    }
    data
}

// ---- send | recv ----

/// `send KEY --create --framing F` with `input` on stdin (or in a file),
/// `recv KEY --create --framing F` into a pipe (or a file), both at once;
/// returns what recv wrote. Both must succeed with nothing on stderr.
fn round_trip(framing: &str, input: &[u8], files: bool) -> Vec<u8> {
    let key = ChanKey::new();
    let dir = TempKey::new(); // a unique name for the data files
    let (infile, outfile) = (
        format!("{}.in", dir.path.display()),
        format!("{}.out", dir.path.display()),
    );
    let common = ["--create", "--proj", "84", "--framing", framing];
    let mut recv_args = vec!["recv", key.path()];
    recv_args.extend(common);
    let mut send_args = vec!["send", key.path()];
    send_args.extend(common);
    if files {
        std::fs::write(&infile, input).expect("write input file");
        send_args.extend(["--file", &infile]);
        recv_args.extend(["--output", &outfile]);
    }
    let recv = start(&recv_args, Stdio::null(), Stdio::piped());
    let mut send = start(&send_args, Stdio::piped(), Stdio::null());
    let feeder = send.feed(if files { Vec::new() } else { input.to_vec() });
    // Drained at once: recv must never block on a full stdout pipe.
    let receiving = std::thread::spawn(move || recv.finish());
    let sent = send.finish();
    let got = receiving.join().expect("receiving thread");
    feeder.join().expect("feeder");
    succeeded(&sent);
    let mut output = succeeded(&got).to_vec();
    if files {
        output = std::fs::read(&outfile).expect("read output file");
        let _ = std::fs::remove_file(&infile);
        let _ = std::fs::remove_file(&outfile);
    }
    assert_eq!(key.shmid(), None, "the last party out removes the channel");
    output
}

/// Asserts byte-for-byte equality, saying where it breaks (not dumping
/// megabytes).
fn same(got: &[u8], want: &[u8]) {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "{} bytes received, {} sent; first difference at {first:?}",
        got.len(),
        want.len()
    );
}

#[test]
fn lines_round_trip_text_with_empty_lines_and_a_last_line_without_newline() {
    let input = b"alpha\n\nbeta\n\n\n  spaced  \r\nlast line without newline";
    let got = round_trip("lines", input, false);
    // recv ends every message with a newline: the last line gains one.
    assert_eq!(got, [&input[..], b"\n"].concat());
    let ends_with_newline = b"one\n\ntwo\n";
    assert_eq!(
        round_trip("lines", ends_with_newline, false),
        ends_with_newline
    );
}

#[test]
fn lines_round_trip_random_binary() {
    let input = binary_lines();
    assert!(input.len() > 1 << 20);
    assert!(input.windows(2).any(|w| w == b"\n\n"), "has empty lines");
    same(&round_trip("lines", &input, false), &input);
}

#[test]
fn len32_round_trip_with_empty_records() {
    let input = len32_records();
    assert!(input.len() > 1 << 20);
    same(&round_trip("len32", &input, false), &input);
    same(&round_trip("len32", &input, true), &input); // --file to --output
}

#[test]
fn raw_round_trip_text_and_random_binary() {
    let text = b"raw bytes\n\nwith no framing at all".repeat(1000);
    assert_eq!(round_trip("raw", &text, false), text);
    let binary = Rng(0x5eed_1234_abcd_0003).bytes(3 << 19);
    same(&round_trip("raw", &binary, false), &binary);
    same(&round_trip("raw", &binary, true), &binary); // --file to --output
}

#[test]
fn recv_stops_after_count_or_timeout() {
    let key = ChanKey::new();
    let hex = key.hex();
    ok(&run(&["create", &hex]));
    ok(&run_with(&["send", &hex], b"1\n2\n3\n4\n5\n"));
    let out = ok(&run(&["recv", &hex, "--count", "3"]));
    assert_eq!(out, "1\n2\n3\n");
    // The channel persists; the sender left after its messages, so a new
    // receiver drains them and ends.
    assert_eq!(ok(&run(&["recv", &hex])), "4\n5\n");
    // No sender now: a receiver waits for one until its timeout.
    let begin = Instant::now();
    assert_eq!(ok(&run(&["recv", &hex, "--timeout", "300ms"])), "");
    assert!(begin.elapsed() >= Duration::from_millis(300));
    ok(&run(&["rm", &hex]));
    assert_eq!(key.shmid(), None);
}

#[test]
fn recv_into_a_closed_pipe_ends_quietly() {
    let key = ChanKey::new();
    let lines: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let mut send = start(
        &["send", &key.hex(), "--create"],
        Stdio::piped(),
        Stdio::null(),
    );
    let feeder = send.feed(lines);
    let script = r#""$0" recv "$1" --create | head -n 2; echo "recv exit ${PIPESTATUS[0]}""#;
    let out = Command::new("bash")
        .args(["-c", script, bin(), &key.hex()])
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    let stdout = text(&out.stdout);
    assert_eq!(stdout, "line 0\nline 1\nrecv exit 0\n");
    assert!(out.stderr.is_empty(), "recv said {:?}", text(&out.stderr));
    drop(send); // killed: it may be waiting for room that nobody makes
    let _ = feeder.join();
}

/// Runs `command` under a pseudo-terminal (`script` from util-linux):
/// what the terminal showed, and whether it succeeded.
fn on_a_terminal(command: &str) -> (String, bool) {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux runs commands on a terminal");
    (text(&out.stdout), out.status.success())
}

#[test]
fn send_draws_a_progress_bar_only_on_a_terminal_with_a_known_size() {
    let key = ChanKey::new();
    let hex = key.hex();
    let file = format!("{}.data", key.path());
    let _remove = RemoveFile(file.clone());
    std::fs::write(&file, vec![7u8; 16 << 20]).expect("write data file");
    let recv = start(
        &["recv", &hex, "--create", "--framing", "raw"],
        Stdio::null(),
        Stdio::piped(),
    );
    let receiving = std::thread::spawn(move || recv.finish());
    let send = format!("{} send {hex} --create --framing raw --file {file}", bin());
    let (screen, ok_) = on_a_terminal(&send);
    assert!(ok_, "send failed: {screen:?}");
    assert!(screen.contains("/16.00 MiB"), "no progress bar: {screen:?}");
    let got = receiving.join().expect("receiving thread");
    assert_eq!(succeeded(&got).len(), 16 << 20);
    // Input of unknown size (a pipe): nothing extra, even on a terminal.
    let key = ChanKey::new();
    let send = format!("printf 'a\\nb\\n' | {} send {} --create", bin(), key.hex());
    let (screen, ok_) = on_a_terminal(&send);
    assert!(ok_ && screen.is_empty(), "{screen:?}");
    assert_eq!(ok(&run(&["recv", &key.hex()])), "a\nb\n");
}

/// Removes a file on drop.
struct RemoveFile(String);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn send_refuses_oversized_and_truncated_input() {
    let key = ChanKey::new();
    let hex = key.hex();
    let long = vec![b'x'; 5000];
    let out = run_with(&["send", &hex, "--create", "--capacity", "4K"], &long);
    fails(&out, 1, "more than the channel's maximum of 4088");
    let out = run_with(
        &["send", &hex, "--create", "--framing", "len32"],
        &[9, 0, 0, 0, 1],
    );
    fails(&out, 1, "ends inside a len32 record of 9 bytes");
    let out = run_with(&["send", &hex, "--create", "--framing", "len32"], &[9, 0]);
    fails(&out, 1, "ends inside a len32 length");
}

// ---- create, ls, stat ----

/// `ls --json` (`--all` too if asked): its rows.
fn ls_rows(all: bool) -> Vec<Value> {
    let args: &[&str] = if all {
        &["ls", "--all", "--json"]
    } else {
        &["ls", "--json"]
    };
    let doc: Value = serde_json::from_str(&ok(&run(args))).expect("ls --json is JSON");
    doc["channels"].as_array().expect("channels array").clone()
}

/// The `ls --json` row of `key`, if listed.
fn ls_row(key: &ChanKey) -> Option<Value> {
    ls_rows(false).into_iter().find(|r| r["key"] == key.hex())
}

fn stat_json(key: &str) -> Value {
    serde_json::from_str(&ok(&run(&["stat", key, "--json"]))).expect("stat --json is JSON")
}

#[test]
fn create_prints_ids_persists_and_refuses_a_taken_key() {
    let key = ChanKey::new();
    let hex = key.hex();
    let out = ok(&run(&[
        "create",
        &hex,
        "--capacity",
        "64K",
        "--mode",
        "640",
    ]));
    let field = |name: &str| -> String {
        let line = out.lines().find(|l| l.starts_with(name)).expect(name);
        line.split_whitespace().nth(1).expect("value").to_owned()
    };
    assert_eq!(field("key"), hex);
    assert_eq!(Some(field("shmid").parse().expect("shmid")), key.shmid());
    assert_eq!(Some(field("semid").parse().expect("semid")), key.semid());
    let row = ls_row(&key).expect("listed");
    assert_eq!(row["persist"], true);
    assert_eq!(row["mode"], "0640");
    assert_eq!(row["capacity"], 65536);
    assert_eq!(row["state"], "stale", "persisting, nobody attached");
    fails(&run(&["create", &hex]), 1, "already exists");
    assert_eq!(text(&run(&["rm", &hex]).stdout).lines().count(), 1);
    assert_eq!((key.shmid(), key.semid()), (None, None));
}

#[test]
fn keys_as_paths_with_proj_ids_and_high_raw_keys() {
    let key = ChanKey::new();
    ok(&run(&["create", key.path(), "--proj", "84"]));
    assert!(key.shmid().is_some(), "ftok(path, 84) is the key");
    assert_eq!(stat_json(&key.hex())["key"], key.hex());
    fails(&run(&["stat", key.path()]), 1, "no shmchan channel at key");
    ok(&run(&["rm", key.path(), "--proj", "84"]));
    // 0x80000000 and above are valid keys: negative as key_t.
    let high = ChanKey::new();
    let raw = high.raw() | i32::MIN;
    let hex = format!("{:#010x}", raw as u32);
    let _guard = HighKey(raw);
    ok(&run(&["create", &hex]));
    assert_eq!(
        stat_json(&raw.to_string())["key"],
        hex,
        "same channel, decimal"
    );
    ok(&run(&["rm", &hex]));
}

/// Removes whatever is at a raw key on drop.
struct HighKey(i32);

impl Drop for HighKey {
    fn drop(&mut self) {
        // SAFETY: lookups only (size 0, no flags).
        let (shm, sem) = unsafe { (libc::shmget(self.0, 0, 0), libc::semget(self.0, 0, 0)) };
        remove_ids((shm >= 0).then_some(shm), (sem >= 0).then_some(sem));
    }
}

#[test]
fn private_channels_are_named_by_id() {
    let out = ok(&run(&["create", "0"]));
    let id = |name: &str| -> i32 {
        let line = out.lines().find(|l| l.starts_with(name)).expect(name);
        line.split_whitespace()
            .nth(1)
            .expect("value")
            .parse()
            .expect("an id")
    };
    let _guard = IdGuard(Some(id("shmid")), Some(id("semid")));
    assert!(out.starts_with("key       0x00000000\n"), "{out}");
    let by_id = format!("id:{}", id("shmid"));
    assert_eq!(stat_json(&by_id)["semid"], id("semid"));
    ok(&run_with(&["send", &by_id], b"private\n"));
    assert_eq!(ok(&run(&["recv", &by_id])), "private\n");
    fails(&run(&["recv", "0"]), 2, "IPC_PRIVATE");
    ok(&run(&["rm", &by_id]));
    assert!(!common::shm_exists(id("shmid")) && !common::sem_exists(id("semid")));
}

#[test]
fn stat_shows_counters_and_watch_redraws_with_rates() {
    let key = ChanKey::new();
    let hex = key.hex();
    ok(&run(&["create", &hex, "--capacity", "8K"]));
    ok(&run_with(&["send", &hex], b"a\nbb\nccc\n"));
    let s = stat_json(&hex);
    assert_eq!(s["sent"]["messages"], 3);
    assert_eq!(s["sent"]["bytes"], 6);
    assert_eq!(s["received"]["messages"], 0);
    assert_eq!(s["queued"], 3 * 16, "three 8-byte frames of up to 8 bytes");
    assert!(s["fill"].as_f64().expect("fill") > 0.0);
    assert_eq!(s["sender"], "gone");
    assert_eq!(s["receiver"], "never");
    let table = ok(&run(&["stat", &hex]));
    assert!(table.contains("queued    48 B (0.6% full)"), "{table}");
    assert_eq!(ok(&run(&["recv", &hex, "--count", "3"])), "a\nbb\nccc\n");
    let s = stat_json(&hex);
    assert_eq!(
        (s["received"]["messages"].clone(), s["queued"].clone()),
        (3.into(), 0.into())
    );

    let mut watch = start(
        &["stat", &hex, "--watch", "0.1"],
        Stdio::null(),
        Stdio::piped(),
    );
    let mut frames = 0;
    for line in watch.stdout_lines() {
        let line = line.expect("watch output");
        frames += line.matches("\x1b[2J").count();
        // From the second frame on, rates are numbers, not "-".
        if frames >= 2 && line.starts_with("sent ") {
            assert!(line.trim_end().ends_with("0 B/s"), "{line}");
            break;
        }
    }
    assert!(frames >= 2, "watch redrew");
    watch.kill();
    ok(&run(&["rm", &hex]));
}

/// Waits until `ls --json` shows `key` with `field` = `want`.
fn wait_ls(key: &ChanKey, field: &str, want: &str) -> Value {
    let mut last = None;
    let start = Instant::now();
    loop {
        let row = ls_row(key);
        if let Some(r) = row.as_ref().filter(|r| r[field] == want) {
            return r.clone();
        }
        assert!(
            start.elapsed() < SETTLE,
            "ls never showed {field} = {want}: {row:?} (last {last:?})"
        );
        last = row;
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for the kernel to show a process gone from a channel: its party
/// count (admin) drops to `parties`.
fn wait_parties(key: &ChanKey, parties: u32) {
    let shmid = key.shmid().expect("channel exists");
    wait_for(SETTLE, "the party count", || {
        matches!(admin::inspect(shmid).map(|s| s.kind),
                 Ok(Kind::Channel(c)) if c.parties == Some(parties))
    });
}

/// A `send` and a `recv` process on the channel `hex` (created by
/// whichever comes first), both attached: `line` went through.
struct Pair {
    send: Proc,
    to_send: std::process::ChildStdin,
    recv: Proc,
    received: std::io::Lines<BufReader<ChildStdout>>,
}

fn connected_pair(hex: &str, line: &str) -> Pair {
    let mut send = start(&["send", hex, "--create"], Stdio::piped(), Stdio::null());
    let mut to_send = send.child.stdin.take().expect("stdin");
    let mut recv = start(&["recv", hex, "--create"], Stdio::null(), Stdio::piped());
    let mut received = recv.stdout_lines();
    writeln!(to_send, "{line}")
        .and_then(|()| to_send.flush())
        .expect("write");
    assert_eq!(received.next().expect("a line").expect("read"), line);
    Pair {
        send,
        to_send,
        recv,
        received,
    }
}

#[test]
fn ls_shows_attached_then_gone_then_stale_and_gc_removes_it() {
    let key = ChanKey::new();
    let hex = key.hex();
    let Pair {
        mut send,
        mut to_send,
        mut recv,
        received: _received, // keeps recv's stdout open
    } = connected_pair(&hex, "one");

    let row = wait_ls(&key, "receiver", "attached");
    assert_eq!(
        (row["sender"].as_str(), row["state"].as_str()),
        (Some("attached"), Some("ok"))
    );
    assert_eq!(
        (row["parties"].clone(), row["queued"].clone()),
        (2.into(), 0.into())
    );
    let table = ok(&run(&["ls"]));
    let line = table.lines().find(|l| l.starts_with(&hex)).expect("listed");
    // Columns by whitespace, not by padding: other channels on the host
    // (a multi-lane one shows `1/4 attached`) may widen a column.
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert!(
        cols.windows(2).any(|w| w == ["attached", "attached"]) && line.ends_with(" ok"),
        "{line}"
    );

    recv.kill(); // SIGKILL: no clean detach, the kernel's undo counts it out
    wait_parties(&key, 1);
    let row = ls_row(&key).expect("still listed");
    assert_eq!(
        (row["sender"].as_str(), row["receiver"].as_str()),
        (Some("attached"), Some("gone"))
    );
    assert_eq!(row["state"], "ok");

    // The sender has not noticed yet; what it sends now waits in the ring.
    to_send
        .write_all(b"two\n")
        .and_then(|()| to_send.flush())
        .expect("write");
    wait_for(SETTLE, "a queued message", || {
        ls_row(&key).is_some_and(|r| r["queued"] != 0)
    });
    send.kill();
    wait_parties(&key, 0);
    let row = ls_row(&key).expect("a stale channel stays listed");
    assert_eq!(
        (row["state"].as_str(), row["sender"].as_str()),
        (Some("stale"), Some("gone"))
    );
    assert_eq!(
        (row["parties"].clone(), row["queued"].clone()),
        (0.into(), 16.into())
    );
    assert!(
        ok(&run(&["ls"]))
            .lines()
            .any(|l| l.starts_with(&hex) && l.ends_with(" stale"))
    );

    let (shmid, semid) = (key.shmid().expect("shmid"), key.semid().expect("semid"));
    // Host-wide dry run: reports, changes nothing.
    let dry = ok(&run(&["gc", "--dry-run"]));
    let kept = format!("kept stale channel key {hex} (shmid {shmid}, semid {semid}, 16 B queued)");
    assert!(dry.contains(&kept), "{dry}");
    // Without --queued, a channel holding messages stays.
    assert!(ok(&run(&["gc", &hex])).contains(": 16 bytes still queued (--queued removes it)"));
    assert!(common::shm_exists(shmid));
    let out = ok(&run(&["gc", "--queued", &hex]));
    assert_eq!(
        out,
        format!("removed stale channel key {hex} (shmid {shmid}, semid {semid}, 16 B queued)\n")
    );
    assert!(!common::shm_exists(shmid) && !common::sem_exists(semid));
    let ipcs = Command::new("ipcs").args(["-m", "-s"]).output();
    if let Ok(ipcs) = ipcs {
        let listing = text(&ipcs.stdout);
        assert!(
            !listing.contains(&hex),
            "ipcs still lists {hex}:\n{listing}"
        );
    }
    drop(to_send);
}

/// A channel made stale by SIGKILLing its only party (a sender that has
/// sent nothing): no party, nothing queued, not persisting.
fn stale_channel(key: &ChanKey) -> (i32, i32) {
    let mut send = start(
        &["send", &key.hex(), "--create"],
        Stdio::piped(),
        Stdio::null(),
    );
    wait_for(SETTLE, "the sender to attach", || {
        key.shmid()
            .and_then(|id| admin::inspect(id).ok())
            .is_some_and(|s| matches!(s.kind, Kind::Channel(c) if c.parties == Some(1)))
    });
    send.kill();
    wait_parties(key, 0);
    (key.shmid().expect("shmid"), key.semid().expect("semid"))
}

#[test]
fn gc_removes_empty_stale_channels_and_orphans() {
    // A stale channel holding nothing: plain gc removes it.
    let key = ChanKey::new();
    let (shmid, semid) = stale_channel(&key);
    let out = ok(&run(&["gc", &key.hex()]));
    assert_eq!(
        out,
        format!(
            "removed stale channel key {} (shmid {shmid}, semid {semid})\n",
            key.hex()
        )
    );
    assert!(!common::shm_exists(shmid) && !common::sem_exists(semid));

    // Its segment removed behind its back (ipcrm -m): the set is an orphan.
    let key = ChanKey::new();
    let (shmid, semid) = stale_channel(&key);
    remove_ids(Some(shmid), None);
    assert!(common::sem_exists(semid));
    let out = ok(&run(&["gc", &key.hex()]));
    assert_eq!(
        out,
        format!(
            "removed orphaned semaphore set semid {semid} (key {})\n",
            key.hex()
        )
    );
    assert!(!common::sem_exists(semid));

    // Its set removed behind its back (ipcrm -s): the segment is an orphan.
    let key = ChanKey::new();
    let (shmid, semid) = stale_channel(&key);
    remove_ids(None, Some(semid));
    assert_eq!(ls_row(&key).expect("listed")["state"], "orphaned");
    let out = ok(&run(&["gc", &key.hex()]));
    assert_eq!(
        out,
        format!(
            "removed orphaned channel segment key {} (shmid {shmid})\n",
            key.hex()
        )
    );
    assert!(!common::shm_exists(shmid));
    assert_eq!(ok(&run(&["gc", &key.hex()])), "nothing to collect\n");

    // A persisting channel is never collected.
    let key = ChanKey::new();
    ok(&run(&["create", &key.hex()]));
    assert!(ok(&run(&["gc", &key.hex()])).contains("it persists (shmchan rm removes it)"));
    assert!(key.shmid().is_some());
}

// ---- rm ----

#[test]
fn ls_all_marks_a_foreign_segment_and_rm_refuses_it() {
    // Another program's segment: the tutorial's "hello world".
    // SAFETY: a plain private 4 KiB segment, attached to write into it.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, 0o600) };
    assert!(id >= 0);
    let _guard = IdGuard(Some(id), None);
    write_segment(id, b"hello world");
    assert!(
        !ls_rows(false).iter().any(|r| r["shmid"] == id),
        "plain ls skips it"
    );
    let row = ls_rows(true)
        .into_iter()
        .find(|r| r["shmid"] == id)
        .expect("ls --all lists it");
    assert_eq!(
        (row["shmchan"].clone(), row["state"].as_str()),
        (false.into(), Some("foreign"))
    );
    assert!(
        row["reason"]
            .as_str()
            .expect("reason")
            .contains("is not shmchan's")
    );
    let table = ok(&run(&["ls", "--all"]));
    let line = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&id.to_string()));
    assert!(line.expect("in the table").contains("foreign: magic"));
    let by_id = format!("id:{id}");
    fails(&run(&["rm", &by_id]), 1, "is not a shmchan channel");
    fails(&run(&["rm", "--force", &by_id]), 1, "not removed");
    fails(&run(&["stat", &by_id]), 1, "is not a shmchan channel");
    assert!(common::shm_exists(id));
    assert_eq!(read_segment(id, 11), b"hello world");
}

#[test]
fn ls_lists_an_unreadable_segment_with_the_reason_and_does_not_fail() {
    // Mode 000: nobody but a privileged process may read it. Root may, so
    // as root the commands run as nobody.
    // SAFETY: a plain private segment.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, 0) };
    assert!(id >= 0);
    let _guard = IdGuard(Some(id), None);
    let unprivileged = Unprivileged::new();
    let table = ok(&unprivileged.run(&["ls"]));
    let line = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("shmid {id} not listed:\n{table}"));
    assert!(
        line.ends_with("unreadable: shmctl(IPC_STAT): Permission denied (os error 13)"),
        "{line}"
    );
    let by_id = format!("id:{id}");
    fails(&unprivileged.run(&["rm", &by_id]), 1, "cannot be read");
    assert!(common::shm_exists(id));
}

/// `shmchan` as this user, or as nobody when this user is root: then a
/// copy of it that nobody can reach, wherever the build lies.
struct Unprivileged(Option<common::AsNobody>);

impl Unprivileged {
    fn new() -> Unprivileged {
        Unprivileged(common::is_root().then(|| common::AsNobody::copy(bin())))
    }

    /// Runs `shmchan ARGS` to the end, stdin empty.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = match &self.0 {
            Some(nobody) => nobody.command(),
            None => Command::new(bin()),
        };
        cmd.args(args).stdin(Stdio::null());
        cmd.output().expect("run shmchan")
    }
}

fn write_segment(id: i32, bytes: &[u8]) {
    // SAFETY: attach a 4 KiB segment of ours, write fewer bytes, detach.
    unsafe {
        let p = libc::shmat(id, std::ptr::null(), 0);
        assert_ne!(p as isize, -1);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len());
        libc::shmdt(p);
    }
}

fn read_segment(id: i32, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    // SAFETY: attach read-only, copy `len` (< 4 KiB) bytes, detach.
    unsafe {
        let p = libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY);
        assert_ne!(p as isize, -1);
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), buf.as_mut_ptr(), len);
        libc::shmdt(p);
    }
    buf
}

#[test]
fn rm_refuses_a_channel_in_use_and_force_removes_it_under_its_parties() {
    let key = ChanKey::new();
    let hex = key.hex();
    let Pair {
        send,
        mut to_send,
        recv,
        received: _received, // keeps recv's stdout open
    } = connected_pair(&hex, "hi");
    wait_ls(&key, "receiver", "attached");
    let (shmid, semid) = (key.shmid().expect("shmid"), key.semid().expect("semid"));

    let err = fails(
        &run(&["rm", &hex]),
        1,
        "is in use (2 parties, sender attached, receiver attached)",
    );
    assert!(err.contains("--force"), "{err}");
    assert!(common::shm_exists(shmid) && common::sem_exists(semid));
    assert_eq!(ls_row(&key).expect("still there")["state"], "ok");

    let out = ok(&run(&["rm", "--force", &hex]));
    assert_eq!(
        out,
        format!("removed key {hex} (shmid {shmid}, semid {semid})\n")
    );
    // The parked receiver wakes at once: its semaphore set is gone.
    let got = recv.finish();
    fails(&got, 1, "was removed");
    assert!(got.stderr.starts_with(b"shmchan recv: "));
    // The sender learns it on its next message.
    to_send.write_all(b"after\n").expect("write");
    drop(to_send);
    let sent = send.finish();
    fails(&sent, 1, "was removed");
    assert!(!common::shm_exists(shmid) && !common::sem_exists(semid));
}

// ---- bad input ----

#[test]
fn bad_input_is_one_line_and_the_right_exit_code() {
    let key = ChanKey::new(); // no channel at it
    let hex = key.hex();
    let unknown = format!("no shmchan channel at key {hex}");
    for cmd in ["recv", "stat", "rm", "send"] {
        fails(&run(&[cmd, &hex]), 1, &unknown);
    }
    fails(
        &run(&["stat", "id:2147480000"]),
        1,
        "no shmchan channel at shmid 2147480000",
    );
    for malformed in ["0xZZ", "id:abc", "id:-3", "99999999999", "12ab"] {
        fails(
            &run(&["stat", malformed]),
            2,
            &format!("'{}'", malformed.trim_start_matches("id:")),
        );
    }
    fails(
        &run(&["recv", "/no/such/shmchan/key"]),
        1,
        "path /no/such/shmchan/key does not exist",
    );
    fails(
        &run(&["create", "/no/such/shmchan/key"]),
        1,
        "/no/such/shmchan/key",
    );
    for (cap, why) in [
        ("0", "cannot hold a message"),
        ("64G", "exceeds the maximum"),
        ("lots", "not a size"),
    ] {
        fails(&run(&["create", &hex, "--capacity", cap]), 2, why);
        fails(&run(&["send", &hex, "--create", "--capacity", cap]), 2, why);
    }
    for mode in ["rw", "0800", "1777"] {
        fails(&run(&["create", &hex, "--mode", mode]), 2, mode);
    }
    fails(
        &run(&["recv", &hex, "--timeout", "soon"]),
        2,
        "not a duration",
    );
    fails(&run(&["send", &hex, "--capacity", "64K"]), 2, "--create");
    fails(&run(&["create", &hex, "--proj", "0"]), 2, "--proj");
    fails(&run(&["frobnicate"]), 2, "frobnicate");
    fails(&run(&["send", &hex, "--framing", "xml"]), 2, "xml");
    fails(&run(&["rm", "0"]), 2, "IPC_PRIVATE");
    assert_eq!(
        (key.shmid(), key.semid()),
        (None, None),
        "nothing was created"
    );
}

// ---- bench ----

#[test]
fn bench_with_tiny_settings_prints_its_table() {
    let out = run(&[
        "bench",
        "--size",
        "64",
        "--messages",
        "2000",
        "--seconds",
        "10",
    ]);
    let table = ok(&out);
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .expect("title")
            .starts_with("64-byte messages, up to 2000")
    );
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "transport",
            "messages",
            "seconds",
            "messages/s",
            "MB/s",
            "ratio"
        ]
    );
    for name in [
        "shmchan (4 MiB ring)",
        "pipe (4-byte length prefix)",
        "unix SOCK_SEQPACKET",
    ] {
        let row = lines.next().expect("a row");
        assert!(row.starts_with(name), "{row}");
        let cells: Vec<&str> = row[name.len()..].split_whitespace().collect();
        assert_eq!(cells[0], "2000", "{row}");
        assert!(cells[2].parse::<f64>().expect("messages/s") > 0.0, "{row}");
    }
    assert!(lines.next().expect("legend").starts_with("ratio: "));
    // Messages too large for one SOCK_SEQPACKET record use a stream.
    let big = ok(&run(&[
        "bench",
        "--size",
        "100K",
        "--messages",
        "20",
        "--seconds",
        "10",
    ]));
    assert!(big.contains("unix SOCK_STREAM (prefix)"), "{big}");
    assert!(big.contains("shmchan (4 MiB ring)"), "{big}");
}
