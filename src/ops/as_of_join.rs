//! [`AsOfJoin`]: each left event with the latest right value at or before it.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};

use super::window::{CountLate, LateOutput};
use crate::time::Timestamp;

/// The stream returned by
/// [`StreamOps::as_of_join`](super::StreamOps::as_of_join): `(ts, left,
/// right)` for each left event, `right` being the latest right value
/// stamped at or before `ts` (among equal stamps, the last to arrive).
///
/// # Waiting for the right side
///
/// A left event at `ts` is yielded only once the right stream has produced
/// an event stamped after `ts` (after `ts + lateness` with an allowed
/// lateness), or has ended: until then a right value stamped at or before
/// `ts` may still come, and answering early would enrich the left event
/// with stale data. Left events are yielded in their order of arrival.
///
/// The join reads both inputs (in the order below), and buffers:
///
/// - left events waiting for the right side's progress: those stamped at or
///   after the right watermark (minus the lateness);
/// - right events ahead of the left side: those stamped after the left
///   watermark minus the lateness, or after a left event still waiting
///   (older ones are folded into the one value kept).
///
/// The side behind in event time is read first, and the side ahead only
/// when the other has nothing ready. So inputs that are ready are read in
/// about the order of their times, and memory is bounded by the events
/// between the two sides' times (plus the lateness), however different
/// their rates: two always-ready inputs, one ten times as dense in time as
/// the other, are joined with a few events buffered. An input that waits
/// (say, for a producer that feeds both sides in turn) lets the other be
/// read on, as far as the buffers allow. With no lateness at most one of
/// the buffers holds anything once both have been polled. Once the left
/// side has ended and every left event is answered, the join ends without
/// reading the rest of the right side: a late right event there is not
/// read, so not counted.
/// [`buffer_limit`](Self::buffer_limit) caps each buffer: a full buffer's
/// side is not polled (backpressure) until the other side catches up.
///
/// # Out-of-order events
///
/// The join applies the [laws of windows](super#the-laws-of-windows) to
/// each side: each side has a *watermark*, the latest time seen on it. An
/// event more than the allowed lateness
/// ([`allowed_lateness`](Self::allowed_lateness), zero by default) older
/// than its side's watermark is *late*: it is counted
/// ([`late_counts`](Self::late_counts)) and handed to that side's late
/// output ([`on_late_left`](Self::on_late_left),
/// [`on_late_right`](Self::on_late_right)); it takes no part in the join.
/// With no allowed lateness, that is any event older than one before it
/// on its side; events with equal times are in order.
///
/// Every other event is joined exactly as if both inputs had come in time
/// order: a left event within the lateness gets the right value as of its
/// own time (the join keeps the right values of the last `lateness` for
/// it), and a left event at `ts` waits until the right watermark minus the
/// lateness has passed `ts`, so that no right value within the lateness can
/// still change its answer. The answer is never silently wrong: an event
/// that would make it wrong is late, and reported.
///
/// An event at [`Timestamp::MAX`] waits for the right side to end, since a
/// right value at `MAX` may still come.
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
pub struct AsOfJoin<L, R, T, U, OL = CountLate, OR = CountLate> {
    left: L,
    right: R,
    /// Left events waiting for the right side to pass them, in arrival order.
    waiting: VecDeque<(Timestamp, T)>,
    /// The times of `waiting` that are below every later one: its front is
    /// the earliest time waiting (a monotonic queue).
    waiting_min: VecDeque<Timestamp>,
    /// Right events after the fold bound, in timestamp order (equal times in
    /// arrival order).
    ahead: VecDeque<(Timestamp, U)>,
    /// The latest right event at or before the fold bound.
    latest: Option<(Timestamp, U)>,
    /// The latest left time seen (the left watermark).
    left_watermark: Option<Timestamp>,
    /// The latest right time seen (the right watermark).
    right_watermark: Option<Timestamp>,
    lateness: Duration,
    /// `lateness` in nanoseconds, saturated.
    lateness_nanos: i64,
    late_left: u64,
    late_right: u64,
    left_late: OL,
    right_late: OR,
    /// A late left event its output was not ready for.
    pending_left: Option<(Timestamp, T)>,
    /// A late right event its output was not ready for.
    pending_right: Option<(Timestamp, U)>,
    left_done: bool,
    right_done: bool,
    /// `None` has been returned.
    finished: bool,
    limit: usize,
}

impl<L, R, T, U> AsOfJoin<L, R, T, U> {
    pub(super) fn new(left: L, right: R) -> Self {
        Self {
            left,
            right,
            waiting: VecDeque::new(),
            waiting_min: VecDeque::new(),
            ahead: VecDeque::new(),
            latest: None,
            left_watermark: None,
            right_watermark: None,
            lateness: Duration::ZERO,
            lateness_nanos: 0,
            late_left: 0,
            late_right: 0,
            left_late: CountLate,
            right_late: CountLate,
            pending_left: None,
            pending_right: None,
            left_done: false,
            right_done: false,
            finished: false,
            limit: usize::MAX,
        }
    }
}

impl<L, R, T, U, OL, OR> AsOfJoin<L, R, T, U, OL, OR> {
    /// Buffers at most `limit` events per side (at least one); unbounded by
    /// default. A side whose buffer is full is not polled until the other
    /// side's progress lets the join drain it. (With an allowed lateness,
    /// the right buffer may exceed the limit by the right events of the
    /// last `lateness` while the left side waits on them.)
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

    /// Accepts events up to `lateness` older than the latest time seen on
    /// their side (zero by default), and joins them correctly: the join
    /// keeps the right values of the last `lateness`, and a left event
    /// waits until the right side is `lateness` past it.
    ///
    /// # Examples
    ///
    /// A left event at 5 after one at 10 gets the right value as of 5:
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let left = stream::iter([(t(10), "ten"), (t(5), "five")]);
    /// let right = stream::iter([(t(3), 'a'), (t(7), 'b'), (t(20), 'c')]);
    /// let joined: Vec<_> = block_on(
    ///     left.as_of_join(right)
    ///         .allowed_lateness(Duration::from_secs(5))
    ///         .map(|(_, l, r)| (l, r))
    ///         .collect(),
    /// );
    /// assert_eq!(joined, [("ten", Some('b')), ("five", Some('a'))]);
    /// ```
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness;
        self.lateness_nanos = i64::try_from(lateness.as_nanos()).unwrap_or(i64::MAX);
        self
    }

    /// Sends late left events to `output` (a closure `FnMut(Timestamp, T)`,
    /// an [`AsyncStream::sink`](crate::AsyncStream::sink), any
    /// [`LateOutput`]) instead of only counting them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let late = RefCell::new(Vec::new());
    /// let left = stream::iter([(t(10), "ten"), (t(5), "five")]);
    /// let right = stream::iter([(t(7), 'r')]);
    /// let joined: Vec<_> = block_on(
    ///     left.as_of_join(right)
    ///         .on_late_left(|ts: Timestamp, l| late.borrow_mut().push((ts.unix_secs(), l)))
    ///         .collect(),
    /// );
    /// assert_eq!(joined, [(t(10), "ten", Some('r'))]);
    /// assert_eq!(*late.borrow(), [(5, "five")]);
    /// ```
    pub fn on_late_left<O2: LateOutput<T>>(self, output: O2) -> AsOfJoin<L, R, T, U, O2, OR> {
        self.with_late_outputs(|_, right| (output, right))
    }

    /// Sends late right events to `output` (a closure `FnMut(Timestamp, U)`,
    /// an [`AsyncStream::sink`](crate::AsyncStream::sink), any
    /// [`LateOutput`]) instead of only counting them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let late = RefCell::new(Vec::new());
    /// let left = stream::iter([(t(5), "five"), (t(9), "nine")]);
    /// let right = stream::iter([(t(8), 'a'), (t(2), 'b')]);
    /// let joined: Vec<_> = block_on(
    ///     left.as_of_join(right)
    ///         .on_late_right(|ts: Timestamp, r| late.borrow_mut().push((ts.unix_secs(), r)))
    ///         .collect(),
    /// );
    /// assert_eq!(joined, [(t(5), "five", None), (t(9), "nine", Some('a'))]);
    /// assert_eq!(*late.borrow(), [(2, 'b')]);
    /// ```
    pub fn on_late_right<O2: LateOutput<U>>(self, output: O2) -> AsOfJoin<L, R, T, U, OL, O2> {
        self.with_late_outputs(|left, _| (left, output))
    }

    /// The same join with its late outputs replaced by `f(left, right)`.
    fn with_late_outputs<A, B>(
        self,
        f: impl FnOnce(OL, OR) -> (A, B),
    ) -> AsOfJoin<L, R, T, U, A, B> {
        let (left_late, right_late) = f(self.left_late, self.right_late);
        AsOfJoin {
            left: self.left,
            right: self.right,
            waiting: self.waiting,
            waiting_min: self.waiting_min,
            ahead: self.ahead,
            latest: self.latest,
            left_watermark: self.left_watermark,
            right_watermark: self.right_watermark,
            lateness: self.lateness,
            lateness_nanos: self.lateness_nanos,
            late_left: self.late_left,
            late_right: self.late_right,
            left_late,
            right_late,
            pending_left: self.pending_left,
            pending_right: self.pending_right,
            left_done: self.left_done,
            right_done: self.right_done,
            finished: self.finished,
            limit: self.limit,
        }
    }

    /// How many late events arrived so far: `(left, right)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let left = stream::iter([(t(10), 1), (t(5), 2), (t(12), 3)]);
    /// let right = stream::iter([(t(8), 'a'), (t(2), 'b'), (t(9), 'c')]);
    /// let mut joined = left.as_of_join(right);
    /// while block_on(joined.next()).is_some() {}
    /// assert_eq!(joined.late_counts(), (1, 1));
    /// ```
    pub fn late_counts(&self) -> (u64, u64) {
        (self.late_left, self.late_right)
    }

    /// The watermarks, the latest time seen on each side: `(left, right)`,
    /// `None` before a side's first event.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let mut joined = stream::iter([(t(1), ())]).as_of_join(stream::iter([(t(4), ())]));
    /// assert_eq!(joined.watermarks(), (None, None));
    /// block_on(joined.next());
    /// assert_eq!(joined.watermarks(), (Some(t(1)), Some(t(4))));
    /// ```
    pub fn watermarks(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        (self.left_watermark, self.right_watermark)
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

    /// `watermark - lateness`, unclamped: events before it are late.
    fn frontier(&self, watermark: Option<Timestamp>) -> Option<i128> {
        watermark.map(|w| i128::from(w.unix_nanos()) - i128::from(self.lateness_nanos))
    }

    /// Whether an event at `ts` is late against `watermark`.
    fn is_late(&self, ts: Timestamp, watermark: Option<Timestamp>) -> bool {
        self.frontier(watermark)
            .is_some_and(|frontier| i128::from(ts.unix_nanos()) < frontier)
    }

    /// Every left event to join from now on (waiting, or to come and not
    /// late) is at or after this time; `None` before the first left event.
    fn fold_bound(&self) -> Option<i128> {
        let frontier = self.frontier(self.left_watermark)?;
        Some(match self.waiting_min.front() {
            Some(min) => frontier.min(i128::from(min.unix_nanos())),
            None => frontier,
        })
    }

    /// Folds the right events at or before the fold bound into `latest`:
    /// no left event to join needs an older one.
    fn fold_right(&mut self) {
        let Some(bound) = self.fold_bound() else {
            return;
        };
        while self
            .ahead
            .front()
            .is_some_and(|(t, _)| i128::from(t.unix_nanos()) <= bound)
        {
            let Some((t, value)) = self.ahead.pop_front() else {
                break;
            };
            // A right event within the lateness may be older than the
            // value kept: then it is superseded (no left event to join
            // lies between the two).
            if self.latest.as_ref().is_none_or(|(kept, _)| t >= *kept) {
                self.latest = Some((t, value));
            }
        }
    }

    /// Takes one left event that is not late.
    fn add_left(&mut self, ts: Timestamp, value: T) {
        self.left_watermark = Some(self.left_watermark.map_or(ts, |w| w.max(ts)));
        self.waiting.push_back((ts, value));
        while self.waiting_min.back().is_some_and(|min| *min > ts) {
            self.waiting_min.pop_back();
        }
        self.waiting_min.push_back(ts);
        self.fold_right();
    }

    /// Takes one right event that is not late.
    fn add_right(&mut self, t: Timestamp, value: U) {
        self.right_watermark = Some(self.right_watermark.map_or(t, |w| w.max(t)));
        match self.ahead.back() {
            Some((last, _)) if *last > t => {
                let at = self.ahead.partition_point(|(kept, _)| *kept <= t);
                self.ahead.insert(at, (t, value));
            }
            _ => self.ahead.push_back((t, value)),
        }
        self.fold_right();
    }

    /// Whether the right side can no longer change the answer for `ts`.
    fn right_passed(&self, ts: Timestamp) -> bool {
        self.right_done
            || self
                .frontier(self.right_watermark)
                .is_some_and(|frontier| frontier > i128::from(ts.unix_nanos()))
    }

    /// The latest right value at or before `ts`, which is at or after the
    /// fold bound.
    fn right_as_of(&self, ts: Timestamp) -> Option<U>
    where
        U: Clone,
    {
        let after = self.ahead.partition_point(|(t, _)| *t <= ts);
        match after.checked_sub(1) {
            Some(at) => Some(self.ahead[at].1.clone()),
            None => self.latest.as_ref().map(|(_, r)| r.clone()),
        }
    }

    /// Takes the first waiting left event out.
    fn pop_waiting(&mut self) -> Option<(Timestamp, T)> {
        let (ts, value) = self.waiting.pop_front()?;
        if self.waiting_min.front() == Some(&ts) {
            self.waiting_min.pop_front();
        }
        self.fold_right();
        Some((ts, value))
    }
}

impl<L, R, T, U, OL, OR> AsOfJoin<L, R, T, U, OL, OR>
where
    L: Stream<Item = (Timestamp, T)> + Unpin,
    R: Stream<Item = (Timestamp, U)> + Unpin,
{
    /// Polls the right side once; `true` if it gave an event or ended.
    fn poll_right(&mut self, cx: &mut Context<'_>) -> bool {
        match Pin::new(&mut self.right).poll_next(cx) {
            Poll::Ready(Some((t, value))) => {
                if self.is_late(t, self.right_watermark) {
                    self.late_right += 1;
                    self.pending_right = Some((t, value));
                } else {
                    self.add_right(t, value);
                }
                true
            }
            Poll::Ready(None) => {
                self.right_done = true;
                true
            }
            Poll::Pending => false,
        }
    }

    /// Polls the left side once; `true` if it gave an event or ended.
    fn poll_left(&mut self, cx: &mut Context<'_>) -> bool {
        match Pin::new(&mut self.left).poll_next(cx) {
            Poll::Ready(Some((ts, value))) => {
                if self.is_late(ts, self.left_watermark) {
                    self.late_left += 1;
                    self.pending_left = Some((ts, value));
                } else {
                    self.add_left(ts, value);
                }
                true
            }
            Poll::Ready(None) => {
                self.left_done = true;
                true
            }
            Poll::Pending => false,
        }
    }
}

// Nothing but the inputs is ever pinned.
impl<L: Unpin, R: Unpin, T, U, OL, OR> Unpin for AsOfJoin<L, R, T, U, OL, OR> {}

impl<L, R, T, U, OL, OR> Stream for AsOfJoin<L, R, T, U, OL, OR>
where
    L: Stream<Item = (Timestamp, T)> + Unpin,
    R: Stream<Item = (Timestamp, U)> + Unpin,
    U: Clone,
    OL: LateOutput<T>,
    OR: LateOutput<U>,
{
    type Item = (Timestamp, T, Option<U>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            if this.pending_left.is_some() {
                ready!(this.left_late.poll_ready(cx));
                if let Some((ts, value)) = this.pending_left.take() {
                    this.left_late.send(ts, value);
                }
            }
            if this.pending_right.is_some() {
                ready!(this.right_late.poll_ready(cx));
                if let Some((t, value)) = this.pending_right.take() {
                    this.right_late.send(t, value);
                }
            }
            if let Some(&(ts, _)) = this.waiting.front() {
                if this.right_passed(ts) {
                    let right = this.right_as_of(ts);
                    let (ts, left) = this.pop_waiting().expect("a waiting event");
                    return Poll::Ready(Some((ts, left, right)));
                }
            } else if this.left_done {
                ready!(this.left_late.poll_flush(cx));
                ready!(this.right_late.poll_flush(cx));
                this.ahead.clear();
                this.latest = None;
                this.finished = true;
                return Poll::Ready(None);
            }
            // The right side is polled while its buffer has room, or while
            // a left event waits on it: right events at or before the
            // first waiting one are folded, and the first one after it (by
            // more than the lateness) lets it go. The left side is polled
            // while its buffer has room.
            let right_wanted =
                !this.right_done && (this.ahead.len() < this.limit || !this.waiting.is_empty());
            let left_wanted =
                !this.left_done && this.waiting.len() < this.limit && this.pending_left.is_none();
            // The side behind in event time first; the side ahead only if
            // the other gives nothing now. Two ready inputs are so read in
            // about the order of their times, whatever their rates, and
            // buffer little; an input waiting for something (a producer
            // that feeds both sides) does not hold the other back.
            let progressed = match (this.left_watermark, this.right_watermark) {
                (Some(l), Some(r)) if r < l => {
                    (right_wanted && this.poll_right(cx)) || (left_wanted && this.poll_left(cx))
                }
                (Some(l), Some(r)) if l < r => {
                    (left_wanted && this.poll_left(cx)) || (right_wanted && this.poll_right(cx))
                }
                _ => {
                    let right = right_wanted && this.poll_right(cx);
                    let left = left_wanted && this.poll_left(cx);
                    right || left
                }
            };
            if !progressed {
                // Progress on late values put earlier; their wake-ups come
                // back here.
                let _ = this.left_late.poll_flush(cx);
                let _ = this.right_late.poll_flush(cx);
                return Poll::Pending;
            }
        }
    }
}

impl<L, R, T, U, OL, OR> FusedStream for AsOfJoin<L, R, T, U, OL, OR>
where
    Self: Stream,
{
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl<L: fmt::Debug, R: fmt::Debug, T, U, OL, OR> fmt::Debug for AsOfJoin<L, R, T, U, OL, OR> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsOfJoin")
            .field("left", &self.left)
            .field("right", &self.right)
            .field("waiting", &self.waiting.len())
            .field("ahead", &self.ahead.len())
            .field("left_watermark", &self.left_watermark)
            .field("right_watermark", &self.right_watermark)
            .field("allowed_lateness", &self.lateness)
            .field("late_counts", &self.late_counts())
            .finish_non_exhaustive()
    }
}
