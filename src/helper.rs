//! Waiting without blocking an executor: the helper thread that parks for
//! a future, and the poll that hands the park to it.
//!
//! A future takes the blocking call's fast path first. When that finds
//! nothing, it spins for the handle's budget by waking its own task and
//! returning `Pending` (the executor runs its other tasks between polls,
//! so no thread is held; past the first 10 µs each look also yields the
//! CPU, as the blocking wait's does), then runs the sleeper's half of the
//! handshake of
//! [`wait`](crate::wait) itself, in the task: drain the wake semaphore,
//! raise the waiting flag, fence, look once more. Only the last step, the
//! park on the semaphore, is handed to a [`Helper`] thread owned by the
//! handle, which wakes the task's `Waker` when the park returns.
//!
//! # Why no wake-up is lost
//!
//! The handshake is the blocking one, step for step; only the thread that
//! runs `semop(-1)` differs. A post made after the task raised the flag
//! stays on the semaphore until some `-1` takes it: the helper's park
//! returns at once if the post came first, and is woken by it otherwise,
//! however long the helper took to start its park. And the helper is the
//! only thread that parks on the semaphore while it is parking: every
//! blocking wait of the handle first [`recall`](Helper::recall)s it (posts
//! the semaphore and waits until the helper has left its park), and the
//! handle stops and joins it before it releases its role, so no other
//! receiver (or sender of the lane) can park beside it and lose a post to
//! it.
//!
//! A future dropped while the helper parks leaves the park in place: a
//! later future of the same handle finds it ([`Status::Parked`]) and only
//! swaps in its own waker. The flag raised for that park is still up, or
//! a waker cleared it and posted, which wakes the helper; so the later
//! future, after its own look found nothing, is woken by the next change
//! as the first would have been. A `tokio::select!` loop that drops and
//! makes a receive future each time round costs no system call for it.
//!
//! Under loom (`src/loom_model.rs`) the helper runs on loom's threads,
//! mutex and condition variable, and a model checks this handshake with
//! the helper as the parker.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sync::{AtomicU32, Condvar, Mutex, MutexGuard};
use crate::wait::{self, Fences, Park, Phase};

/// What a helper parks on: a side's own wake semaphore.
pub(crate) trait Sleeper: Send + Sync + 'static {
    /// Parks once, without a deadline, as [`Park::park`] does (it may
    /// return spuriously, and does at least every half second so that a
    /// removed segment is noticed).
    fn park(&self) -> Result<()>;
    /// Posts the semaphore: wakes a parked helper (a surplus post is
    /// drained like any other).
    fn post(&self) -> Result<()>;
    /// The channel, for error messages (`key 0x…` or `shmid N`).
    fn channel(&self) -> String;
    /// The name of the helper thread.
    fn name(&self) -> &'static str;
}

/// Where the helper's park stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// No park asked for, or its end already seen by a poll.
    Idle,
    /// A poll asked for a park: the helper is parking, or about to.
    Parking,
    /// The park returned; the next poll takes its result.
    Woke,
}

#[derive(Debug)]
struct State {
    step: Step,
    /// The task to wake when the park returns.
    waker: Option<Waker>,
    /// What the park returned, if it failed (the set was removed, ...).
    error: Option<Error>,
    /// The handle is dropping: the helper leaves.
    stop: bool,
    /// A [`Helper::recall`] waits for the park to end.
    recalling: bool,
}

/// The state a handle shares with its helper thread.
#[derive(Debug)]
struct Slot {
    state: Mutex<State>,
    changed: Condvar,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock (no user code runs under
        // it: wakers are woken after it is released), so a poisoned lock
        // still holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }
}

/// What [`Helper::status`] found.
#[derive(Debug)]
pub(crate) enum Status {
    /// No park under way: the poll may wait on its own terms.
    Idle,
    /// A park is under way; the poll's waker is now the one it will wake.
    Parked,
    /// A park ended; `Some` if it failed.
    Woke(Option<Error>),
}

#[derive(Debug)]
struct Running {
    slot: std::sync::Arc<Slot>,
    thread: Option<crate::sync::JoinHandle>,
    /// The process that started it: a forked child's copy has no thread
    /// to join.
    pid: u32,
}

/// A handle's helper thread: started on the first park a future hands to
/// it, stopped and joined when the handle (and with it this) drops.
#[derive(Debug)]
pub(crate) struct Helper<S: Sleeper> {
    sleeper: std::sync::Arc<S>,
    running: Option<Running>,
}

impl<S: Sleeper> Helper<S> {
    /// A helper that will park on `sleeper`; no thread yet.
    pub(crate) fn new(sleeper: S) -> Helper<S> {
        Helper {
            sleeper: std::sync::Arc::new(sleeper),
            running: None,
        }
    }

    /// Where the park stands, for a poll with waker `waker`.
    pub(crate) fn status(&mut self, waker: &Waker) -> Status {
        let Some(run) = &self.running else {
            return Status::Idle;
        };
        let mut st = run.slot.lock();
        match st.step {
            Step::Idle => Status::Idle,
            Step::Parking => {
                if !st.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    st.waker = Some(waker.clone());
                }
                Status::Parked
            }
            Step::Woke => {
                st.step = Step::Idle;
                Status::Woke(st.error.take())
            }
        }
    }

    /// Hands the park to the helper (starting it if need be), to wake
    /// `waker` when the park returns. The waiting flag is up.
    pub(crate) fn park(&mut self, waker: &Waker) -> Result<()> {
        let run = match &mut self.running {
            Some(run) => run,
            None => self.running.insert(start(&self.sleeper)?),
        };
        let mut st = run.slot.lock();
        st.step = Step::Parking;
        st.waker = Some(waker.clone());
        st.error = None;
        drop(st);
        run.slot.changed.notify_all();
        Ok(())
    }

    /// Takes a park under way back, before the handle waits on its own:
    /// posts the semaphore and waits until the helper has left its park,
    /// so that two threads never park on it at once. A handle with no
    /// park under way returns at once.
    pub(crate) fn recall(&mut self) {
        #[cfg(all(test, loom))]
        if crate::sync::weaken::is(crate::sync::Point::Recall) {
            return;
        }
        let Some(run) = &self.running else {
            return;
        };
        let mut st = run.slot.lock();
        if st.step == Step::Parking {
            // If the post fails, the set is gone and the park fails too;
            // either way the park ends (at the latest with its slice).
            let _ = self.sleeper.post();
            st.recalling = true;
            while st.step == Step::Parking {
                st = run.slot.wait(st);
            }
            st.recalling = false;
        }
        st.step = Step::Idle;
        st.error = None;
        st.waker = None;
    }
}

impl<S: Sleeper> Drop for Helper<S> {
    fn drop(&mut self) {
        let Some(mut run) = self.running.take() else {
            return;
        };
        if run.pid != std::process::id() {
            // A forked child's copy: the thread lives (and ends) in the
            // parent only.
            std::mem::forget(run.thread.take());
            return;
        }
        let mut st = run.slot.lock();
        st.stop = true;
        if st.step == Step::Parking {
            let _ = self.sleeper.post();
        }
        drop(st);
        run.slot.changed.notify_all();
        if let Some(t) = run.thread.take() {
            // The helper runs no user code; a panic there is a bug of
            // ours, and the handle is going away anyway.
            let _ = t.join();
        }
    }
}

/// Starts the helper thread.
fn start<S: Sleeper>(sleeper: &std::sync::Arc<S>) -> Result<Running> {
    let slot = std::sync::Arc::new(Slot {
        state: Mutex::new(State {
            step: Step::Idle,
            waker: None,
            error: None,
            stop: false,
            recalling: false,
        }),
        changed: Condvar::new(),
    });
    let (sl, sp) = (std::sync::Arc::clone(&slot), std::sync::Arc::clone(sleeper));
    let thread =
        crate::sync::spawn(sleeper.name(), move || run(&sl, &*sp)).map_err(|e| Error::Os {
            call: "pthread_create",
            channel: sleeper.channel(),
            source: e,
        })?;
    Ok(Running {
        slot,
        thread: Some(thread),
        pid: std::process::id(),
    })
}

/// The helper thread: parks whenever asked, wakes the task after.
fn run<S: Sleeper>(slot: &Slot, sleeper: &S) {
    loop {
        let mut st = slot.lock();
        while !st.stop && st.step != Step::Parking {
            st = slot.wait(st);
        }
        if st.stop {
            return;
        }
        drop(st);
        let parked = sleeper.park();
        let mut st = slot.lock();
        st.step = Step::Woke;
        st.error = parked.err();
        let waker = st.waker.take();
        let recalling = st.recalling;
        drop(st);
        // The task first: it is what the post was for. A `recall` waiting
        // for the park to end is told after (it set `recalling` under the
        // lock before it waited, and the step is set under the lock, so it
        // cannot miss this notification). Without one the condition
        // variable's system call is saved: the helper goes back to sleep
        // sooner, out of the way of the task it woke, which may be
        // scheduled on this CPU.
        if let Some(w) = waker {
            // A waker is the runtime's code: if it panics, this thread
            // must live on for the handle's later futures.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
        }
        if recalling {
            slot.changed.notify_all();
        }
    }
}

/// The poll of a future that waits until `poll` returns something: the
/// asynchronous [`wait::wait`]. `spun` is the future's own: when it began
/// to spin. `parker` drains and fences in the task; `helper` parks.
///
/// # Errors
///
/// Whatever `poll`, the drain, the fence or the park return.
#[allow(clippy::too_many_arguments)]
pub(crate) fn poll_wait<T, S: Sleeper>(
    flag: &AtomicU32,
    fences: Fences,
    spin: Duration,
    spun: &mut Option<Instant>,
    helper: &mut Helper<S>,
    cx: &mut Context<'_>,
    parker: &mut impl Park,
    mut poll: impl FnMut(Phase) -> Result<Option<T>>,
) -> Poll<Result<T>> {
    match poll(Phase::Spin) {
        Ok(Some(v)) => return Poll::Ready(Ok(v)),
        Ok(None) => {}
        Err(e) => return Poll::Ready(Err(e)),
    }
    match helper.status(cx.waker()) {
        Status::Parked => return Poll::Pending,
        Status::Woke(error) => {
            wait::set_flag(flag, 0);
            if let Some(e) = error {
                return Poll::Ready(Err(e));
            }
        }
        Status::Idle => {}
    }
    if !spin.is_zero() {
        let now = Instant::now();
        let spinning = now - *spun.get_or_insert(now);
        if spinning < spin {
            if spinning >= wait::TIGHT_POLL {
                // Past its tight polling the blocking wait yields the CPU
                // between looks, and so does this: a peer that shares
                // this CPU (the one we wait for, on a busy machine) gets
                // to run, where a spin that only yields to the executor
                // would hold it off for the whole budget and then park.
                // `sched_yield` waits for nothing: with nothing else
                // runnable on this CPU it returns at once.
                std::thread::yield_now();
            }
            // Spinning, the executor's way: run the other tasks, then
            // look again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
    }
    match wait::prepare_park(flag, fences, parker, || poll(Phase::BeforePark)) {
        Ok(Some(v)) => Poll::Ready(Ok(v)),
        Err(e) => Poll::Ready(Err(e)),
        Ok(None) => match helper.park(cx.waker()) {
            Ok(()) => Poll::Pending,
            Err(e) => {
                wait::set_flag(flag, 0);
                Poll::Ready(Err(e))
            }
        },
    }
}

/// A handle's two ways to find what an async call waits for (a frame,
/// room): the blocking call's fast path, and everything else.
pub(crate) trait Waits {
    /// What the call looks for besides (`()` for a frame, the length for
    /// room).
    type Arg: Copy + Unpin;
    /// What it finds (a frame, an offset).
    type Found;
    /// The fast path: no system call, no `Result`, nothing recorded.
    fn fast(&mut self, arg: Self::Arg) -> Option<Self::Found>;
    /// The slow path: every check, the spin and the park ([`poll_wait`]),
    /// with `spun` the future's own; records a corruption it meets.
    fn poll_slow(
        &mut self,
        arg: Self::Arg,
        cx: &mut Context<'_>,
        spun: &mut Option<Instant>,
    ) -> Poll<Result<Self::Found>>;
}

/// One poll of a handle: the fast path, then the slow one.
#[inline]
pub(crate) fn poll_found<H: Waits>(
    handle: &mut H,
    arg: H::Arg,
    cx: &mut Context<'_>,
    spun: &mut Option<Instant>,
) -> Poll<Result<H::Found>> {
    match handle.fast(arg) {
        Some(found) => Poll::Ready(Ok(found)),
        None => handle.poll_slow(arg, cx, spun),
    }
}

/// The future of every async call: polls the handle (its fast path, then
/// [`poll_wait`]) until it finds what it waits for, then hands the handle
/// and that to `then`, which takes the message or fills the room, in the
/// poll that completes.
///
/// Written out rather than an `async fn` so that its `poll` is
/// `#[inline]`: a caller's crate, without LTO too, inlines the fast path
/// and keeps what it found in registers, as it does the blocking call's
/// (`Option`s, no `Result` built). An `async fn`'s coroutine was called
/// out of line, and what went through it (a `Poll<Result<_>>` as large
/// as [`Error`]) went through memory, reloaded with store-forwarding
/// stalls: 20-40 ns a message more than the blocking call
/// (benchmarks/README.md, "Async (issue 13)").
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub(crate) struct WaitFor<'a, H: Waits, F> {
    /// `None` once completed.
    handle: Option<&'a mut H>,
    arg: H::Arg,
    /// When the future began to spin (see [`poll_wait`]).
    spun: Option<Instant>,
    then: Option<F>,
}

impl<'a, H: Waits, F> WaitFor<'a, H, F> {
    #[inline]
    pub(crate) fn new(handle: &'a mut H, arg: H::Arg, then: F) -> Self {
        WaitFor {
            handle: Some(handle),
            arg,
            spun: None,
            then: Some(then),
        }
    }
}

impl<'a, H, F, T> Future for WaitFor<'a, H, F>
where
    H: Waits,
    F: FnOnce(&'a mut H, H::Found) -> Result<T> + Unpin,
{
    type Output = Result<T>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // Nothing here is pinned: no field points into the future.
        let this = self.get_mut();
        let handle = this.handle.as_deref_mut().expect("polled after completion");
        // Not through `poll_found`: on the fast path no `Result` is built.
        let found = match handle.fast(this.arg) {
            Some(found) => found,
            None => match ready!(handle.poll_slow(this.arg, cx, &mut this.spun)) {
                Ok(found) => found,
                Err(e) => {
                    this.handle = None;
                    return Poll::Ready(Err(e));
                }
            },
        };
        let (Some(handle), Some(then)) = (this.handle.take(), this.then.take()) else {
            unreachable!("both are there until completion")
        };
        Poll::Ready(then(handle, found))
    }
}
