//! The timer queue: every pending wake-up of the loop, ordered by [`Key`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;

use super::Timestamp;

/// The order in which the loop dispatches work.
///
/// # Invariants
///
/// Keys compare as tuples `(time, class, rank, seq)`. Data events have class
/// [`Key::DATA`], rank = their source's registration order and seq = their
/// index in that source; timers have class [`Key::TIMER`], rank 0 and seq =
/// creation order. So at equal times data runs before timers, sources in
/// registration order, and timers in creation order. No two pending keys are
/// equal.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Key {
    pub(crate) time: Timestamp,
    pub(crate) class: u8,
    pub(crate) rank: u64,
    pub(crate) seq: u64,
}

impl Key {
    pub(crate) const DATA: u8 = 0;
    pub(crate) const TIMER: u8 = 1;
}

/// Whom a fired timer wakes: a task of this loop (cheapest: no waker), or
/// any waker.
#[derive(Debug)]
pub(crate) enum Target {
    Task(usize),
    Waker(Waker),
}

/// A handle to a timer in the queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TimerId {
    index: u32,
    generation: u32,
}

#[derive(Debug)]
enum State {
    Free,
    Pending(Target),
    Fired,
}

#[derive(Debug)]
struct Slot {
    state: State,
    generation: u32,
}

/// A min-heap of keys over a slab of timer states. Cancelled timers leave a
/// stale heap entry (told apart by its generation) that is skipped when it
/// surfaces, and compacted away when stale entries outnumber live ones.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Key, u32, u32)>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Heap entries whose timer was removed before firing.
    stale: usize,
}

impl TimerQueue {
    /// Adds a timer for `key`, waking `target` when it fires.
    pub(crate) fn insert(&mut self, key: Key, target: Target) -> TimerId {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    state: State::Free,
                    generation: 0,
                });
                u32::try_from(self.slots.len() - 1).expect("more than 4 billion pending timers")
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.state = State::Pending(target);
        self.heap.push(Reverse((key, index, slot.generation)));
        TimerId {
            index,
            generation: slot.generation,
        }
    }

    /// Whether the timer has fired. `None` for an unknown id.
    pub(crate) fn is_fired(&self, id: TimerId) -> bool {
        let slot = &self.slots[id.index as usize];
        slot.generation == id.generation && matches!(slot.state, State::Fired)
    }

    /// Replaces the target of a pending timer.
    pub(crate) fn retarget(&mut self, id: TimerId, target: Target) {
        let slot = &mut self.slots[id.index as usize];
        if slot.generation == id.generation {
            if let State::Pending(old) = &mut slot.state {
                *old = target;
            }
        }
    }

    /// Removes a timer, fired or not. Returns the target it still held.
    pub(crate) fn remove(&mut self, id: TimerId) -> Option<Target> {
        let slot = &mut self.slots[id.index as usize];
        if slot.generation != id.generation {
            return None;
        }
        let old = std::mem::replace(&mut slot.state, State::Free);
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        match old {
            State::Pending(target) => {
                self.stale += 1;
                if self.stale > 64 && self.stale > self.heap.len() / 2 {
                    self.compact();
                }
                Some(target)
            }
            _ => None,
        }
    }

    fn compact(&mut self) {
        let slots = &self.slots;
        self.heap.retain(|Reverse((_, index, generation))| {
            slots[*index as usize].generation == *generation
        });
        self.stale = 0;
    }

    fn skip_stale(&mut self) {
        while let Some(Reverse((_, index, generation))) = self.heap.peek() {
            let slot = &self.slots[*index as usize];
            if slot.generation == *generation && matches!(slot.state, State::Pending(_)) {
                return;
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
    }

    /// The smallest pending key.
    pub(crate) fn peek(&mut self) -> Option<Key> {
        self.skip_stale();
        self.heap.peek().map(|Reverse((key, _, _))| *key)
    }

    /// Fires the timer with the smallest key: returns the key and whom to wake.
    pub(crate) fn pop(&mut self) -> Option<(Key, Target)> {
        self.skip_stale();
        let Reverse((key, index, _)) = self.heap.pop()?;
        let slot = &mut self.slots[index as usize];
        match std::mem::replace(&mut slot.state, State::Fired) {
            State::Pending(target) => Some((key, target)),
            _ => unreachable!("skip_stale leaves a pending timer on top"),
        }
    }

    /// Number of timers waiting to fire.
    pub(crate) fn len(&self) -> usize {
        self.heap.len() - self.stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(time: i64, class: u8, rank: u64, seq: u64) -> Key {
        Key {
            time: Timestamp::from_unix_nanos(time),
            class,
            rank,
            seq,
        }
    }

    #[test]
    fn pops_in_key_order_data_before_timers() {
        let mut q = TimerQueue::default();
        q.insert(key(5, Key::TIMER, 0, 1), Target::Task(1));
        q.insert(key(5, Key::DATA, 1, 0), Target::Task(2));
        q.insert(key(5, Key::DATA, 0, 7), Target::Task(3));
        q.insert(key(4, Key::TIMER, 0, 9), Target::Task(4));
        let order: Vec<_> = std::iter::from_fn(|| q.pop())
            .map(|(_, t)| match t {
                Target::Task(i) => i,
                Target::Waker(_) => 0,
            })
            .collect();
        assert_eq!(order, [4, 3, 2, 1]);
    }

    #[test]
    fn removed_timers_never_fire_and_are_compacted() {
        let mut q = TimerQueue::default();
        let ids: Vec<_> = (0..1000)
            .map(|i| q.insert(key(i, 1, 0, i as u64), Target::Task(i as usize)))
            .collect();
        // Remove three in four: stale entries outnumber live ones.
        for (i, id) in ids.iter().enumerate() {
            if i % 4 != 0 {
                assert!(q.remove(*id).is_some());
            }
        }
        assert_eq!(q.len(), 250);
        assert!(q.heap.len() < 1000, "stale entries were compacted");
        let fired: Vec<_> = std::iter::from_fn(|| q.pop())
            .map(|(k, _)| k.time.unix_nanos())
            .collect();
        assert_eq!(fired, (0..1000).step_by(4).collect::<Vec<_>>());
        assert!(q.is_fired(ids[0]));
        assert!(!q.is_fired(ids[1]));
    }

    #[test]
    fn reused_slots_do_not_confuse_old_ids() {
        let mut q = TimerQueue::default();
        let a = q.insert(key(1, 1, 0, 0), Target::Task(0));
        q.remove(a);
        let b = q.insert(key(2, 1, 0, 1), Target::Task(1));
        assert!(q.remove(a).is_none());
        assert_eq!(q.peek().map(|k| k.seq), Some(1));
        q.pop();
        assert!(q.is_fired(b));
        assert!(!q.is_fired(a));
    }
}
