//! Waiting: spin for a bounded time, then yield, then park on a semaphore;
//! and the waiting flags that make a wake-up free when nobody sleeps.
//!
//! No system calls here: parking goes through the [`Park`] trait, which the
//! channel implements over its semaphore set and a model checker can
//! implement over its own primitives.
//!
//! # Why no wake-up is lost
//!
//! The sleeper (say the receiver, waiting for data) and the waker (the
//! sender, after publishing `tail`) run this handshake on the sleeper's
//! waiting flag `W` and the ring index `I` that the waker moves:
//!
//! ```text
//! sleeper                          waker
//! W.store(1)                       I.store(new)         (Release)
//! fence(SeqCst)   -- F1            fence(SeqCst)   -- F2
//! if I shows work: W=0, return     if W.swap(0) == 1: post the semaphore
//! park (semaphore -1)
//! ```
//!
//! F1 and F2 are SeqCst fences, so they are totally ordered. If F1 comes
//! first, the waker's load of `W` after F2 sees the sleeper's `W = 1`, swaps
//! it to 0 and posts: the semaphore count is then at least 1 and the
//! sleeper's park returns at once, whether it has started to park or not. If
//! F2 comes first, the sleeper's check of `I` after F1 sees the new index and
//! it does not park. Either way a sleeper with work to do is woken. The
//! semaphore counts posts, so a post that lands before the park is not
//! forgotten.
//!
//! A post can be surplus (the sleeper timed out and cleared `W` itself, or a
//! peer's death posted too). Before raising `W` the sleeper drains its
//! semaphore without blocking: every post taken there was made after a
//! change that the check after F1 then sees (a waker posts after its index
//! store; a death's undo changes ALIVE in the same semop as the post), and
//! every post made later is left for the park. So surplus posts cost at
//! most one spurious loop and never pile up across parks, and the drain's
//! system call stays off the path from a post to the sleeper's return.
//!
//! # The asymmetric form
//!
//! F2 runs on every message the waker sends or receives, and a full fence
//! there waits for the payload's stores to leave the store buffer. A channel
//! created on a kernel with `membarrier(2)` (the header's `FLAG_MEMBARRIER`)
//! moves that cost to the sleeper, which is about to park anyway:
//!
//! ```text
//! sleeper                          waker
//! W.store(1)                       I.store(new)         (Release)
//! membarrier(GLOBAL_EXPEDITED) F1' compiler_fence  -- F2'
//! if I shows work: W=0, return     if W.swap(0) == 1: post the semaphore
//! park (semaphore -1)
//! ```
//!
//! Every party of such a channel registered its process for global
//! expedited barriers when it attached (attaching fails otherwise), so F1'
//! returns only after each CPU running the waker has executed a full
//! barrier (a waker that is not running passed one at its context switch).
//! That barrier falls somewhere in the waker's program. If it falls after
//! `I.store`, the store is visible when F1' returns and the sleeper's check
//! sees it. If it falls before `W.load`, the load runs after F1' began, and
//! F1' begins with a full barrier on the sleeper that makes `W = 1` visible
//! first, so the waker posts. Since `I.store` precedes `W.load` in the
//! waker's program (F2' keeps the compiler from swapping them; whatever the
//! hardware reorders, the barrier orders each access before it ahead of
//! each access after it), every point satisfies one of the two. This is the pattern of liburcu's
//! membarrier flavour and Folly's `asymmetricHeavyBarrier`; loom cannot
//! express a barrier that lands in another thread at an arbitrary point, so
//! the models check the symmetric form and this argument stands for the
//! asymmetric one (docs/verification.md).

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ring::Pace;
use crate::sync::{AtomicU32, Ordering, seqcst_fence};

/// Which form of the handshake a channel uses (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fences {
    /// A SeqCst fence on both sides (F1, F2).
    Symmetric,
    /// A compiler fence on the waker, `membarrier` on the sleeper (F1', F2').
    Asymmetric,
}

/// Default time a side spins (then yields) before parking.
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// What the caller's poll is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Cheap check only (no system call): is the ring ready?
    Spin,
    /// The waiting flag is up; last full check before parking, which may
    /// look at liveness (and return `Disconnected`).
    BeforePark,
}

/// Parking on the side's own wake semaphore.
pub(crate) trait Park {
    /// Sleeps until posted, until `deadline` (then `Err(Timeout)`), or
    /// spuriously (`Ok`).
    fn park(&mut self, deadline: Option<Instant>) -> Result<()>;
    /// Takes surplus posts off the semaphore without blocking.
    fn drain(&mut self) -> Result<()>;
    /// F1' of the asymmetric form: a full barrier on every CPU running a
    /// registered process (`membarrier`).
    fn heavy_barrier(&mut self) -> Result<()>;
}

/// Raises the waiting flag: the step before the last check.
fn announce(flag: &AtomicU32, fences: Fences, parker: &mut impl Park) -> Result<()> {
    set_flag(flag, 1);
    match fences {
        // SYNC: F1 in the module comment; pairs with the fence in `notify`.
        Fences::Symmetric => seqcst_fence!(AnnounceFence),
        // SYNC: F1'; pairs with the compiler fence in `notify`.
        Fences::Asymmetric => parker.heavy_barrier()?,
    }
    Ok(())
}

/// The sleeper's plain store to its own waiting flag (a swap under loom).
///
/// loom does not keep one modification order between a plain store and a
/// concurrent read-modify-write of the same atomic (tokio-rs/loom#254,
/// #282), and the waker's `swap` is one: a later load could then read a
/// value the C11 model rules out, and loom reports a lost wake-up that
/// cannot happen. A relaxed swap orders the sleeper's writes as C11 orders
/// a store, so under loom the flag is written with swaps only.
#[inline(always)]
pub(crate) fn set_flag(flag: &AtomicU32, value: u32) {
    #[cfg(not(all(test, loom)))]
    flag.store(value, Ordering::Relaxed);
    #[cfg(all(test, loom))]
    flag.swap(value, Ordering::Relaxed);
}

/// The waker's half: after publishing its index, tells whether the peer
/// announced it would sleep (and clears the flag). The caller then posts.
#[inline(always)]
pub(crate) fn notify(flag: &AtomicU32, fences: Fences) -> bool {
    match fences {
        // SYNC: F2 in the module comment; pairs with the fence in `announce`.
        Fences::Symmetric => seqcst_fence!(NotifyFence),
        // SYNC: F2'; pairs with the membarrier in `announce`, which makes
        // the hardware fence here unnecessary. Keeps the compiler from
        // moving the flag's load above the index store before it.
        Fences::Asymmetric => std::sync::atomic::compiler_fence(Ordering::SeqCst),
    }
    // A plain load first keeps the flag's cache line shared while nobody
    // sleeps; the swap makes sure only one post is made per announcement.
    flag.load(Ordering::Relaxed) != 0 && flag.swap(0, Ordering::Relaxed) == 1
}

/// How long a waiting side polls as fast as it can before it backs off.
///
/// A peer running on another core moves the index within a microsecond or
/// so, and a waiter that polls in growing bursts of `pause` (crossbeam's
/// `Backoff`, tuned for contended compare-and-swap) notices it up to a
/// burst late, which lengthens every round trip (`benchmarks/README.md`,
/// "What changed", point 4). So the waiter first polls with one `pause`
/// between polls; only a wait longer than this, where the peer is
/// evidently not streaming, backs off.
pub(crate) const TIGHT_POLL: Duration = Duration::from_micros(10);

/// Polls between two looks at the clock while polling tightly (a clock
/// read costs more than a poll; the budget is kept to within a few
/// hundred nanoseconds all the same).
const POLLS_PER_CLOCK: u32 = 16;

/// Spins for a bounded time: first tight polling ([`TIGHT_POLL`]), then
/// crossbeam's `Backoff` (growing bursts of `pause`, then yields). The
/// budget bounds the whole in time rather than in steps, so that a side
/// never spins longer than it was told to.
#[derive(Debug)]
struct Backoff {
    /// When the first look at the clock was taken: not before the first
    /// polls, so that a message that arrives at once costs no clock read.
    start: Option<Instant>,
    budget: Duration,
    polls: u32,
    /// Set once tight polling is over.
    backing_off: bool,
    /// A paced waiter's time between two polls, for the whole budget
    /// (no tight phase, no backoff): see [`wait_paced`].
    gap: Option<Duration>,
    backoff: crossbeam_utils::Backoff,
}

impl Backoff {
    fn new(budget: Duration) -> Backoff {
        Backoff {
            start: None,
            budget,
            polls: 0,
            backing_off: false,
            gap: None,
            backoff: crossbeam_utils::Backoff::new(),
        }
    }

    /// Waits a little; `false` once the budget is spent (at once for a
    /// zero budget: a side told not to spin parks after its first poll).
    fn snooze(&mut self) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        if let Some(gap) = self.gap {
            return self.pace(gap);
        }
        if !self.backing_off {
            self.polls = self.polls.wrapping_add(1);
            if self.polls % POLLS_PER_CLOCK != 0 {
                std::hint::spin_loop();
                return true;
            }
        }
        let now = Instant::now();
        let waited = now - *self.start.get_or_insert(now);
        if waited >= self.budget {
            return false;
        }
        if self.backing_off || waited >= TIGHT_POLL {
            self.backing_off = true;
            self.backoff.snooze();
        } else {
            std::hint::spin_loop();
        }
        true
    }

    /// A paced waiter's snooze: spins until `gap` has passed since the
    /// call, or the budget is spent (then `false`, at once if it was).
    /// Past [`TIGHT_POLL`] it first yields the CPU, as the unpaced
    /// backoff does: a peer that shares this CPU (the receiver the sender
    /// waits for, on a busy machine or a pinned pair) gets to run, where a
    /// spin through the whole budget held it off (one CPU: 0.75x at 1 KiB,
    /// 0.90x at 8 B and 64 KiB before this yield; benchmarks/README.md, "A
    /// waiting sender's pace"). `sched_yield` waits for nothing: with
    /// nothing else runnable here it returns at once.
    fn pace(&mut self, gap: Duration) -> bool {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let waited = now - start;
        let Some(left) = self.budget.checked_sub(waited).filter(|l| !l.is_zero()) else {
            return false;
        };
        if waited >= TIGHT_POLL {
            std::thread::yield_now();
        }
        spin_from(now, gap.min(left));
        true
    }
}

/// Waits until `poll` returns something, parking on `park` when spinning
/// for `spin` did not help. `flag` is this side's waiting flag.
///
/// # Errors
///
/// Whatever `poll` or `park` return, and [`Error::Timeout`] past `deadline`.
pub(crate) fn wait<T>(
    flag: &AtomicU32,
    fences: Fences,
    spin: Duration,
    deadline: Option<Instant>,
    parker: &mut impl Park,
    poll: impl FnMut(Phase) -> Result<Option<T>>,
) -> Result<T> {
    wait_with(flag, fences, Backoff::new(spin), deadline, parker, poll)
}

/// [`wait`], with `gap` between two polls for the whole spin, instead of
/// polling tightly and then backing off: for a side whose polls load a
/// line that its peer writes on every message, and that has no use for a
/// fresher view than every `gap` (a sender waiting for room in a ring that
/// holds plenty for the receiver to read meanwhile).
#[allow(clippy::too_many_arguments)]
pub(crate) fn wait_paced<T>(
    flag: &AtomicU32,
    fences: Fences,
    spin: Duration,
    gap: Duration,
    deadline: Option<Instant>,
    parker: &mut impl Park,
    poll: impl FnMut(Phase) -> Result<Option<T>>,
) -> Result<T> {
    let mut backoff = Backoff::new(spin);
    backoff.gap = Some(gap);
    wait_with(flag, fences, backoff, deadline, parker, poll)
}

fn wait_with<T>(
    flag: &AtomicU32,
    fences: Fences,
    mut backoff: Backoff,
    deadline: Option<Instant>,
    parker: &mut impl Park,
    mut poll: impl FnMut(Phase) -> Result<Option<T>>,
) -> Result<T> {
    loop {
        if let Some(v) = poll(Phase::Spin)? {
            return Ok(v);
        }
        if backoff.snooze() {
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Timeout);
        }
        if let Some(v) = prepare_park(flag, fences, parker, || poll(Phase::BeforePark))? {
            return Ok(v);
        }
        let parked = parker.park(deadline);
        set_flag(flag, 0);
        match parked {
            Ok(()) | Err(Error::Timeout) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The sleeper's half of the handshake up to the park: drains the
/// semaphore, raises the flag, fences, and looks once more with `poll`
/// (`Phase::BeforePark`). `Ok(None)`: park now (the flag is up); anything
/// else lowers the flag again. The blocking [`wait`] parks in the same
/// thread; a future hands the park to its helper (`crate::helper`).
pub(crate) fn prepare_park<T>(
    flag: &AtomicU32,
    fences: Fences,
    parker: &mut impl Park,
    poll: impl FnOnce() -> Result<Option<T>>,
) -> Result<Option<T>> {
    // Posts already on the semaphore were made for changes that have
    // happened (a post follows its index store or the peer's death):
    // taking them now, before the flag goes up, leaves the check below
    // to see those changes, and only posts made after it to wake the
    // park. Draining here rather than after waking keeps the system
    // call off the wake-up's path.
    parker.drain()?;
    if let Err(e) = announce(flag, fences, parker) {
        set_flag(flag, 0);
        return Err(e);
    }
    match poll() {
        Ok(None) => Ok(None),
        r => {
            set_flag(flag, 0);
            r
        }
    }
}

/// Default pause of a streaming receiver that caught up ([`CatchUp`]).
pub(crate) const DEFAULT_CATCH_UP: Duration = Duration::from_micros(2);
/// A streaming receiver that finds fewer new bytes than this (or than an
/// eighth of the ring) pauses before reading them.
pub(crate) const CATCH_UP_BYTES: u64 = 8192;
/// Chances to pause let pass after a pause that found nothing new: the
/// first such pause makes skip this many, each further one twice as many.
const CATCH_UP_SKIP_MIN: u32 = 16;
/// The most chances to pause let pass in a row.
const CATCH_UP_SKIP_MAX: u32 = 4096;

/// The receiver's catch-up pause, as a [`Pace`] for its ring's consumer.
///
/// A receiver that keeps up with a fast sender reads each cache line right
/// after it was written, and its prefetcher pulls in the lines the sender
/// is about to write: each line then crosses between the cores several
/// times and both sides slow down. So a receiver that reloads `tail` while
/// streaming (its last reload found data too) and finds less than
/// [`CATCH_UP_BYTES`] (at most an eighth of the ring) pauses once and
/// reloads, then reads a batch of finished lines. A reload that found the
/// ring empty ends streaming, so a message that ends a wait is read at
/// once. A pause during which nothing arrived did not pay (no sender is
/// streaming now, or it is this thread): the next 16 chances to pause are
/// let pass, then 32, up to 4096. Figures: benchmarks/README.md.
#[derive(Debug)]
pub(crate) struct CatchUp {
    pause: Duration,
    /// Fewest new bytes a streaming reload may find without a pause.
    bytes: u64,
    /// The last reload found data.
    streaming: bool,
    /// Chances to pause still to let pass, and how many the next pause
    /// that does not pay makes skip.
    skip: u32,
    backoff: u32,
}

impl CatchUp {
    /// The default pause, for a ring of `capacity` bytes.
    pub(crate) fn new(capacity: u64) -> CatchUp {
        CatchUp {
            pause: DEFAULT_CATCH_UP,
            bytes: CATCH_UP_BYTES.min(capacity / 8),
            streaming: false,
            skip: 0,
            backoff: 0,
        }
    }

    /// Sets the pause (zero: never pause).
    pub(crate) fn set_pause(&mut self, pause: Duration) {
        self.pause = pause;
    }

    /// Whether a reload that found `queued` bytes calls for a pause now.
    fn due(&mut self, queued: u64) -> bool {
        let streaming = std::mem::replace(&mut self.streaming, queued > 0);
        if !streaming || queued == 0 || queued >= self.bytes || self.pause.is_zero() {
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }
}

impl Pace for CatchUp {
    #[inline]
    fn reloaded(&mut self, queued: u64) -> bool {
        if !self.due(queued) {
            return false;
        }
        spin_from(Instant::now(), self.pause);
        true
    }

    fn waited(&mut self, grew: bool) {
        if grew {
            self.backoff = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(CATCH_UP_SKIP_MIN, CATCH_UP_SKIP_MAX);
            self.skip = self.backoff;
        }
    }
}

/// Spins until `wait` has passed since `start`. Not under loom, where
/// time means nothing and the wait only adds states.
fn spin_from(start: Instant, wait: Duration) {
    #[cfg(not(all(test, loom)))]
    while start.elapsed() < wait {
        std::hint::spin_loop();
    }
    #[cfg(all(test, loom))]
    let _ = (start, wait);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_zero_budget_parks_after_the_first_poll() {
        assert!(!Backoff::new(Duration::ZERO).snooze());
    }

    #[test]
    fn the_budget_bounds_the_spin_in_time() {
        // Longer than the tight phase, so that the backoff phase usually
        // runs too (a preempted thread may skip it; nothing here needs it).
        let budget = TIGHT_POLL * 3;
        let start = Instant::now();
        let mut backoff = Backoff::new(budget);
        let mut snoozes = 0u64;
        while backoff.snooze() {
            snoozes += 1;
        }
        // It stops only once its own clock, started after `start`, has
        // seen the budget pass, and not before its first clock read.
        assert!(start.elapsed() >= budget);
        assert!(snoozes >= u64::from(POLLS_PER_CLOCK - 1));
    }

    #[test]
    fn a_paced_waiter_spins_a_gap_per_snooze_within_the_budget() {
        let (gap, budget) = (Duration::from_millis(2), Duration::from_millis(7));
        let mut backoff = Backoff::new(budget);
        backoff.gap = Some(gap);
        let start = Instant::now();
        let mut snoozes = 0u32;
        loop {
            let before = Instant::now();
            if !backoff.snooze() {
                break;
            }
            snoozes += 1;
            // A whole gap, unless the budget ran out first.
            let spun = before.elapsed();
            assert!(spun >= gap || start.elapsed() >= budget, "{spun:?}");
        }
        // The budget's clock starts at the first snooze, after `start`.
        assert!(start.elapsed() >= budget);
        // 7 ms of budget hold at most three whole 2 ms gaps and a cut one.
        assert!((1..=4).contains(&snoozes), "{snoozes} snoozes");
        // A zero budget never spins, paced or not.
        let mut none = Backoff::new(Duration::ZERO);
        none.gap = Some(gap);
        assert!(!none.snooze());
    }
}
