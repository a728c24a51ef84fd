//! [`Sliding`] windows: one per event, looking back `size`.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};

use super::window::{step_nanos, CountLate, LateOutput, Window};
use crate::time::Timestamp;

/// The stream returned by [`StreamOps::sliding`](super::StreamOps::sliding):
/// for each event at `ts`, the [`Window`] `[ts - size, ts]` of the events so
/// far in it (both ends included: `end` is `ts` and
/// [`includes_end`](Window::includes_end) is set), emitted at once. Near
/// [`Timestamp::MIN`], `start` is `MIN`.
///
/// The watermark is the latest event time seen. An event older than the
/// watermark minus the allowed lateness is late: it gets no window; it is
/// counted ([`late_count`](Self::late_count)) and handed to the late output
/// ([`on_late`](Self::on_late)). With no allowed lateness (the default),
/// that is any event out of time order. An event within the lateness gets
/// its window, which holds the events of `[ts - size, ts]` arrived so far.
///
/// Memory: the events of the last `size` plus the allowed lateness. Each
/// window clones its events (hence `T: Clone`).
///
/// # Examples
///
/// The Slipstream cookbook's sliding window, counting emoji:
///
/// ```
/// use std::time::Duration;
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::{ops::StreamOps, Timestamp};
///
/// let events = stream::iter([("🏆", 0), ("📞", 500), ("🐟", 1_000), ("👌", 2_000), ("🏆", 3_500)])
///     .map(|(e, ms)| (Timestamp::from_unix_millis(ms), e));
/// let windows: Vec<String> = block_on(
///     events.sliding(Duration::from_secs(3)).map(|w| w.values().copied().collect()).collect(),
/// );
/// assert_eq!(windows, ["🏆", "🏆📞", "🏆📞🐟", "🏆📞🐟👌", "📞🐟👌🏆"]);
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Sliding<S, T, O = CountLate> {
    stream: S,
    size: Duration,
    /// The events that later windows may hold, in timestamp order.
    kept: VecDeque<(Timestamp, T)>,
    watermark: Option<Timestamp>,
    lateness: Duration,
    late_count: u64,
    late: O,
    pending_late: Option<(Timestamp, T)>,
    done: bool,
}

impl<S, T> Sliding<S, T> {
    pub(super) fn new(stream: S, size: Duration) -> Self {
        step_nanos(size, "size");
        Self {
            stream,
            size,
            kept: VecDeque::new(),
            watermark: None,
            lateness: Duration::ZERO,
            late_count: 0,
            late: CountLate,
            pending_late: None,
            done: false,
        }
    }
}

impl<S, T, O> Sliding<S, T, O> {
    /// Accepts events up to `lateness` older than the latest one seen
    /// (zero by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let events = stream::iter([(0, 'a'), (5, 'b'), (4, 'c')])
    ///     .map(|(s, v)| (Timestamp::from_unix_secs(s), v));
    /// let windows: Vec<String> = block_on(
    ///     events
    ///         .sliding(Duration::from_secs(4))
    ///         .allowed_lateness(Duration::from_secs(1))
    ///         .map(|w| w.values().collect())
    ///         .collect(),
    /// );
    /// assert_eq!(windows, ["a", "b", "ac"]);
    /// ```
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness;
        self
    }

    /// Sends late events to `output` (see [`LateOutput`]) instead of only
    /// counting them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, time::Duration};
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let late = RefCell::new(Vec::new());
    /// let events = stream::iter([(1, 'a'), (2, 'b'), (0, 'c')])
    ///     .map(|(s, v)| (Timestamp::from_unix_secs(s), v));
    /// let n = block_on(
    ///     events
    ///         .sliding(Duration::from_secs(2))
    ///         .on_late(|_, v| late.borrow_mut().push(v))
    ///         .count(),
    /// );
    /// assert_eq!((n, late.into_inner()), (2, vec!['c']));
    /// ```
    pub fn on_late<O2: LateOutput<T>>(self, output: O2) -> Sliding<S, T, O2> {
        Sliding {
            stream: self.stream,
            size: self.size,
            kept: self.kept,
            watermark: self.watermark,
            lateness: self.lateness,
            late_count: self.late_count,
            late: output,
            pending_late: self.pending_late,
            done: self.done,
        }
    }

    /// How many late events arrived so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let events = stream::iter([2, 1, 3, 0]).map(|s| (Timestamp::from_unix_secs(s), s));
    /// let mut windows = events.sliding(Duration::from_secs(10));
    /// while block_on(windows.next()).is_some() {}
    /// assert_eq!(windows.late_count(), 2);
    /// ```
    pub fn late_count(&self) -> u64 {
        self.late_count
    }

    /// The watermark: the latest event time seen, `None` before the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let mut windows = stream::iter([(t(4), ())]).sliding(Duration::from_secs(1));
    /// block_on(windows.next());
    /// assert_eq!(windows.watermark(), Some(t(4)));
    /// ```
    pub fn watermark(&self) -> Option<Timestamp> {
        self.watermark
    }

    /// The input stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::stream;
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let windows = stream::iter([(Timestamp::UNIX_EPOCH, ())]).sliding(Duration::from_secs(1));
    /// let _input: &stream::Iter<_> = windows.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S, T, O> Stream for Sliding<S, T, O>
where
    S: Stream<Item = (Timestamp, T)> + Unpin,
    T: Clone,
    O: LateOutput<T>,
{
    type Item = Window<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Window<T>>> {
        let this = self.get_mut();
        loop {
            if let Some((ts, value)) = this.pending_late.take() {
                if this.late.poll_ready(cx).is_pending() {
                    this.pending_late = Some((ts, value));
                    return Poll::Pending;
                }
                this.late.send(ts, value);
            }
            if this.done {
                ready!(this.late.poll_flush(cx));
                return Poll::Ready(None);
            }
            let (ts, value) = match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Ready(Some(event)) => event,
                // The events kept stay: they are the state that a
                // pipeline resumed with more input goes on from.
                Poll::Ready(None) => {
                    this.done = true;
                    continue;
                }
                Poll::Pending => {
                    let _ = this.late.poll_flush(cx);
                    return Poll::Pending;
                }
            };
            let watermark = this.watermark.map_or(ts, |w| w.max(ts));
            if ts < watermark.saturating_sub(this.lateness) {
                this.late_count += 1;
                this.pending_late = Some((ts, value));
                continue;
            }
            this.watermark = Some(watermark);
            // Later windows start at or after watermark - lateness - size.
            let keep_from = watermark
                .saturating_sub(this.lateness)
                .saturating_sub(this.size);
            while this.kept.front().is_some_and(|(t, _)| *t < keep_from) {
                this.kept.pop_front();
            }
            let end = match this.kept.back() {
                Some((last, _)) if *last > ts => {
                    let at = this.kept.partition_point(|(t, _)| *t <= ts);
                    this.kept.insert(at, (ts, value));
                    at + 1
                }
                _ => {
                    this.kept.push_back((ts, value));
                    this.kept.len()
                }
            };
            let start = ts.saturating_sub(this.size);
            let begin = this.kept.partition_point(|(t, _)| *t < start);
            let items = this.kept.range(begin..end).cloned().collect();
            return Poll::Ready(Some(Window {
                start,
                end: ts,
                includes_end: true,
                items,
            }));
        }
    }
}

// Nothing but the input stream is ever pinned.
impl<S: Unpin, T, O> Unpin for Sliding<S, T, O> {}

/// The state of a [`Sliding`] combinator ([`Stateful`](super::Stateful)):
/// the events later windows may hold, the watermark and the count of late
/// events. Serializable with serde (feature `store`) when the items are.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::{ops::{Stateful, StreamOps}, Timestamp};
///
/// let t = Timestamp::from_unix_secs;
/// let mut windows = stream::iter([(t(1), 'a')]).sliding(Duration::from_secs(10));
/// let _ = block_on(windows.next());
/// let mut resumed = stream::iter([(t(2), 'b')]).sliding(Duration::from_secs(10));
/// resumed.restore(windows.state());
/// let w = block_on(resumed.next()).ok_or("a window")?;
/// assert_eq!(w.values().copied().collect::<String>(), "ab");
/// # Ok::<_, &str>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "store", derive(serde::Serialize, serde::Deserialize))]
pub struct SlidingState<T> {
    kept: Vec<(Timestamp, T)>,
    watermark: Option<Timestamp>,
    late_count: u64,
    pending_late: Option<(Timestamp, T)>,
}

impl<S, T: Clone, O> super::Stateful for Sliding<S, T, O> {
    type State = SlidingState<T>;

    fn state(&self) -> SlidingState<T> {
        SlidingState {
            kept: self.kept.iter().cloned().collect(),
            watermark: self.watermark,
            late_count: self.late_count,
            pending_late: self.pending_late.clone(),
        }
    }

    fn restore(&mut self, state: SlidingState<T>) {
        self.kept = state.kept.into();
        self.watermark = state.watermark;
        self.late_count = state.late_count;
        self.pending_late = state.pending_late;
    }
}

impl<S, T, O> FusedStream for Sliding<S, T, O>
where
    Self: Stream,
{
    fn is_terminated(&self) -> bool {
        self.done && self.pending_late.is_none()
    }
}

impl<S: fmt::Debug, T, O> fmt::Debug for Sliding<S, T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sliding")
            .field("stream", &self.stream)
            .field("size", &self.size)
            .field("kept", &self.kept.len())
            .field("watermark", &self.watermark)
            .field("allowed_lateness", &self.lateness)
            .field("late_count", &self.late_count)
            .finish_non_exhaustive()
    }
}
