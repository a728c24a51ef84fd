//! The timer queue: every pending wake-up of the loop, ordered by [`Key`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::Rc;
use std::task::Waker;

use super::executor::Replay;
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
///
/// Class and rank are packed in one word, `group = class << 63 | rank`, so
/// that a comparison reads three words: `(time, group, seq)` orders exactly
/// as `(time, class, rank, seq)` because a rank is below 2^63 (ranks count
/// registered sources, and `Core::register_source` checks the bound).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Key {
    pub(crate) time: Timestamp,
    group: u64,
    pub(crate) seq: u64,
}

impl Key {
    pub(crate) const DATA: u8 = 0;
    pub(crate) const TIMER: u8 = 1;
    const CLASS_SHIFT: u32 = 63;
    const RANK_MASK: u64 = (1 << Self::CLASS_SHIFT) - 1;

    /// The largest rank a source can have.
    pub(crate) const MAX_RANK: u64 = Self::RANK_MASK;

    /// Below every key of a source or timer (a source's first event has
    /// seq 1).
    pub(crate) const MIN: Key = Key {
        time: Timestamp::MIN,
        group: 0,
        seq: 0,
    };

    /// Above every key of a source or timer (no group reaches `u64::MAX`).
    pub(crate) const MAX: Key = Key {
        time: Timestamp::MAX,
        group: u64::MAX,
        seq: u64::MAX,
    };

    /// The key of event `seq` of the source ranked `rank` (at most
    /// [`MAX_RANK`](Self::MAX_RANK), which `Core::register_source` checks).
    #[inline]
    pub(crate) fn data(time: Timestamp, rank: u64, seq: u64) -> Self {
        debug_assert!(rank <= Self::MAX_RANK, "source rank out of range");
        Self {
            time,
            group: u64::from(Self::DATA) << Self::CLASS_SHIFT | rank,
            seq,
        }
    }

    /// The key of the timer created `seq`-th.
    #[inline]
    pub(crate) fn timer(time: Timestamp, seq: u64) -> Self {
        Self {
            time,
            group: u64::from(Self::TIMER) << Self::CLASS_SHIFT,
            seq,
        }
    }

    /// Whether this is a data event's key (not a timer's).
    #[inline]
    pub(crate) fn is_data(&self) -> bool {
        self.group >> Self::CLASS_SHIFT == u64::from(Self::DATA)
    }

    /// [`Key::DATA`] or [`Key::TIMER`].
    #[cfg(test)]
    fn class(&self) -> u8 {
        (self.group >> Self::CLASS_SHIFT) as u8
    }

    /// The source's rank (0 for timers).
    #[cfg(test)]
    fn rank(&self) -> u64 {
        self.group & Self::RANK_MASK
    }
}

/// Whom a fired timer wakes: a task of this loop (cheapest: no waker), or
/// any waker; or what it runs: the replay of a source's past, driven by the
/// loop on behalf of the source's task (see [`Replay`]).
pub(crate) enum Target {
    Task(usize),
    Waker(Waker),
    Replay(usize, Rc<dyn Replay>),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Task(index) => f.debug_tuple("Task").field(index).finish(),
            Self::Waker(waker) => f.debug_tuple("Waker").field(waker).finish(),
            Self::Replay(index, _) => f.debug_tuple("Replay").field(index).finish(),
        }
    }
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

/// A heap entry: the key of the timer in slot `index`, as of `generation`.
/// Entries compare by key alone (keys are unique), so a comparison reads
/// at most three words; an entry is 32 bytes.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Key,
    index: u32,
    generation: u32,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// A min-heap of keys over a slab of timer states. Cancelled timers leave a
/// stale heap entry (told apart by its generation) that is skipped when it
/// surfaces, and compacted away when stale entries outnumber live ones.
///
/// Firing the first timer leaves its entry on top of the heap (`fired_top`)
/// instead of popping it at once: a source re-arms right after its event
/// fired, and in a small heap (a merge of a few sources) its new key then
/// replaces the old entry in one sift-down, cheaper than a pop and a push.
///
/// # Invariants
///
/// - Every timer in state `Pending` has exactly one heap entry with its
///   slot's index and generation.
/// - If `fired_top`, the heap's top entry belongs to a timer that fired (its
///   slot may since have been freed or reused): it is not pending, and it
///   is not counted in `stale`. The pending keys are all in the rest of the
///   heap, below the top.
/// - `stale` counts the other heap entries that belong to no pending timer
///   (their slot's generation has moved on).
/// - `free` lists exactly the slots in state `Free`.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Heap entries whose timer was removed before firing.
    stale: usize,
    /// The heap's top entry is a fired timer's, left for `insert` to replace.
    fired_top: bool,
}

impl TimerQueue {
    /// The largest heap in which `insert` replaces a fired top entry. A
    /// replacement sifts down with two comparisons per level, a pop (and
    /// push) with about one: in a deep heap, where a new key sinks far, the
    /// pop and push are faster (measured on `timers/100000`).
    const REPLACE_MAX: usize = 64;

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
        let generation = slot.generation;
        let entry = Reverse(Entry {
            key,
            index,
            generation,
        });
        if self.fired_top && self.heap.len() <= Self::REPLACE_MAX {
            // Replace the fired entry: `PeekMut` sifts the new one down.
            self.fired_top = false;
            *self.heap.peek_mut().expect("a fired entry is on top") = entry;
        } else {
            self.settle();
            self.heap.push(entry);
        }
        TimerId { index, generation }
    }

    /// Whether the timer has fired (false for an unknown id).
    #[cfg(test)]
    fn is_fired(&self, id: TimerId) -> bool {
        let slot = &self.slots[id.index as usize];
        slot.generation == id.generation && matches!(slot.state, State::Fired)
    }

    /// If the timer has fired, removes it and returns true.
    #[inline]
    pub(crate) fn take_fired(&mut self, id: TimerId) -> bool {
        let slot = &mut self.slots[id.index as usize];
        if slot.generation != id.generation || !matches!(slot.state, State::Fired) {
            return false;
        }
        slot.state = State::Free;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        true
    }

    /// Replaces the target of a pending timer. Returns the target replaced,
    /// to be dropped by the caller outside any borrow.
    pub(crate) fn retarget(&mut self, id: TimerId, target: Target) -> Option<Target> {
        let slot = &mut self.slots[id.index as usize];
        match &mut slot.state {
            State::Pending(old) if slot.generation == id.generation => {
                Some(std::mem::replace(old, target))
            }
            _ => Some(target),
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
        self.settle();
        let slots = &self.slots;
        self.heap.retain(|Reverse(entry)| {
            let slot = &slots[entry.index as usize];
            slot.generation == entry.generation && matches!(slot.state, State::Pending(_))
        });
        self.stale = 0;
    }

    /// Pops the fired entry left on top, if there is one.
    #[inline]
    fn settle(&mut self) {
        if self.fired_top {
            self.fired_top = false;
            self.heap.pop();
        }
    }

    /// Pops stale entries off the top. Requires `!fired_top`.
    #[inline]
    fn skip_stale(&mut self) {
        debug_assert!(!self.fired_top);
        while let Some(Reverse(entry)) = self.heap.peek() {
            let slot = &self.slots[entry.index as usize];
            if slot.generation == entry.generation && matches!(slot.state, State::Pending(_)) {
                return;
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
    }

    /// The smallest pending key.
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<Key> {
        self.settle();
        self.skip_stale();
        self.heap.peek().map(|Reverse(entry)| entry.key)
    }

    /// Fires the timer with the smallest key: returns the key and whom to wake.
    #[cfg(test)]
    fn pop(&mut self) -> Option<(Key, Target)> {
        self.peek()?;
        Some(self.fire_next())
    }

    /// Fires the timer with the smallest key, which [`peek`](Self::peek)
    /// has just returned (with no change to the queue since): returns its
    /// key and whom to wake. A replay's timer is removed at once: no
    /// future is left to take it.
    ///
    /// # Panics
    ///
    /// If the queue is empty; in debug builds, if `peek` was not called.
    #[inline]
    pub(crate) fn fire_next(&mut self) -> (Key, Target) {
        debug_assert!(!self.fired_top, "fire_next right after peek");
        let Reverse(entry) = *self.heap.peek().expect("fire_next after peek");
        let slot = &mut self.slots[entry.index as usize];
        debug_assert_eq!(slot.generation, entry.generation);
        self.fired_top = true;
        let target = match std::mem::replace(&mut slot.state, State::Fired) {
            State::Pending(target) => target,
            _ => unreachable!("peek leaves a pending timer on top"),
        };
        if let Target::Replay(..) = target {
            slot.state = State::Free;
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(entry.index);
        }
        (entry.key, target)
    }

    /// A key at or below every pending key ([`Key::MAX`] if none is
    /// pending), read without changing the queue: the top entry's key, or
    /// if the top is a fired entry, the smaller of its children's (stale
    /// entries only make it lower).
    #[inline]
    pub(crate) fn pending_floor(&self) -> Key {
        let heap = self.heap.as_slice();
        if !self.fired_top {
            return heap.first().map_or(Key::MAX, |Reverse(top)| top.key);
        }
        match heap {
            [_, Reverse(left), Reverse(right), ..] => left.key.min(right.key),
            [_, Reverse(only)] => only.key,
            _ => Key::MAX,
        }
    }

    /// Whether `key` is above [`pending_floor`](Self::pending_floor): some
    /// pending key (or stale entry) comes before it.
    #[inline]
    pub(crate) fn has_key_below(&self, key: Key) -> bool {
        let heap = self.heap.as_slice();
        if !self.fired_top {
            return heap.first().is_some_and(|Reverse(top)| top.key < key);
        }
        match heap {
            [_, Reverse(left), Reverse(right), ..] => left.key < key || right.key < key,
            [_, Reverse(only)] => only.key < key,
            _ => false,
        }
    }

    /// Number of timers waiting to fire.
    pub(crate) fn len(&self) -> usize {
        self.heap.len() - self.stale - usize::from(self.fired_top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(time: i64, class: u8, rank: u64, seq: u64) -> Key {
        let time = Timestamp::from_unix_nanos(time);
        let key = match class {
            Key::DATA => Key::data(time, rank, seq),
            _ => Key::timer(time, seq),
        };
        assert_eq!((key.class(), key.rank()), (class, rank));
        key
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
                Target::Waker(_) | Target::Replay(..) => 0,
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

    #[test]
    fn keys_order_as_documented_tuples() {
        let t = |n| Timestamp::from_unix_nanos(n);
        let mut keys = [
            Key::timer(t(5), 0),
            Key::data(t(5), Key::MAX_RANK, u64::MAX),
            Key::data(t(5), 1, 0),
            Key::data(t(5), 0, 9),
            Key::data(t(5), 0, 8),
            Key::timer(t(4), u64::MAX),
            Key::timer(t(5), u64::MAX),
            Key::data(t(6), 0, 0),
        ];
        keys.sort();
        let tuples: Vec<_> = keys
            .iter()
            .map(|k| (k.time.unix_nanos(), k.class(), k.rank(), k.seq))
            .collect();
        let mut sorted = tuples.clone();
        sorted.sort();
        assert_eq!(tuples, sorted);
        assert_eq!(tuples[0], (4, Key::TIMER, 0, u64::MAX));
        assert_eq!(tuples[4], (5, Key::DATA, Key::MAX_RANK, u64::MAX));
    }

    #[test]
    fn the_pending_floor_is_the_smallest_pending_key_or_below_it() {
        let mut q = TimerQueue::default();
        assert_eq!(q.pending_floor(), Key::MAX);
        let a = q.insert(key(10, Key::TIMER, 0, 0), Target::Task(0));
        q.insert(key(20, Key::DATA, 0, 1), Target::Task(1));
        q.insert(key(30, Key::TIMER, 0, 2), Target::Task(2));
        assert_eq!(q.pending_floor(), key(10, Key::TIMER, 0, 0));
        // Fired, its entry left on top: the floor is below it.
        assert!(q.pop().is_some());
        assert!(q.take_fired(a));
        assert_eq!(q.pending_floor(), key(20, Key::DATA, 0, 1));
        assert!(!q.has_key_below(key(20, Key::DATA, 0, 1)));
        assert!(q.has_key_below(key(20, Key::DATA, 0, 2)));
        // A removed timer's stale entry may hold the floor down.
        let b = q.insert(key(15, Key::DATA, 1, 3), Target::Task(3));
        q.remove(b);
        assert_eq!(q.pending_floor(), key(15, Key::DATA, 1, 3));
        assert_eq!(q.peek(), Some(key(20, Key::DATA, 0, 1)));
        assert_eq!(q.pending_floor(), key(20, Key::DATA, 0, 1));
    }

    /// A replay never driven: only its place in the queue matters.
    struct NoReplay;

    impl Replay for NoReplay {
        fn drive(self: Rc<Self>, _: &crate::time::Core, _: usize) -> bool {
            unreachable!("not driven here")
        }
    }

    #[test]
    fn a_fired_replay_frees_its_slot_at_once() {
        let mut q = TimerQueue::default();
        let replay = Rc::new(NoReplay);
        let id = q.insert(key(1, Key::DATA, 0, 1), Target::Replay(7, replay.clone()));
        q.insert(key(2, Key::DATA, 1, 1), Target::Task(1));
        assert_eq!(Rc::strong_count(&replay), 2);
        let (k, target) = q.pop().expect("queued");
        assert_eq!(k, key(1, Key::DATA, 0, 1));
        assert!(matches!(target, Target::Replay(7, _)));
        drop(target);
        assert_eq!(Rc::strong_count(&replay), 1, "the queue holds no copy");
        assert!(!q.take_fired(id), "nothing left to take");
        assert_eq!(q.len(), 1);
        // Its slot is the next one used, under a new generation.
        let again = q.insert(key(3, Key::DATA, 0, 2), Target::Replay(7, replay));
        assert_eq!(again.index, id.index);
        assert_ne!(again, id);
        assert!(q.remove(id).is_none());
        assert_eq!(q.peek(), Some(key(2, Key::DATA, 1, 1)));
    }

    /// Random inserts, removals and pops against a sorted model: the queue
    /// fires exactly the model's smallest key every time, and its floor is
    /// never above it.
    #[test]
    fn matches_a_sorted_model() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut q = TimerQueue::default();
        let mut model = std::collections::BTreeMap::new();
        let mut ids = Vec::new();
        let mut fired = Vec::new();
        for seq in 0..20_000_u64 {
            let k = key(next(500) as i64, (next(2)) as u8, 0, seq);
            match next(10) {
                0..=3 => {
                    let id = q.insert(k, Target::Task(seq as usize));
                    model.insert(k, id);
                    ids.push((k, id));
                }
                4 => {
                    let least = model.keys().next().copied().unwrap_or(Key::MAX);
                    let floor = q.pending_floor();
                    assert!(floor <= least);
                    for probe in [k, floor, least] {
                        assert_eq!(q.has_key_below(probe), probe > floor, "{probe:?}");
                    }
                }
                5 | 6 if !ids.is_empty() => {
                    let (k, id) = ids.swap_remove(next(ids.len() as u64) as usize);
                    let pending = model.remove(&k).is_some();
                    assert_eq!(q.remove(id).is_some(), pending);
                }
                7 if !fired.is_empty() => {
                    let id = fired.swap_remove(next(fired.len() as u64) as usize);
                    assert!(q.take_fired(id));
                    assert!(!q.take_fired(id));
                }
                _ => {
                    let expected = model.pop_first();
                    assert_eq!(q.peek(), expected.map(|(k, _)| k));
                    match (q.pop(), expected) {
                        (Some((k, Target::Task(_))), Some((m, id))) => {
                            assert_eq!(k, m);
                            assert!(q.is_fired(id));
                            ids.retain(|&(_, other)| other != id);
                            fired.push(id);
                        }
                        (None, None) => {}
                        (got, want) => panic!("popped {got:?}, expected {want:?}"),
                    }
                }
            }
            assert_eq!(q.len(), model.len());
        }
    }
}
