//! [`AsOfJoin`]: each left event with the latest right value at or before it.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use crate::time::Timestamp;

/// The stream returned by
/// [`StreamOps::as_of_join`](super::StreamOps::as_of_join): `(ts, left,
/// right)` for each left event, `right` being the latest right value
/// stamped at or before `ts` (among equal stamps, the last to arrive).
///
/// # Waiting for the right side
///
/// A left event at `ts` is yielded only once the right stream has produced
/// an event stamped after `ts`, or has ended: until then a right value
/// stamped at or before `ts` may still come, and answering early would
/// enrich the left event with stale data. Left events are yielded in their
/// order of arrival.
///
/// Both inputs are polled whenever the join is, and buffered:
///
/// - left events waiting for the right side's progress: those stamped at or
///   after the latest right time seen;
/// - right events ahead of the left side: those stamped after the latest
///   left time seen (older ones are folded into the one value kept).
///
/// So memory is bounded by the gap between the two sides' progress, and at
/// most one of the buffers holds anything once both have been polled.
/// [`buffer_limit`](Self::buffer_limit) caps each buffer: a full buffer's
/// side is not polled (backpressure) until the other side catches up.
///
/// Both inputs are expected in time order, as every timecast source is. A
/// right event older than the value kept is superseded by it and dropped.
/// A left event older than an earlier left event is joined with the right
/// side as of that earlier event.
///
/// # Examples
///
/// The Slipstream cookbook's temporal join, with the weather stream ten
/// times slower than the activities: no activity gets stale weather.
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use timecast::{ops::StreamOps, timer, EventLoop, Timestamp};
///
/// let at = |h: i64, m: i64| Timestamp::from_unix_secs(1_672_531_200 + 3600 * h + 60 * m); // 2023-01-01
/// let weather = [(at(10, 0), "🌞"), (at(11, 0), "⛅"), (at(12, 0), "🌦️"), (at(13, 0), "🌧")];
/// let activity = [(at(10, 30), "swimming"), (at(11, 30), "walking home"), (at(12, 30), "shopping")];
/// // One message per second on the loop's clock: weather every 10 s.
/// let weather = futures::stream::iter(weather).zip(timer(Duration::from_secs(10))).map(|(w, _)| w);
/// let activity = futures::stream::iter(activity).zip(timer(Duration::from_secs(1))).map(|(a, _)| a);
///
/// let el = EventLoop::new().simulated();
/// let lines: Vec<String> = el.block_on(
///     activity
///         .as_of_join(weather)
///         .map(|(_, a, w)| format!("The weather during {a} was {}", w.unwrap_or("?")))
///         .collect(),
/// );
/// assert_eq!(lines, [
///     "The weather during swimming was 🌞",
///     "The weather during walking home was ⛅",
///     "The weather during shopping was 🌦️",
/// ]);
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct AsOfJoin<L, R, T, U> {
    left: L,
    right: R,
    /// Left events waiting for the right side to pass them, in arrival order.
    waiting: VecDeque<(Timestamp, T)>,
    /// Right events after `left_progress`, in timestamp order.
    ahead: VecDeque<(Timestamp, U)>,
    /// The latest right event at or before every left event to come.
    latest: Option<(Timestamp, U)>,
    left_progress: Option<Timestamp>,
    right_progress: Option<Timestamp>,
    left_done: bool,
    right_done: bool,
    limit: usize,
}

impl<L, R, T, U> AsOfJoin<L, R, T, U> {
    pub(super) fn new(left: L, right: R) -> Self {
        Self {
            left,
            right,
            waiting: VecDeque::new(),
            ahead: VecDeque::new(),
            latest: None,
            left_progress: None,
            right_progress: None,
            left_done: false,
            right_done: false,
            limit: usize::MAX,
        }
    }

    /// Buffers at most `limit` events per side (at least one); unbounded by
    /// default. A side whose buffer is full is not polled until the other
    /// side's progress lets the join drain it.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let left = stream::iter((0..100).map(|s| (t(s), s)));
    /// let right = stream::iter([(t(0), "a"), (t(50), "b")]);
    /// let joined = left.as_of_join(right).buffer_limit(4);
    /// assert_eq!(block_on(joined.count()), 100);
    /// ```
    pub fn buffer_limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// How many events wait in the buffers: `(left, right)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{stream, executor::block_on, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let left = stream::iter([(Timestamp::UNIX_EPOCH, 1)]);
    /// let right = stream::iter([(Timestamp::UNIX_EPOCH, 'r')]);
    /// let mut joined = left.as_of_join(right);
    /// assert_eq!(joined.buffer_lens(), (0, 0));
    /// block_on(joined.next());
    /// assert_eq!(joined.buffer_lens(), (0, 0));
    /// ```
    pub fn buffer_lens(&self) -> (usize, usize) {
        (self.waiting.len(), self.ahead.len())
    }

    /// The two input streams, left then right.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream;
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let left = stream::iter([(Timestamp::UNIX_EPOCH, 1)]);
    /// let joined = left.as_of_join(stream::iter([(Timestamp::UNIX_EPOCH, 2)]));
    /// let (_left, _right) = joined.get_ref();
    /// ```
    pub fn get_ref(&self) -> (&L, &R) {
        (&self.left, &self.right)
    }

    /// Folds every right event at or before `until` into `latest`.
    fn fold_right(&mut self, until: Timestamp) {
        while self.ahead.front().is_some_and(|(t, _)| *t <= until) {
            self.latest = self.ahead.pop_front();
        }
    }

    /// Takes one right event.
    fn add_right(&mut self, t: Timestamp, value: U) {
        self.right_progress = Some(self.right_progress.map_or(t, |p| p.max(t)));
        if self.latest.as_ref().is_some_and(|(kept, _)| t < *kept) {
            return; // superseded by the value kept
        }
        let folded_until = self
            .waiting
            .front()
            .map(|(ts, _)| *ts)
            .or(self.left_progress);
        if folded_until.is_some_and(|until| t <= until) && self.ahead.is_empty() {
            self.latest = Some((t, value));
            return;
        }
        match self.ahead.back() {
            Some((last, _)) if *last > t => {
                let at = self.ahead.partition_point(|(kept, _)| *kept <= t);
                self.ahead.insert(at, (t, value));
            }
            _ => self.ahead.push_back((t, value)),
        }
        if let Some(until) = folded_until {
            self.fold_right(until);
        }
    }
}

// Nothing but the inputs is ever pinned.
impl<L: Unpin, R: Unpin, T, U> Unpin for AsOfJoin<L, R, T, U> {}

impl<L, R, T, U> Stream for AsOfJoin<L, R, T, U>
where
    L: Stream<Item = (Timestamp, T)> + Unpin,
    R: Stream<Item = (Timestamp, U)> + Unpin,
    U: Clone,
{
    type Item = (Timestamp, T, Option<U>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(&(ts, _)) = this.waiting.front() {
                this.fold_right(ts);
                if this.right_done || this.right_progress.is_some_and(|p| p > ts) {
                    let (ts, left) = this.waiting.pop_front().expect("a waiting event");
                    let right = this.latest.as_ref().map(|(_, r)| r.clone());
                    return Poll::Ready(Some((ts, left, right)));
                }
            } else if this.left_done {
                this.ahead.clear();
                this.latest = None;
                return Poll::Ready(None);
            }
            let mut progressed = false;
            if !this.right_done && this.ahead.len() < this.limit {
                match Pin::new(&mut this.right).poll_next(cx) {
                    Poll::Ready(Some((t, value))) => {
                        this.add_right(t, value);
                        progressed = true;
                    }
                    Poll::Ready(None) => {
                        this.right_done = true;
                        progressed = true;
                    }
                    Poll::Pending => {}
                }
            }
            if !this.left_done && this.waiting.len() < this.limit {
                match Pin::new(&mut this.left).poll_next(cx) {
                    Poll::Ready(Some((ts, value))) => {
                        let progress = this.left_progress.map_or(ts, |p| p.max(ts));
                        this.left_progress = Some(progress);
                        this.waiting.push_back((ts, value));
                        progressed = true;
                    }
                    Poll::Ready(None) => {
                        this.left_done = true;
                        progressed = true;
                    }
                    Poll::Pending => {}
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

impl<L, R, T, U> FusedStream for AsOfJoin<L, R, T, U>
where
    Self: Stream,
{
    fn is_terminated(&self) -> bool {
        self.left_done && self.waiting.is_empty()
    }
}

impl<L: fmt::Debug, R: fmt::Debug, T, U> fmt::Debug for AsOfJoin<L, R, T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsOfJoin")
            .field("left", &self.left)
            .field("right", &self.right)
            .field("waiting", &self.waiting.len())
            .field("ahead", &self.ahead.len())
            .field("left_progress", &self.left_progress)
            .field("right_progress", &self.right_progress)
            .finish_non_exhaustive()
    }
}
