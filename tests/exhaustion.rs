//! Issue 5, check 4: when the kernel says no. Each case makes
//! `Channel::create` (or `open`, `sender`) meet one refusal, and checks for
//! a clear error (the call that failed and its errno) and that nothing
//! half-made is left behind.
//!
//! System-wide limits are lowered inside a private IPC namespace: the test
//! runs this binary again under `unshare --ipc` (root), where
//! `/proc/sys/kernel/{shmmax,shmall,shmmni,sem}` and `/proc/sysvipc/*` are
//! the namespace's own, so the host's limits and objects are never
//! touched. Failures no limit can cause (`ENOMEM` for the `SEM_UNDO`
//! structure at the first undoable `semop`, for `shmat`, for `SETALL`) are
//! injected with a seccomp filter on one thread of the child. Where
//! `unshare --ipc` is not allowed, the limit cases are reported as skipped
//! and the injected ones run in a plain child, checked by key.

mod common;

use std::io;
use std::process::{Command, Stdio};

use common::{PEER_ENV, TempKey, peer_main, say};
use shmchan::{Channel, Error, Key, Options};

/// Whether the child runs in its own IPC namespace.
const IN_NS: &str = "SHMCHAN_EXHAUSTION_NS";

#[test]
fn peer() {
    peer_main(|role| {
        common::peer_watchdog(60);
        let in_ns = std::env::var(IN_NS).is_ok();
        match role {
            "limits" => limit_cases(),
            "injected" => injected_cases(in_ns),
            other => panic!("unknown role {other}"),
        }
    });
}

/// Runs `role` in a child, under `unshare --ipc` when `ns`; returns the
/// lines it said, or `None` if the child could not be started that way.
fn run_child(role: &str, ns: bool) -> Option<Vec<String>> {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = if ns {
        let mut c = Command::new("unshare");
        c.arg("--ipc").arg(&exe).env(IN_NS, "1");
        c
    } else {
        Command::new(&exe)
    };
    let out = cmd
        .args(["peer", "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(PEER_ENV, role)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(common::OUT).map(str::to_owned))
        .collect();
    assert!(out.status.success(), "child {role} failed: {lines:#?}");
    Some(lines)
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--ipc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Prints the child's report and fails on any line that says FAIL.
fn check_report(lines: &[String]) {
    for l in lines {
        eprintln!("  {l}");
    }
    assert!(
        lines.iter().all(|l| !l.contains("FAIL")),
        "see the lines marked FAIL"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("done")),
        "child did not finish"
    );
}

#[test]
fn kernel_limits_in_a_private_ipc_namespace() {
    if !unshare_works() {
        eprintln!("skipped: `unshare --ipc` is not allowed here (needs root)");
        return;
    }
    check_report(&run_child("limits", true).expect("run under unshare --ipc"));
}

#[test]
fn injected_failures_leave_nothing_behind() {
    let ns = unshare_works();
    check_report(&run_child("injected", ns).expect("run the child"));
}

// ---- In the child ----

fn errno_of(e: &Error) -> Option<i32> {
    let source = std::error::Error::source(e)?;
    source.downcast_ref::<io::Error>()?.raw_os_error()
}

/// Ids listed in /proc/sysvipc/{shm,sem} (this namespace's objects).
fn listed(file: &str) -> Vec<(i32, i32)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let key = cols.next()?.parse().ok()?;
            let id = cols.next()?.parse().ok()?;
            Some((key, id))
        })
        .collect()
}

fn count_objects() -> (usize, usize) {
    (
        listed("/proc/sysvipc/shm").len(),
        listed("/proc/sysvipc/sem").len(),
    )
}

/// Objects at `key` (a key made for the case, so that a host run can
/// tell them apart from everyone else's).
fn objects_at(key: Key) -> usize {
    let k = key.raw();
    let n = |f| listed(f).iter().filter(|(kk, _)| *kk == k).count();
    n("/proc/sysvipc/shm") + n("/proc/sysvipc/sem")
}

fn sysctl(name: &str, value: &str) {
    let path = format!("/proc/sys/kernel/{name}");
    std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

fn sysctl_get(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .expect("read sysctl")
        .trim()
        .to_owned()
}

/// Reports one case: the error must be an OS error of `call` with
/// `errno`, and exactly `expect_left` objects (fillers) may remain.
fn report(
    case: &str,
    r: shmchan::Result<Channel>,
    call: &str,
    errno: i32,
    expect_left: (usize, usize),
) {
    let left = count_objects();
    let verdict = match &r {
        Err(e @ Error::Os { call: c, .. })
            if *c == call && errno_of(e) == Some(errno) && left == expect_left =>
        {
            "ok"
        }
        _ => "FAIL",
    };
    let what = match &r {
        Ok(_) => "created (no error!)".to_owned(),
        Err(e) => format!("{e}"),
    };
    say(format!(
        "{verdict} {case}: {what}; objects left (shm, sem) = {left:?}"
    ));
}

/// A raw segment or set to fill a table, removed at the end of the case.
struct Filler(Box<dyn Fn()>);

impl Drop for Filler {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn fill_shm() -> Filler {
    // SAFETY: plain integers.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, 0o600) };
    assert!(id >= 0, "filler segment: {}", io::Error::last_os_error());
    // SAFETY: IPC_RMID takes no buffer.
    Filler(Box::new(move || unsafe {
        libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
    }))
}

fn fill_sem() -> Filler {
    // SAFETY: plain integers.
    let id = unsafe { libc::semget(libc::IPC_PRIVATE, 1, 0o600) };
    assert!(id >= 0, "filler set: {}", io::Error::last_os_error());
    // SAFETY: IPC_RMID takes no fourth argument.
    Filler(Box::new(move || unsafe {
        libc::semctl(id, 0, libc::IPC_RMID);
    }))
}

fn create(key: Key) -> shmchan::Result<Channel> {
    Channel::create(key, &Options::new().capacity(4096))
}

/// Sets `name` to `value` for the case, back to what it was after.
fn with_sysctl<T>(name: &str, value: &str, f: impl FnOnce() -> T) -> T {
    let old = sysctl_get(name);
    sysctl(name, value);
    let r = f();
    sysctl(name, &old);
    r
}

fn limit_cases() {
    assert_eq!(count_objects(), (0, 0), "a fresh IPC namespace is empty");
    let key = Key::from_raw(0x5eed_0005);
    with_sysctl("shmmni", "1", || {
        let _filler = fill_shm();
        report(
            "SHMMNI exhausted",
            create(key),
            "shmget",
            libc::ENOSPC,
            (1, 0),
        );
    });
    with_sysctl("shmmax", "4096", || {
        report(
            "SHMMAX below the segment size",
            create(key),
            "shmget",
            libc::EINVAL,
            (0, 0),
        );
    });
    with_sysctl("shmall", "1", || {
        report(
            "SHMALL exhausted",
            create(key),
            "shmget",
            libc::ENOSPC,
            (0, 0),
        );
    });
    let sem = sysctl_get("sem");
    let f: Vec<&str> = sem.split_whitespace().collect();
    let (msl, mns, opm, mni) = (f[0], f[1], f[2], f[3]);
    with_sysctl("sem", &format!("{msl} {mns} {opm} 1"), || {
        let _filler = fill_sem();
        report(
            "SEMMNI exhausted",
            create(key),
            "semget",
            libc::ENOSPC,
            (0, 1),
        );
    });
    with_sysctl("sem", &format!("{msl} 5 {opm} {mni}"), || {
        report(
            "SEMMNS below 6 semaphores",
            create(key),
            "semget",
            libc::ENOSPC,
            (0, 0),
        );
    });
    with_sysctl("sem", &format!("5 {mns} {opm} {mni}"), || {
        report(
            "SEMMSL below 6 semaphores",
            create(key),
            "semget",
            libc::EINVAL,
            (0, 0),
        );
    });
    // With the limits back, the same key works: nothing was left to collide.
    let chan = create(key).expect("create after the limits are restored");
    drop(chan);
    say(format!(
        "{} limits restored: create works again, objects left after drop = {:?}",
        if count_objects() == (0, 0) {
            "ok"
        } else {
            "FAIL"
        },
        count_objects()
    ));
    say("done");
}

// ---- Injected failures: a seccomp filter on one thread ----

/// Runs `f` on a new thread whose `nrs` fail with `errno`.
fn on_failing_thread<T: Send + 'static>(
    nrs: &'static [libc::c_long],
    arg2: Option<u32>,
    errno: i32,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        common::seccomp::fail_on_this_thread(nrs, arg2, errno);
        f()
    })
    .join()
    .expect("failing thread")
}

const SEMOP: &[libc::c_long] = &[libc::SYS_semop, libc::SYS_semtimedop];
const SHMAT: &[libc::c_long] = &[libc::SYS_shmat];
const SEMCTL: &[libc::c_long] = &[libc::SYS_semctl];

/// Reports a create that must fail with `errno` in `call`, leaving
/// nothing at `key`.
fn report_create(
    case: &str,
    key: Key,
    r: shmchan::Result<Channel>,
    call: &str,
    errno: i32,
    in_ns: bool,
) {
    let left = objects_at(key);
    let all_clear = !in_ns || count_objects() == (0, 0);
    let verdict = match &r {
        Err(e @ Error::Os { call: c, .. })
            if c.starts_with(call) && errno_of(e) == Some(errno) && left == 0 && all_clear =>
        {
            "ok"
        }
        _ => "FAIL",
    };
    let what = match &r {
        Ok(_) => "created (no error!)".to_owned(),
        Err(e) => format!("{e}"),
    };
    say(format!(
        "{verdict} {case}: {what}; objects left at the key = {left}"
    ));
}

fn injected_cases(in_ns: bool) {
    let tk = TempKey::new();
    let key = tk.key;
    let r = on_failing_thread(SHMAT, None, libc::ENOMEM, move || create(key));
    report_create(
        "shmat ENOMEM during create",
        key,
        r,
        "shmat",
        libc::ENOMEM,
        in_ns,
    );
    let r = on_failing_thread(SEMCTL, Some(libc::SETALL as u32), libc::ENOMEM, move || {
        create(key)
    });
    report_create(
        "semctl(SETALL) ENOMEM during create",
        key,
        r,
        "semctl(SETALL)",
        libc::ENOMEM,
        in_ns,
    );
    let r = on_failing_thread(SEMOP, None, libc::ENOMEM, move || create(key));
    report_create(
        "SEM_UNDO ENOMEM at the creator's join",
        key,
        r,
        "semop",
        libc::ENOMEM,
        in_ns,
    );
    undo_enomem_on_a_live_channel(key, in_ns);
    say("done");
}

/// Reports a call on a live channel that must fail with ENOMEM and leave
/// the party count as it was (`done` names what a success would have done).
fn report_enomem(case: &str, done: &str, r: shmchan::Result<()>, before: i32, after: i32) {
    let refused = matches!(&r, Err(e @ Error::Os { .. }) if errno_of(e) == Some(libc::ENOMEM));
    say(format!(
        "{} {case}: {}; parties {before} -> {after}",
        if refused && after == before {
            "ok"
        } else {
            "FAIL"
        },
        r.err()
            .map_or(format!("{done} (no error!)"), |e| e.to_string()),
    ));
}

/// A live channel; a second party (another thread, as if another process)
/// meets ENOMEM for its undo structure when it joins, and then when it
/// claims a role. The channel must be unharmed: the party count back to
/// what it was, both roles free, and everything removed at the end.
fn undo_enomem_on_a_live_channel(key: Key, in_ns: bool) {
    let chan = create(key).expect("create the live channel");
    let id = chan.id();
    let parties = || {
        // SAFETY: GETVAL takes no fourth argument. PARTIES is semaphore 4
        // (docs/layout.md).
        unsafe { libc::semctl(chan.sem_id(), 4, libc::GETVAL) }
    };
    let before = parties();
    let r = on_failing_thread(SEMOP, None, libc::ENOMEM, move || {
        Channel::open_id(id).map(drop)
    });
    report_enomem(
        "SEM_UNDO ENOMEM at an opener's join",
        "opened",
        r,
        before,
        parties(),
    );
    // The role claim is the semop with 4 operations (take + arm death
    // wake-up); the join before it (2) goes through.
    let opened = Channel::open_id(id).expect("open again");
    let r = on_failing_thread(SEMOP, Some(4), libc::ENOMEM, move || {
        opened.sender().map(drop)
    });
    report_enomem("ENOMEM at a role claim", "claimed", r, before, parties());
    // Both roles are free and the channel works.
    let (mut tx, mut rx) = (
        chan.sender().expect("sender"),
        chan.receiver().expect("receiver"),
    );
    tx.send(b"still works").expect("send");
    let works = rx.recv().expect("recv") == b"still works";
    drop((tx, rx, chan));
    let left = objects_at(key);
    let all_clear = !in_ns || count_objects() == (0, 0);
    say(format!(
        "{} after the refusals the channel works ({works}) and its last party removes it (left {left})",
        if works && left == 0 && all_clear {
            "ok"
        } else {
            "FAIL"
        }
    ));
}
