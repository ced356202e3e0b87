//! Parties, roles and the semaphores behind them: joining and leaving
//! (with the last one out cleaning up), claiming and releasing a role,
//! watching the peer's liveness, and parking.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::shared::{Doing, Shared, os_error};
use super::view::View;
use crate::error::{Error, Result, Role};
use crate::helper::Sleeper;
use crate::layout::{Counters, Header, bump, sem};
use crate::ring::holds_messages;
use crate::sys::{self, Fail, SemOp, SemSet, retry_on_intr, sop};
use crate::wait::Park;

/// How long `join` retries while a last party out holds the gate shut.
const GATE_PATIENCE: Duration = Duration::from_millis(200);
/// Longest single park: a parked side wakes this often to notice a segment
/// removed with `ipcrm -m` (which posts no semaphore). Peer death and
/// messages wake it at once; this is only the removal check.
const PARK_SLICE: Duration = Duration::from_millis(500);

/// A counted party (a `Channel`, `Sender` or `Receiver` handle): holds the
/// attachment alive and, when it leaves, lets the last one out remove the
/// channel.
#[derive(Debug)]
pub(crate) struct Party {
    shared: Arc<Shared>,
    pid: u32,
}

impl Party {
    /// Joins as a party: `{CLOSING, 0, NOWAIT}, {PARTIES, +1, SEM_UNDO}`.
    pub(crate) fn join(shared: Arc<Shared>) -> Result<Party> {
        let start = Instant::now();
        let mut ops = [sop(sem::CLOSING, 0).nowait(), sop(sem::PARTIES, 1).undo()];
        loop {
            match retry_on_intr(|| shared.sem.op(&mut ops)) {
                Ok(()) => return Ok(Party::new(shared)),
                // The gate is shut: a last party out is deciding.
                Err(e) if Fail::of(&e) == Fail::WouldBlock => {}
                Err(e) => return Err(os_error(Doing::Using, "semop(join)", &shared.name, e)),
            }
            if start.elapsed() > GATE_PATIENCE {
                return Err(Error::NotFound {
                    channel: shared.name.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A party already counted by the caller's own semop.
    fn new(shared: Arc<Shared>) -> Party {
        Party {
            shared,
            pid: sys::pid(),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether this handle belongs to the calling process (handles are not
    /// fork-safe: a forked child must not undo its parent's counts).
    pub(crate) fn is_own(&self) -> bool {
        self.pid == sys::pid()
    }
}

impl Drop for Party {
    fn drop(&mut self) {
        if !self.is_own() {
            return;
        }
        let s = &self.shared;
        if s.sem.op(&mut [sop(sem::PARTIES, -1).undo()]).is_err() {
            // The set is gone (`ipcrm -s`, a removal): nothing counts parties
            // any more and the channel cannot work. Marking the segment for
            // removal is safe from any party: it lives until the last detach.
            let _ = crate::sys::shm_remove(s.shmid);
            return;
        }
        if close_gate(s.sem).is_err() {
            return; // someone else is still here (or closing)
        }
        if s.persists() || s.holds_messages() || s.check_open().is_err() {
            // If reopening fails the set is gone anyway.
            let _ = open_gate(s.sem);
        } else {
            s.destroy();
        }
    }
}

/// The last-out gate: passes only while no party is alive and nobody else
/// holds the gate, and then shuts it, so that no party can join and no
/// second leaver can pass. SEM_UNDO: a closer killed before it finishes
/// opens the gate again rather than leaving the channel unreachable.
pub(crate) fn close_gate(set: SemSet) -> std::io::Result<()> {
    set.op(&mut [
        sop(sem::PARTIES, 0).nowait(),
        sop(sem::CLOSING, 0).nowait(),
        sop(sem::CLOSING, 1).undo(),
    ])
}

/// Opens the gate again (the channel stays).
pub(crate) fn open_gate(set: SemSet) -> std::io::Result<()> {
    set.op(&mut [sop(sem::CLOSING, -1).undo()])
}

/// How many times a role semop switches between its two orders before
/// giving up (see `claim_ops`).
const ORDER_SWITCHES: u32 = 8;
/// The largest value a semaphore holds (the kernel's SEMVMX).
const SEMVMX: i32 = 32767;

/// Arms a death wake-up on `wake` (net change 0, undo +1). Normally `+1`
/// then `-1`; when the semaphore is already at SEMVMX (posts nobody
/// drained), `+1` first would fail with ERANGE, so `-1` goes first: same
/// effect.
fn arm_ops(wake: u16, at_max: bool) -> [SemOp; 2] {
    if at_max {
        [sop(wake, -1).nowait().undo(), sop(wake, 1)]
    } else {
        [sop(wake, 1), sop(wake, -1).undo()]
    }
}

/// Posts `wake` with SEM_UNDO, cancelling an armed undo. At SEMVMX the
/// post is made net-zero (the sleeper has posts enough to wake) while
/// still cancelling the undo.
fn post_ops(wake: u16, at_max: bool) -> Vec<SemOp> {
    let mut ops = Vec::with_capacity(2);
    if at_max {
        ops.push(sop(wake, -1).nowait());
    }
    ops.push(sop(wake, 1).undo());
    ops
}

/// The claim of role semaphore `alive`: take it if it is 0, and arm the
/// death wake-up of each of `wakes` (their `at_max` forms as given).
fn claim_ops(alive: u16, wakes: &[u16], at_max: &[bool]) -> Vec<SemOp> {
    let mut ops = vec![sop(alive, 0).nowait(), sop(alive, 1).undo()];
    for (&wake, &max) in wakes.iter().zip(at_max) {
        ops.extend(arm_ops(wake, max));
    }
    ops
}

/// The release: give `alive` back and post each of `wakes` (cancelling the
/// armed undo), in one semop. The `-1` on ALIVE does not wait: ALIVE is 1
/// while we hold the role, unless another process zeroed the set
/// (`SETVAL`), and a drop must not block for ever on that.
fn release_ops(alive: u16, wakes: &[u16], at_max: &[bool]) -> Vec<SemOp> {
    let mut ops = vec![sop(alive, -1).nowait().undo()];
    for (&wake, &max) in wakes.iter().zip(at_max) {
        ops.extend(post_ops(wake, max));
    }
    ops
}

/// Runs a claim or release semop (`ops(at_max)`) whose posts go to
/// `wakes`, switching a wake semaphore to its SEMVMX form when it is at
/// its maximum. `Ok(true)`: done. `Ok(false)`: it would block in the
/// normal form (the role is held by someone else; for a release, ALIVE was
/// zeroed by another process).
fn run_with_wakes(
    s: &Shared,
    wakes: &[u16],
    ops: impl Fn(&[bool]) -> Vec<SemOp>,
) -> std::io::Result<bool> {
    let mut at_max = vec![false; wakes.len()];
    let mut switches = 0;
    loop {
        let err = match retry_on_intr(|| s.sem.op(&mut ops(&at_max))) {
            Ok(()) => return Ok(true),
            Err(e) => e,
        };
        let fail = Fail::of(&err);
        if !matches!(fail, Fail::Range | Fail::WouldBlock) || switches == ORDER_SWITCHES {
            return Err(err);
        }
        // In the SEMVMX form "would block" may mean a semaphore was drained
        // meanwhile: look again at which are at their maximum.
        let any_max = at_max.iter().any(|&m| m);
        if fail == Fail::WouldBlock && !any_max {
            return Ok(false);
        }
        let before = at_max.clone();
        for (max, &wake) in at_max.iter_mut().zip(wakes) {
            *max = s.sem.get(wake).is_ok_and(|v| v >= SEMVMX);
        }
        if fail == Fail::WouldBlock && at_max == before {
            // The wake semaphores are as they were: the "would block" came
            // from ALIVE, so the role is held (or, in a release, zeroed).
            return Ok(false);
        }
        switches += 1;
    }
}

/// A held role: a sender's lane or the receiver's role, claimed with the
/// death wake-up of the other side armed in the same semop, so that the
/// kernel's undo at our exit posts the other side's wake semaphore(s).
#[derive(Debug)]
pub(crate) struct RoleHold {
    party: Party,
    role: Role,
    /// A sender's lane (0 for the receiver).
    lane: u16,
}

impl RoleHold {
    /// Joins as a party and claims `role`: for a sender, the first free
    /// lane.
    pub(crate) fn claim(shared: Arc<Shared>, role: Role) -> Result<RoleHold> {
        let party = Party::join(shared)?;
        let s = party.shared();
        let lane = match role {
            Role::Sender => claim_lane(s)?,
            Role::Receiver => {
                let wakes = all_tx_wakes(s);
                let ops = |m: &[bool]| claim_ops(sem::RX_ALIVE, &wakes, m);
                if !run_with_wakes(s, &wakes, ops).map_err(|e| claim_error(s, e))? {
                    return Err(role_taken(s, role));
                }
                0
            }
        };
        // The role is ours from here on: if what follows fails, dropping
        // the hold gives it back (and wakes the peer) at once, rather than
        // leaving it held until this process exits.
        let hold = RoleHold { party, role, lane };
        // Posts left on our own wake semaphore by earlier peers are stale.
        drain_sem(hold.shared(), hold.own_wake())?;
        Ok(hold)
    }

    /// The lane this sender holds (0 for the receiver).
    pub(crate) fn lane(&self) -> u16 {
        self.lane
    }

    /// The semaphore this side parks on.
    pub(crate) fn own_wake(&self) -> u16 {
        match self.role {
            Role::Sender => sem::tx_wake(self.lane),
            Role::Receiver => sem::RX_WAKE,
        }
    }

    /// Tells the peer that this role is attached: bumps the role's
    /// connection counter and raises its attached flag. Called once every
    /// check of the attach has passed, so that a claim given up halfway
    /// (a corrupt ring) never counts as a peer that came and went, which
    /// would end a waiting peer with `Disconnected`.
    pub(crate) fn announce(&self) {
        let s = self.shared();
        let c = &s.header().control;
        let connects = match self.role {
            Role::Sender => &c.tx_connects,
            Role::Receiver => &c.rx_connects,
        };
        // SYNC: pairs with the Acquire loads in `PeerWatch::refresh`.
        connects.fetch_add(1, Ordering::Release);
        // SYNC: pairs with the Acquire loads in `PeerWatch::maybe_gone`.
        self.attached_flag().store(1, Ordering::Release);
    }

    /// This side's attached flag: the lane's for a sender.
    fn attached_flag(&self) -> &AtomicU32 {
        let s = self.shared();
        match self.role {
            Role::Sender => &s.view.lane(&s.geometry, self.lane).tx.attached,
            Role::Receiver => &s.header().control.rx_attached,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.party.shared()
    }
}

/// Passes over the lanes a claimer makes when it found every lane held one
/// at a time but not all at one instant (senders leaving and coming
/// meanwhile).
const CLAIM_PASSES: u32 = 8;

/// Claims a free lane, the first empty one if any; `RoleTaken` when every
/// lane is held.
///
/// One semop per lane cannot see every lane at one instant: a lane freed
/// after its turn in the pass, while a later one was taken, would give a
/// `RoleTaken` that was never true. So a pass that finds every lane held
/// is confirmed by one probe semop, `{TX_ALIVE[i], -1, NOWAIT},
/// {TX_ALIVE[i], +1}` for every lane, which succeeds (and changes nothing)
/// only if every lane is held at one instant; when it fails, another pass.
/// After [`CLAIM_PASSES`] passes the lanes are changing hands faster than
/// we can claim one, and `RoleTaken` says so (docs/layout.md,
/// section 4, "Claim a role").
fn claim_lane(s: &Shared) -> Result<u16> {
    for _ in 0..CLAIM_PASSES {
        // Empty lanes first, so that a new sender does not queue behind a
        // dead sender's backlog while an empty lane is free (the indices
        // are a hint here; the claim itself is the semop's).
        let (empty, busy): (Vec<u16>, Vec<u16>) = View::lanes(&s.geometry)
            .partition(|&lane| !holds_messages(&s.view.ring(&s.geometry, lane)));
        for lane in empty.into_iter().chain(busy) {
            let ops = |m: &[bool]| claim_ops(sem::tx_alive(lane), &[sem::RX_WAKE], m);
            if run_with_wakes(s, &[sem::RX_WAKE], ops).map_err(|e| claim_error(s, e))? {
                return Ok(lane);
            }
        }
        let mut probe: Vec<SemOp> = View::lanes(&s.geometry)
            .flat_map(|lane| {
                [
                    sop(sem::tx_alive(lane), -1).nowait(),
                    sop(sem::tx_alive(lane), 1),
                ]
            })
            .collect();
        match retry_on_intr(|| s.sem.op(&mut probe)) {
            Ok(()) => break,
            Err(e) if Fail::of(&e) == Fail::WouldBlock => {}
            Err(e) => return Err(claim_error(s, e)),
        }
    }
    Err(role_taken(s, Role::Sender))
}

fn role_taken(s: &Shared, role: Role) -> Error {
    Error::RoleTaken {
        channel: s.name.clone(),
        role,
    }
}

fn claim_error(s: &Shared, e: std::io::Error) -> Error {
    os_error(Doing::Using, "semop(claim role)", &s.name, e)
}

/// Every lane's `TX_WAKE`, which the receiver arms and posts.
fn all_tx_wakes(s: &Shared) -> Vec<u16> {
    View::lanes(&s.geometry).map(sem::tx_wake).collect()
}

impl Drop for RoleHold {
    fn drop(&mut self) {
        if !self.party.is_own() {
            return;
        }
        // SYNC: pairs with the Acquire loads in `PeerWatch::maybe_gone`.
        self.attached_flag().store(0, Ordering::Release);
        let s = self.party.shared();
        // Release the role and wake the peer in one semop: done as two, the
        // peer could wake, still read ALIVE = 1, and park for ever. The post
        // carries SEM_UNDO so that it cancels the undo armed at claim.
        let (alive, wakes) = match self.role {
            Role::Sender => (sem::tx_alive(self.lane), vec![sem::RX_WAKE]),
            Role::Receiver => (sem::RX_ALIVE, all_tx_wakes(s)),
        };
        // Done; or the set was removed, or zeroed by another process: no
        // role left to release.
        let _ = run_with_wakes(s, &wakes, |m| release_ops(alive, &wakes, m));
        // `party` drops next and leaves.
    }
}

/// What a handle knows about its peer: whether it has seen one.
#[derive(Debug)]
pub(crate) struct PeerWatch {
    peer: Role,
    seen: bool,
    connects: u64,
}

impl PeerWatch {
    /// Notes the peer's connection count. Call before claiming the role:
    /// a peer that attaches (and perhaps leaves) while we claim then shows
    /// as a changed count.
    pub(crate) fn snapshot(shared: &Shared, peer: Role) -> PeerWatch {
        let mut watch = PeerWatch {
            peer,
            seen: false,
            connects: 0,
        };
        watch.connects = watch.connects_now(shared.header());
        watch
    }

    /// Starts watching once the role is held: the peer counts as seen when
    /// it is attached now, or (for a receiver) when messages are queued.
    pub(crate) fn start(mut self, shared: &Shared, queued: bool) -> Result<PeerWatch> {
        self.refresh(shared.header());
        self.seen |= queued || self.alive(shared)?;
        Ok(self)
    }

    /// A message from the peer was received: a sender existed.
    pub(crate) fn mark_seen(&mut self) {
        self.seen = true;
    }

    fn connects_now(&self, header: &Header) -> u64 {
        let c = &header.control;
        let counter = match self.peer {
            Role::Sender => &c.tx_connects,
            Role::Receiver => &c.rx_connects,
        };
        // SYNC: pairs with the Release fetch_add in `RoleHold::announce`.
        counter.load(Ordering::Acquire)
    }

    #[inline]
    fn refresh(&mut self, header: &Header) {
        let now = self.connects_now(header);
        if now != self.connects {
            self.seen = true;
            self.connects = now;
        }
    }

    /// Whether the peer holds its role now; for senders, whether any lane
    /// has one: one semop that waits for every lane's ALIVE to be 0, without
    /// waiting (`GETALL` is never used: the set id is untrusted, and a
    /// larger set would write past a buffer sized from the header).
    fn alive(&self, shared: &Shared) -> Result<bool> {
        if self.peer == Role::Receiver {
            return Ok(shared.sem_value(sem::RX_ALIVE)? > 0);
        }
        let mut ops: Vec<SemOp> = View::lanes(&shared.geometry)
            .map(|lane| sop(sem::tx_alive(lane), 0).nowait())
            .collect();
        match retry_on_intr(|| shared.sem.op(&mut ops)) {
            Ok(()) => Ok(false),
            Err(e) if Fail::of(&e) == Fail::WouldBlock => Ok(true),
            Err(e) => Err(os_error(
                Doing::Using,
                "semop(senders alive)",
                &shared.name,
                e,
            )),
        }
    }

    /// Cheap check for every call: the seen peer detached cleanly (header
    /// flag), confirmed with the semaphore only in that case.
    pub(crate) fn gone_quick(&mut self, shared: &Shared) -> Result<bool> {
        Ok(self.maybe_gone(shared) && !self.alive(shared)?)
    }

    /// The header's words alone, no system call: whether the seen peer may
    /// have detached cleanly (`gone_quick` then confirms). For senders:
    /// no lane's attached flag is up.
    #[inline]
    pub(crate) fn maybe_gone(&mut self, shared: &Shared) -> bool {
        if self.peer == Role::Receiver {
            return self.receiver_maybe_gone(shared.header());
        }
        self.refresh(shared.header());
        // SYNC: pairs with the Release stores in `RoleHold::announce` and
        // `RoleHold::drop`.
        self.seen
            && View::lanes(&shared.geometry).all(|lane| {
                let flag = &shared.view.lane(&shared.geometry, lane).tx.attached;
                flag.load(Ordering::Acquire) == 0
            })
    }

    /// [`maybe_gone`](Self::maybe_gone) of a sender's watch (the peer is
    /// the receiver), from the header alone: the sender's fast path.
    #[inline(always)]
    pub(crate) fn receiver_maybe_gone(&mut self, header: &Header) -> bool {
        debug_assert!(self.peer == Role::Receiver);
        self.refresh(header);
        // SYNC: pairs with the Release stores in `RoleHold::announce` and
        // `RoleHold::drop`.
        self.seen && header.control.rx_attached.load(Ordering::Acquire) == 0
    }

    /// Full check, before waiting: a seen peer is no longer alive (killed
    /// peers are learned here, from the semaphore the kernel undid).
    pub(crate) fn gone(&mut self, shared: &Shared) -> Result<bool> {
        self.refresh(shared.header());
        Ok(self.seen && !self.alive(shared)?)
    }
}

/// Parks a side on its own wake semaphore; counts parks in the header.
pub(crate) struct SemParker<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) num: u16,
    pub(crate) counters: &'a Counters,
}

impl SemParker<'_> {
    fn sem(&self) -> SemSet {
        self.shared.sem
    }

    /// After a park slice ran out: was the segment removed (`ipcrm -m`)?
    fn check_segment(&self) -> Result<()> {
        match sys::shm_stat(self.shared.shmid) {
            Ok(st) if !st.removed => Ok(()),
            _ => Err(self.shared.removed()),
        }
    }
}

impl Park for SemParker<'_> {
    fn park(&mut self, deadline: Option<Instant>) -> Result<()> {
        bump(&self.counters.parks);
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let slice = remaining.map_or(PARK_SLICE, |r| r.min(PARK_SLICE));
        let Err(e) = self.sem().timed_op(&mut [sop(self.num, -1)], Some(slice)) else {
            return Ok(());
        };
        match Fail::of(&e) {
            // A signal (even SIGSTOP/SIGCONT with no handler) interrupts
            // semtimedop and it is never restarted. Not `retry_on_intr`:
            // the caller loops and parks again with the time that remains.
            Fail::Interrupted => Ok(()),
            // The slice (or the deadline) ran out.
            Fail::WouldBlock => {
                bump(&self.counters.expired);
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    Err(Error::Timeout)
                } else {
                    self.check_segment()
                }
            }
            _ => Err(os_error(Doing::Using, "semtimedop", &self.shared.name, e)),
        }
    }

    fn drain(&mut self) -> Result<()> {
        drain_sem(self.shared, self.num)
    }

    fn heavy_barrier(&mut self) -> Result<()> {
        sys::membarrier::barrier().map_err(|e| {
            os_error(
                Doing::Other,
                "membarrier(GLOBAL_EXPEDITED)",
                &self.shared.name,
                e,
            )
        })
    }
}

/// What a handle's async helper parks on (`crate::helper`): the side's own
/// wake semaphore, with the side's counters. Holds the channel's `Shared`
/// for the helper thread; the handle joins that thread before it gives
/// its role up.
#[derive(Debug)]
pub(crate) struct ChanSleeper {
    shared: Arc<Shared>,
    num: u16,
    /// The sender's lane; `None` for the receiver.
    lane: Option<u16>,
}

impl ChanSleeper {
    pub(crate) fn new(shared: &Arc<Shared>, num: u16, lane: Option<u16>) -> ChanSleeper {
        ChanSleeper {
            shared: Arc::clone(shared),
            num,
            lane,
        }
    }
}

impl Sleeper for ChanSleeper {
    fn park(&self) -> Result<()> {
        let s = &*self.shared;
        let counters = match self.lane {
            Some(lane) => &s.view.lane(&s.geometry, lane).tx.counters,
            None => &s.header().rx.counters,
        };
        SemParker {
            shared: s,
            num: self.num,
            counters,
        }
        .park(None)
    }

    fn post(&self) -> Result<()> {
        self.shared.post(self.num)
    }

    fn channel(&self) -> String {
        self.shared.name.clone()
    }

    fn name(&self) -> &'static str {
        match self.lane {
            Some(_) => "shmchan-tx-park",
            None => "shmchan-rx-park",
        }
    }
}

/// Takes every post off a wake semaphore that only this side waits on, in
/// one semop (`-value`, IPC_NOWAIT); posts can only add meanwhile.
fn drain_sem(s: &Shared, num: u16) -> Result<()> {
    let value = s.sem_value(num)?;
    if value <= 0 {
        return Ok(());
    }
    let take = i16::try_from(value).unwrap_or(i16::MAX);
    match retry_on_intr(|| s.sem.op(&mut [sop(num, -take).nowait()])) {
        Ok(()) => Ok(()),
        Err(e) if Fail::of(&e) == Fail::WouldBlock => Ok(()),
        Err(e) => Err(os_error(Doing::Using, "semop(drain)", &s.name, e)),
    }
}
