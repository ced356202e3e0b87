//! The ceiling: a bare busy-polling single-producer single-consumer ring
//! over a System V segment, with none of shmchan's guarantees. Nothing read
//! from the segment is checked, neither side can sleep (it spins, then
//! yields between polls), a dead peer is never noticed, and there is no
//! header, no version and no semaphore set. It is what the issue's "bare
//! busy-polling SysV ring" reference is: the rate a ring reaches on this
//! machine when it does nothing but move bytes, measured in the same run
//! as everything else, so that shmchan's distance from it is a ratio too.
//!
//! Layout: `head` (u64) at byte 0, `tail` (u64) at byte 128, the data
//! region (`cap` bytes, a power of two) from byte 256. A frame is a u64
//! length, then the payload padded to 8 bytes; a frame never wraps: a
//! length of `WRAP` sends the reader to the start of the region.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::transport::Idle;

const TAIL: usize = 128;
const DATA: usize = 256;
const WRAP: u64 = u64::MAX;

/// An attached bare segment. The parent creates it and marks it removed at
/// once (Linux lets the child attach a removed segment by id while it is
/// attached somewhere), so nothing outlives the round.
pub struct BareSeg {
    base: *mut u8,
    cap: u64,
}

impl BareSeg {
    /// A new private segment of `cap` data bytes (a power of two), attached
    /// and already marked for removal; returns it and its id for the child.
    pub fn create(cap: usize) -> (BareSeg, i32) {
        assert!(
            cap.is_power_of_two() && cap >= 64,
            "bare ring: {cap} is not a power of two"
        );
        // SAFETY: no pointers: a new private segment, ours alone.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, DATA + cap, libc::IPC_CREAT | 0o600) };
        assert!(
            id >= 0,
            "bare ring: shmget: {}",
            std::io::Error::last_os_error()
        );
        let seg = BareSeg::attach(id, cap);
        // SAFETY: IPC_RMID on our own segment; no buffer.
        let r = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        assert_eq!(
            r,
            0,
            "bare ring: shmctl(IPC_RMID): {}",
            std::io::Error::last_os_error()
        );
        (seg, id)
    }

    /// Attaches segment `id` of `cap` data bytes (made by `create`).
    pub fn attach(id: i32, cap: usize) -> BareSeg {
        // SAFETY: the kernel picks the address; a failure is (void*)-1.
        let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        assert!(
            p as isize != -1,
            "bare ring: shmat({id}): {}",
            std::io::Error::last_os_error()
        );
        BareSeg {
            base: p.cast(),
            cap: cap as u64,
        }
    }

    fn index(&self, at: usize) -> &AtomicU64 {
        // SAFETY: `at` is 0 or 128, inside the segment's first 256 bytes,
        // 8-aligned (shmat returns a page); both processes touch these
        // words only atomically.
        unsafe { &*self.base.add(at).cast::<AtomicU64>() }
    }

    fn data(&self, off: u64) -> *mut u8 {
        // SAFETY: callers pass off < cap (a masked position), so the
        // pointer stays inside the segment.
        unsafe { self.base.add(DATA + off as usize) }
    }
}

impl Drop for BareSeg {
    fn drop(&mut self) {
        // SAFETY: our attachment, not used after this.
        unsafe { libc::shmdt(self.base.cast()) };
    }
}

/// The sending end: its own tail, a cached head.
pub struct BareTx {
    seg: BareSeg,
    tail: u64,
    head_cache: u64,
}

/// The receiving end: its own head, a cached tail.
pub struct BareRx {
    seg: BareSeg,
    head: u64,
    tail_cache: u64,
}

impl BareTx {
    pub fn new(seg: BareSeg) -> BareTx {
        BareTx {
            seg,
            tail: 0,
            head_cache: 0,
        }
    }

    fn wait_room(&mut self, need: u64) {
        let mut idle = Idle::new();
        while self.seg.cap - (self.tail - self.head_cache) < need {
            idle.wait();
            // Pairs with the Release store of head in `recv_with`.
            self.head_cache = self.seg.index(0).load(Ordering::Acquire);
        }
    }
}

impl BareRx {
    pub fn new(seg: BareSeg) -> BareRx {
        BareRx {
            seg,
            head: 0,
            tail_cache: 0,
        }
    }
}

impl crate::shared::Source for BareTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        let frame = 8 + (msg.len() as u64).next_multiple_of(8);
        let mut off = self.tail & (self.seg.cap - 1);
        if frame > self.seg.cap - off {
            self.wait_room(self.seg.cap - off);
            // SAFETY: off < cap, 8-aligned: a whole word inside the region.
            unsafe { self.seg.data(off).cast::<u64>().write(WRAP) };
            self.tail += self.seg.cap - off;
            off = 0;
        }
        self.wait_room(frame);
        let p = self.seg.data(off);
        // SAFETY: the frame fits before the region's end (checked above) and
        // the reader is done with these bytes (room waited for).
        unsafe {
            p.cast::<u64>().write(msg.len() as u64);
            std::ptr::copy_nonoverlapping(msg.as_ptr(), p.add(8), msg.len());
        }
        self.tail += frame;
        // Pairs with the Acquire load of tail in `recv_with`.
        self.seg.index(TAIL).store(self.tail, Ordering::Release);
    }
}

impl crate::shared::Sink for BareRx {
    #[inline]
    fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        loop {
            let mut idle = Idle::new();
            while self.head == self.tail_cache {
                // Pairs with the Release store of tail in `send`.
                self.tail_cache = self.seg.index(TAIL).load(Ordering::Acquire);
                if self.head == self.tail_cache {
                    idle.wait();
                }
            }
            let off = self.head & (self.seg.cap - 1);
            let p = self.seg.data(off);
            // SAFETY: a published frame starts at off (the writer's word,
            // trusted: this ring checks nothing).
            let len = unsafe { p.cast::<u64>().read() };
            if len == WRAP {
                self.head += self.seg.cap - off;
                continue;
            }
            // SAFETY: the writer published len payload bytes after the
            // length, before the region's end.
            let r = f(unsafe { std::slice::from_raw_parts(p.add(8), len as usize) });
            self.head += 8 + len.next_multiple_of(8);
            // Pairs with the Acquire load of head in `wait_room`.
            self.seg.index(0).store(self.head, Ordering::Release);
            return r;
        }
    }
}
