//! The state every handle of one stream shares, and the waiter lists.
//!
//! Values live in a ring of `max(capacity, 1)` slots, rounded up to a power
//! of two, allocated as values are buffered: a stream starts with a small
//! ring, and when it is full while the stream has room, producers start a
//! ring twice the size; consumers move on to it once they have taken what
//! the older ring holds. Rings are freed with the stream, so memory follows
//! the most values buffered at once, not the capacity. Producers, and
//! everything that changes who takes part (subscribe, unsubscribe, close),
//! go through one mutex; a batched put writes as many values as fit under
//! one lock and moves the tail once, past them all. Consumers take values
//! without it: each slot counts the consumers yet to take its value, the
//! last one moves the value out, and the others clone it. A consumer
//! loads the tail again only once it has taken every value below the last
//! tail it loaded, or reached the end of its ring (`Cursor::ready`): while
//! it catches up, it touches nothing the producers write but the slots it
//! takes. Nobody clones, wakes or drops a waker, or clones or drops a
//! value, while holding the mutex.
//!
//! # The put without the lock
//!
//! In the common case, a buffered stream with consumers, none of them
//! waiting, open, with room, a put takes no lock: it claims the tail with
//! one compare-and-swap on [`Shared::claim`], writes the slot, and moves
//! the tail. `claim` holds the sequence number the next claim gets and a
//! [`SLOW`] bit that sends producers to the mutex instead. Whoever takes the
//! mutex ([`Shared::lock`]) sets `SLOW` and waits for a claim in flight to
//! move the tail; holding the guard, it has the stream to itself as before.
//! Dropping the guard stores `claim` again: the tail, and `SLOW` while a
//! put must take the lock (a rendezvous stream, a closed one, one without
//! consumers, or one with a consumer waiting to be woken). A producer
//! claims only once the claim before it moved the tail, so at most one
//! claim is in flight, and it is the sequence numbers just under `claim`:
//! one, or a batched put's values when the room known ahead (below)
//! covers them all, claimed at once and published by one move of the
//! tail past them.
//!
//! # Room known ahead
//!
//! Slots free in sequence order (see the invariants), so a producer that
//! finds the value just under the tail taken knows that the next `limit`
//! values all have room: it stores that bound in [`Shared::room`], and
//! puts without the lock below it check no slot, until the buffer may be
//! full again. The bound is a fact about values taken, which stay taken
//! (the tail of a buffered stream never moves back), so it holds whoever
//! stored it and whenever; it is set only once the last ring is the
//! newest, and then the slot of every sequence number below it is in that
//! ring. The claim that follows still decides which producer writes.
//!
//! # Invariants
//!
//! - `tail` is the sequence number the next value gets; it changes under
//!   the mutex (a [`Locked`] guard), or by the one producer holding the
//!   claim of a put without the lock, never both at once.
//!   `limit = max(capacity, 1)` values at most are buffered.
//! - Rings are numbered from 0, each twice the size of the one before, up
//!   to `limit` rounded up to a power of two; `State::newest` is the last
//!   one allocated. Ring `r` holds the sequence numbers from its `start` up
//!   to (not including) its `end`, which is `u64::MAX` until ring `r + 1`
//!   starts; the value of `s` lives in slot `s & mask` of its ring. Ring
//!   `r + 1` is published before its `start` is stored as ring `r`'s `end`,
//!   and both before the tail moves past it, so a consumer that loaded the
//!   tail with Acquire finds the ring of every value below it. A ring
//!   starts only when the slot the tail maps to in the one before is
//!   taken, which cannot be before that ring was filled once: ring `r`
//!   holds at least its length in values.
//! - A slot is free when its count is 0. Otherwise it holds the value of
//!   the latest sequence number mapping to it (or, for a withdrawn
//!   rendezvous value, nothing), and its count is one more than the number
//!   of consumers yet to take it: the extra one stands for the value itself,
//!   so the count reaches 0 only once the value is gone. A count of 1
//!   with no consumer counted is a value nobody received whose consumers
//!   left: a rendezvous value waiting for its pending put to take it back
//!   ([`ORPHANED`]), or, while no consumer is subscribed, a value held for
//!   the next one (`State::held` to the tail).
//! - Slots free in sequence order: a consumer that took slot `s` took every
//!   slot before it, and a consumer subscribed after `s` was put does not
//!   count for it. So "slot `tail - limit` is free" means there is room,
//!   and then, in a ring of at least `limit` slots, the slot `tail` maps to
//!   (holding `tail - ring.len()` or earlier) is free too. In a smaller
//!   ring it may not be: then a new ring starts at `tail`.
//! - A consumer that finds the count at 2 before taking is the last to take
//!   the value: it moves it out. The others clone it, then decrement the
//!   count; the one whose decrement leaves 1 was the last after all (the
//!   others finished while it cloned) and drops the value. Either way the
//!   last one frees the slot by storing 0 once the value is gone.
//! - A producer that must wait for a slot to free sets the slot's
//!   [`WAITING`] bit (under the mutex) before registering its waker; the
//!   consumer whose read-modify-write frees the slot sees the bit and wakes
//!   the producers. Both touch the same atomic, so its modification order
//!   decides: either the producer sees the slot free, or the consumer sees
//!   the bit.

use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::task::Waker;

use super::error::TryPutError;
use crate::sync::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Mutex, MutexGuard, Ordering,
    UnsafeCell,
};

/// The largest capacity a stream may have.
pub(crate) const MAX_CAPACITY: usize = usize::MAX >> 1;

/// The number of slots a stream starts with (fewer if its capacity is
/// smaller). Under loom, one, so that the models see rings grow.
const FIRST_RING: usize = if cfg!(loom) { 1 } else { 32 };

/// Slot states (`Slot::delivery`). Not yet received by any consumer; in a
/// rendezvous stream, its pending put may still withdraw it.
const FRESH: u8 = 0;
/// Received by some consumer: in a rendezvous stream it can no longer be
/// withdrawn, and goes to every consumer it is for.
const DELIVERED: u8 = 1;
/// Withdrawn, but a consumer subscribed after it was put: a tombstone that
/// consumers step over.
const WITHDRAWN: u8 = 2;
/// Withdrawn and the tail moved back: as if never put.
const RETRACTED: u8 = 3;
/// Every consumer it was for left before receiving it. The value stays in
/// the slot (count 1: the value alone) until its put, still pending, takes
/// it back to offer it again (or hand it back on close or cancel).
const ORPHANED: u8 = 4;
/// Rendezvous: put by `try_put`, which keeps no claim on it, and not yet
/// received. Consumers treat it as [`FRESH`]; nobody withdraws it.
const UNCLAIMED: u8 = 5;

/// In [`Shared::claim`]: producers must take the mutex to put.
const SLOW: u64 = 1;

/// In a slot's `remaining`: a producer waits for this slot to free.
const WAITING: usize = 1 << (usize::BITS - 1);
/// In a slot's `remaining`: the number of consumers yet to take the value,
/// plus one while the slot holds it (see the invariants above).
const COUNT: usize = WAITING - 1;
/// The count of a slot whose value only one consumer has yet to take.
const LAST: usize = 2;

struct Slot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    remaining: AtomicUsize,
    /// Whether a consumer received the value: [`FRESH`] or [`DELIVERED`];
    /// in rendezvous streams also [`UNCLAIMED`], [`WITHDRAWN`],
    /// [`RETRACTED`] or [`ORPHANED`].
    delivery: AtomicU8,
}

impl<T> Slot<T> {
    /// Writes `value` into this slot of a buffered stream, for
    /// `remaining - 1` consumers. Consumers see it once the tail moves
    /// past it (with Release).
    ///
    /// # Safety
    ///
    /// The slot is free, and nobody else accesses it until the tail moves
    /// past it: the caller holds the mutex or the only claim.
    #[inline(always)]
    unsafe fn fill(&self, value: T, remaining: usize) {
        // SAFETY: the caller's, above.
        self.value.with_mut(|ptr| unsafe { (*ptr).write(value) });
        self.remaining.store(remaining, Ordering::Relaxed);
        self.delivery.store(FRESH, Ordering::Relaxed);
    }
}

/// One ring of slots: the values of the sequence numbers from `start` to
/// `end` (see the invariants above).
struct Ring<T> {
    slots: Box<[Slot<T>]>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: usize,
    /// The first sequence number this ring holds.
    start: u64,
    /// The first sequence number the next ring holds; `u64::MAX` while this
    /// ring is the newest.
    end: AtomicU64,
}

impl<T> Ring<T> {
    fn new(len: usize, start: u64) -> Self {
        debug_assert!(len.is_power_of_two());
        Ring {
            slots: (0..len)
                .map(|_| Slot {
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                    remaining: AtomicUsize::new(0),
                    delivery: AtomicU8::new(FRESH),
                })
                .collect(),
            mask: len - 1,
            start,
            end: AtomicU64::new(u64::MAX),
        }
    }

    #[inline(always)]
    fn slot(&self, seq: u64) -> &Slot<T> {
        let index = seq as usize & self.mask;
        debug_assert!(index < self.slots.len());
        // SAFETY: `mask` is `slots.len() - 1` and a ring is never empty, so
        // `index <= mask < slots.len()`.
        unsafe { self.slots.get_unchecked(index) }
    }
}

/// A ring's slots at hand, without the pointer chase through the ring
/// list: for producers (in [`State`]) and each consumer (in its
/// [`Cursor`]). Valid as long as the stream: rings are freed only with it.
struct RingRef<T> {
    slots: NonNull<Slot<T>>,
    mask: usize,
    start: u64,
    /// Whether the ring has `limit` slots or more: then it is the last.
    last: bool,
}

impl<T> Clone for RingRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for RingRef<T> {}

impl<T> RingRef<T> {
    fn new(ring: &Ring<T>, limit: u64) -> Self {
        RingRef {
            // From the whole slice, so that it may reach every slot.
            slots: NonNull::from(&*ring.slots).cast(),
            mask: ring.mask,
            start: ring.start,
            last: ring.slots.len() as u64 >= limit,
        }
    }

    /// The slot `seq` maps to. The caller must hold a handle to the stream
    /// (or its mutex) for as long as it uses the slot.
    #[inline(always)]
    fn slot(&self, seq: u64) -> &Slot<T> {
        let index = seq as usize & self.mask;
        // SAFETY: `slots` points to the first of `mask + 1` slots of a ring
        // freed only with the stream, which the caller keeps alive, and
        // `index <= mask`. Slots are only ever accessed through shared
        // references (their contents through atomics and `UnsafeCell`).
        unsafe { &*self.slots.as_ptr().add(index) }
    }
}

/// Where a consumer stands: the sequence number of the next value it takes
/// and the ring that holds it.
pub(crate) struct Cursor<T> {
    /// Sequence number of the next value this consumer takes.
    pub(crate) pos: u64,
    /// Index of the ring `ring` is.
    index: usize,
    ring: RingRef<T>,
    /// Below this sequence number, values are surely in `ring`: its end,
    /// once known; before, the ring's start plus its length (a ring holds
    /// at least that many values) or the last tail seen; `u64::MAX` for the
    /// last ring.
    sure: u64,
    /// Below this sequence number, values are published and in `ring`: the
    /// lesser of `sure` and the last tail this consumer loaded (with
    /// Acquire). A receive below it loads nothing the producers write to
    /// (the tail). In a rendezvous stream, whose tail may move back, it is
    /// never above `pos`: every receive there takes the careful path.
    ready: u64,
}

impl<T> Clone for Cursor<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Cursor<T> {}

// SAFETY: a cursor only points into its stream's rings, which consumers on
// any thread may access as `Shared<T>` says (`T: Send + Sync`).
unsafe impl<T: Send + Sync> Send for Cursor<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Cursor<T> {}

/// State shared by the producers and consumers of one stream.
pub(crate) struct Shared<T> {
    /// Taken through [`lock`](Self::lock) only.
    state: Mutex<State<T>>,
    /// The rings, oldest first: null until allocated, each by a producer
    /// under the mutex; freed with the stream.
    rings: Box<[AtomicPtr<Ring<T>>]>,
    /// How many values may be buffered: `max(capacity, 1)`.
    limit: u64,
    tail: AtomicU64,
    /// The sequence number the next claim gets, shifted left by one, and
    /// [`SLOW`] (see "The put without the lock" above). Moves on by a
    /// claim (a compare-and-swap, without the mutex), and is stored when a
    /// [`Locked`] guard drops.
    claim: AtomicU64,
    /// `State::consumers` and `State::newest`, as of the last guard
    /// dropped, for puts without the lock.
    consumers: AtomicUsize,
    newest: AtomicUsize,
    /// `State::producers`, as of the last guard dropped: a count read
    /// without the lock.
    producers: AtomicUsize,
    /// A put without the lock as any sequence number below this one has
    /// room, in the last ring (see "Room known ahead" above). 0 until a
    /// producer finds room ahead in the last ring.
    room: AtomicU64,
    /// The first slot of the last ring (the one of `limit` slots or more),
    /// null until it is allocated, and the mask of its length.
    last_slots: AtomicPtr<Slot<T>>,
    last_mask: usize,
    closed: AtomicBool,
    /// The capacity the stream was built with (0: rendezvous).
    pub(crate) capacity: usize,
}

/// The mutex held, with the stream to itself: no put without the lock is
/// in flight, and none starts before the guard drops (see "The put without
/// the lock" above).
pub(crate) struct Locked<'a, T> {
    shared: &'a Shared<T>,
    state: MutexGuard<'a, State<T>>,
}

impl<T> std::ops::Deref for Locked<'_, T> {
    type Target = State<T>;

    #[inline(always)]
    fn deref(&self) -> &State<T> {
        &self.state
    }
}

impl<T> std::ops::DerefMut for Locked<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.state
    }
}

impl<T> Drop for Locked<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // Stored before the mutex unlocks (the field drops after this).
        self.shared.reopen(&self.state);
    }
}

// SAFETY: producers move values in from any thread and consumers move or
// clone them out on theirs (`T: Send`); two consumers on different threads
// may clone the same value at once through `&T` (`T: Sync`). Every other
// access to a slot is ordered by its `remaining` count and the mutex, as
// the invariants above lay out.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

/// What the mutex guards.
pub(crate) struct State<T> {
    /// Counts subscriptions: a withdrawn value can be retracted only if no
    /// consumer subscribed after it was put.
    pub(crate) epoch: u64,
    pub(crate) consumers: usize,
    pub(crate) producers: usize,
    pub(crate) closed: bool,
    /// The newest ring allocated: new values go there.
    pub(crate) newest: usize,
    /// Ring `newest`, at hand.
    ring: RingRef<T>,
    /// Set while no consumer is subscribed and the last ones left values
    /// nobody received: the first of them, where the next consumer starts.
    /// Every value from there to the tail stays in its slot, count 1.
    pub(crate) held: Option<u64>,
    pub(crate) recv_waiters: WaitList,
    pub(crate) put_waiters: WaitList,
}

/// Which waiter lists an operation must wake.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Wake {
    pub(crate) consumers: bool,
    pub(crate) producers: bool,
}

impl Wake {
    pub(crate) const NONE: Wake = Wake {
        consumers: false,
        producers: false,
    };
    pub(crate) const CONSUMERS: Wake = Wake {
        consumers: true,
        producers: false,
    };
    pub(crate) const PRODUCERS: Wake = Wake {
        consumers: false,
        producers: true,
    };
    pub(crate) const ALL: Wake = Wake {
        consumers: true,
        producers: true,
    };
}

/// What a receive without the lock found: a value, or why not. Only
/// `Value` carries data (unlike `Result<T, TryRecvError>`, whose error
/// sits beside the value's first word), so the value moves out of the slot
/// and through the receive in whole words.
pub(crate) enum Took<T> {
    Value(T),
    Empty,
    Closed,
}

impl<T> Shared<T> {
    /// A stream of `capacity` (at most [`MAX_CAPACITY`]), with its first
    /// ring allocated.
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(capacity <= MAX_CAPACITY);
        let limit = capacity.max(1);
        let largest = limit.next_power_of_two();
        let first = largest.min(FIRST_RING);
        let count = (largest / first).trailing_zeros() as usize + 1;
        let rings: Box<[AtomicPtr<Ring<T>>]> = (0..count)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect();
        let ring = Box::into_raw(Box::new(Ring::new(first, 0)));
        rings[0].store(ring, Ordering::Relaxed);
        // SAFETY: just allocated, freed only with the stream.
        let ring = RingRef::new(unsafe { &*ring }, limit as u64);
        let last_slots = AtomicPtr::new(if ring.last {
            ring.slots.as_ptr()
        } else {
            std::ptr::null_mut()
        });
        Self {
            state: Mutex::new(State {
                epoch: 0,
                consumers: 0,
                producers: 1,
                closed: false,
                newest: 0,
                ring,
                held: None,
                recv_waiters: WaitList::default(),
                put_waiters: WaitList::default(),
            }),
            rings,
            limit: limit as u64,
            tail: AtomicU64::new(0),
            // No consumer yet (and a rendezvous stream for good): producers
            // take the lock.
            claim: AtomicU64::new(SLOW),
            consumers: AtomicUsize::new(0),
            newest: AtomicUsize::new(0),
            producers: AtomicUsize::new(1),
            room: AtomicU64::new(0),
            last_slots,
            last_mask: largest - 1,
            closed: AtomicBool::new(false),
            capacity,
        }
    }

    /// Takes the mutex, and the stream to itself: sets [`SLOW`], so that no
    /// producer claims without the lock any more, and waits for a claim in
    /// flight to move the tail.
    #[inline(always)]
    pub(crate) fn lock(&self) -> Locked<'_, T> {
        let state = self.state.lock();
        // With `SLOW` set by the last guard (the mutex orders its store
        // before this load), no claim was made since: nothing to wait for.
        // A rendezvous stream keeps it set.
        if self.claim.load(Ordering::Relaxed) & SLOW == 0 {
            let claimed = self.claim.fetch_or(SLOW, Ordering::AcqRel) >> 1;
            // A claim in flight is the sequence numbers just under
            // `claimed` (one, or a batch): its producer writes the slots,
            // then moves the tail to `claimed` (Release). It runs no user
            // code meanwhile, so this wait is short unless its thread is
            // descheduled.
            let mut spins = 0;
            while self.tail.load(Ordering::Acquire) != claimed {
                crate::sync::spin_wait(&mut spins);
            }
        }
        Locked {
            shared: self,
            state,
        }
    }

    /// Lets producers put without the lock again, unless the stream needs
    /// it (see "The put without the lock" above). Called by a [`Locked`]
    /// guard as it drops, before the mutex unlocks.
    #[inline(always)]
    fn reopen(&self, state: &State<T>) {
        self.consumers.store(state.consumers, Ordering::Relaxed);
        self.producers.store(state.producers, Ordering::Relaxed);
        if self.is_rendezvous() {
            return; // `SLOW` for good
        }
        let slow = state.closed || state.consumers == 0 || state.recv_waiters.waiting > 0;
        // Release, paired with the Acquire load in `try_push_unlocked`:
        // that load is not ordered after this guard by the claim word (it
        // may read a newer index than the word it claims with, stored by a
        // later guard that started a ring), and the ring must be there.
        self.newest.store(state.newest, Ordering::Release);
        let tail = self.tail.load(Ordering::Relaxed);
        // Release: a producer that claims after this (its compare-and-swap
        // reads this store, or a later claim's) sees everything done under
        // the guard.
        self.claim
            .store(tail << 1 | u64::from(slow), Ordering::Release);
    }

    /// The number of consumer handles, as of the last guard dropped (so
    /// exact once the call that changed it returned), without the lock.
    pub(crate) fn consumer_count(&self) -> usize {
        self.consumers.load(Ordering::Relaxed)
    }

    /// The number of producer handles, as [`consumer_count`](Self::consumer_count).
    pub(crate) fn producer_count(&self) -> usize {
        self.producers.load(Ordering::Relaxed)
    }

    /// Whether producers may claim without the lock now ([`SLOW`] is not
    /// set): a put that then fails without the lock most likely found the
    /// stream full.
    pub(crate) fn claims_unlocked(&self) -> bool {
        self.claim.load(Ordering::Relaxed) & SLOW == 0
    }

    /// The claim word, if a put may claim without the lock now: not
    /// [`SLOW`], and the claim before it has moved the tail.
    #[inline(always)]
    fn open_claim(&self) -> Option<u64> {
        let word = self.claim.load(Ordering::Acquire);
        (word & SLOW == 0 && self.tail.load(Ordering::Acquire) == word >> 1).then_some(word)
    }

    /// Puts `value` without the lock, if the stream is in the common case
    /// (see "The put without the lock" above) and has room; otherwise
    /// returns it, for the caller to put under the lock.
    #[inline(always)]
    pub(crate) fn try_push_unlocked(&self, value: T) -> Result<(), T> {
        // `SLOW`, or the claim before is still in flight: the lock.
        let Some(word) = self.open_claim() else {
            return Err(value);
        };
        let tail = word >> 1;
        // Acquire, paired with the Release store in `has_room_ahead`: the
        // slot the value goes to was freed before (see "Room known
        // ahead"). The bound holds for any tail below it, and the claim
        // below succeeds only if `tail` is the tail then.
        let slot = if tail < self.room.load(Ordering::Acquire) {
            // Acquire: stored before `room` was, so seen allocated.
            let slots = self.last_slots.load(Ordering::Acquire);
            // SAFETY: `room` is above 0, so the last ring is allocated and
            // `slots` is its first slot; `last_mask` is its length less
            // one, so the slot is in it. Rings live as long as the stream.
            unsafe { &*slots.add(tail as usize & self.last_mask) }
        } else {
            match self.find_room(tail) {
                Some(slot) => slot,
                // Full, or this ring is and a new one must start: the lock.
                None => return Err(value),
            }
        };
        if self
            .claim
            .compare_exchange(word, word + 2, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Err(value);
        }
        // Read after the claim: a consumer subscribing or leaving now takes
        // the lock, which waits for this put to move the tail before it
        // changes the count, so this is the count the value is for.
        let consumers = self.consumers.load(Ordering::Relaxed);
        // SAFETY: the slot is free, as in `try_push`: the value `limit`
        // back is taken (and every earlier one), and the Acquire loads in
        // `has_room` (or of `room`) synchronize with the consumer that
        // freed it; in a smaller ring, `find_room` found it free. This
        // producer holds the only claim, so no other producer writes slots
        // now (a guard waits for it to finish), and consumers do not read
        // the slot before the tail moves past it, below.
        unsafe { slot.fill(value, consumers + 1) };
        self.tail.store(tail + 1, Ordering::Release);
        Ok(())
    }

    /// Puts `count` values (at least 1), taking each from `next`, without
    /// the lock, if the stream is in the common case and the room known
    /// ahead covers them all. Returns how many more values are known to
    /// fit after them if it did (then `next` was called `count` times),
    /// `None` if it did not (then never). One claim moves `claim` past
    /// them all, and the tail moves once: a guard waits for the whole
    /// batch, which runs no user code (`next` only moves values the caller
    /// already holds).
    #[inline(always)]
    pub(crate) fn try_push_batch_unlocked(
        &self,
        count: usize,
        next: &mut dyn FnMut() -> T,
    ) -> Option<u64> {
        debug_assert!(count > 0);
        let word = self.open_claim()?;
        let tail = word >> 1;
        let end = tail + count as u64;
        // Acquire, as in `try_push_unlocked`.
        let mut room = self.room.load(Ordering::Acquire);
        if end > room {
            self.find_room(tail)?;
            room = self.room.load(Ordering::Acquire);
            if end > room {
                return None;
            }
        }
        if self
            .claim
            .compare_exchange(word, end << 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        // As in `try_push_unlocked`: the count the values are for.
        let remaining = self.consumers.load(Ordering::Relaxed) + 1;
        // Acquire: stored before `room` was, so seen allocated.
        let slots = self.last_slots.load(Ordering::Acquire);
        for seq in tail..end {
            let value = next();
            // SAFETY: as in `try_push_unlocked`, for each of the values:
            // `room` is above `seq`, so the last ring is allocated, `slots`
            // is its first slot and the slot is free; this producer holds
            // the only claim, and consumers do not read the slot before the
            // tail moves past it, below.
            unsafe { (*slots.add(seq as usize & self.last_mask)).fill(value, remaining) };
        }
        self.tail.store(end, Ordering::Release);
        Some(room - end)
    }

    /// For a put without the lock as `tail` (the tail in the last claim
    /// word), past the room known ahead: the slot its value goes to, if
    /// there is room and it is in the newest ring; `None` if the put must
    /// take the lock. Read before the claim, and checked by it: whatever
    /// would change the newest ring or the room also changes `claim` (a put
    /// moves the tail, a guard sets `SLOW`), so the claim then fails.
    #[inline(never)]
    fn find_room(&self, tail: u64) -> Option<&Slot<T>> {
        // Acquire: the index may be newer than the claim word (a later
        // guard started a ring and moved the tail; the claim then fails),
        // and the ring it names must be seen allocated, not null.
        let index = self.newest.load(Ordering::Acquire);
        let ring = RingRef::new(self.ring(index), self.limit);
        if !ring.last {
            // A smaller ring: the slot `tail` maps to must be free too,
            // or a new ring must start.
            let slot = ring.slot(tail);
            let free = self.has_room(&ring, index, tail, tail)
                && slot.remaining.load(Ordering::Acquire) & COUNT == 0;
            // SAFETY: a slot of one of this stream's rings, which live as
            // long as the stream (`&self`).
            return free.then(|| unsafe { &*(slot as *const Slot<T>) });
        }
        if !self.has_room_ahead(&ring, index, tail) {
            return None;
        }
        let slot: *const Slot<T> = ring.slot(tail);
        // SAFETY: as above.
        Some(unsafe { &*slot })
    }

    /// The slot of `seq`, in ring `index` or an older one.
    fn slot_before(&self, mut index: usize, seq: u64) -> &Slot<T> {
        loop {
            let ring = self.ring(index);
            if seq >= ring.start || index == 0 {
                return ring.slot(seq);
            }
            index -= 1;
        }
    }

    /// Ring `index`, which must be allocated: at most `State::newest`, or
    /// the ring a consumer is in, or the next one once it found its ring's
    /// `end` at or below a sequence number under the tail it loaded.
    #[inline(always)]
    fn ring(&self, index: usize) -> &Ring<T> {
        let ring = self.rings[index].load(Ordering::Acquire);
        debug_assert!(!ring.is_null());
        // SAFETY: the caller's index is of an allocated ring, published
        // with Release before any value in it (see the invariants); rings
        // are freed only when the stream is dropped, which `&self` forbids.
        unsafe { &*ring }
    }

    /// The slot of `seq`, in whichever ring holds it. Call under the mutex,
    /// with `seq` at most the tail and in a ring still allocated.
    fn slot(&self, state: &State<T>, seq: u64) -> &Slot<T> {
        if seq >= state.ring.start {
            let ring = state.ring;
            let slot: *const Slot<T> = ring.slot(seq);
            // SAFETY: a slot of one of this stream's rings, which live as
            // long as the stream (`&self`).
            return unsafe { &*slot };
        }
        self.slot_before(state.newest, seq)
    }

    /// Starts ring `newest + 1`, twice the size, at `seq`; returns it. Call
    /// under the mutex, with the newest ring smaller than `limit`.
    #[cold]
    fn grow(&self, state: &mut State<T>, seq: u64) -> RingRef<T> {
        let old = self.ring(state.newest);
        debug_assert!((old.slots.len() as u64) < self.limit);
        let ring = Box::into_raw(Box::new(Ring::new(old.slots.len() * 2, seq)));
        state.newest += 1;
        self.rings[state.newest].store(ring, Ordering::Release);
        old.end.store(seq, Ordering::Release);
        state.ring = RingRef::new(self.ring(state.newest), self.limit);
        if state.ring.last {
            // Release: a put that finds it through `room` sees the ring.
            self.last_slots
                .store(state.ring.slots.as_ptr(), Ordering::Release);
        }
        state.ring
    }

    /// A cursor at `pos`, in ring `index`, which holds it. `tail`: a tail
    /// loaded with Acquire (or under the mutex) no lower than `pos`.
    fn cursor(&self, pos: u64, index: usize, tail: u64) -> Cursor<T> {
        let ring = self.ring(index);
        let at_hand = RingRef::new(ring, self.limit);
        let end = ring.end.load(Ordering::Acquire);
        let sure = if end != u64::MAX {
            end
        } else if at_hand.last {
            u64::MAX
        } else {
            // No newer ring yet: everything under the tail is in this one.
            (ring.start + ring.slots.len() as u64).max(tail)
        };
        Cursor {
            pos,
            index,
            ring: at_hand,
            sure,
            ready: pos,
        }
    }

    /// Moves `cursor` on to the ring that holds its position, at or past
    /// its `sure` bound and below `tail` (loaded with Acquire).
    #[cold]
    fn follow(&self, cursor: &mut Cursor<T>, tail: u64) {
        let end = self.ring(cursor.index).end.load(Ordering::Acquire);
        if cursor.pos < end {
            // Still in its ring, which is not the last (that one's bound
            // is `u64::MAX`): a consumer that keeps up with a stream whose
            // first ring never filled comes here on every value, so the
            // bound moves on without rebuilding the cursor. As in
            // `cursor`: the ring's end once known, else the tail (at or
            // above the ring's start plus its length, which `sure` was).
            cursor.sure = if end != u64::MAX { end } else { tail };
            return;
        }
        let mut index = cursor.index + 1;
        while cursor.pos >= self.ring(index).end.load(Ordering::Acquire) {
            index += 1;
        }
        *cursor = self.cursor(cursor.pos, index, tail);
    }

    fn is_rendezvous(&self) -> bool {
        self.capacity == 0
    }

    /// Unlocks `state`, then wakes the waiters `wake` names, in batches that
    /// never hold the lock while waking.
    #[inline(always)]
    pub(crate) fn release(&self, mut state: Locked<'_, T>, wake: Wake) {
        if !state.has_waiters(wake) {
            return;
        }
        if let Some(waker) = Self::only_waiter(&mut state, wake) {
            drop(state);
            waker.wake();
            return;
        }
        self.release_all(state, wake);
    }

    /// The one waker to wake, taken out, if `wake` names exactly one.
    #[inline(always)]
    fn only_waiter(state: &mut State<T>, wake: Wake) -> Option<Waker> {
        let consumers = if wake.consumers {
            state.recv_waiters.waiting
        } else {
            0
        };
        let producers = if wake.producers {
            state.put_waiters.waiting
        } else {
            0
        };
        match (consumers, producers) {
            (1, 0) => state.recv_waiters.take_one(),
            (0, 1) => state.put_waiters.take_one(),
            _ => None,
        }
    }

    /// [`release`](Self::release) with several wakers to wake.
    #[cold]
    fn release_all(&self, mut state: Locked<'_, T>, wake: Wake) {
        let mut batch = WakeBatch::new();
        let mut more = self.drain(&mut state, wake, &mut batch);
        drop(state);
        batch.wake_all();
        while more {
            let mut state = self.lock();
            more = self.drain(&mut state, wake, &mut batch);
            drop(state);
            batch.wake_all();
        }
    }

    fn drain(&self, state: &mut State<T>, wake: Wake, batch: &mut WakeBatch) -> bool {
        let mut more = false;
        if wake.consumers {
            more |= state.recv_waiters.drain_into(batch);
        }
        if wake.producers {
            more |= state.put_waiters.drain_into(batch);
        }
        more
    }

    /// Registers a waiter's waker in the list `list` picks, then unlocks.
    /// Returns `true` once registered: the waiter returns `Pending`. If the
    /// registration needed a clone of the waker made before locking (see
    /// [`WaitList::register`]), returns `false` with a fresh clone in
    /// `fresh`, made after unlocking: the waiter looks again.
    pub(crate) fn wait_in(
        &self,
        mut state: Locked<'_, T>,
        list: impl FnOnce(&mut State<T>) -> &mut WaitList,
        key: &mut Option<usize>,
        waker: &Waker,
        fresh: &mut Option<Waker>,
    ) -> bool {
        match list(&mut state).register(key, waker, fresh) {
            Ok(replaced) => {
                drop(state);
                drop((replaced, fresh.take()));
                true
            }
            Err(NeedsClone) => {
                drop(state);
                *fresh = Some(waker.clone());
                false
            }
        }
    }

    /// Closes the stream; returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        state.closed = true;
        self.closed.store(true, Ordering::Release);
        self.release(state, Wake::ALL);
        true
    }

    /// Whether the stream is closed, without the lock. Acquire, paired
    /// with the Release store in [`close`](Self::close).
    #[inline(always)]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The sequence number the next value will get.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(Ordering::Acquire)
    }

    /// Whether the consumer at `pos` has something to take now: a value, or
    /// the end of a closed stream. Under the mutex, which every change of
    /// the tail and of `closed` holds, the answer cannot be stale.
    pub(crate) fn has_next(&self, state: &State<T>, pos: u64) -> bool {
        state.closed || self.tail.load(Ordering::Relaxed) != pos
    }

    /// Number of values buffered that some consumer has yet to take.
    pub(crate) fn len(&self, state: &State<T>) -> usize {
        // Slots free in sequence order: walk back from the newest value to
        // the first free slot.
        let tail = self.tail();
        if let Some(held) = state.held {
            return (tail - held) as usize;
        }
        let oldest = tail.saturating_sub(self.limit);
        let mut len = 0;
        for seq in (oldest..tail).rev() {
            let Some(slot) = self.slot_holding(&state.ring, state.newest, tail, seq) else {
                break; // reused by a later value: taken, and all before it
            };
            match slot.remaining.load(Ordering::Acquire) & COUNT {
                0 => break,
                1 => {}
                _ => len += 1,
            }
        }
        len
    }

    /// Buffers `value` if there is room, and returns its sequence number.
    /// `pending`: a pending rendezvous put keeps a claim on the value (it
    /// may withdraw it, or take it back if its consumers leave); `try_put`
    /// keeps none.
    #[inline(always)]
    pub(crate) fn try_push(
        &self,
        state: &mut State<T>,
        value: T,
        pending: bool,
    ) -> Result<u64, TryPutError<T>> {
        if state.closed {
            return Err(TryPutError::Closed(value));
        }
        let seq = self.tail.load(Ordering::Relaxed);
        let mut ring = state.ring;
        if state.consumers == 0 || !self.has_room_ahead(&ring, state.newest, seq) {
            return Err(TryPutError::Full(value));
        }
        if !ring.last && ring.slot(seq).remaining.load(Ordering::Acquire) & COUNT != 0 {
            // This ring is full, the stream is not.
            ring = self.grow(state, seq);
        }
        let slot = ring.slot(seq);
        // SAFETY: the slot is free: in a ring of `limit` slots or more,
        // because the value `limit` back is fully taken, so is every
        // earlier one, and the Acquire load in `has_room` synchronizes with
        // the consumer that freed it; in a smaller ring, because the load
        // above found it free (or the ring is new). Only producers holding
        // the mutex write slots, so nothing else accesses it now.
        slot.value.with_mut(|ptr| unsafe { (*ptr).write(value) });
        slot.remaining.store(state.consumers + 1, Ordering::Relaxed);
        if self.is_rendezvous() {
            // Published last, with Release: a consumer that loaded the tail
            // before a withdrawn put moved it back reaches this slot
            // through `delivery` alone (its Acquire in `claim`), not the
            // tail, so this store must order the value and the count.
            let delivery = if pending { FRESH } else { UNCLAIMED };
            slot.delivery.store(delivery, Ordering::Release);
        } else {
            // Read only under the mutex, which orders it.
            slot.delivery.store(FRESH, Ordering::Relaxed);
        }
        self.tail.store(seq + 1, Ordering::Release);
        Ok(seq)
    }

    /// How many values, up to `max`, would fit now after the tail, each
    /// behind the one before: the room a batched put pulls values for.
    /// Nothing fits in a closed stream or one without consumers. Call under
    /// the mutex.
    #[inline(always)]
    pub(crate) fn room(&self, state: &State<T>, max: usize) -> usize {
        if state.closed || state.consumers == 0 {
            return 0;
        }
        let tail = self.tail.load(Ordering::Relaxed);
        let ring = state.ring;
        // Value `tail + k` fits if the slot of `tail + k - limit` is free
        // (or it is below `limit`); slots free in sequence order, so if
        // the last of `max` values fits, so does every one before it.
        let max = max.min(self.limit as usize);
        if max == 0 || self.has_room(&ring, state.newest, tail, tail + max as u64 - 1) {
            return max;
        }
        // The values that fit are a prefix of the `max`: find its end.
        let (mut fits, mut not) = (0, max - 1);
        while fits < not {
            let mid = fits + (not - fits) / 2;
            if self.has_room(&ring, state.newest, tail, tail + mid as u64) {
                fits = mid + 1;
            } else {
                not = mid;
            }
        }
        fits
    }

    /// Buffers `count` values, taking each from `next`, and moves the tail
    /// once, past them all: consumers see the batch at once, and the
    /// synchronization is paid once for it. Capacity ≥ 1 only; the caller
    /// found room for `count` values under this lock ([`room`](Self::room)).
    #[inline(always)]
    pub(crate) fn push_batch(
        &self,
        state: &mut State<T>,
        count: usize,
        next: &mut dyn FnMut() -> T,
    ) {
        debug_assert!(!self.is_rendezvous() && !state.closed && state.consumers > 0);
        debug_assert!(self.room(state, count) == count);
        let tail = self.tail.load(Ordering::Relaxed);
        let mut ring = state.ring;
        let remaining = state.consumers + 1;
        for seq in tail..tail + count as u64 {
            if !ring.last && ring.slot(seq).remaining.load(Ordering::Acquire) & COUNT != 0 {
                // This ring is full, the stream is not.
                ring = self.grow(state, seq);
            }
            let slot = ring.slot(seq);
            let value = next();
            // SAFETY: the slot is free, as in `try_push`: the caller found
            // room for the value under this lock (the slot `limit` back is
            // free, so is every earlier one, and the Acquire load in
            // `has_room` synchronizes with the consumer that freed it), and
            // in a smaller ring the load above found it free. Consumers do
            // not read it before the tail moves past it, below.
            unsafe { slot.fill(value, remaining) };
        }
        self.tail.store(tail + count as u64, Ordering::Release);
    }

    /// Whether the value put as `at` (the tail, or a value after it in a
    /// batch) would fit: the value `limit` before it is taken, so fewer than
    /// `limit` values would be buffered. `newest` is ring `index`, the
    /// newest; `tail` the tail.
    #[inline(always)]
    fn has_room(&self, newest: &RingRef<T>, index: usize, tail: u64, at: u64) -> bool {
        let Some(seq) = at.checked_sub(self.limit) else {
            return true;
        };
        self.slot_holding(newest, index, tail, seq)
            .is_none_or(|slot| slot.remaining.load(Ordering::Acquire) & COUNT == 0)
    }

    /// [`has_room`](Self::has_room) for the value put as `tail` (the
    /// tail), which also looks ahead: in the last ring of a buffered
    /// stream, if the value just under the tail is taken, the next `limit`
    /// values have room, and [`Shared::room`] says so (see "Room known
    /// ahead" above).
    #[inline(always)]
    fn has_room_ahead(&self, newest: &RingRef<T>, index: usize, tail: u64) -> bool {
        if newest.last && !self.is_rendezvous() {
            let below = tail
                .checked_sub(1)
                .and_then(|seq| self.slot_holding(newest, index, tail, seq));
            if below.is_some_and(|slot| slot.remaining.load(Ordering::Acquire) & COUNT == 0) {
                // Release: a put that loads it (Acquire) sees the slots
                // freed.
                self.room.store(tail + self.limit, Ordering::Release);
                return true;
            }
        }
        self.has_room(newest, index, tail, tail)
    }

    /// The slot of `seq` (below `tail`), unless a later value reused it,
    /// which it did only once `seq` was taken: `None` then. In a ring
    /// smaller than `limit`, the slot the value `limit` back maps to may
    /// hold a later value still buffered; only a ring's last values (those
    /// less than its length before its end, or before the tail for the
    /// newest ring) are still in their slots. `newest` is ring `index`.
    #[inline(always)]
    fn slot_holding(
        &self,
        newest: &RingRef<T>,
        index: usize,
        tail: u64,
        seq: u64,
    ) -> Option<&Slot<T>> {
        let (len, end, slot) = if seq >= newest.start {
            let slot: *const Slot<T> = newest.slot(seq);
            // SAFETY: a slot of one of this stream's rings, which live as
            // long as the stream (`&self`).
            (newest.mask as u64 + 1, tail, unsafe { &*slot })
        } else {
            let mut index = index;
            let ring = loop {
                index -= 1;
                let ring = self.ring(index);
                if seq >= ring.start || index == 0 {
                    break ring;
                }
            };
            // Stored before ring `index + 1` was published.
            let end = ring.end.load(Ordering::Acquire);
            (ring.slots.len() as u64, end, ring.slot(seq))
        };
        (seq + len >= end).then_some(slot)
    }

    /// The sequence number whose slot must free before the value put as
    /// `tail` fits.
    pub(crate) fn room_seq(&self, tail: u64) -> u64 {
        tail.saturating_sub(self.limit)
    }

    /// Whether the value put as `seq` has been taken by every consumer (or
    /// every consumer that was to take it has gone). Call under the mutex.
    pub(crate) fn is_taken(&self, state: &State<T>, seq: u64) -> bool {
        self.tail.load(Ordering::Relaxed) > seq + self.limit
            || self.slot(state, seq).remaining.load(Ordering::Acquire) & COUNT == 0
    }

    /// Marks the slot of `seq` as awaited by a producer, so that the consumer
    /// freeing it wakes the producers. Returns whether it is already free
    /// (then there is nothing to wait for). Call under the mutex, with `seq`
    /// the tail (waiting for room) or a buffered value (waiting for it to be
    /// taken).
    pub(crate) fn await_slot(&self, state: &State<T>, seq: u64) -> bool {
        self.slot(state, seq)
            .remaining
            .fetch_or(WAITING, Ordering::AcqRel)
            & COUNT
            == 0
    }

    /// Withdraws the rendezvous value put as `seq` (when the subscription
    /// epoch was `epoch`) if no consumer has received it yet, and returns it.
    /// If no consumer subscribed since, the stream is left exactly as before
    /// the put; otherwise the slot stays as a tombstone consumers step over.
    /// Once received, the value stays, so that every consumer sees the same
    /// sequence. Call under the mutex.
    pub(crate) fn withdraw(&self, state: &State<T>, seq: u64, epoch: u64) -> Option<T> {
        debug_assert!(self.is_rendezvous());
        if self.is_taken(state, seq) {
            return None;
        }
        if let Some(value) = self.reclaim(state, seq) {
            return Some(value);
        }
        let slot = self.slot(state, seq);
        let retract = state.epoch == epoch;
        let mark = if retract { RETRACTED } else { WITHDRAWN };
        slot.delivery
            .compare_exchange(FRESH, mark, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        // SAFETY: the value is initialized (not yet taken: `remaining` > 0)
        // and no consumer will touch it: they all see the mark (the CAS won
        // against their FRESH -> DELIVERED CAS) and leave the value alone.
        let value = slot.value.with(|ptr| unsafe { (*ptr).assume_init_read() });
        if retract {
            // Every consumer counted in `remaining` is still at `seq` (none
            // claimed it, none subscribed since): freeing the slot and moving
            // the tail back undoes the put.
            slot.remaining.store(0, Ordering::Release);
            self.tail.store(seq, Ordering::Release);
        }
        Some(value)
    }

    /// Takes back the rendezvous value put as `seq` if every consumer it was
    /// for left before receiving it ([`ORPHANED`]), freeing its slot; its
    /// put offers it again. Call under the mutex, with `seq` not taken.
    pub(crate) fn reclaim(&self, state: &State<T>, seq: u64) -> Option<T> {
        let slot = self.slot(state, seq);
        if !self.is_rendezvous() || slot.delivery.load(Ordering::Acquire) != ORPHANED {
            return None;
        }
        // SAFETY: an orphaned value is initialized and no consumer will
        // touch it: every consumer counted for it has left, later ones start
        // after it, and the count of 1 keeps producers from reusing the
        // slot, until it is stored 0 below. The mutex held here orders this
        // read after the unsubscribe that orphaned it.
        let value = slot.value.with(|ptr| unsafe { (*ptr).assume_init_read() });
        // The caller wakes the producers, whether or not one waits here.
        slot.remaining.store(0, Ordering::Release);
        Some(value)
    }

    /// Takes the next value for the consumer at `cursor`, without the
    /// mutex, and wakes the producers if that freed a slot one waits for.
    #[inline(always)]
    pub(crate) fn try_take(&self, cursor: &mut Cursor<T>) -> Took<T>
    where
        T: Clone,
    {
        if cursor.pos < cursor.ready {
            // Published, in the ring at hand, in a buffered stream.
            let ring = cursor.ring;
            let slot = ring.slot(cursor.pos);
            return Took::Value(self.take(slot, cursor));
        }
        self.try_take_loaded(cursor)
    }

    /// [`try_take`](Self::try_take) past the values known ready: loads the
    /// tail, moves on to a newer ring if need be, and in a rendezvous
    /// stream claims the value against a withdrawal.
    #[inline(always)]
    fn try_take_loaded(&self, cursor: &mut Cursor<T>) -> Took<T>
    where
        T: Clone,
    {
        let mut wake = false;
        let error = loop {
            let tail = self.tail.load(Ordering::Acquire);
            if cursor.pos == tail {
                if !self.closed.load(Ordering::Acquire)
                    || cursor.pos != self.tail.load(Ordering::Acquire)
                {
                    break Took::Empty;
                }
                break Took::Closed;
            }
            if cursor.pos >= cursor.sure {
                // Perhaps in a newer ring.
                self.follow(cursor, tail);
                continue;
            }
            let ring = cursor.ring;
            let slot = ring.slot(cursor.pos);
            if self.is_rendezvous() {
                match Self::claim(slot) {
                    DELIVERED => {}
                    // Being retracted: the tail is moving back to `pos`.
                    RETRACTED => break Took::Empty,
                    _ => {
                        // A tombstone: step over it, freeing the slot if this
                        // was the last consumer to pass it.
                        cursor.pos += 1;
                        if slot.remaining.fetch_sub(1, Ordering::AcqRel) & COUNT == LAST {
                            wake |= slot.remaining.swap(0, Ordering::AcqRel) & WAITING != 0;
                        }
                        continue;
                    }
                }
            } else {
                // Every value below the tail just loaded is published, and
                // stays for this consumer until it takes it: the tail of a
                // buffered stream never moves back. (A rendezvous stream
                // keeps `ready` at most `pos`: its values must be claimed
                // against a withdrawal.)
                cursor.ready = tail.min(cursor.sure);
            }
            if wake {
                self.wake_producers();
            }
            return Took::Value(self.take(slot, cursor));
        };
        // No value to return, but a tombstone stepped over may have freed
        // a slot a producer waits for: it must be woken here, or it would
        // wait for this consumer while this consumer waits for it.
        if wake {
            self.wake_producers();
        }
        error
    }

    /// Takes the value in `slot`, the slot of `cursor.pos`, which this
    /// consumer may take (published, and received if the stream is a
    /// rendezvous), and moves the cursor past it; wakes the producers if
    /// that freed a slot one waits for.
    #[inline(always)]
    fn take(&self, slot: &Slot<T>, cursor: &mut Cursor<T>) -> T
    where
        T: Clone,
    {
        if slot.remaining.load(Ordering::Acquire) & COUNT == LAST {
            // SAFETY: this consumer is the only one yet to take the value
            // (the others decremented `remaining` after cloning, with
            // Release), so nobody else reads it; it is moved out once, and
            // the slot freed right after.
            let value = slot.value.with(|ptr| unsafe { (*ptr).assume_init_read() });
            cursor.pos += 1;
            if slot.remaining.swap(0, Ordering::AcqRel) & WAITING != 0 {
                self.wake_producers();
            }
            return value;
        }
        // SAFETY: `remaining` counts this consumer, so the value stays
        // initialized until it decrements below; others may clone it at the
        // same time, which `Shared: Sync` allows for `T: Sync`.
        let value = slot
            .value
            .with(|ptr| unsafe { (*ptr).assume_init_ref().clone() });
        // Only once the clone returned does this consumer move past the
        // value: if `T::clone` panics, it stays at the value, still
        // counted, and its next receive clones it again (or its drop
        // releases it). Nothing is skipped or leaked.
        cursor.pos += 1;
        // Recorded before the decrement (Release) that a consumer leaving
        // under the mutex synchronizes with: the value was received, so it
        // is not held for the next consumer.
        slot.delivery.store(DELIVERED, Ordering::Relaxed);
        if slot.remaining.fetch_sub(1, Ordering::AcqRel) & COUNT == LAST {
            // The others finished while this one cloned. The slot is freed
            // even if `T::drop` panics.
            let free = FreeOnUnwind { shared: self, slot };
            // SAFETY: every other consumer is done with the value (their
            // decrements came first, with Release), and the count of 1 left
            // keeps the slot from being reused until it is stored 0 after
            // the drop.
            slot.value
                .with_mut(|ptr| unsafe { (*ptr).assume_init_drop() });
            std::mem::forget(free);
            if slot.remaining.swap(0, Ordering::AcqRel) & WAITING != 0 {
                self.wake_producers();
            }
        }
        value
    }

    /// Rendezvous: marks the slot as received. Returns [`DELIVERED`], or the
    /// withdrawal mark that beat this consumer to it.
    fn claim(slot: &Slot<T>) -> u8 {
        let mut now = slot.delivery.load(Ordering::Acquire);
        loop {
            match now {
                // Not received yet. The state may change under this CAS: a
                // withdrawal (then the mark is returned), or a withdrawal and
                // a new put into the slot (then its value is claimed).
                FRESH | UNCLAIMED => match slot.delivery.compare_exchange(
                    now,
                    DELIVERED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return DELIVERED,
                    Err(changed) => now = changed,
                },
                _ => return now,
            }
        }
    }

    /// Wakes the producers after a consumer freed a slot one awaited: in a
    /// buffered stream once per wait, not per value (a rendezvous stream
    /// wakes on every value), so it is kept out of the receive's inlined
    /// path.
    #[cold]
    #[inline(never)]
    pub(crate) fn wake_producers(&self) {
        let state = self.lock();
        self.release(state, Wake::PRODUCERS);
    }

    /// Registers a new consumer; returns where it starts: the tail, or the
    /// first value held for it.
    pub(crate) fn subscribe(&self, state: &mut State<T>) -> Cursor<T> {
        let tail = self.tail.load(Ordering::Relaxed);
        let Some(held) = state.held.take() else {
            state.epoch += 1;
            state.consumers += 1;
            return self.cursor(tail, state.newest, tail);
        };
        // The values the last consumers left untaken are this one's.
        self.subscribe_at(state, held);
        let mut ring = state.newest;
        while self.ring(ring).start > held {
            ring -= 1;
        }
        self.cursor(held, ring, tail)
    }

    /// Registers a consumer that starts at `pos`, like an existing one whose
    /// handle the caller holds (so it takes nothing meanwhile).
    pub(crate) fn subscribe_at(&self, state: &mut State<T>, pos: u64) {
        state.epoch += 1;
        state.consumers += 1;
        for seq in pos..self.tail.load(Ordering::Relaxed) {
            self.slot(state, seq)
                .remaining
                .fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Removes the consumer at `pos`: it no longer holds anything back.
    /// Returns the values it was the last to hold, to be dropped once the
    /// mutex is released.
    ///
    /// A value this consumer was the last to hold leaves with it if some
    /// consumer received it, or if other consumers remain (they subscribed
    /// after it was put). Otherwise nobody received it and nobody is left:
    /// a pending rendezvous put takes it back ([`ORPHANED`]); any other
    /// value waits, with every later one, for the next consumer
    /// (`State::held`).
    pub(crate) fn unsubscribe(&self, state: &mut State<T>, pos: u64) -> Vec<T> {
        debug_assert!(
            state.held.is_none(),
            "values held with a consumer subscribed"
        );
        state.consumers -= 1;
        let last = state.consumers == 0;
        let mut freed = Vec::new();
        for seq in pos..self.tail.load(Ordering::Relaxed) {
            let slot = self.slot(state, seq);
            if slot.remaining.fetch_sub(1, Ordering::AcqRel) & COUNT != LAST {
                continue;
            }
            // The fetch_sub above synchronizes with every consumer's
            // decrement, after its `DELIVERED` store.
            match slot.delivery.load(Ordering::Acquire) {
                // A tombstone: its value is gone already.
                WITHDRAWN if self.is_rendezvous() => {}
                // No consumer received it, and none is left to: the value
                // stays for its pending put to take back (`reclaim`) and
                // offer again. The slot stays taken until then.
                FRESH if self.is_rendezvous() && last => {
                    slot.delivery.store(ORPHANED, Ordering::Relaxed);
                    continue;
                }
                // Nobody received it, nobody is left: it waits for the next
                // consumer, and so does everything after it.
                _ if state.held.is_some() => continue,
                FRESH | UNCLAIMED if last => {
                    state.held = Some(seq);
                    continue;
                }
                FRESH if self.is_rendezvous() => {
                    // Its put offers it again, to the consumers there are.
                    slot.delivery.store(ORPHANED, Ordering::Relaxed);
                    continue;
                }
                // SAFETY: the count went 2 -> 1 here, so every other
                // consumer is done with the value; it is moved out once,
                // and producers, which write slots under the mutex held
                // here, cannot reuse the slot before it is freed below.
                _ => freed.push(slot.value.with(|ptr| unsafe { (*ptr).assume_init_read() })),
            }
            // The caller wakes the producers, whether or not one waits here.
            slot.remaining.store(0, Ordering::Release);
        }
        freed
    }
}

/// Frees a slot whose value a consumer drops, if the drop panics: the
/// value is gone either way, and producers must not wait for it forever.
struct FreeOnUnwind<'a, T> {
    shared: &'a Shared<T>,
    slot: &'a Slot<T>,
}

impl<T> Drop for FreeOnUnwind<'_, T> {
    fn drop(&mut self) {
        if self.slot.remaining.swap(0, Ordering::AcqRel) & WAITING != 0 {
            self.shared.wake_producers();
        }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Every value put had a consumer, and every consumer, when dropped,
        // released the values it had yet to take: nothing is left to drop.
        for ring in self.rings.iter() {
            let ring = ring.load(Ordering::Acquire);
            if ring.is_null() {
                break;
            }
            // SAFETY: allocated by `Box::into_raw` in `new` or `grow`, and
            // freed only here, once: nothing else can reach it any more.
            let ring = unsafe { Box::from_raw(ring) };
            for slot in ring.slots.iter() {
                // With every handle gone, a slot still taken holds a value
                // left for a next consumer that never came (or one whose
                // put was forgotten): count 1, the value alone.
                let count = slot.remaining.load(Ordering::Relaxed) & COUNT;
                debug_assert!(count <= 1);
                if count == 1 {
                    // SAFETY: a count of 1 with no consumer left means the
                    // slot holds its value (see the invariants); nothing
                    // else can reach it, and it is dropped once, here.
                    slot.value
                        .with_mut(|ptr| unsafe { (*ptr).assume_init_drop() });
                }
            }
        }
    }
}

impl<T> State<T> {
    fn has_waiters(&self, wake: Wake) -> bool {
        (wake.consumers && self.recv_waiters.waiting > 0)
            || (wake.producers && self.put_waiters.waiting > 0)
    }
}

/// [`WaitList::register`] needs a waker cloned before locking.
#[derive(Debug)]
pub(crate) struct NeedsClone;

/// Wakers of the tasks waiting on one side of a stream.
///
/// Each waiting party owns a key (an index here) for as long as it lives, so
/// waiting again reuses its slot: in steady state nothing is allocated.
#[derive(Default)]
pub(crate) struct WaitList {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
    /// Number of `Some` slots.
    waiting: usize,
}

impl WaitList {
    /// Records that the party with `key` waits, to be woken with `waker`.
    ///
    /// Cloning a waker runs the executor's code, which must not run under
    /// the lock: unless `key` already holds a waker that wakes the same
    /// task, the clone must be in `fresh`, made before locking; without
    /// one this returns [`NeedsClone`]. Returns the waker it replaces, to be
    /// dropped once unlocked (as `fresh`, if unused).
    #[must_use = "drop the replaced waker after releasing the lock"]
    #[inline]
    pub(crate) fn register(
        &mut self,
        key: &mut Option<usize>,
        waker: &Waker,
        fresh: &mut Option<Waker>,
    ) -> Result<Option<Waker>, NeedsClone> {
        if let Some(Some(old)) = key.map(|index| &self.slots[index]) {
            if old.will_wake(waker) {
                return Ok(None);
            }
        }
        let Some(new) = fresh.take() else {
            return Err(NeedsClone);
        };
        let index = match *key {
            Some(index) => index,
            None => {
                let index = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(None);
                    self.slots.len() - 1
                });
                *key = Some(index);
                index
            }
        };
        let old = self.slots[index].replace(new);
        if old.is_none() {
            self.waiting += 1;
        }
        Ok(old)
    }

    /// Releases `key`; returns the waker it held, to be dropped unlocked.
    #[inline(always)]
    pub(crate) fn remove(&mut self, key: &mut Option<usize>) -> Option<Waker> {
        let index = key.take()?;
        let waker = self.slots[index].take();
        if waker.is_some() {
            self.waiting -= 1;
        }
        self.free.push(index);
        waker
    }

    /// Takes out the waker of the one party waiting. Call only when
    /// `waiting` is 1.
    fn take_one(&mut self) -> Option<Waker> {
        debug_assert_eq!(self.waiting, 1);
        let waker = self.slots.iter_mut().find_map(Option::take);
        if waker.is_some() {
            self.waiting -= 1;
        }
        waker
    }

    /// Moves wakers into `batch` until it is full; returns whether any remain.
    fn drain_into(&mut self, batch: &mut WakeBatch) -> bool {
        if self.waiting == 0 {
            return false;
        }
        for slot in &mut self.slots {
            if batch.is_full() {
                break;
            }
            if let Some(waker) = slot.take() {
                self.waiting -= 1;
                batch.push(waker);
            }
        }
        self.waiting > 0
    }
}

const BATCH: usize = 32;

/// Wakers taken under the lock, woken after it is released.
pub(crate) struct WakeBatch {
    wakers: [Option<Waker>; BATCH],
    len: usize,
}

impl WakeBatch {
    fn new() -> Self {
        Self {
            wakers: std::array::from_fn(|_| None),
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == BATCH
    }

    fn push(&mut self, waker: Waker) {
        self.wakers[self.len] = Some(waker);
        self.len += 1;
    }

    fn wake_all(&mut self) {
        for waker in &mut self.wakers[..self.len] {
            if let Some(waker) = waker.take() {
                waker.wake();
            }
        }
        self.len = 0;
    }
}
