//! What a C handle is: a token that names a slot of a table, never a
//! pointer that C could make dangle.
//!
//! A handle given to C is `(generation << INDEX_BITS) | slot` cast
//! to the opaque pointer type (`shmchan_sender *`, ...), which C never
//! dereferences. Every call looks the slot up and compares the slot's
//! state with the handle's generation and kind; closing bumps the
//! generation before the object is freed. So a handle that was closed, was
//! never issued, is NULL or names another kind of object is an error code,
//! never a read of freed memory, whatever the caller kept of it. A slot is
//! reused only with a new generation: a stale handle matches a live object
//! only after 2^48 reuses of its slot (2^16 on a 32-bit target).
//!
//! The table is one static array of 2^16 slots, of which slot 0 is never
//! used (so that no handle is 0, and NULL names a slot that never matches):
//! the handle's low 16 bits index it with no bounds check, and a lookup is
//! one load of the slot's state and one of its object, with no chunk
//! pointer to load first. On a send's or receive's fast path every
//! instruction and every load in that chain counts
//! (`benchmarks/README.md`, "The C interface's call overhead"). The
//! table is 1.5 MiB of zeroed address space (24-byte slots), of which the
//! pages that hold live handles are touched. So a process has at most
//! 65,535 handles open at once (SysV's limits on segments bind long
//! before); one more is `SHMCHAN_E_INVALID_ARGUMENT`.
//!
//! What the table does not do is make a handle `Sync`: a sender or
//! receiver is used by one thread at a time, and closing a handle must not
//! race with another call on it (the header says so; the lookup is a few
//! plain loads, no lock, so that a call costs what the Rust call costs).
//!
//! `unsafe` here: the lookup hands out the object behind a slot, which
//! the table owns (a `Box` turned into a raw pointer) from `insert` to
//! `remove`.
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::status::{Failure, run, shmchan_status};

/// Bits of a handle that name the slot.
const INDEX_BITS: u32 = 16;
/// The table's length: every value of the index bits.
const SLOTS_LEN: usize = 1 << INDEX_BITS;
/// How many handles can be open at once in a process (all slots but 0).
const MAX_SLOTS: usize = SLOTS_LEN - 1;
/// The generation's bits, above the index.
const GEN_MASK: usize = usize::MAX >> INDEX_BITS;

/// One table entry: `state` is `generation << 2 | kind` while an object
/// of that kind lives in `object`, `generation << 2` while free. `fast`
/// is what the object's `Handled::fast` gave after the last call on it
/// (NULL during a call, and while free): the fast paths' way to the
/// sender or receiver, one load from the slot instead of two.
struct Slot {
    state: AtomicUsize,
    object: AtomicPtr<()>,
    fast: AtomicPtr<()>,
}

static SLOTS: [Slot; SLOTS_LEN] = [const {
    Slot {
        state: AtomicUsize::new(0),
        object: AtomicPtr::new(ptr::null_mut()),
        fast: AtomicPtr::new(ptr::null_mut()),
    }
}; SLOTS_LEN];

/// Slots to hand out: freed ones first, then never used ones from `next`.
/// Taken only by `insert` and `remove`, never by a lookup.
struct Alloc {
    free: Vec<usize>,
    next: usize,
}

static ALLOC: Mutex<Alloc> = Mutex::new(Alloc {
    free: Vec::new(),
    next: 1,
});

/// A Rust object that C holds through a handle of type `*mut Self::C`.
pub(crate) trait Handled: Sized {
    /// The kind stored in the slot's state (1, 2 or 3).
    const KIND: usize;
    /// The opaque C type.
    type C;
    /// The kind's name, for error messages.
    const NAME: &'static str;
    /// What an entry point's fast path works on (`find_fast`).
    type Fast;
    /// The object's `Fast` part when a fast path may use it without
    /// looking at the rest of the object (no message held, no reservation
    /// outstanding); NULL when it may not, or the kind has no fast path.
    fn fast(&mut self) -> *mut Self::Fast {
        ptr::null_mut()
    }
}

/// Hands `object` to the table and returns its handle.
pub(crate) fn insert<T: Handled>(object: T) -> Result<*mut T::C, Failure> {
    let mut alloc = ALLOC.lock().unwrap_or_else(PoisonError::into_inner);
    let index = match alloc.free.pop() {
        Some(index) => index,
        None if alloc.next < SLOTS_LEN => {
            alloc.next += 1;
            alloc.next - 1
        }
        None => return Err(Failure::too_many_handles(MAX_SLOTS)),
    };
    let slot = slot(index).ok_or_else(Failure::internal_table)?;
    let generation = slot.state.load(Ordering::Relaxed) >> 2;
    let raw = Box::into_raw(Box::new(object));
    // SAFETY: just made from a Box, and not yet shared.
    let fast = unsafe { (*raw).fast() };
    slot.fast.store(fast.cast::<()>(), Ordering::Relaxed);
    slot.object.store(raw.cast::<()>(), Ordering::Relaxed);
    // SYNC: Release, so that a thread that sees this state in `find`
    // (Acquire) also sees `object`, `fast` and the object they point to.
    slot.state
        .store(generation << 2 | T::KIND, Ordering::Release);
    Ok(ptr::without_provenance_mut(
        generation << INDEX_BITS | index,
    ))
}

/// The object behind `handle`, shared: for the channel handle, which C may
/// use from several threads at once (`Channel` is `Sync`).
///
/// # Safety
///
/// No call may close `handle` before the reference is dropped.
pub(crate) unsafe fn get<'a, T: Handled + Sync>(handle: *mut T::C) -> Result<&'a T, Failure> {
    let (_, object) = lookup::<T>(handle)?;
    // SAFETY: the slot's state matched the handle, so `object` is the live
    // Box of a T inserted by `insert`; the caller keeps it from `remove`.
    Ok(unsafe { object.as_ref() })
}

/// The object behind `handle`, for a sender or receiver.
///
/// # Safety
///
/// No other call may use `handle` until the reference is dropped (the
/// header's rule: one thread at a time, and close races with nothing).
#[inline]
pub(crate) unsafe fn get_mut<'a, T: Handled>(handle: *mut T::C) -> Result<&'a mut T, Failure> {
    let (_, mut object) = lookup::<T>(handle)?;
    // SAFETY: as in `get`, and the caller's promise makes it unique.
    Ok(unsafe { object.as_mut() })
}

/// Runs one entry point on the object behind `handle` (see `status::run`),
/// with the slot's fast part withdrawn for the call (see `Slot`).
///
/// # Safety
///
/// No other call uses `handle` meanwhile (the header's thread rule).
#[inline]
pub(crate) unsafe fn with<T: Handled>(
    handle: *mut T::C,
    f: impl FnOnce(&mut T) -> Result<(), Failure>,
) -> shmchan_status {
    run(move || {
        // SAFETY: no other call uses the handle, by the caller's promise.
        let object = unsafe { get_mut::<T>(handle) }?;
        let slot = &SLOTS[handle.addr() & (SLOTS_LEN - 1)];
        // No fast path while `f` may change what `fast` depends on; if `f`
        // panics, none until the next call that returns.
        slot.fast.store(ptr::null_mut(), Ordering::Relaxed);
        let result = f(object);
        slot.fast
            .store(object.fast().cast::<()>(), Ordering::Relaxed);
        result
    })
}

/// Takes the object behind `handle` out of the table (the handle is
/// closed from here on) and gives it back to be dropped.
///
/// # Safety
///
/// No other call may be using `handle` (close races with nothing).
pub(crate) unsafe fn remove<T: Handled>(handle: *mut T::C) -> Result<Box<T>, Failure> {
    let mut alloc = ALLOC.lock().unwrap_or_else(PoisonError::into_inner);
    // Under the lock: of two closes of one handle, one finds it.
    let (index, object) = lookup::<T>(handle)?;
    let slot = slot(index).ok_or_else(Failure::internal_table)?;
    let next = ((slot.state.load(Ordering::Relaxed) >> 2).wrapping_add(1)) & GEN_MASK;
    // SYNC: Release: pairs with the Acquire loads in `find` and
    // `find_fast`; from here on no lookup of the old handle succeeds.
    slot.state.store(next << 2, Ordering::Release);
    slot.fast.store(ptr::null_mut(), Ordering::Relaxed);
    slot.object.store(ptr::null_mut(), Ordering::Relaxed);
    alloc.free.push(index);
    drop(alloc);
    // SAFETY: `object` came from `Box::into_raw` in `insert` for a T (the
    // kind matched), and the slot no longer names it: this is its only
    // owner.
    Ok(unsafe { Box::from_raw(object.as_ptr()) })
}

/// The slot index and object a handle names, if it names a live `T`.
#[inline]
fn lookup<T: Handled>(handle: *mut T::C) -> Result<(usize, NonNull<T>), Failure> {
    if handle.is_null() {
        return Err(Failure::null(T::NAME));
    }
    find::<T>(handle).ok_or_else(|| Failure::closed(T::NAME))
}

/// `lookup` without the reason it failed (NULL names slot 0, whose state
/// never matches: its kind stays 0).
#[inline(always)]
fn find<T: Handled>(handle: *mut T::C) -> Option<(usize, NonNull<T>)> {
    let value = handle.addr();
    let index = value & (SLOTS_LEN - 1);
    let slot = slot(index)?;
    // SYNC: Acquire: pairs with the Release stores in `insert` and `remove`.
    if slot.state.load(Ordering::Acquire) != (value >> INDEX_BITS) << 2 | T::KIND {
        return None;
    }
    NonNull::new(slot.object.load(Ordering::Relaxed).cast::<T>()).map(|object| (index, object))
}

/// The `Fast` part of the object behind `handle`, for an entry point's
/// fast path, which runs outside `catch_unwind` (see `lib.rs`): `None`
/// wherever `get_mut` would fail, and whenever the object's `fast` said
/// NULL after its last call; no error built, nothing that can panic.
///
/// # Safety
///
/// As `get_mut`.
#[inline(always)]
pub(crate) unsafe fn find_fast<'a, T: Handled>(handle: *mut T::C) -> Option<&'a mut T::Fast> {
    let value = handle.addr();
    let slot = &SLOTS[value & (SLOTS_LEN - 1)];
    // SYNC: Acquire: pairs with the Release stores in `insert` and `remove`.
    if slot.state.load(Ordering::Acquire) != (value >> INDEX_BITS) << 2 | T::KIND {
        return None;
    }
    let mut fast = NonNull::new(slot.fast.load(Ordering::Relaxed).cast::<T::Fast>())?;
    // SAFETY: the state matched, so the slot holds a live T, and `fast` is
    // what that T's `fast` gave after its last call: a part of it that a
    // fast path may use alone. The caller's promise makes it unique.
    Some(unsafe { fast.as_mut() })
}

/// The slot at `index`, if there is one.
#[inline(always)]
fn slot(index: usize) -> Option<&'static Slot> {
    SLOTS.get(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(u32);
    struct CThing;
    impl Handled for Thing {
        const KIND: usize = 3;
        type C = CThing;
        const NAME: &'static str = "thing";
        type Fast = u32;

        /// The number, while it is even.
        fn fast(&mut self) -> *mut u32 {
            if self.0 % 2 == 0 {
                &raw mut self.0
            } else {
                ptr::null_mut()
            }
        }
    }
    struct Other;
    impl Handled for Other {
        const KIND: usize = 2;
        type C = CThing;
        const NAME: &'static str = "other";
        type Fast = ();
    }

    #[test]
    fn a_closed_handle_is_an_error_even_after_its_slot_is_reused() {
        let a = insert(Thing(1)).expect("insert");
        // SAFETY: this test is the only user of the handles.
        unsafe {
            assert_eq!(get_mut::<Thing>(a).ok().map(|t| t.0), Some(1));
            assert!(remove::<Thing>(a).is_ok());
            assert!(get_mut::<Thing>(a).is_err());
            assert!(remove::<Thing>(a).is_err());
            let b = insert(Thing(2)).expect("insert");
            assert_ne!(a, b);
            assert!(get_mut::<Thing>(a).is_err());
            assert!(get_mut::<Other>(b).is_err(), "another kind");
            assert!(get_mut::<Thing>(ptr::null_mut()).is_err());
            assert!(get_mut::<Thing>(ptr::without_provenance_mut(usize::MAX)).is_err());
            assert!(remove::<Thing>(b).is_ok());
        }
    }

    #[test]
    fn the_fast_part_follows_each_call_and_a_panic_leaves_none() {
        let h = insert(Thing(2)).expect("insert");
        let set = |n| {
            move |t: &mut Thing| {
                t.0 = n;
                Ok(())
            }
        };
        // SAFETY: this test is the only user of the handle, and each
        // reference from `find_fast` is dropped before the next call.
        unsafe {
            assert_eq!(find_fast::<Thing>(h).map(|n| *n), Some(2));
            assert_eq!(with::<Thing>(h, set(3)), shmchan_status::SHMCHAN_OK);
            assert!(find_fast::<Thing>(h).is_none(), "odd: no fast path");
            assert_eq!(with::<Thing>(h, set(4)), shmchan_status::SHMCHAN_OK);
            assert_eq!(find_fast::<Thing>(h).map(|n| *n), Some(4));
            let status = with::<Thing>(h, |_| panic!("in the middle of a call"));
            assert_eq!(status, shmchan_status::SHMCHAN_E_INTERNAL);
            assert!(find_fast::<Thing>(h).is_none(), "after a panic, none");
            assert_eq!(with::<Thing>(h, |_| Ok(())), shmchan_status::SHMCHAN_OK);
            assert_eq!(find_fast::<Thing>(h).map(|n| *n), Some(4));
            assert!(find_fast::<Other>(h).is_none(), "another kind");
            assert!(remove::<Thing>(h).is_ok());
            assert!(find_fast::<Thing>(h).is_none(), "closed");
            assert!(find_fast::<Thing>(ptr::null_mut()).is_none());
        }
    }
}
