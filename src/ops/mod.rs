//! Layer 4, ops: combinators on streams, one file per combinator.
//!
//! Bring [`StreamOps`] into scope and every [`Stream`] gains Slipstream's
//! pipe operators:
//!
//! | method | yields |
//! |---|---|
//! | [`pairwise`](StreamOps::pairwise) | `(previous, current)`: `(x0, x1), (x1, x2), …` |
//! | [`accumulate`](StreamOps::accumulate) | `x0, f(x0, x1), f(f(x0, x1), x2), …` |
//! | [`accumulate_from`](StreamOps::accumulate_from) | `f(init, x0), f(f(init, x0), x1), …` |
//! | [`tumbling`](StreamOps::tumbling) | [`Window`]s of fixed size that do not overlap |
//! | [`hopping`](StreamOps::hopping) | [`Window`]s of fixed size starting every `hop` |
//! | [`session`](StreamOps::session) | [`Window`]s of events closer than `gap` to each other |
//! | [`sliding`](StreamOps::sliding) | per event at `ts`, the events of `[ts - size, ts]` |
//! | [`as_of_join`](StreamOps::as_of_join) | each left event with the latest right value at or before it |
//!
//! The windows and the join work on timestamped streams, of
//! `(Timestamp, T)` pairs: the shape of every timecast source.
//!
//! ```
//! use futures::{executor::block_on, stream, StreamExt};
//! use timecast::ops::StreamOps;
//!
//! let pairs: Vec<_> = block_on(stream::iter(0..5).accumulate(|a, b| a + b).pairwise().collect());
//! assert_eq!(pairs, [(0, 1), (1, 3), (3, 6), (6, 10)]);
//! ```
//!
//! # The laws of windows
//!
//! - **Half-open.** A tumbling, hopping or session window covers
//!   `[start, end)`: an event at `end` belongs to the next window. A
//!   sliding window is the closed interval `[ts - size, ts]`, as in the
//!   Slipstream cookbook, and says so with [`Window::includes_end`];
//!   [`Window::contains`] holds for every item of every kind.
//! - **The ends of time.** Every [`Timestamp`] has its windows, `MIN` and
//!   `MAX` included: a window that would start before `MIN` starts at
//!   `MIN`, and one that would end after `MAX` ends at `MAX` and includes
//!   it. Such a window is closed by the end of the input only, since no
//!   later time can pass it.
//! - **Aligned.** Tumbling and hopping windows start at `origin + k·step`
//!   for every integer `k` (negative too), `origin` being the Unix epoch
//!   unless [`Windowed::origin`] says otherwise. A session starts at its
//!   first event and ends `gap` after its last: an event exactly `gap`
//!   after the previous one opens a new session.
//! - **Ordered items.** A window's items are in timestamp order; events with
//!   equal timestamps keep their arrival order.
//! - **Emission.** The *watermark* is the latest event time seen (and, with a
//!   [`LoopClock`], the loop's clock while the input is idle). A window is
//!   emitted once the watermark reaches `end + allowed_lateness`, and every
//!   window still open is emitted when the input ends. Windows come out in
//!   order of their end. Empty windows are never emitted.
//! - **Lateness.** An event whose window was already closed (its end plus
//!   the allowed lateness is at or before the watermark) is *late*: it is
//!   counted ([`Windowed::late_count`]) and handed to the late output
//!   ([`Windowed::on_late`]), never silently lost. Within the allowed
//!   lateness, an out-of-order event joins its window normally.
//!
//! # Pinning
//!
//! The combinators store their input inline and need it to be [`Unpin`], as
//! [`StreamExt::next`](futures_util::StreamExt::next) does: every timecast
//! stream and consumer is. A stream built from an `async` block or
//! [`stream::unfold`](futures_util::stream::unfold) is pinned once, first:
//! `Box::pin(s).pairwise()` (or with [`std::pin::pin!`] on the stack). No
//! combinator allocates per item, except the `Vec` of a window's items.

mod accumulate;
mod as_of_join;
mod hopping;
mod pairwise;
mod session;
mod sliding;
mod tumbling;
mod window;

use std::time::Duration;

use futures_core::Stream;

use crate::time::Timestamp;

/// A combinator whose state can be saved and put back: what a pipeline
/// checkpoints so that it resumes after a restart where it stopped (see
/// `store::CheckpointScope::durable`, feature `store`, for the exactly-once
/// pipelines that do this). Its state is its memory of past items: the
/// accumulator of [`Accumulate`], the previous item of [`Pairwise`], the
/// open windows and watermark of the windows.
///
/// # Laws
///
/// Restoring, into a combinator built the same way (same sizes and
/// settings), the state saved after items `x0..xn` makes it behave on
/// `xn+1, …` as the original did.
///
/// The state saved once the input has ended holds the same memory (the
/// previous item, the kept events), so a pipeline resumed with more input
/// goes on as if it had not ended; except for the windows, which the end
/// of the input emits: as if the watermark had passed them, everything up
/// to the end of the last window emitted is closed, and a later event
/// there is late (no interval is emitted twice; with an allowed lateness,
/// an event in an empty window between two emitted ones is late too).
///
/// # Examples
///
/// ```
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::ops::{Stateful, StreamOps};
///
/// let mut sums = stream::iter([1, 2, 3]).accumulate(|a, b| a + b);
/// block_on(sums.next());
/// block_on(sums.next());
/// let saved = sums.state(); // after 1 and 2
/// let mut resumed = stream::iter([3]).accumulate(|a, b| a + b);
/// resumed.restore(saved);
/// assert_eq!(block_on(resumed.next()), Some(6));
/// ```
pub trait Stateful {
    /// The state, owned; with the feature `store`, serde-serializable
    /// when the items are.
    type State;

    /// A copy of the state now.
    fn state(&self) -> Self::State;

    /// Replaces the state by one [`state`](Self::state) returned.
    fn restore(&mut self, state: Self::State);
}

pub use accumulate::{Accumulate, AccumulateFrom};
pub use as_of_join::AsOfJoin;
pub use hopping::Hopping;
pub use pairwise::Pairwise;
pub use session::Session;
pub use sliding::{Sliding, SlidingState};
pub use tumbling::Tumbling;
pub use window::{
    CountLate, EventTime, LateOutput, LateSink, LoopClock, Window, WindowClock, Windowed,
    WindowedState,
};

/// Slipstream's pipe operators on every [`Stream`]: `use
/// timecast::ops::StreamOps;`.
///
/// The input must be [`Unpin`] (see the [module docs](self#pinning)).
///
/// # Examples
///
/// Per-second sums of a timestamped stream, then how each second compares
/// with the one before:
///
/// ```
/// use std::time::Duration;
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::{ops::StreamOps, Timestamp};
///
/// let readings = stream::iter([(0, 1), (400, 2), (1_100, 5), (2_500, 4)])
///     .map(|(ms, v)| (Timestamp::from_unix_millis(ms), v));
/// let changes: Vec<i32> = block_on(
///     readings
///         .tumbling(Duration::from_secs(1))
///         .map(|w| w.values().sum::<i32>())
///         .pairwise()
///         .map(|(before, now)| now - before)
///         .collect(),
/// );
/// assert_eq!(changes, [2, -1]);
/// ```
pub trait StreamOps: Stream {
    /// Yields each item with the one before it: `(x0, x1), (x1, x2), …`. A
    /// stream of fewer than two items yields nothing.
    ///
    /// Each item is cloned once, to be kept as the next pair's first half.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::ops::StreamOps;
    ///
    /// let pairs: Vec<_> = block_on(stream::iter(0..4).pairwise().collect());
    /// assert_eq!(pairs, [(0, 1), (1, 2), (2, 3)]);
    /// ```
    fn pairwise(self) -> Pairwise<Self>
    where
        Self: Sized + Unpin,
        Self::Item: Clone,
    {
        Pairwise::new(self)
    }

    /// Running fold: yields the first item, then `f(acc, item)` for each
    /// later item, `acc` being the value yielded before (Python's
    /// `itertools.accumulate`).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::ops::StreamOps;
    ///
    /// let sums: Vec<_> = block_on(stream::iter(0..5).accumulate(|acc, x| acc + x).collect());
    /// assert_eq!(sums, [0, 1, 3, 6, 10]);
    /// ```
    fn accumulate<F>(self, f: F) -> Accumulate<Self, F>
    where
        Self: Sized + Unpin,
        Self::Item: Clone,
        F: FnMut(Self::Item, Self::Item) -> Self::Item,
    {
        Accumulate::new(self, f)
    }

    /// Running fold from `init`: yields `f(init, x0)`, then `f(acc, x1)`, …
    /// The accumulator may have another type than the items.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::ops::StreamOps;
    ///
    /// let words = stream::iter(["a", "b", "c"]);
    /// let joined: Vec<String> = block_on(words.accumulate_from(String::new(), |acc, w| acc + w).collect());
    /// assert_eq!(joined, ["a", "ab", "abc"]);
    /// ```
    fn accumulate_from<A, F>(self, init: A, f: F) -> AccumulateFrom<Self, A, F>
    where
        Self: Sized + Unpin,
        A: Clone,
        F: FnMut(A, Self::Item) -> A,
    {
        AccumulateFrom::new(self, init, f)
    }

    /// Groups a timestamped stream into [tumbling windows](Tumbling) of
    /// `size`: `[k·size, (k+1)·size)` from the Unix epoch (see
    /// [`Windowed::origin`]). Each event falls in exactly one window.
    ///
    /// Emission and lateness follow the [laws of windows](self#the-laws-of-windows).
    ///
    /// # Panics
    ///
    /// If `size` is zero or longer than [`i64::MAX`] nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let events = stream::iter([(100, 'a'), (900, 'b'), (1_000, 'c'), (3_500, 'd')])
    ///     .map(|(ms, v)| (Timestamp::from_unix_millis(ms), v));
    /// let windows: Vec<_> = block_on(events.tumbling(Duration::from_secs(1)).collect());
    /// let summary: Vec<_> = windows
    ///     .iter()
    ///     .map(|w| (w.start.unix_millis(), w.values().collect::<String>()))
    ///     .collect();
    /// assert_eq!(summary, [(0, "ab".to_string()), (1_000, "c".into()), (3_000, "d".into())]);
    /// ```
    fn tumbling<T>(self, size: Duration) -> Windowed<Self, Tumbling, T>
    where
        Self: Stream<Item = (Timestamp, T)> + Sized + Unpin,
    {
        Windowed::new(self, Tumbling::new(size))
    }

    /// Groups a timestamped stream into [hopping windows](Hopping) of `size`
    /// starting every `hop`: `[k·hop, k·hop + size)` from the Unix epoch (see
    /// [`Windowed::origin`]).
    ///
    /// With `hop < size` windows overlap and an event is copied into each of
    /// its `size / hop` windows (hence `T: Clone`). With `hop > size` there
    /// are gaps between windows, and events in a gap belong to no window:
    /// they are skipped, by design (they are not late).
    ///
    /// # Panics
    ///
    /// If `size` or `hop` is zero or longer than [`i64::MAX`] nanoseconds,
    /// or if `size / hop` exceeds
    /// [`Hopping::MAX_WINDOWS_PER_EVENT`] (10,000): see there for what to
    /// use instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let events = stream::iter([(0, 'a'), (1, 'b'), (2, 'c')])
    ///     .map(|(s, v)| (Timestamp::from_unix_secs(s), v));
    /// let windows: Vec<_> =
    ///     block_on(events.hopping(Duration::from_secs(2), Duration::from_secs(1)).collect());
    /// let summary: Vec<_> = windows
    ///     .iter()
    ///     .map(|w| (w.start.unix_secs(), w.values().collect::<String>()))
    ///     .collect();
    /// assert_eq!(
    ///     summary,
    ///     [(-1, "a".to_string()), (0, "ab".into()), (1, "bc".into()), (2, "c".into())]
    /// );
    /// ```
    fn hopping<T>(self, size: Duration, hop: Duration) -> Windowed<Self, Hopping, T>
    where
        Self: Stream<Item = (Timestamp, T)> + Sized + Unpin,
        T: Clone,
    {
        Windowed::new(self, Hopping::new(size, hop))
    }

    /// Groups a timestamped stream into [session windows](Session): runs of
    /// events each less than `gap` after the previous one. A session covers
    /// `[first event, last event + gap)`.
    ///
    /// # Panics
    ///
    /// If `gap` is zero or longer than [`i64::MAX`] nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let clicks = stream::iter([0, 2, 4, 20, 21, 40])
    ///     .map(|s| (Timestamp::from_unix_secs(s), s));
    /// let sessions: Vec<_> = block_on(clicks.session(Duration::from_secs(5)).collect());
    /// let spans: Vec<_> = sessions.iter().map(|w| (w.start.unix_secs(), w.end.unix_secs(), w.len())).collect();
    /// assert_eq!(spans, [(0, 9, 3), (20, 26, 2), (40, 45, 1)]);
    /// ```
    fn session<T>(self, gap: Duration) -> Windowed<Self, Session, T>
    where
        Self: Stream<Item = (Timestamp, T)> + Sized + Unpin,
    {
        Windowed::new(self, Session::new(gap))
    }

    /// For each event at `ts`, yields at once the [`Window`] of the events
    /// with `ts - size <= t <= ts` (both ends included: `start = ts - size`,
    /// `end = ts`, [`includes_end`](Window::includes_end) set), the event
    /// itself last among those at `ts`.
    ///
    /// An event older than the watermark (the latest time seen) minus the
    /// allowed lateness is late: counted and handed to the late output
    /// instead ([`Sliding::on_late`]).
    ///
    /// # Panics
    ///
    /// If `size` is zero or longer than [`i64::MAX`] nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let events = stream::iter([(0, 'a'), (1, 'b'), (3, 'c')])
    ///     .map(|(s, v)| (Timestamp::from_unix_secs(s), v));
    /// let windows: Vec<String> = block_on(
    ///     events
    ///         .sliding(Duration::from_secs(2))
    ///         .map(|w| w.values().collect())
    ///         .collect(),
    /// );
    /// assert_eq!(windows, ["a", "ab", "bc"]);
    /// ```
    fn sliding<T>(self, size: Duration) -> Sliding<Self, T>
    where
        Self: Stream<Item = (Timestamp, T)> + Sized + Unpin,
        T: Clone,
    {
        Sliding::new(self, size)
    }

    /// As-of join: yields each event `(ts, l)` of this stream as
    /// `(ts, l, r)`, `r` being the latest value of `other` stamped at or
    /// before `ts` (`None` if there is none).
    ///
    /// The join never answers with stale data: it yields a left event at
    /// `ts` only once `other` has produced an event stamped after `ts`, or
    /// has ended. Meanwhile left events wait in a buffer, whose size is
    /// bounded by how far the left side's progress is ahead of the right
    /// side's ([`AsOfJoin::buffer_limit`] caps it with backpressure).
    ///
    /// Out-of-order events follow the [laws of windows](self#the-laws-of-windows),
    /// per side: an event older than its side's latest time minus the
    /// allowed lateness ([`AsOfJoin::allowed_lateness`], zero by default)
    /// is late, counted and handed to a late output
    /// ([`AsOfJoin::on_late_left`], [`AsOfJoin::on_late_right`]); every
    /// other event is joined as if both sides had come in time order.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let weather = stream::iter([(t(10), "🌞"), (t(11), "⛅")]);
    /// let activity = stream::iter([(t(9), "waking"), (t(10), "swimming"), (t(12), "walking")]);
    /// let joined: Vec<_> = block_on(activity.as_of_join(weather).map(|(_, a, w)| (a, w)).collect());
    /// assert_eq!(joined, [("waking", None), ("swimming", Some("🌞")), ("walking", Some("⛅"))]);
    /// ```
    #[allow(
        clippy::wrong_self_convention,
        reason = "\"as of\" names the join (DESIGN's contract), not a conversion"
    )]
    fn as_of_join<T, R, U>(self, other: R) -> AsOfJoin<Self, R, T, U>
    where
        Self: Stream<Item = (Timestamp, T)> + Sized + Unpin,
        R: Stream<Item = (Timestamp, U)> + Unpin,
        U: Clone,
    {
        AsOfJoin::new(self, other)
    }
}

impl<S: Stream + ?Sized> StreamOps for S {}
