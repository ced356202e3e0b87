//! Roles, cleanup, replacing stale channels and permissions, each with
//! real second processes (this binary run again) as the other parties.

mod common;

use std::time::Duration;

use common::{
    AsNobody, Cleanup, Gate, GateReader, NOBODY, Peer, TempKey, monotonic_ns,
    numbered_message as msg,
};
use shmchan::{Channel, Error, Key, Options, Role};

const ID: &str = "SHMCHAN_LIFE_ID";
const KEY_PATH: &str = "SHMCHAN_LIFE_KEY_PATH";
const ROLE: &str = "SHMCHAN_LIFE_ROLE";
const GATE: &str = "SHMCHAN_LIFE_GATE";
const COUNT: &str = "SHMCHAN_LIFE_COUNT";
const AT: &str = "SHMCHAN_LIFE_AT";

/// Generous limit for a peer to reach an expected state.
const SETTLE: Duration = Duration::from_secs(20);

/// `SHM_DEST` from <linux/shm.h> (not in the libc crate): the segment is
/// marked for removal at its last detach.
const SHM_DEST: u16 = 0o1000;

#[test]
fn peer() {
    common::peer_main(|role| {
        common::peer_watchdog(60);
        match role {
            "hold" => hold(),
            "create_send_exit" => create_send_exit(),
            "drain" => drain(),
            "create_and_stay" => create_and_stay(),
            "open_as_nobody" => open_as_nobody(),
            other => panic!("unknown role {other}"),
        }
    });
}

fn key_from_env() -> Key {
    // TempKey makes its keys with proj_id b'T'.
    Key::ftok(common::env(KEY_PATH), b'T').expect("ftok in the peer")
}

/// Opens the channel ID, takes ROLE (sender, receiver or none), receives
/// COUNT messages if a receiver, says "holding", then leaves (dropping
/// everything) when the parent opens the GATE (and, with AT, once the
/// monotonic clock reaches the time in that file: peers released together
/// spin to a common instant so that their leaving overlaps).
fn hold() {
    let chan = Channel::open_id(common::env(ID).parse().unwrap()).expect("peer opens");
    let gate = GateReader::open(&common::env(GATE));
    let count: u64 = std::env::var(COUNT).map_or(0, |c| c.parse().unwrap());
    let (_tx, _rx) = match common::env(ROLE).as_str() {
        "sender" => (
            Some(chan.sender().expect("peer takes the sender role")),
            None,
        ),
        "receiver" => {
            let mut rx = chan.receiver().expect("peer takes the receiver role");
            for seq in 0..count {
                assert_eq!(common::message_number(&rx.recv().unwrap()), seq);
            }
            (None, Some(rx))
        }
        _ => (None, None),
    };
    common::say("holding");
    gate.wait();
    if let Ok(at) = std::env::var(AT) {
        let at: u64 = std::fs::read_to_string(at).unwrap().parse().unwrap();
        while monotonic_ns() < at {
            std::hint::spin_loop();
        }
    }
}

/// Creates a channel at KEY_PATH, sends COUNT messages with no receiver,
/// and exits.
fn create_send_exit() {
    let chan = Channel::create(key_from_env(), &Options::new().capacity(4096)).expect("create");
    common::say(format!("ids {} {}", chan.id(), chan.sem_id()));
    let mut tx = chan.sender().unwrap();
    for seq in 0..common::env(COUNT).parse().unwrap() {
        tx.send(&msg(seq)).expect("send with room in the ring");
    }
    common::say("sent");
}

/// Opens the channel at KEY_PATH and receives until an error; reports every
/// message number, then the error.
fn drain() {
    let chan = Channel::open(key_from_env()).expect("peer opens by key");
    let mut rx = chan.receiver().expect("peer takes the receiver role");
    common::receive_and_report(&mut rx);
}

/// Creates a channel at KEY_PATH, sends it three messages, then either
/// blocks until killed, or (with GATE) leaves when the gate opens.
fn create_and_stay() {
    let chan = Channel::create(key_from_env(), &Options::new().capacity(4096)).expect("create");
    let mut tx = chan.sender().unwrap();
    for seq in 0..3 {
        tx.send(&msg(seq)).unwrap();
    }
    let gate = std::env::var(GATE).ok().map(|g| GateReader::open(&g));
    common::say(format!("ids {} {}", chan.id(), chan.sem_id()));
    match gate {
        Some(gate) => gate.wait(),
        None => common::hang(),
    }
}

/// Started as uid/gid 65534 (`spawn_as_nobody`): opens channel ID and, if
/// KEY_PATH is set, the channel at that key; reports each outcome.
fn open_as_nobody() {
    // SAFETY: geteuid cannot fail.
    common::say(format!("euid {}", unsafe { libc::geteuid() }));
    let id = common::env(ID).parse().unwrap();
    common::say(format!("open_id {}", outcome(Channel::open_id(id))));
    if std::env::var(KEY_PATH).is_ok() {
        common::say(format!("open {}", outcome(Channel::open(key_from_env()))));
    }
}

fn outcome(r: Result<Channel, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::PermissionDenied { .. }) => "PermissionDenied".into(),
        Err(e) => format!("other error: {e}"),
    }
}

/// A peer holding `role` ("sender", "receiver", "none") on `chan` until
/// `gate` opens; returns once it says it holds it.
fn spawn_holder(chan: &Channel, role: &str, gate: &Gate, extra: &[(&str, String)]) -> Peer {
    let mut env = vec![
        (ID, chan.id().to_string()),
        (ROLE, role.to_owned()),
        (GATE, gate.env_value()),
    ];
    env.extend_from_slice(extra);
    let mut peer = common::spawn_peer("peer", "hold", &env);
    peer.expect_line("holding");
    peer
}

fn spawn_keyed(role: &str, key: &TempKey, extra: &[(&str, String)]) -> Peer {
    let mut env = vec![(KEY_PATH, key.path.to_str().unwrap().to_owned())];
    env.extend_from_slice(extra);
    common::spawn_peer("peer", role, &env)
}

/// The `open_as_nobody` peer, started as uid and gid 65534 from `nobody`,
/// a copy of this test binary.
fn spawn_as_nobody(nobody: &AsNobody, env: &[(&str, String)]) -> Peer {
    common::spawn_peer_by(nobody.command(), "peer", "open_as_nobody", env)
}

fn assert_gone(shmid: i32, semid: i32) {
    assert!(!common::shm_exists(shmid), "segment {shmid} still exists");
    assert!(
        !common::sem_exists(semid),
        "semaphore set {semid} still exists"
    );
}

fn assert_present(shmid: i32, semid: i32) {
    assert!(common::shm_exists(shmid), "segment {shmid} was removed");
    assert!(
        common::sem_exists(semid),
        "semaphore set {semid} was removed"
    );
}

fn role_of(role: &str) -> Role {
    match role {
        "sender" => Role::Sender,
        _ => Role::Receiver,
    }
}

/// Tries to take `role` on `chan` from this process.
fn claim(chan: &Channel, role: &str) -> Result<(), Error> {
    match role {
        "sender" => chan.sender().map(drop),
        _ => chan.receiver().map(drop),
    }
}

fn assert_role_taken(chan: &Channel, role: &str) {
    match claim(chan, role) {
        Err(Error::RoleTaken { role: r, .. }) => assert_eq!(r, role_of(role)),
        other => panic!("a second {role} got {other:?}, expected RoleTaken"),
    }
}

// ---- 6. Roles ----

#[test]
fn role_held_in_another_process_is_taken_until_it_exits_cleanly() {
    for role in ["sender", "receiver"] {
        let (chan, _guard) = common::private_channel(4096);
        let mut gate = Gate::new();
        let holder = spawn_holder(&chan, role, &gate, &[]);
        assert_role_taken(&chan, role);
        gate.open();
        holder.join();
        claim(&chan, role).unwrap_or_else(|e| panic!("{role} after a clean exit: {e}"));
    }
}

#[test]
fn role_held_in_another_process_is_freed_when_it_is_killed() {
    for role in ["sender", "receiver"] {
        let (chan, _guard) = common::private_channel(4096);
        let gate = Gate::new();
        let holder = spawn_holder(&chan, role, &gate, &[]);
        assert_role_taken(&chan, role);
        holder.kill();
        claim(&chan, role).unwrap_or_else(|e| panic!("{role} after SIGKILL: {e}"));
    }
}

// ---- 8. Cleanup ----

#[test]
fn last_party_out_removes_segment_and_semaphores() {
    for parent_last in [false, true] {
        let (chan, _guard) = common::private_channel(4096);
        let (shmid, semid) = (chan.id(), chan.sem_id());
        let mut tx = chan.sender().unwrap();
        tx.send(&msg(0)).unwrap(); // received by the peer: the ring ends empty
        let mut gate = Gate::new();
        let peer = spawn_holder(&chan, "receiver", &gate, &[(COUNT, "1".into())]);
        if parent_last {
            gate.open();
            peer.join();
            assert_present(shmid, semid);
            drop((tx, chan));
        } else {
            drop((tx, chan));
            assert_present(shmid, semid);
            gate.open();
            peer.join();
        }
        assert_gone(shmid, semid);
    }
}

#[test]
fn persistent_channel_outlives_its_parties() {
    let opts = Options::new().capacity(4096).persist(true);
    let chan = Channel::create(Key::PRIVATE, &opts).unwrap();
    let _guard = Cleanup::of(&chan);
    let (shmid, semid) = (chan.id(), chan.sem_id());
    let mut tx = chan.sender().unwrap();
    tx.send(&msg(0)).unwrap();
    let mut gate = Gate::new();
    let peer = spawn_holder(&chan, "receiver", &gate, &[(COUNT, "1".into())]);
    drop((tx, chan));
    gate.open();
    peer.join();
    assert_present(shmid, semid);

    // Still a working channel, and still persistent after another party.
    let again = Channel::open_id(shmid).expect("reopen the persistent channel");
    assert!(again.persists());
    drop(again);
    assert_present(shmid, semid);
}

#[test]
fn queued_messages_keep_the_channel_for_a_later_receiver() {
    const N: u64 = 20;
    let key = TempKey::new();
    let mut sender = spawn_keyed("create_send_exit", &key, &[(COUNT, N.to_string())]);
    let guard = common::expect_ids(&mut sender);
    sender.expect_line("sent");
    sender.join();
    assert_present(guard.shmid, guard.semid);

    let mut receiver = spawn_keyed("drain", &key, &[]);
    let expected: Vec<String> = (0..N).map(|s| s.to_string()).collect();
    receiver.expect_line(&format!("seqs {}", expected.join(",")));
    receiver.expect_line("end Disconnected");
    receiver.join();
    assert_gone(guard.shmid, guard.semid);
}

/// A read-only attach, as an inspection tool makes; detached on drop.
struct ReadOnlyAttach(*mut libc::c_void);

impl ReadOnlyAttach {
    fn new(shmid: i32) -> ReadOnlyAttach {
        // SAFETY: shmat with a null address lets the kernel choose where.
        let addr = unsafe { libc::shmat(shmid, std::ptr::null(), libc::SHM_RDONLY) };
        assert_ne!(
            addr as isize,
            -1,
            "shmat: {}",
            std::io::Error::last_os_error()
        );
        ReadOnlyAttach(addr)
    }
}

impl Drop for ReadOnlyAttach {
    fn drop(&mut self) {
        // SAFETY: self.0 is the address shmat returned; detached once.
        unsafe { libc::shmdt(self.0) };
    }
}

fn shm_stat(shmid: i32) -> libc::shmid_ds {
    // SAFETY: shmid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one shmid_ds into ds.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) };
    assert_eq!(
        rc,
        0,
        "shmctl(IPC_STAT): {}",
        std::io::Error::last_os_error()
    );
    ds
}

fn sem_stat(semid: i32) -> libc::semid_ds {
    // SAFETY: semid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: for IPC_STAT the semun argument is a pointer to a semid_ds.
    let rc = unsafe { libc::semctl(semid, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) };
    assert_eq!(
        rc,
        0,
        "semctl(IPC_STAT): {}",
        std::io::Error::last_os_error()
    );
    ds
}

#[test]
fn read_only_attach_is_not_a_party() {
    let (chan, _guard) = common::private_channel(4096);
    let (shmid, semid) = (chan.id(), chan.sem_id());
    let inspect = ReadOnlyAttach::new(shmid);
    let mut gate = Gate::new();
    let peer = spawn_holder(&chan, "receiver", &gate, &[]);
    drop(chan);
    assert_present(shmid, semid);
    gate.open();
    peer.join();

    // The parties are gone: the set is removed and the segment marked for
    // removal, though our inspection attach keeps its memory until detach.
    assert!(
        !common::sem_exists(semid),
        "semaphore set {semid} still exists"
    );
    let st = shm_stat(shmid);
    assert_eq!(st.shm_nattch, 1, "only the inspection attach is left");
    assert_ne!(st.shm_perm.mode & SHM_DEST, 0, "segment not removed");
    assert!(matches!(
        Channel::open_id(shmid),
        Err(Error::NotFound { .. })
    ));
    drop(inspect);
    assert!(!common::shm_exists(shmid), "segment {shmid} still exists");
}

#[test]
fn parties_leaving_at_the_same_moment_still_remove_the_channel() {
    for round in 0..20 {
        let (chan, _guard) = common::private_channel(4096);
        let (shmid, semid) = (chan.id(), chan.sem_id());
        let mut gate = Gate::new();
        let roles = if round % 2 == 0 {
            ["sender", "receiver"]
        } else {
            ["none", "none"]
        };
        let at = format!("{}.at", gate.env_value());
        let peers: Vec<Peer> = roles
            .iter()
            .map(|role| spawn_holder(&chan, role, &gate, &[(AT, at.clone())]))
            .collect();
        drop(chan);
        for p in &peers {
            common::wait_for(SETTLE, "the peers to block on the gate", || {
                common::blocked_in(p.pid(), &[libc::SYS_read])
            });
        }
        // Both wake on the gate, then spin to the same instant and leave.
        std::fs::write(&at, (monotonic_ns() + 20_000_000).to_string()).unwrap();
        gate.open();
        peers.into_iter().for_each(Peer::join);
        let _ = std::fs::remove_file(&at);
        assert_gone(shmid, semid);
    }
}

#[test]
fn replace_stale_replaces_a_channel_whose_parties_were_killed() {
    let key = TempKey::new();
    let mut creator = spawn_keyed("create_and_stay", &key, &[]);
    let old = common::expect_ids(&mut creator);
    creator.kill();
    assert_present(old.shmid, old.semid);

    let plain = Channel::create(key.key, &Options::new().capacity(4096));
    assert!(
        matches!(plain, Err(Error::AlreadyExists { .. })),
        "plain create: {plain:?}"
    );
    let opts = Options::new().capacity(4096).replace_stale(true);
    let chan = Channel::create(key.key, &opts).expect("replace the stale channel");
    let _new = Cleanup::of(&chan);
    assert_ne!(chan.id(), old.shmid);
    assert_gone(old.shmid, old.semid);

    // A fresh, working channel: the stale messages were discarded.
    let mut rx = chan.receiver().unwrap();
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    let mut tx = chan.sender().unwrap();
    tx.send(b"fresh").unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"fresh");
}

#[test]
fn replace_stale_never_replaces_a_live_channel() {
    let key = TempKey::new();
    let mut gate = Gate::new();
    let mut creator = spawn_keyed("create_and_stay", &key, &[(GATE, gate.env_value())]);
    let ids = common::expect_ids(&mut creator);

    let opts = Options::new().capacity(4096).replace_stale(true);
    let r = Channel::create(key.key, &opts);
    assert!(
        matches!(r, Err(Error::AlreadyExists { .. })),
        "create over a live channel: {r:?}"
    );
    assert_present(ids.shmid, ids.semid);
    let chan = Channel::open(key.key).expect("the live channel is intact");
    assert_eq!(chan.id(), ids.shmid);
    let mut rx = chan.receiver().unwrap();
    for seq in 0..3 {
        assert_eq!(common::message_number(&rx.try_recv().unwrap()), seq);
    }
    drop((rx, chan));
    gate.open();
    creator.join();
    assert_gone(ids.shmid, ids.semid);
}

#[test]
fn replace_stale_never_replaces_a_foreign_segment() {
    for content in [&[0u8; 0][..], b"someone else's data, not a channel"] {
        let key = TempKey::new();
        let raw = key.key.raw();
        // SAFETY: plain integers.
        let shmid = unsafe { libc::shmget(raw, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(shmid >= 0, "shmget: {}", std::io::Error::last_os_error());
        let _guard = Cleanup { shmid, semid: -1 }; // no set: semctl(-1) just fails
        let mut before = vec![0u8; 4096];
        before[..content.len()].copy_from_slice(content);
        // SAFETY: a fresh 4096-byte segment, attached read-write here only.
        unsafe {
            let addr = libc::shmat(shmid, std::ptr::null(), 0);
            assert_ne!(addr as isize, -1, "shmat");
            std::ptr::copy_nonoverlapping(before.as_ptr(), addr.cast(), before.len());
            libc::shmdt(addr);
        }

        let opts = Options::new().capacity(4096).replace_stale(true);
        let r = Channel::create(key.key, &opts);
        assert!(matches!(r, Err(Error::NotAChannel { .. })), "{r:?}");

        // Untouched: same segment at the key, same bytes, nobody attached,
        // and no semaphore set left at the key.
        // SAFETY: shmget takes plain integers.
        let at_key = unsafe { libc::shmget(raw, 0, 0) };
        assert_eq!(at_key, shmid);
        assert_eq!(shm_stat(shmid).shm_nattch, 0);
        let after = ReadOnlyAttach::new(shmid);
        // SAFETY: the segment is 4096 bytes, attached for the life of `after`.
        let bytes = unsafe { std::slice::from_raw_parts(after.0.cast::<u8>(), 4096) };
        assert!(bytes == &before[..], "the foreign segment was modified");
        // SAFETY: semget takes plain integers.
        let set = unsafe { libc::semget(raw, 0, 0) };
        assert_eq!(set, -1, "a semaphore set was left at the key");
    }
}

// ---- 9. Permissions ----

#[test]
fn channel_is_created_with_mode_0600_by_default() {
    let (chan, _guard) = common::private_channel(4096);
    assert_eq!(shm_stat(chan.id()).shm_perm.mode & 0o777, 0o600);
    assert_eq!(sem_stat(chan.sem_id()).sem_perm.mode & 0o777, 0o600);

    let other = Channel::create(Key::PRIVATE, &Options::new().capacity(4096).mode(0o640)).unwrap();
    let _other_guard = Cleanup::of(&other);
    assert_eq!(shm_stat(other.id()).shm_perm.mode & 0o777, 0o640);
    assert_eq!(sem_stat(other.sem_id()).sem_perm.mode & 0o777, 0o640);
}

#[test]
fn another_user_gets_permission_denied() {
    if !common::is_root() {
        eprintln!("another_user_gets_permission_denied: skipped, not root (cannot switch uid)");
        return;
    }
    let nobody = AsNobody::copy(std::env::current_exe().expect("current test binary"));
    let key = TempKey::in_dir(nobody.dir()); // where nobody can find it
    let keyed = Channel::create(key.key, &Options::new().capacity(4096)).unwrap();
    let _keyed_guard = Cleanup::of(&keyed);
    let (private, _guard) = common::private_channel(4096);
    let env = [(ID, private.id().to_string())];
    let mut env = env.to_vec();
    env.push((KEY_PATH, key.path.to_str().unwrap().to_owned()));
    let mut peer = spawn_as_nobody(&nobody, &env);
    peer.expect_line(&format!("euid {NOBODY}"));
    peer.expect_line("open_id PermissionDenied");
    peer.expect_line("open PermissionDenied");
    peer.join();

    // The same user can open a channel made readable and writable for all:
    // the refusal above comes from the mode, not from the switch of uid.
    let open = Options::new().capacity(4096).mode(0o666);
    let shared = Channel::create(Key::PRIVATE, &open).unwrap();
    let _shared_guard = Cleanup::of(&shared);
    let mut peer = spawn_as_nobody(&nobody, &[(ID, shared.id().to_string())]);
    peer.expect_line(&format!("euid {NOBODY}"));
    peer.expect_line("open_id ok");
    peer.join();
}
