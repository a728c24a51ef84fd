//! The state every handle of one stream shares, and the waiter lists.
//!
//! All of it sits behind one mutex. Every operation locks, changes the
//! state, takes the wakers it must wake into a [`WakeBatch`], unlocks, and
//! only then wakes them and drops any evicted value.

use std::collections::VecDeque;
use std::task::Waker;

use super::error::{TryPutError, TryRecvError};
use crate::sync::{Mutex, MutexGuard};

/// State shared by the producers and consumers of one stream.
pub(crate) struct Shared<T> {
    pub(crate) state: Mutex<State<T>>,
    /// The capacity the stream was built with (0: rendezvous).
    pub(crate) capacity: usize,
}

/// A value in the buffer and the number of consumers yet to take it.
struct Slot<T> {
    /// `None` once a cancelled rendezvous put withdrew it: consumers skip it.
    value: Option<T>,
    remaining: usize,
    /// Whether some consumer has received a clone of the value.
    delivered: bool,
}

/// # Invariants
///
/// - `buf[i]` holds the value of sequence number `head + i`; `head + buf.len()`
///   is the sequence number the next put gets (the tail).
/// - Every slot's `remaining` is at least 1, and is non-decreasing from the
///   front to the back: a consumer that took slot `s` took every slot before
///   it, and a consumer subscribed after slot `s` was put does not count for
///   it. So slots are only ever fully taken at the front.
/// - `buf.len() <= max(capacity, 1)`.
pub(crate) struct State<T> {
    buf: VecDeque<Slot<T>>,
    head: u64,
    pub(crate) consumers: usize,
    pub(crate) producers: usize,
    pub(crate) closed: bool,
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

impl<T> Shared<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(capacity.max(1)),
                head: 0,
                consumers: 0,
                producers: 1,
                closed: false,
                recv_waiters: WaitList::default(),
                put_waiters: WaitList::default(),
            }),
            capacity,
        }
    }

    /// How many values may be buffered at once.
    pub(crate) fn limit(&self) -> usize {
        self.capacity.max(1)
    }

    /// Unlocks `state`, then wakes the waiters `wake` names, in batches that
    /// never hold the lock while waking.
    pub(crate) fn release(&self, mut state: MutexGuard<'_, State<T>>, wake: Wake) {
        if !state.has_waiters(wake) {
            return;
        }
        let mut batch = WakeBatch::new();
        let mut more = state.drain(wake, &mut batch);
        drop(state);
        batch.wake_all();
        while more {
            let mut state = self.state.lock();
            more = state.drain(wake, &mut batch);
            drop(state);
            batch.wake_all();
        }
    }

    /// Closes the stream; returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        let mut state = self.state.lock();
        if state.closed {
            return false;
        }
        state.closed = true;
        self.release(state, Wake::ALL);
        true
    }
}

impl<T> State<T> {
    fn has_waiters(&self, wake: Wake) -> bool {
        (wake.consumers && self.recv_waiters.waiting > 0)
            || (wake.producers && self.put_waiters.waiting > 0)
    }

    fn drain(&mut self, wake: Wake, batch: &mut WakeBatch) -> bool {
        let mut more = false;
        if wake.consumers {
            more |= self.recv_waiters.drain_into(batch);
        }
        if wake.producers && !batch.is_full() {
            more |= self.put_waiters.drain_into(batch);
        } else if wake.producers {
            more |= self.put_waiters.waiting > 0;
        }
        more
    }

    /// The sequence number the next value will get.
    pub(crate) fn tail(&self) -> u64 {
        self.head + self.buf.len() as u64
    }

    /// Number of values buffered, not yet taken by every consumer.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Buffers `value` if there is room, and returns its sequence number.
    pub(crate) fn try_push(&mut self, value: T, limit: usize) -> Result<u64, TryPutError<T>> {
        if self.closed {
            return Err(TryPutError::Closed(value));
        }
        if self.consumers == 0 || self.buf.len() >= limit {
            return Err(TryPutError::Full(value));
        }
        let seq = self.tail();
        self.buf.push_back(Slot {
            value: Some(value),
            remaining: self.consumers,
            delivered: false,
        });
        Ok(seq)
    }

    /// Whether the value put with sequence number `seq` has been taken by
    /// every consumer (or every consumer that was to take it has gone).
    pub(crate) fn is_taken(&self, seq: u64) -> bool {
        self.head > seq
    }

    /// Withdraws the value put as `seq` if no consumer has received it yet.
    /// Returns it, or `None` if it was already delivered (then it stays, so
    /// that every consumer sees the same sequence).
    pub(crate) fn withdraw(&mut self, seq: u64) -> Option<T> {
        let index = usize::try_from(seq.checked_sub(self.head)?).ok()?;
        let slot = self.buf.get_mut(index)?;
        if slot.delivered {
            return None;
        }
        slot.value.take()
    }

    /// Takes the next value for the consumer at `pos`: by move if it is the
    /// last consumer to take it, else by clone. The `bool` tells whether a
    /// slot was freed (so producers waiting for room must be woken).
    pub(crate) fn try_take(&mut self, pos: &mut u64) -> Result<(T, bool), TryRecvError>
    where
        T: Clone,
    {
        let mut freed = false;
        loop {
            debug_assert!(*pos >= self.head, "consumer position behind the buffer");
            let index = (*pos - self.head) as usize;
            let Some(slot) = self.buf.get_mut(index) else {
                return Err(if self.closed {
                    TryRecvError::Closed
                } else {
                    TryRecvError::Empty
                });
            };
            *pos += 1;
            if slot.remaining == 1 {
                debug_assert_eq!(index, 0, "a slot freed before the ones ahead of it");
                let slot = self.buf.pop_front().expect("slot exists");
                self.head += 1;
                freed = true;
                if let Some(value) = slot.value {
                    return Ok((value, freed));
                }
            } else {
                slot.remaining -= 1;
                if let Some(value) = &slot.value {
                    slot.delivered = true;
                    return Ok((value.clone(), freed));
                }
            }
        }
    }

    /// Registers a new consumer; returns its starting position (the tail).
    pub(crate) fn subscribe(&mut self) -> u64 {
        self.consumers += 1;
        self.tail()
    }

    /// Registers a consumer that starts at `pos`, like an existing one.
    pub(crate) fn subscribe_at(&mut self, pos: u64) {
        self.consumers += 1;
        let start = (pos - self.head) as usize;
        for slot in self.buf.iter_mut().skip(start) {
            slot.remaining += 1;
        }
    }

    /// Removes the consumer at `pos`: it no longer holds anything back.
    /// Returns the values freed, to be dropped once the lock is released.
    pub(crate) fn unsubscribe(&mut self, pos: u64) -> Vec<T> {
        self.consumers -= 1;
        let start = (pos - self.head) as usize;
        for slot in self.buf.iter_mut().skip(start) {
            slot.remaining -= 1;
        }
        let mut freed = Vec::new();
        while self.buf.front().is_some_and(|slot| slot.remaining == 0) {
            let slot = self.buf.pop_front().expect("front exists");
            self.head += 1;
            freed.extend(slot.value);
        }
        freed
    }
}

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
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
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
        match &mut self.slots[index] {
            Some(old) => old.clone_from(waker),
            empty => {
                *empty = Some(waker.clone());
                self.waiting += 1;
            }
        }
    }

    /// Forgets that the party with `key` waits, keeping its key.
    pub(crate) fn clear(&mut self, key: Option<usize>) -> Option<Waker> {
        let waker = self.slots[key?].take();
        if waker.is_some() {
            self.waiting -= 1;
        }
        waker
    }

    /// Releases `key`; returns the waker it held, to be dropped unlocked.
    pub(crate) fn remove(&mut self, key: &mut Option<usize>) -> Option<Waker> {
        let index = key.take()?;
        let waker = self.slots[index].take();
        if waker.is_some() {
            self.waiting -= 1;
        }
        self.free.push(index);
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
