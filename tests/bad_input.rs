//! Issue 2, behaviour 7: bad input gets a clear error, never a panic, an
//! abort or a hang. Foreign and corrupt segments are made, and channels are
//! corrupted or removed, by other processes: this test binary run again as
//! a peer or a third party that attaches with raw `shmat`.

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::layout::{DATA_AT, HEAD_AT, RX_WAITING_AT, TAIL_AT, TX_WAITING_AT, VERSION_AT};
use common::{
    Cleanup, Peer, TempKey, env, gettid, hang, peer_main, private_channel, say, spawn_peer,
    wait_for,
};
use shmchan::{Channel, Error, Key, Options, Receiver, Result, Sender};

/// Ring size of the channels made here, and its largest message.
const RING: usize = 4096;
const MAX: usize = RING - 8;
/// Bytes a "hello world" frame takes: 8-byte header, 11 bytes padded to 16.
const FRAME: usize = 24;
/// Frame kinds.
const KIND_MESSAGE: u64 = 1;
const KIND_PADDING: u64 = 2;
/// Generous bound for anything that must not hang (2-core, noisy VM).
const BOUND: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- peers

/// Entry point of the peer processes (does nothing in a normal run).
#[test]
fn peer() {
    peer_main(|role| {
        // A peer never outlives a stuck test by more than this.
        common::peer_watchdog(60);
        match role {
            "tutorial" => tutorial_writer(),
            "holder" => blank_holder(),
            "poke" => poke_peer(),
            "rmid" => rmid_peer(),
            "report_recv" => report_recv(),
            "send_idle" => send_idle(),
            "recv_idle" => recv_idle(),
            "park_recv" => park_recv(),
            "park_send" => park_send(),
            other => panic!("unknown role {other}"),
        }
    });
}

/// The classic tutorial writer: ftok key, a 1 KiB segment, "hello world".
fn tutorial_writer() {
    let key: i32 = env("KEY").parse().expect("KEY");
    let shmid = raw_create(key, 1024);
    let map = RawMap::attach(shmid, false);
    let text = b"hello world\0";
    for (i, &b) in text.iter().enumerate() {
        // SAFETY: i < 12 <= the 1024 bytes of the attached segment.
        unsafe { std::ptr::write_volatile(map.ptr.add(i), b) };
    }
    say(format!("made {shmid}"));
}

/// A creator that made a blank segment big enough for a channel, stays
/// attached, and never writes a header.
fn blank_holder() {
    let key: i32 = env("KEY").parse().expect("KEY");
    let shmid = raw_create(key, DATA_AT + RING);
    let _map = RawMap::attach(shmid, false);
    say(format!("holding {shmid}"));
    hang();
}

/// The third party: writes VALUE (WIDTH bytes) at AT in segment SHMID with
/// a raw, volatile store, and reports what was there.
fn poke_peer() {
    let shmid = env("SHMID").parse().expect("SHMID");
    let at: usize = env("AT").parse().expect("AT");
    let value: u64 = env("VALUE").parse().expect("VALUE");
    let map = RawMap::attach(shmid, false);
    let old = match env("WIDTH").as_str() {
        "4" => {
            let old = map.u32_at(at);
            // SAFETY: u32_at checked that at..at+4 lies in the mapping; the
            // offset is 4-aligned in a page-aligned mapping.
            unsafe { std::ptr::write_volatile(map.ptr.add(at).cast::<u32>(), value as u32) };
            u64::from(old)
        }
        "8" => {
            let old = map.u64_at(at);
            // SAFETY: u64_at checked that at..at+8 lies in the mapping; the
            // offset is 8-aligned in a page-aligned mapping.
            unsafe { std::ptr::write_volatile(map.ptr.add(at).cast::<u64>(), value) };
            old
        }
        other => panic!("WIDTH {other}"),
    };
    say(format!("old {old}"));
}

/// The fallback for a host without `ipcrm`: the same removal, by hand.
fn rmid_peer() {
    let id: i32 = env("ID").parse().expect("ID");
    // SAFETY: IPC_RMID takes no buffer (shmctl) and no fourth argument (semctl).
    let r = unsafe {
        match env("KIND").as_str() {
            "-m" => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            _ => libc::semctl(id, 0, libc::IPC_RMID),
        }
    };
    assert_eq!(r, 0, "IPC_RMID: {}", std::io::Error::last_os_error());
}

fn open_env() -> Channel {
    Channel::open_id(env("SHMID").parse().expect("SHMID")).expect("open by id")
}

/// A receiver that reports `try_recv`, then two messages.
fn report_recv() {
    let chan = open_env();
    let mut rx = chan.receiver().expect("receiver");
    say(variant(&rx.try_recv()));
    let first = rx.recv().expect("first message");
    say(format!("got {}", String::from_utf8_lossy(&first)));
    let second = rx.recv().expect("second message");
    let patterned = second == pattern(second.len());
    say(format!("got {} bytes, patterned {patterned}", second.len()));
}

/// A sender that sends COUNT "hello world"s and stays attached.
fn send_idle() {
    let chan = open_env();
    let mut tx = chan.sender().expect("sender");
    let count: u64 = env("COUNT").parse().expect("COUNT");
    for _ in 0..count {
        tx.send(b"hello world").expect("send");
    }
    say(format!("sent {count}"));
    hang();
}

/// A receiver that attaches, reads nothing, and stays attached.
fn recv_idle() {
    let chan = open_env();
    let _rx = chan.receiver().expect("receiver");
    say("attached");
    hang();
}

/// A receiver that parks in `recv` on an empty ring and reports how it
/// woke.
fn park_recv() {
    let chan = open_env();
    let mut rx = chan.receiver().expect("receiver");
    say(format!("parking {}", gettid()));
    say(variant(&rx.recv()));
}

/// A sender that fills the ring, parks in `send`, and reports how it woke.
fn park_send() {
    let chan = open_env();
    let mut tx = chan.sender().expect("sender");
    let mut sent = 0;
    while tx.try_send(b"hello world").is_ok() {
        sent += 1;
    }
    say(format!("parking {} {sent}", gettid()));
    say(variant(&tx.send(b"hello world")));
}

// -------------------------------------------------------------- helpers

/// A raw System V segment made outside shmchan; removed on drop.
struct RawSegment(i32);

impl Drop for RawSegment {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no buffer; a stale id just fails (ignored).
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// `shmget(key, size, IPC_CREAT | IPC_EXCL | 0600)`, as any program would.
fn raw_create(key: i32, size: usize) -> i32 {
    // SAFETY: shmget takes plain integers.
    let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    id
}

/// A raw `shmat` of a segment; detached on drop.
struct RawMap {
    ptr: *mut u8,
    len: usize,
}

impl RawMap {
    fn attach(shmid: i32, read_only: bool) -> RawMap {
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel choose where to map.
        let ptr = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
        assert!(
            ptr as isize != -1,
            "shmat: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: shmid_ds is plain old data; all-zero is a valid value.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: ds is a valid, writable shmid_ds for the kernel to fill.
        let r = unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) };
        assert_eq!(r, 0, "IPC_STAT: {}", std::io::Error::last_os_error());
        RawMap {
            ptr: ptr.cast(),
            len: ds.shm_segsz,
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        assert!(at % 4 == 0 && at + 4 <= self.len);
        // SAFETY: checked in bounds and aligned just above.
        unsafe { std::ptr::read_volatile(self.ptr.add(at).cast::<u32>()) }
    }

    fn u64_at(&self, at: usize) -> u64 {
        assert!(at % 8 == 0 && at + 8 <= self.len);
        // SAFETY: checked in bounds and aligned just above.
        unsafe { std::ptr::read_volatile(self.ptr.add(at).cast::<u64>()) }
    }

    fn bytes(&self, n: usize) -> Vec<u8> {
        assert!(n <= self.len);
        // SAFETY: checked in bounds just above; read byte by byte, volatile.
        (0..n)
            .map(|i| unsafe { std::ptr::read_volatile(self.ptr.add(i)) })
            .collect()
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        // SAFETY: ptr came from a successful shmat and is detached only here.
        unsafe { libc::shmdt(self.ptr.cast()) };
    }
}

/// Runs a third process that writes `value` (`width` bytes) at `at` in
/// segment `shmid`; returns the value it replaced.
fn poke(shmid: i32, at: usize, width: u32, value: u64) -> u64 {
    let mut p = spawn_peer(
        "peer",
        "poke",
        &[
            ("SHMID", shmid.to_string()),
            ("AT", at.to_string()),
            ("WIDTH", width.to_string()),
            ("VALUE", value.to_string()),
        ],
    );
    let said = p.next_line().expect("the poker reports the old value");
    p.join();
    said.strip_prefix("old ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("poker said {said:?}"))
}

/// `ipcrm -m ID` / `ipcrm -s ID`, the real command; by hand from a third
/// process where it is not installed.
fn ipcrm(flag: &str, id: i32) {
    match Command::new("ipcrm").args([flag, &id.to_string()]).status() {
        Ok(status) => assert!(status.success(), "ipcrm {flag} {id}: {status}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => spawn_peer(
            "peer",
            "rmid",
            &[("KIND", flag.to_owned()), ("ID", id.to_string())],
        )
        .join(),
        Err(e) => panic!("running ipcrm: {e}"),
    }
}

/// The variant name of a result ("Ok", "Removed", "Corrupted", ...), for
/// peers to report; the full error goes to stderr.
fn variant<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "Ok".to_owned(),
        Err(e) => {
            eprintln!("[pid {}] {e}", std::process::id());
            let debug = format!("{e:?}");
            debug.split([' ', '{', '(']).next().unwrap_or("").to_owned()
        }
    }
}

/// Runs `f` on its own thread and fails the test if it panics or does not
/// return within `limit`: "never a panic or a hang", checked.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(BOUND) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} hung for {BOUND:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

fn open_key(key: Key) -> Result<Channel> {
    bounded("Channel::open", move || Channel::open(key))
}

fn open_id(shmid: i32) -> Result<Channel> {
    bounded("Channel::open_id", move || Channel::open_id(shmid))
}

/// The bytes of a max-size message: checkable, not constant.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[track_caller]
fn assert_corrupted<T>(r: Result<T>, call: &str) {
    match r {
        Err(Error::Corrupted { .. }) => {}
        Err(e) => panic!("{call}: expected Corrupted, got {e:?}"),
        Ok(_) => panic!("{call}: expected Corrupted, got Ok"),
    }
}

#[track_caller]
fn assert_not_a_channel(r: Result<Channel>, what: &str) {
    match r {
        Err(Error::NotAChannel { .. }) => {}
        Err(e) => panic!("{what}: expected NotAChannel, got {e:?}"),
        Ok(_) => panic!("{what}: expected NotAChannel, got a channel"),
    }
}

#[track_caller]
fn assert_not_found(r: Result<Channel>, what: &str) {
    match r {
        Err(Error::NotFound { .. }) => {}
        Err(e) => panic!("{what}: expected NotFound, got {e:?}"),
        Ok(_) => panic!("{what}: expected NotFound, got a channel"),
    }
}

// ------------------------------------------------------ keys, not found

#[test]
fn ftok_of_a_missing_path_names_the_path() {
    let path = std::env::temp_dir().join(format!("shmchan-no-such-{}", std::process::id()));
    let err = Key::ftok(&path, b'T').expect_err("ftok of a missing path");
    assert!(matches!(err, Error::Os { .. }), "{err:?}");
    let shown = path.display().to_string();
    assert!(
        err.to_string().contains(&shown),
        "{err} does not name {shown}"
    );
}

#[test]
fn ftok_with_proj_id_zero_is_refused() {
    let tk = TempKey::new(); // the path exists: only proj_id is wrong
    let err = Key::ftok(&tk.path, 0).expect_err("ftok with proj_id 0");
    match &err {
        Error::Os { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{err}")
        }
        other => panic!("expected Os, got {other:?}"),
    }
}

#[test]
fn opening_what_does_not_exist_is_not_found() {
    let tk = TempKey::new();
    assert_not_found(open_key(tk.key), "open of an unused key");
    assert_not_found(open_key(Key::PRIVATE), "open of Key::PRIVATE");
    // An id that existed once: made, then removed.
    let gone = RawSegment(raw_create(libc::IPC_PRIVATE, DATA_AT + RING));
    let id = gone.0;
    drop(gone);
    assert_not_found(open_id(id), "open_id of a removed segment");
}

// --------------------------------------------------- foreign segments

#[test]
fn tutorial_segment_is_not_a_channel() {
    let tk = TempKey::new();
    let mut writer = spawn_peer("peer", "tutorial", &[("KEY", tk.key.raw().to_string())]);
    let said = writer.next_line().expect("the writer reports its segment");
    let shmid: i32 = said
        .strip_prefix("made ")
        .and_then(|s| s.parse().ok())
        .expect(&said);
    let _segment = RawSegment(shmid);
    writer.join();

    assert_not_a_channel(open_key(tk.key), "open of the tutorial's key");
    assert_not_a_channel(open_id(shmid), "open_id of the tutorial's segment");
    let key = tk.key;
    let create = bounded("create", move || Channel::create(key, &Options::new()));
    assert!(
        matches!(create, Err(Error::AlreadyExists { .. })),
        "{create:?}"
    );
    let replace = bounded("create(replace_stale)", move || {
        Channel::create(key, &Options::new().replace_stale(true))
    });
    assert_not_a_channel(replace, "create with replace_stale over it");
    // Nobody wrote to the other program's segment, or removed it.
    assert_eq!(RawMap::attach(shmid, true).bytes(12), b"hello world\0");
}

#[test]
fn blank_segment_is_not_a_channel() {
    let tk = TempKey::new();
    let blank = RawSegment(raw_create(tk.key.raw(), DATA_AT + RING));
    assert_not_a_channel(open_key(tk.key), "open of a blank segment");
    assert_not_a_channel(open_id(blank.0), "open_id of a blank segment");
}

#[test]
fn blank_segment_of_a_stuck_creator_is_not_a_channel_after_a_bounded_wait() {
    let tk = TempKey::new();
    let mut holder = spawn_peer("peer", "holder", &[("KEY", tk.key.raw().to_string())]);
    let said = holder.next_line().expect("the holder reports its segment");
    let shmid: i32 = said
        .strip_prefix("holding ")
        .and_then(|s| s.parse().ok())
        .expect(&said);
    let _segment = RawSegment(shmid);
    // Someone is attached, so open waits for a header that never comes.
    let start = Instant::now();
    assert_not_a_channel(open_key(tk.key), "open of a blank, held segment");
    eprintln!("open gave up after {:?}", start.elapsed());
    assert_not_a_channel(open_id(shmid), "open_id of a blank, held segment");
}

#[test]
fn segment_smaller_than_a_header_is_not_a_channel() {
    let tiny = RawSegment(raw_create(libc::IPC_PRIVATE, 100));
    assert_not_a_channel(open_id(tiny.0), "open_id of a 100-byte segment");
}

#[test]
fn header_of_another_version_is_a_version_mismatch() {
    let tk = TempKey::new();
    let chan = Channel::create(tk.key, &Options::new()).expect("create");
    let _guard = Cleanup::of(&chan);
    // Version 1 (one sender, no lanes) is another layout now.
    assert_eq!(poke(chan.id(), VERSION_AT, 4, 1), 2, "version field");
    for r in [open_key(tk.key), open_id(chan.id())] {
        match r {
            Err(Error::VersionMismatch {
                found, expected, ..
            }) => {
                assert_eq!((found, expected), (1, 2))
            }
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
    }
    // With the version put back, the same channel opens: only it was wrong.
    assert_eq!(poke(chan.id(), VERSION_AT, 4, 2), 1);
    open_key(tk.key).expect("open with version 2 again");
}

// -------------------------------------------------- too large a message

#[track_caller]
fn assert_too_large<T>(r: Result<T>, len: usize) {
    match r {
        Err(Error::MessageTooLarge { len: l, max: m }) => assert_eq!((l, m), (len, MAX)),
        Err(e) => panic!("expected MessageTooLarge, got {e:?}"),
        Ok(_) => panic!("expected MessageTooLarge, got Ok"),
    }
}

#[test]
fn message_longer_than_the_maximum_is_refused_and_nothing_is_written() {
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    assert_eq!((tx.max_message_len(), chan.max_message_len()), (MAX, MAX));
    let big = vec![b'x'; MAX + 1];
    assert_too_large(tx.send(&big), MAX + 1);
    assert_too_large(tx.try_send(&big), MAX + 1);
    assert_too_large(tx.send_timeout(&big, Duration::from_secs(1)), MAX + 1);
    assert_too_large(tx.reserve(MAX + 1), MAX + 1);
    assert_too_large(tx.try_reserve(usize::MAX), usize::MAX);

    let mut rx = spawn_peer("peer", "report_recv", &[("SHMID", chan.id().to_string())]);
    rx.expect_line("Empty");
    tx.send(b"next")
        .expect("a valid message after the refused ones");
    tx.send(&pattern(MAX))
        .expect("a message of exactly the maximum");
    rx.expect_line("got next");
    rx.expect_line(&format!("got {MAX} bytes, patterned true"));
    rx.join();
}

// ------------------------------------------------ corrupted under use

/// A private channel; a sender process that sent `sent` "hello world"s
/// and stays attached; this process's receiver after reading `read`.
fn queued(sent: u64, read: u64) -> (Cleanup, Channel, Receiver, Peer) {
    let (chan, guard) = private_channel(RING);
    let mut rx = chan.receiver().expect("receiver");
    let mut tx = spawn_peer(
        "peer",
        "send_idle",
        &[
            ("SHMID", chan.id().to_string()),
            ("COUNT", sent.to_string()),
        ],
    );
    tx.expect_line(&format!("sent {sent}"));
    for _ in 0..read {
        assert_eq!(rx.try_recv().expect("an intact message"), b"hello world");
    }
    (guard, chan, rx, tx)
}

/// A third process writes `bad` (`width` bytes) at `at`, where it expects
/// `old`: every receive on `rx` is then `Corrupted`, and stays so after the
/// field is put back (the handle is poisoned).
fn assert_receiver_poisoned(
    chan: &Channel,
    rx: &mut Receiver,
    (at, width): (usize, u32),
    (old, bad): (u64, u64),
) {
    assert_eq!(poke(chan.id(), at, width, bad), old, "field at {at}");
    match rx.try_recv() {
        Err(e @ Error::Corrupted { .. }) => eprintln!("receiver: {e}"),
        other => panic!("expected Corrupted, got {other:?}"),
    }
    // While the corruption is there, even blocking calls cannot block.
    assert_corrupted(rx.recv(), "recv");
    assert_corrupted(rx.recv_into(&mut Vec::new()), "recv_into");
    assert_corrupted(rx.recv_ref().map(|g| g.len()), "recv_ref");
    assert_corrupted(rx.try_recv_ref().map(|g| g.len()), "try_recv_ref");
    assert_corrupted(rx.recv_timeout(Duration::from_secs(1)), "recv_timeout");
    assert!(rx.iter().next().is_none(), "iter went on after corruption");
    // Put back, the field is fine again; the handle stays poisoned.
    assert_eq!(poke(chan.id(), at, width, old), bad);
    assert_corrupted(rx.try_recv(), "try_recv after repair");
    let limit = Duration::from_secs(1);
    assert_corrupted(rx.recv_timeout(limit), "recv_timeout after repair");
    assert_corrupted(
        rx.recv_ref_timeout(limit).map(|g| g.len()),
        "recv_ref_timeout after repair",
    );
}

#[test]
fn head_beyond_tail_poisons_the_receiver() {
    let (_guard, chan, mut rx, _tx) = queued(3, 1);
    let (head, tail) = (FRAME as u64, 3 * FRAME as u64);
    assert_receiver_poisoned(&chan, &mut rx, (HEAD_AT, 8), (head, tail + 64));
}

#[test]
fn tail_beyond_head_plus_capacity_poisons_the_receiver() {
    let (_guard, chan, mut rx, _tx) = queued(3, 3);
    let tail = 3 * FRAME as u64;
    let bad = tail + RING as u64 + 8;
    assert_receiver_poisoned(&chan, &mut rx, (TAIL_AT, 8), (tail, bad));
}

/// Where the header of frame 1 (the second "hello world") is.
const FRAME1_LEN_AT: usize = DATA_AT + FRAME;
const FRAME1_KIND_AT: usize = FRAME1_LEN_AT + 4;

#[test]
fn frame_length_past_the_committed_bytes_poisons_the_receiver() {
    // Below the maximum, but 24 bytes are committed and it claims 4088
    // (which would also run past the end of the region).
    let (_guard, chan, mut rx, _tx) = queued(2, 1);
    assert_receiver_poisoned(&chan, &mut rx, (FRAME1_LEN_AT, 4), (11, MAX as u64));
}

#[test]
fn frame_length_beyond_the_maximum_poisons_the_receiver() {
    let (_guard, chan, mut rx, _tx) = queued(2, 1);
    let bad = u64::from(u32::MAX);
    assert_receiver_poisoned(&chan, &mut rx, (FRAME1_LEN_AT, 4), (11, bad));
}

#[test]
fn unknown_frame_kind_poisons_the_receiver() {
    let (_guard, chan, mut rx, _tx) = queued(2, 1);
    assert_receiver_poisoned(&chan, &mut rx, (FRAME1_KIND_AT, 4), (KIND_MESSAGE, 7));
}

#[test]
fn padding_frame_short_of_the_region_end_poisons_the_receiver() {
    let (_guard, chan, mut rx, _tx) = queued(2, 1);
    let kinds = (KIND_MESSAGE, KIND_PADDING);
    assert_receiver_poisoned(&chan, &mut rx, (FRAME1_KIND_AT, 4), kinds);
}

#[test]
fn head_beyond_tail_poisons_the_sender_when_it_needs_room() {
    let (chan, _guard) = private_channel(RING);
    let mut tx = chan.sender().expect("sender");
    let mut sent = 0;
    while tx.try_send(b"hello world").is_ok() {
        sent += 1;
    }
    // 170 frames of 24 bytes, then padding to the end: tail is at RING.
    assert_eq!(sent, RING / FRAME);
    let mut rx = spawn_peer("peer", "recv_idle", &[("SHMID", chan.id().to_string())]);
    rx.expect_line("attached");
    let tail = RING as u64;
    assert_eq!(poke(chan.id(), HEAD_AT, 8, tail + 64), 0, "head");
    match tx.try_send(b"hello world") {
        Err(e @ Error::Corrupted { .. }) => eprintln!("sender: {e}"),
        other => panic!("expected Corrupted, got {other:?}"),
    }
    assert_corrupted(tx.send(b"hello world"), "send");
    assert_corrupted(tx.reserve(11).map(|g| g.len()), "reserve");
    assert_corrupted(tx.try_reserve(11).map(|g| g.len()), "try_reserve");
    let limit = Duration::from_secs(1);
    assert_corrupted(tx.send_timeout(b"hello world", limit), "send_timeout");
    // Put back, the ring is merely full (Full, or a wait); the handle stays
    // poisoned.
    assert_eq!(poke(chan.id(), HEAD_AT, 8, 0), tail + 64);
    assert_corrupted(tx.try_send(b"hello world"), "try_send after repair");
    assert_corrupted(tx.send_timeout(b"x", limit), "send_timeout after repair");
    assert_corrupted(
        tx.reserve_timeout(1, limit).map(|g| g.len()),
        "reserve_timeout",
    );
}

// ------------------------------------------- removed under live parties

/// Reads "parking TID [N]" from a peer and waits until that thread sleeps
/// with its waiting flag (at `flag_at` in the segment) raised.
fn wait_parked(peer: &mut Peer, shmid: i32, flag_at: usize) -> Vec<String> {
    let said = peer.next_line().expect("the peer says it parks");
    let words: Vec<String> = said.split(' ').map(str::to_owned).collect();
    assert_eq!(words[0], "parking", "peer said {said:?}");
    let tid: i32 = words[1].parse().expect("tid");
    let map = RawMap::attach(shmid, true);
    wait_for(BOUND, "the peer to park", || {
        common::proc_state(tid) == Some('S') && map.u32_at(flag_at) == 1
    });
    words
}

/// Removes an object with ipcrm under a parked peer and returns what the
/// peer's blocking call gave it.
fn remove_under_parked(mut peer: Peer, flag: &str, id: i32) -> String {
    let start = Instant::now();
    ipcrm(flag, id);
    let woke = peer
        .next_line()
        .expect("the parked peer reports how it woke");
    let took = start.elapsed();
    eprintln!("ipcrm {flag}: parked peer woke with {woke} after {took:?}");
    assert!(took < BOUND, "the parked peer took {took:?} to notice");
    peer.join();
    woke
}

fn assert_removed_or_disconnected(what: &str, said: &str) {
    assert!(
        said == "Removed" || said == "Disconnected",
        "{what}: expected Removed or Disconnected, got {said}"
    );
}

/// A channel whose sender is here and whose receiver, in another process,
/// is parked in `recv`.
fn parked_receiver() -> (Cleanup, Channel, Sender, Peer) {
    let (chan, guard) = private_channel(RING);
    let tx = chan.sender().expect("sender");
    let mut rx = spawn_peer("peer", "park_recv", &[("SHMID", chan.id().to_string())]);
    wait_parked(&mut rx, chan.id(), RX_WAITING_AT);
    (guard, chan, tx, rx)
}

#[test]
fn ipcrm_of_the_segment_wakes_a_parked_receiver() {
    let (_guard, chan, mut tx, rx) = parked_receiver();
    let woke = remove_under_parked(rx, "-m", chan.id());
    assert_removed_or_disconnected("parked receiver", &woke);
    let sent = variant(&tx.send(b"hello world"));
    assert_removed_or_disconnected("sender after the receiver left", &sent);
}

#[test]
fn ipcrm_of_the_semaphores_wakes_a_parked_receiver() {
    let (_guard, chan, mut tx, rx) = parked_receiver();
    let woke = remove_under_parked(rx, "-s", chan.sem_id());
    assert_removed_or_disconnected("parked receiver", &woke);
    let sent = variant(&tx.send(b"hello world"));
    assert_removed_or_disconnected("sender with its semaphores gone", &sent);
}

/// A channel whose receiver is here and whose sender, in another process,
/// filled the ring and is parked in `send`; returns how many it sent.
fn parked_sender() -> (Cleanup, Channel, Receiver, Peer, usize) {
    let (chan, guard) = private_channel(RING);
    let rx = chan.receiver().expect("receiver");
    let mut tx = spawn_peer("peer", "park_send", &[("SHMID", chan.id().to_string())]);
    let words = wait_parked(&mut tx, chan.id(), TX_WAITING_AT);
    let sent = words[2].parse().expect("count");
    (guard, chan, rx, tx, sent)
}

/// Receives until an error, which must be Removed or Disconnected; every
/// message before it is intact, and none is one the sender did not commit.
fn drain_after_removal(rx: &mut Receiver, committed: usize) {
    let mut got = 0;
    let end = loop {
        match rx.recv_timeout(BOUND) {
            Ok(msg) => assert_eq!(msg, b"hello world"),
            Err(e) => break e,
        }
        got += 1;
    };
    assert!(
        got <= committed,
        "received {got}, only {committed} were sent"
    );
    assert_removed_or_disconnected("receiver", &variant::<()>(&Err(end)));
}

#[test]
fn ipcrm_of_the_segment_wakes_a_parked_sender() {
    let (_guard, chan, mut rx, tx, sent) = parked_sender();
    let woke = remove_under_parked(tx, "-m", chan.id());
    assert_removed_or_disconnected("parked sender", &woke);
    drain_after_removal(&mut rx, sent);
}

#[test]
fn ipcrm_of_the_semaphores_wakes_a_parked_sender() {
    let (_guard, chan, mut rx, tx, sent) = parked_sender();
    let woke = remove_under_parked(tx, "-s", chan.sem_id());
    assert_removed_or_disconnected("parked sender", &woke);
    drain_after_removal(&mut rx, sent);
}
