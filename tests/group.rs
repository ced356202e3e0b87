//! Group access (`Options::group`, `shmchan create --group`): a channel of
//! mode 0660 given a group takes senders run by other users of that group
//! and refuses users outside it; a group the kernel refuses fails `create`
//! and leaves nothing behind. The peers run as other users are this test
//! binary again, started as root with another uid and gid.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{AsNobody, Cleanup, Peer, TempKey};
use serde_json::Value;
use shmchan::admin::{self, Kind};
use shmchan::{Channel, Error, Key, Options};

/// The channel's group in the root-only tests: a gid no other test uses,
/// which need not exist in /etc/group.
const GROUP: u32 = 54321;
/// A user in [`GROUP`] (it is the child's only group).
const MEMBER: u32 = 54320;
/// A user outside it, with a group of its own.
const OUTSIDER: u32 = 54319;
/// The group of the CLI test's channel (any user may give it).
const CLI_GROUP: u32 = 54322;
/// The group a creator that is not root gives to a group it is not in.
const FOREIGN_GROUP: u32 = 54323;

const KEY_PATH: &str = "SHMCHAN_TEST_KEY_PATH";
const COUNT: &str = "SHMCHAN_TEST_COUNT";
const MESSAGES: u64 = 100;

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(60);
        say_ids();
        match role {
            "send" => send(),
            "open" => open(),
            "create_private" => create_private(),
            other => panic!("unknown role {other}"),
        }
    });
}

/// Says who the peer runs as: `as UID GID [SUPPLEMENTARY...]`.
fn say_ids() {
    let mut groups = vec![0 as libc::gid_t; 64];
    // SAFETY: geteuid and getegid cannot fail; getgroups writes at most
    // groups.len() gids into groups.
    let (uid, gid, n) = unsafe {
        (
            libc::geteuid(),
            libc::getegid(),
            libc::getgroups(groups.len() as i32, groups.as_mut_ptr()),
        )
    };
    groups.truncate(n.max(0) as usize);
    let extra: Vec<String> = groups.iter().map(|g| format!(" {g}")).collect();
    common::say(format!("as {uid} {gid}{}", extra.concat()));
}

fn key_from_env() -> Key {
    // TempKey makes its keys with proj_id b'T'.
    Key::ftok(common::env(KEY_PATH), b'T').expect("ftok in the peer")
}

/// Opens the channel at KEY_PATH, takes the sender role and sends COUNT
/// numbered messages; says "sent N".
fn send() {
    let chan = Channel::open(key_from_env()).expect("a member opens");
    let mut tx = chan.sender().expect("a member takes the sender role");
    let count: u64 = common::env(COUNT).parse().unwrap();
    for seq in 0..count {
        tx.send(&common::numbered_message(seq)).expect("send");
    }
    common::say(format!("sent {count}"));
}

/// Opens the channel at KEY_PATH and says how that went.
fn open() {
    let outcome = match Channel::open(key_from_env()) {
        Ok(chan) => match chan.sender() {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("sender {}", error_name(&e)),
        },
        Err(e) => format!("open {}", error_name(&e)),
    };
    common::say(outcome);
}

fn error_name(e: &Error) -> String {
    match e {
        Error::PermissionDenied { call, .. } => format!("PermissionDenied in {call}"),
        other => format!("other error: {other}"),
    }
}

/// Creates a private channel of mode 0660 given FOREIGN_GROUP, which this
/// user is not in; says its ids, then what inspection shows:
/// `gid SEGMENT SET mode MODE uid UID cuid CUID`.
fn create_private() {
    let opts = Options::new()
        .capacity(4096)
        .mode(0o660)
        .group(FOREIGN_GROUP);
    let chan = Channel::create(Key::PRIVATE, &opts).expect("create with a foreign group");
    common::say(format!("ids {} {}", chan.id(), chan.sem_id()));
    let seg = admin::inspect(chan.id()).expect("inspect");
    let Kind::Channel(info) = &seg.kind else {
        panic!("not a channel: {:?}", seg.kind);
    };
    common::say(format!(
        "gid {} {:?} mode {:o} uid {} cuid {}",
        seg.gid, info.sem_gid, seg.mode, seg.uid, seg.cuid
    ));
}

/// Whether this test can switch users; says why not when it cannot.
fn root_or_skip(test: &str) -> bool {
    let root = common::is_root();
    if !root {
        eprintln!("{test}: skipped, not root (cannot start a child as another user)");
    }
    root
}

/// The segment's group and the semaphore set's, as `admin` reads them with
/// `IPC_STAT` (what `ipcs -i` shows), and the segment's mode.
fn groups_of(shmid: i32) -> (u32, Option<u32>, u32) {
    let seg = admin::inspect(shmid).expect("inspect");
    match seg.kind {
        Kind::Channel(info) => (seg.gid, info.sem_gid, seg.mode),
        other => panic!("not a channel: {other:?}"),
    }
}

#[test]
fn members_of_the_group_send_and_others_are_denied() {
    if !root_or_skip("members_of_the_group_send_and_others_are_denied") {
        return;
    }
    let users = AsNobody::copy(std::env::current_exe().expect("current test binary"));
    let key = TempKey::in_dir(users.dir()); // where the children can find it
    let opts = Options::new().capacity(4096).mode(0o660).group(GROUP);
    let chan = Channel::create(key.key, &opts).expect("create with a group");
    let _guard = Cleanup::of(&chan);
    assert_eq!(groups_of(chan.id()), (GROUP, Some(GROUP), 0o660));
    let mut rx = chan.receiver().expect("the server receives");

    let key_env = (KEY_PATH, key.path.to_str().unwrap().to_owned());
    let env = [key_env.clone(), (COUNT, MESSAGES.to_string())];
    let mut member = spawn_as(&users, MEMBER, GROUP, "send", &env);
    member.expect_line(&format!("as {MEMBER} {GROUP}")); // no supplementary groups
    for seq in 0..MESSAGES {
        let msg = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a message from the member");
        assert_eq!(common::message_number(&msg), seq);
    }
    member.expect_line(&format!("sent {MESSAGES}"));
    member.join();

    let mut outsider = spawn_as(&users, OUTSIDER, OUTSIDER, "open", &[key_env]);
    outsider.expect_line(&format!("as {OUTSIDER} {OUTSIDER}"));
    // The key lookup (shmget with no flags) asks for no permission; the
    // segment's IPC_STAT is the first call that needs read permission.
    outsider.expect_line("open PermissionDenied in shmctl(IPC_STAT)");
    outsider.join();
}

/// The `role` peer, run as `uid` with the one group `gid`.
fn spawn_as(users: &AsNobody, uid: u32, gid: u32, role: &str, env: &[(&str, String)]) -> Peer {
    common::spawn_peer_by(users.command_as(uid, gid), "peer", role, env)
}

#[test]
fn a_creator_may_give_a_group_it_is_not_in() {
    if !root_or_skip("a_creator_may_give_a_group_it_is_not_in") {
        return;
    }
    let nobody = AsNobody::copy(std::env::current_exe().expect("current test binary"));
    let cmd = nobody.command();
    let mut peer = common::spawn_peer_by(cmd, "peer", "create_private", &[]);
    let n = common::NOBODY;
    peer.expect_line(&format!("as {n} {n}"));
    let guard = common::expect_ids(&mut peer);
    // The kernel takes any group from the owner, and the owner stays.
    let g = FOREIGN_GROUP;
    peer.expect_line(&format!("gid {g} Some({g}) mode 660 uid {n} cuid {n}"));
    peer.join();
    assert!(
        !common::shm_exists(guard.shmid),
        "the last party out removed it"
    );
}

#[test]
fn the_group_and_the_mode_are_set_together_and_the_owner_stays() {
    // SAFETY: getegid and geteuid cannot fail.
    let (gid, uid) = unsafe { (libc::getegid(), libc::geteuid()) };
    let opts = Options::new().capacity(4096).mode(0o640).group(gid);
    let chan = Channel::create(Key::PRIVATE, &opts).expect("create");
    let _guard = Cleanup::of(&chan);
    assert_eq!(groups_of(chan.id()), (gid, Some(gid), 0o640));
    assert_eq!(admin::inspect(chan.id()).unwrap().uid, uid);
    // SAFETY: semid_ds is plain old data; IPC_STAT fills it.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable semid_ds.
    let rc = unsafe { libc::semctl(chan.sem_id(), 0, libc::IPC_STAT, &mut ds) };
    assert_eq!(rc, 0);
    assert_eq!((ds.sem_perm.uid, ds.sem_perm.mode & 0o777), (uid, 0o640));
}

/// Whether nothing, neither a segment nor a semaphore set, is at `key`.
fn nothing_at(key: Key) -> bool {
    // SAFETY: lookups only: size 0, no flags.
    let (shm, sem) = unsafe { (libc::shmget(key.raw(), 0, 0), libc::semget(key.raw(), 0, 0)) };
    shm == -1 && sem == -1
}

#[test]
fn a_group_the_kernel_refuses_fails_create_and_leaves_nothing() {
    let key = TempKey::new();
    // (gid_t)-1 maps to no group in any user namespace: EINVAL.
    let opts = Options::new().capacity(4096).mode(0o660).group(u32::MAX);
    match Channel::create(key.key, &opts) {
        Err(Error::Os {
            call,
            channel,
            source,
        }) => {
            assert_eq!(call, "shmctl(IPC_SET)");
            assert!(channel.starts_with(&key.key.to_string()), "{channel}");
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
        }
        other => panic!("expected Os(shmctl(IPC_SET), EINVAL), got {other:?}"),
    }
    assert!(nothing_at(key.key), "create left an object at {}", key.key);
}

#[test]
fn a_refused_group_change_is_permission_denied_and_leaves_nothing() {
    let key = TempKey::new();
    let raw = key.key.raw();
    // On a thread of its own, semctl(IPC_SET) fails with EPERM, as the
    // kernel says to a caller that is not the owner; the segment's IPC_SET
    // before it succeeds, so that both objects exist when it fails.
    let r = std::thread::spawn(move || {
        common::seccomp::fail_on_this_thread(
            &[libc::SYS_semctl],
            Some(libc::IPC_SET as u32),
            libc::EPERM,
        );
        let opts = Options::new().capacity(4096).mode(0o660).group(GROUP);
        Channel::create(Key::from_raw(raw), &opts).map(|c| c.id())
    })
    .join()
    .expect("the failing thread");
    match r {
        Err(Error::PermissionDenied {
            call,
            channel,
            source,
        }) => {
            assert_eq!(call, "semctl(IPC_SET)");
            assert!(channel.starts_with(&key.key.to_string()), "{channel}");
            assert_eq!(source.raw_os_error(), Some(libc::EPERM));
        }
        other => panic!("expected PermissionDenied in semctl(IPC_SET), got {other:?}"),
    }
    assert!(nothing_at(key.key), "create left an object at {}", key.key);
}

// ---- The command ----

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shmchan")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run shmchan")
}

/// The stdout of a run that must succeed.
fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "shmchan failed: {stderr}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// Asserts exit `code` and a stderr containing `what`.
fn fails(out: &Output, code: i32, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(what), "stderr: {stderr}");
}

/// Removes whatever `shmchan create` made at a key, however the test ends.
struct AtKey(Key);

impl Drop for AtKey {
    fn drop(&mut self) {
        // SAFETY: lookups (size 0, no flags), then IPC_RMID on what they
        // found; a failure leaves nothing to do.
        unsafe {
            let shm = libc::shmget(self.0.raw(), 0, 0);
            if shm >= 0 {
                libc::shmctl(shm, libc::IPC_RMID, std::ptr::null_mut());
            }
            let sem = libc::semget(self.0.raw(), 0, 0);
            if sem >= 0 {
                libc::semctl(sem, 0, libc::IPC_RMID);
            }
        }
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON")
}

#[test]
fn cli_create_with_a_group_shows_it_in_ls_and_stat() {
    let key = TempKey::new();
    let _guard = AtKey(key.key);
    let hex = format!("{:#010x}", key.key.raw() as u32);
    let gid = CLI_GROUP.to_string();
    ok(&run(&[
        "create",
        &hex,
        "--capacity",
        "4K",
        "--mode",
        "660",
        "--group",
        &gid,
    ]));
    let shown = admin::group_name(CLI_GROUP).unwrap_or_else(|| gid.clone());

    let listing = json(&run(&["ls", "--json"]));
    let rows = listing["channels"].as_array().expect("channels");
    let row = rows.iter().find(|r| r["key"] == hex).expect("listed");
    assert_eq!(
        (&row["gid"], &row["group"]),
        (&CLI_GROUP.into(), &shown.as_str().into())
    );
    assert_eq!(row["mode"], "0660");

    let stat = json(&run(&["stat", &hex, "--json"]));
    assert_eq!(
        (&stat["gid"], &stat["sem_gid"]),
        (&CLI_GROUP.into(), &CLI_GROUP.into())
    );

    // Columns are aligned (cells such as "4 KiB" hold spaces): the GROUP
    // cell starts where its heading does.
    let table = ok(&run(&["ls"]));
    let header = table.lines().next().expect("a header line");
    let at = header.find(" GROUP ").expect("a GROUP column") + 1;
    assert!(header[..at].trim_end().ends_with("OWNER"), "{header}");
    let line = table.lines().find(|l| l.starts_with(&hex)).expect("listed");
    assert_eq!(
        line[at..].split_whitespace().next(),
        Some(shown.as_str()),
        "{line}"
    );
    let text = ok(&run(&["stat", &hex]));
    assert!(text.contains(&format!(", group {shown}\n")), "{text}");
    ok(&run(&["rm", &hex]));
}

#[test]
fn cli_group_by_name_and_refusals() {
    let key = TempKey::new();
    let _guard = AtKey(key.key);
    let hex = format!("{:#010x}", key.key.raw() as u32);
    fails(
        &run(&["create", &hex, "--group", "no-such-group-for-shmchan"]),
        1,
        "no group named 'no-such-group-for-shmchan'",
    );
    assert!(nothing_at(key.key));
    for malformed in ["", "4294967295", "99999999999"] {
        fails(&run(&["create", &hex, "--group", malformed]), 2, "--group");
    }
    assert!(nothing_at(key.key));
    // SAFETY: getegid cannot fail.
    let gid = unsafe { libc::getegid() };
    let Some(name) = admin::group_name(gid) else {
        eprintln!(
            "cli_group_by_name_and_refusals: the caller's group has no name; by name skipped"
        );
        return;
    };
    ok(&run(&["create", &hex, "--group", &name]));
    let stat = json(&run(&["stat", &hex, "--json"]));
    assert_eq!(
        (&stat["gid"], &stat["group"]),
        (&gid.into(), &name.as_str().into())
    );
    ok(&run(&["rm", &hex]));
}
