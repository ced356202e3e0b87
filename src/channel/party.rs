//! Parties, roles and the semaphores behind them: joining and leaving
//! (with the last one out cleaning up), claiming and releasing a role,
//! watching the peer's liveness, and parking.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::shared::{Doing, Shared, os_error};
use crate::error::{Error, Result, Role};
use crate::layout::{Counters, bump, sem};
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

/// The claim: take the role, and arm the death wake-up (net change 0 to the
/// peer's wake semaphore, undo +1). Normally `+1` then `-1`; when the
/// peer's semaphore is already at SEMVMX (posts nobody drained), `+1`
/// first would fail with ERANGE, so `-1` goes first: same effect.
fn claim_ops(alive: u16, peer_wake: u16, at_max: bool) -> [SemOp; 4] {
    let take = [sop(alive, 0).nowait(), sop(alive, 1).undo()];
    let arm = if at_max {
        [sop(peer_wake, -1).nowait().undo(), sop(peer_wake, 1)]
    } else {
        [sop(peer_wake, 1), sop(peer_wake, -1).undo()]
    };
    [take[0], take[1], arm[0], arm[1]]
}

/// The release: give the role back and post the peer (cancelling the
/// armed undo), in one semop. At SEMVMX the post is made net-zero (the peer
/// has posts enough to wake) while still cancelling the undo. The `-1` on
/// ALIVE does not wait: ALIVE is 1 while we hold the role, unless another
/// process zeroed the set (`SETVAL`), and a drop must not block for ever
/// on that.
fn release_ops(alive: u16, peer_wake: u16, at_max: bool) -> Vec<SemOp> {
    let mut ops = vec![sop(alive, -1).nowait().undo()];
    if at_max {
        ops.push(sop(peer_wake, -1).nowait());
    }
    ops.push(sop(peer_wake, 1).undo());
    ops
}

/// A held role: `{ALIVE, 0, NOWAIT}, {ALIVE, +1, SEM_UNDO}` plus the death
/// wake-up `{PEER_WAKE, +1, 0}, {PEER_WAKE, -1, SEM_UNDO}` in one semop, so
/// that the kernel's undo at our exit posts the peer's wake semaphore.
#[derive(Debug)]
pub(crate) struct RoleHold {
    party: Party,
    role: Role,
}

impl RoleHold {
    /// Joins as a party and claims `role`.
    pub(crate) fn claim(shared: Arc<Shared>, role: Role) -> Result<RoleHold> {
        let party = Party::join(shared)?;
        let s = party.shared();
        let (_, alive) = Shared::role_sems(role == Role::Sender);
        let peer_wake = peer_wake(role);
        let mut at_max = false;
        let mut switches = 0;
        loop {
            let err = match retry_on_intr(|| s.sem.op(&mut claim_ops(alive, peer_wake, at_max))) {
                Ok(()) => break,
                Err(e) => e,
            };
            match Fail::of(&err) {
                // The peer's wake semaphore is full: use the other order.
                Fail::Range if switches < ORDER_SWITCHES => {
                    at_max = true;
                    switches += 1;
                }
                // In that order "would block" may mean it was drained
                // meanwhile (or the role is taken): retry in the normal order.
                Fail::WouldBlock if at_max => {
                    at_max = false;
                    switches += 1;
                }
                Fail::WouldBlock => {
                    return Err(Error::RoleTaken {
                        channel: s.name.clone(),
                        role,
                    });
                }
                _ => return Err(os_error(Doing::Using, "semop(claim role)", &s.name, err)),
            }
        }
        // The role is ours from here on: if what follows fails, dropping
        // the hold gives it back (and wakes the peer) at once, rather than
        // leaving it held until this process exits.
        let hold = RoleHold { party, role };
        let s = hold.shared();
        // Posts left on our own wake semaphore by earlier peers are stale.
        let (own_wake, _) = Shared::role_sems(role == Role::Sender);
        drain_sem(s, own_wake)?;
        Ok(hold)
    }

    /// Tells the peer that this role is attached: bumps the role's
    /// connection counter and raises its attached flag. Called once every
    /// check of the attach has passed, so that a claim given up halfway
    /// (a corrupt ring) never counts as a peer that came and went, which
    /// would end a waiting peer with `Disconnected`.
    pub(crate) fn announce(&self) {
        let c = &self.shared().header().control;
        let (connects, attached) = match self.role {
            Role::Sender => (&c.tx_connects, &c.tx_attached),
            Role::Receiver => (&c.rx_connects, &c.rx_attached),
        };
        // SYNC: pairs with the Acquire loads in `PeerWatch::refresh`.
        connects.fetch_add(1, Ordering::Release);
        // SYNC: pairs with the Acquire load in `PeerWatch::maybe_gone`.
        attached.store(1, Ordering::Release);
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.party.shared()
    }
}

impl Drop for RoleHold {
    fn drop(&mut self) {
        if !self.party.is_own() {
            return;
        }
        let s = self.party.shared();
        let c = &s.header().control;
        let attached = match self.role {
            Role::Sender => &c.tx_attached,
            Role::Receiver => &c.rx_attached,
        };
        // SYNC: pairs with the Acquire load in `PeerWatch::gone_quick`.
        attached.store(0, Ordering::Release);
        let (_, alive) = Shared::role_sems(self.role == Role::Sender);
        // Release the role and wake the peer in one semop: done as two, the
        // peer could wake, still read ALIVE = 1, and park for ever. The post
        // carries SEM_UNDO so that it cancels the undo armed at claim.
        let peer = peer_wake(self.role);
        let mut at_max = false;
        for _ in 0..ORDER_SWITCHES {
            let r = retry_on_intr(|| s.sem.op(&mut release_ops(alive, peer, at_max)));
            match r.map_err(|e| Fail::of(&e)) {
                Err(Fail::Range | Fail::WouldBlock) => at_max = !at_max,
                // Done; or the set was removed: no role left to release.
                _ => break,
            }
        }
        // `party` drops next and leaves.
    }
}

/// The semaphore the peer of `role` sleeps on.
fn peer_wake(role: Role) -> u16 {
    match role {
        Role::Sender => sem::RX_WAKE,
        Role::Receiver => sem::TX_WAKE,
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
        watch.connects = watch.connects_now(shared);
        watch
    }

    /// Starts watching once the role is held: the peer counts as seen when
    /// it is attached now, or (for a receiver) when messages are queued.
    pub(crate) fn start(mut self, shared: &Shared, queued: bool) -> Result<PeerWatch> {
        self.refresh(shared);
        self.seen |= queued || self.alive(shared)?;
        Ok(self)
    }

    /// A message from the peer was received: a sender existed.
    pub(crate) fn mark_seen(&mut self) {
        self.seen = true;
    }

    fn connects_now(&self, shared: &Shared) -> u64 {
        let c = &shared.header().control;
        let counter = match self.peer {
            Role::Sender => &c.tx_connects,
            Role::Receiver => &c.rx_connects,
        };
        // SYNC: pairs with the Release fetch_add in `RoleHold::claim`.
        counter.load(Ordering::Acquire)
    }

    fn refresh(&mut self, shared: &Shared) {
        let now = self.connects_now(shared);
        if now != self.connects {
            self.seen = true;
            self.connects = now;
        }
    }

    fn alive(&self, shared: &Shared) -> Result<bool> {
        let (_, alive) = Shared::role_sems(self.peer == Role::Sender);
        Ok(shared.sem_value(alive)? > 0)
    }

    /// Cheap check for every call: the seen peer detached cleanly (header
    /// flag), confirmed with the semaphore only in that case.
    pub(crate) fn gone_quick(&mut self, shared: &Shared) -> Result<bool> {
        Ok(self.maybe_gone(shared) && !self.alive(shared)?)
    }

    /// The header's word alone, no system call: whether the seen peer may
    /// have detached cleanly (`gone_quick` then confirms).
    #[inline]
    pub(crate) fn maybe_gone(&mut self, shared: &Shared) -> bool {
        self.refresh(shared);
        let c = &shared.header().control;
        let flag = match self.peer {
            Role::Sender => &c.tx_attached,
            Role::Receiver => &c.rx_attached,
        };
        // SYNC: pairs with the Release stores in RoleHold.
        self.seen && flag.load(Ordering::Acquire) == 0
    }

    /// Full check, before waiting: a seen peer is no longer alive (killed
    /// peers are learned here, from the semaphore the kernel undid).
    pub(crate) fn gone(&mut self, shared: &Shared) -> Result<bool> {
        self.refresh(shared);
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
