//! The C interface from C and C++: the C test program (tests/c) and the
//! C++ one (tests/cpp), built here with the system's compilers against
//! this build's libshmchan, run under valgrind memcheck, alone
//! (`selftest`: every error path) and against Rust peers: this test
//! process through the Rust API, and the `shmchan` command.
//!
//! valgrind is required (CI installs it); `SHMCHAN_NO_VALGRIND=1` runs the
//! programs without it, for a machine that has none.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use shmchan::{Channel, Error, Key, Options};

/// How long a Rust peer waits before it calls the C side stuck (a guard
/// against a hang, not a timed assertion).
const STUCK: Duration = Duration::from_secs(300);

/// Messages each pattern test sends.
const COUNT: u32 = 300;

fn ffi_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>` of this test binary (`target/<profile>/deps/c_api-*`),
/// with this source's libshmchan.so, libshmchan.a and `shmchan` command
/// in it: built here, once per test binary, by cargo (which has released
/// the target directory by the time tests run; a no-op when they are up
/// to date). Cargo builds no cdylib for a test of its own package.
fn profile_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "-p",
            "shmchan-ffi",
            "-p",
            "shmchan",
            "--lib",
            "--bin",
            "shmchan",
        ]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.current_dir(ffi_dir()).status().expect("run cargo");
        assert!(status.success(), "{build:?} failed");
        for out in ["libshmchan.so", "libshmchan.a", "shmchan"] {
            assert!(
                dir.join(out).exists(),
                "{build:?} made no {out} in {}",
                dir.display()
            );
        }
        dir.to_path_buf()
    })
}

/// Where the programs built here go.
fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ffi-c");
    std::fs::create_dir_all(&dir).expect("create the output dir");
    dir
}

/// Compiles `sources` with `compiler` into `out`, against include/ and
/// the library in `profile_dir()` (shared, with an rpath, unless
/// `static_lib`).
fn compile(compiler: &str, flags: &[&str], sources: &[PathBuf], out: &Path, static_lib: bool) {
    let lib = profile_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(ffi_dir().join("../include"))
        .args(sources)
        .arg("-o")
        .arg(out);
    if static_lib {
        cmd.arg(lib.join("libshmchan.a"))
            .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s"]);
    } else {
        cmd.arg("-L")
            .arg(lib)
            .arg("-lshmchan")
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-lpthread");
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("{compiler}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

const C_FLAGS: &[&str] = &[
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-g",
    "-O1",
];

/// The C test program, built once per test binary.
fn c_program() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = out_dir().join("test_shmchan");
        let src = ffi_dir().join("tests/c/test_shmchan.c");
        compile("cc", C_FLAGS, &[src], &out, false);
        out
    })
}

/// `program args...`, under valgrind memcheck unless
/// `SHMCHAN_NO_VALGRIND` is set: any memory error or leak makes it exit
/// 99.
fn checked(program: &Path) -> Command {
    if std::env::var_os("SHMCHAN_NO_VALGRIND").is_some() {
        return Command::new(program);
    }
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "-q",
        "--error-exitcode=99",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible",
    ])
    .arg(program);
    cmd
}

/// `program args...` under valgrind (`checked`), its output captured.
fn spawn_checked<S: AsRef<std::ffi::OsStr>>(program: &Path, args: &[S], what: &str) -> Child {
    checked(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {what}: {e}"))
}

/// Waits for a C program, removes whatever System V objects it created
/// and left (it exits with them removed unless it failed), and asserts
/// that it succeeded.
fn finish(child: Child, what: &str) -> Output {
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for the C program");
    sweep(pid);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}; 99 is a valgrind error)\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Removes the segments (with their semaphore sets) that process `pid`
/// created, from `/proc/sysvipc/shm` (columns: key shmid perms size cpid).
fn sweep(pid: u32) {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(shmid), Some(cpid)) = (cols.get(1), cols.get(4)) else {
            continue;
        };
        if cpid.parse::<u32>().ok() != Some(pid) {
            continue;
        }
        let Ok(shmid) = shmid.parse::<i32>() else {
            continue;
        };
        eprintln!("removing shmid {shmid}, left by the C program (pid {pid})");
        if shmchan::admin::remove(shmid, true).is_err() {
            // Not a channel: the plain segment of the foreign-segment test.
            // SAFETY: IPC_RMID on an id takes no pointer.
            unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

/// A channel this test made, removed when the test ends, even by a
/// failed assertion.
struct Removing(Option<Channel>);

impl Removing {
    fn private() -> Removing {
        let opts = Options::new().capacity(16 * 1024);
        Removing(Some(Channel::create(Key::PRIVATE, &opts).expect("create")))
    }

    fn chan(&self) -> &Channel {
        self.0.as_ref().expect("not removed yet")
    }
}

impl Drop for Removing {
    fn drop(&mut self) {
        if let Some(chan) = self.0.take() {
            let _ = chan.remove(); // removed already is fine
        }
    }
}

/// Message `i` of the pattern both languages agree on
/// (tests/c/test_shmchan.c: pattern_len, pattern_byte).
fn pattern(i: u32) -> Vec<u8> {
    let len = (i.wrapping_mul(7919) % 5000) as usize;
    (0..len)
        .map(|j| i.wrapping_mul(31).wrapping_add(j as u32) as u8)
        .collect()
}

#[test]
fn the_c_selftest_passes_every_error_path_without_a_memory_error() {
    let child = spawn_checked(c_program(), &["selftest"], "the C selftest");
    let out = finish(child, "the C selftest");
    assert!(String::from_utf8_lossy(&out.stdout).contains("11 passed, 0 failed"));
}

#[test]
fn the_static_library_links_and_passes_the_selftest() {
    let out = out_dir().join("test_shmchan_static");
    let src = ffi_dir().join("tests/c/test_shmchan.c");
    compile("cc", C_FLAGS, &[src], &out, true);
    let child = spawn_checked(&out, &["selftest"], "the statically linked selftest");
    finish(child, "the statically linked selftest");
}

#[test]
fn a_c_sender_reaches_a_rust_receiver() {
    let chan = Removing::private();
    let mut rx = chan.chan().receiver().expect("receiver");
    let child = spawn_checked(
        c_program(),
        &["send", &chan.chan().id().to_string(), &COUNT.to_string()],
        "the C sender",
    );
    let pid = child.id();
    for i in 0..COUNT {
        match rx.recv_timeout(STUCK) {
            Ok(msg) => assert!(msg == pattern(i), "message {i} differs"),
            Err(e) => {
                let out = finish(child, "the C sender");
                panic!("message {i}: {e} (pid {pid}, {out:?})");
            }
        }
    }
    assert!(matches!(rx.recv_timeout(STUCK), Err(Error::Disconnected)));
    finish(child, "the C sender");
}

#[test]
fn a_rust_sender_reaches_a_c_receiver() {
    let chan = Removing::private();
    let mut tx = chan.chan().sender().expect("sender");
    let child = spawn_checked(
        c_program(),
        &["recv", &chan.chan().id().to_string(), &COUNT.to_string()],
        "the C receiver",
    );
    for i in 0..COUNT {
        if let Err(e) = tx.send_timeout(&pattern(i), STUCK) {
            let out = finish(child, "the C receiver");
            panic!("message {i}: {e} ({out:?})");
        }
    }
    drop(tx); // the C receiver's SHMCHAN_E_DISCONNECTED
    let out = finish(child, "the C receiver");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("received {COUNT}")));
}

/// The `shmchan` command of this build.
fn cli() -> PathBuf {
    profile_dir().join("shmchan")
}

const WORDS: [&str; 4] = ["alpha", "beta", "", "gamma delta"];

#[test]
fn a_c_sender_reaches_the_cli() {
    let chan = Removing::private();
    let id = format!("id:{}", chan.chan().id());
    let recv = Command::new(cli())
        .args(["recv", &id, "--timeout", "300s"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("shmchan recv");
    let send = {
        let id = chan.chan().id().to_string();
        let args = [&["send-lines", id.as_str()][..], &WORDS[..]].concat();
        spawn_checked(c_program(), &args, "the C sender")
    };
    finish(send, "the C sender");
    let out = recv.wait_with_output().expect("shmchan recv");
    assert!(out.status.success());
    let expected: String = WORDS.iter().map(|w| format!("{w}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn the_cli_reaches_a_c_receiver() {
    let chan = Removing::private();
    let recv = {
        let id = chan.chan().id().to_string();
        let args = [&["recv-lines", id.as_str()][..], &WORDS[..]].concat();
        spawn_checked(c_program(), &args, "the C receiver")
    };
    let mut send = Command::new(cli())
        .args(["send", &format!("id:{}", chan.chan().id())])
        .stdin(Stdio::piped())
        .spawn()
        .expect("shmchan send");
    let lines: String = WORDS.iter().map(|w| format!("{w}\n")).collect();
    let mut stdin = send.stdin.take().expect("stdin");
    stdin.write_all(lines.as_bytes()).expect("write the lines");
    drop(stdin);
    assert!(send.wait().expect("shmchan send").success());
    finish(recv, "the C receiver");
}

#[test]
fn the_cpp_header_wraps_the_c_interface_without_a_memory_error() {
    let out = out_dir().join("test_shmchan_cpp");
    let src = ffi_dir().join("tests/cpp/test_shmchan.cpp");
    let flags = [
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-g",
        "-O1",
    ];
    compile("g++", &flags, &[src], &out, false);
    let child = spawn_checked::<&str>(&out, &[], "the C++ test");
    let out = finish(child, "the C++ test");
    assert!(String::from_utf8_lossy(&out.stdout).contains("passed, 0 failed"));
}

/// Every function the header declares is exported by libshmchan.so, and
/// nothing else named shmchan_* is (tests/header.rs checks the header
/// against the source; this checks it against the built library).
#[test]
fn the_header_declares_exactly_what_the_library_exports() {
    let header = std::fs::read_to_string(ffi_dir().join("../include/shmchan.h")).expect("header");
    let mut declared: Vec<String> = header
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()) && l.ends_with(");"))
        .filter_map(|l| l.split('(').next())
        .filter_map(|head| head.rsplit([' ', '*']).next())
        .map(str::to_owned)
        .collect();
    declared.sort();
    let nm = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(profile_dir().join("libshmchan.so"))
        .output()
        .expect("nm");
    assert!(nm.status.success());
    let mut exported: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|s| s.starts_with("shmchan_"))
        .map(str::to_owned)
        .collect();
    exported.sort();
    assert!(declared.len() > 30, "parsed {declared:?}");
    assert_eq!(declared, exported);
}
