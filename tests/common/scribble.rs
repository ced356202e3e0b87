//! A third party that writes into a live channel's segment, and what the
//! property tests of everything read from shared memory share
//! (tests/corruption_props.rs, tests/corruption_lanes.rs): its attach, a
//! watchdog against hangs, the proptest config and the value strategies.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// A second read-write attach of a channel's segment, made with raw
/// `shmat`, as another process would make it.
pub struct Scribbler {
    base: *mut u8,
    len: usize,
}

impl Scribbler {
    /// Attaches segment `shmid`, the whole of it.
    pub fn attach(shmid: i32) -> Scribbler {
        // SAFETY: an all-zero shmid_ds is a valid buffer for IPC_STAT.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: ds is a valid, writable shmid_ds.
        let rc = unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) };
        assert_eq!(rc, 0, "IPC_STAT: {}", std::io::Error::last_os_error());
        // SAFETY: a null address lets the kernel choose where to map.
        let p = unsafe { libc::shmat(shmid, std::ptr::null(), 0) };
        assert_ne!(p as isize, -1, "shmat: {}", std::io::Error::last_os_error());
        Scribbler {
            base: p.cast(),
            len: ds.shm_segsz,
        }
    }

    /// The segment's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes the low `width` (4 or 8) bytes of `value` at `off`.
    pub fn write(&self, off: usize, width: usize, value: u64) {
        assert!(off + width <= self.len && off % width == 0);
        // SAFETY: in bounds and aligned, checked above; this process's
        // handles are not running meanwhile (one thread).
        unsafe {
            let p = self.base.add(off);
            match width {
                4 => p.cast::<u32>().write_volatile(value as u32),
                _ => p.cast::<u64>().write_volatile(value),
            }
        }
    }

    /// Reads `width` (4 or 8) bytes at `off`.
    pub fn read(&self, off: usize, width: usize) -> u64 {
        assert!(off + width <= self.len && off % width == 0);
        // SAFETY: as in `write`.
        unsafe {
            let p = self.base.add(off);
            match width {
                4 => u64::from(p.cast::<u32>().read_volatile()),
                _ => p.cast::<u64>().read_volatile(),
            }
        }
    }

    /// The u32 at `off` as an atomic, for writing while handles of this
    /// process run on other threads.
    pub fn atomic_u32(&self, off: usize) -> &std::sync::atomic::AtomicU32 {
        assert!(off + 4 <= self.len && off % 4 == 0);
        // SAFETY: in bounds and aligned (checked above), mapped for as long
        // as self; every access to header words is atomic.
        unsafe { &*self.base.add(off).cast::<std::sync::atomic::AtomicU32>() }
    }

    pub fn read_u32(&self, off: usize) -> u32 {
        self.read(off, 4) as u32
    }

    pub fn read_u64(&self, off: usize) -> u64 {
        self.read(off, 8)
    }
}

impl Drop for Scribbler {
    fn drop(&mut self) {
        // SAFETY: detaches our own attach; an error leaves nothing to do.
        unsafe { libc::shmdt(self.base.cast()) };
    }
}

/// When the test binary started, for the watchdog.
static START: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Time of the last completed operation (ms since the start).
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Starts (once per test binary) a watchdog that aborts the run if no
/// operation completes for 20 s: a hang is a failure, not a stuck CI.
/// `who` names the test in the message.
pub fn start_watchdog(who: &'static str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let start = *START;
    ONCE.call_once(|| {
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let last = PROGRESS.load(Ordering::Relaxed);
                if start.elapsed().as_millis() as u64 > last + 20_000 {
                    eprintln!("{who}: an operation hung for 20 s");
                    std::process::abort();
                }
            }
        });
    });
}

/// Tells the watchdog that an operation completed.
pub fn progress() {
    PROGRESS.store(START.elapsed().as_millis() as u64, Ordering::Relaxed);
}

/// `PROPTEST_CASES` cases, or `default`; no failure files.
pub fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A value for a header field: the edges, small numbers, frame-aligned
/// positions, anything.
pub fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        0u64..10_000,
        (0u64..512).prop_map(|k| k * 8),
        Just(u64::MAX),
        Just(1u64 << 60),
        Just(u32::MAX as u64),
        any::<u64>(),
    ]
}

/// A frame header word (`len | kind << 32`) for a ring of `capacity`
/// bytes: known and unknown kinds, lengths at the edges; or anything.
pub fn frame_word(capacity: u64) -> impl Strategy<Value = u64> {
    let kind = prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(2u64),
        Just(3u64),
        any::<u32>().prop_map(u64::from)
    ];
    let len = prop_oneof![0u64..64, capacity - 16..capacity + 4, Just(u32::MAX as u64)];
    prop_oneof![(len, kind).prop_map(|(l, k)| l | (k << 32)), any::<u64>()]
}
