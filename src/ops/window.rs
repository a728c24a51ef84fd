//! [`Window`], and [`Windowed`]: the engine behind tumbling, hopping and
//! session windows (watermark, allowed lateness, late output, clock).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};

use crate::channel::PutSink;
use crate::time::{Sleep, Timestamp};

/// A window of timestamped events: what the windowed combinators yield.
///
/// A window covers `[start, end)` (half-open), or `[start, end]` (closed)
/// when [`includes_end`](Self::includes_end) is set; [`contains`](Self::contains)
/// follows that flag, and every item is contained:
///
/// | kind | interval | `includes_end` |
/// |---|---|---|
/// | tumbling, hopping, session | `[start, end)` | `false` |
/// | sliding (per event at `ts`) | `[ts - size, ts]` | `true` |
/// | any kind, reaching past [`Timestamp::MAX`] | `[start, MAX]` | `true` |
///
/// Time ends at [`Timestamp::MAX`]: a tumbling, hopping or session window
/// whose end would lie beyond it ends at `MAX` and includes it, so that an
/// event at `MAX` has a window like any other. Likewise a window that would
/// start before [`Timestamp::MIN`] starts at `MIN`.
///
/// # Invariants
///
/// Every item's time `t` has `contains(t)`. `items` is never empty in an
/// emitted window and is in timestamp order, events with equal timestamps in
/// arrival order.
///
/// # Examples
///
/// ```
/// use timecast::{ops::Window, Timestamp};
///
/// let t = Timestamp::from_unix_secs;
/// let w = Window { start: t(0), end: t(10), includes_end: false, items: vec![(t(1), 'a'), (t(4), 'b')] };
/// assert_eq!(w.len(), 2);
/// assert!(w.contains(t(0)) && !w.contains(t(10)));
/// assert_eq!(w.values().collect::<String>(), "ab");
///
/// let sliding = Window { includes_end: true, ..w };
/// assert!(sliding.contains(t(10)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "store", derive(serde::Serialize, serde::Deserialize))]
pub struct Window<T> {
    /// Where the window starts (included).
    pub start: Timestamp,
    /// Where the window ends: excluded, unless [`includes_end`](Self::includes_end).
    pub end: Timestamp,
    /// Whether `end` belongs to the window: `true` for sliding windows, and
    /// for windows that reach the end of time ([`Timestamp::MAX`]).
    pub includes_end: bool,
    /// The events of the window, in timestamp order.
    pub items: Vec<(Timestamp, T)>,
}

impl<T> Window<T> {
    /// An empty window over `[start, end)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{ops::Window, Timestamp};
    /// let w = Window::<u8>::new(Timestamp::from_unix_secs(0), Timestamp::from_unix_secs(1));
    /// assert!(w.is_empty() && !w.includes_end);
    /// ```
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        Self {
            start,
            end,
            includes_end: false,
            items: Vec::new(),
        }
    }

    /// An empty window over `[start, end]`, both ends included (the shape of
    /// a sliding window).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{ops::Window, Timestamp};
    /// let t = Timestamp::from_unix_secs;
    /// let w = Window::<u8>::inclusive(t(0), t(1));
    /// assert!(w.contains(t(0)) && w.contains(t(1)));
    /// ```
    pub fn inclusive(start: Timestamp, end: Timestamp) -> Self {
        Self {
            includes_end: true,
            ..Self::new(start, end)
        }
    }

    /// The number of events in the window.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{ops::Window, Timestamp};
    /// let t = Timestamp::from_unix_secs;
    /// let mut w = Window::new(t(0), t(1));
    /// w.items.push((t(0), ()));
    /// assert_eq!(w.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the window holds no event (never true of an emitted window).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{ops::Window, Timestamp};
    /// let t = Timestamp::from_unix_secs;
    /// assert!(Window::<()>::new(t(0), t(1)).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether `t` is in the window: `start <= t < end`, or `start <= t <=
    /// end` if [`includes_end`](Self::includes_end). True of every item.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{ops::Window, Timestamp};
    /// let t = Timestamp::from_unix_secs;
    /// let w = Window::<()>::new(t(0), t(1));
    /// assert!(w.contains(t(0)));
    /// assert!(!w.contains(t(1)));
    /// assert!(Window::<()>::inclusive(t(0), t(1)).contains(t(1)));
    /// ```
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && (t < self.end || (self.includes_end && t == self.end))
    }

    /// `end - start` (zero if `end` is before `start`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Window, Timestamp};
    /// let w = Window::<()>::new(Timestamp::from_unix_secs(2), Timestamp::from_unix_secs(5));
    /// assert_eq!(w.duration(), Duration::from_secs(3));
    /// ```
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// The events' values, in timestamp order.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{ops::Window, Timestamp};
    /// let t = Timestamp::from_unix_secs;
    /// let w = Window { start: t(0), end: t(9), includes_end: false, items: vec![(t(1), 2), (t(3), 5)] };
    /// assert_eq!(w.values().sum::<i32>(), 7);
    /// ```
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator + '_ {
        self.items.iter().map(|(_, v)| v)
    }

    /// The first time after the window, unclamped: `end`, or `end + 1 ns`
    /// if the window includes its end.
    pub(super) fn end_excl(&self) -> i128 {
        i128::from(self.end.unix_nanos()) + i128::from(self.includes_end)
    }

    /// Sets the end from the first time after the window, unclamped: a
    /// window reaching past `MAX` ends at `MAX`, included.
    pub(super) fn set_end_excl(&mut self, end: i128) {
        (self.end, self.includes_end) = end_of(end);
    }
}

/// The end of a window, and whether it is included, from the first time
/// after it (unclamped): `[.., end)`, or `[.., MAX]` past the end of time.
pub(super) fn end_of(end: i128) -> (Timestamp, bool) {
    if end > i128::from(i64::MAX) {
        (Timestamp::MAX, true)
    } else {
        (clamp(end), false)
    }
}

/// Inserts an event in `items`, keeping timestamp order (after equal
/// times). `in_order`: `ts` is known to be at or after every item.
#[inline]
pub(super) fn insert_item<T>(
    items: &mut Vec<(Timestamp, T)>,
    ts: Timestamp,
    value: T,
    in_order: bool,
) {
    if in_order {
        items.push((ts, value));
        return;
    }
    match items.last() {
        Some((last, _)) if *last > ts => {
            let at = items.partition_point(|(t, _)| *t <= ts);
            items.insert(at, (ts, value));
        }
        _ => items.push((ts, value)),
    }
}

/// `duration` in nanoseconds, for window sizes, hops and gaps.
///
/// # Panics
///
/// If `duration` is zero or longer than `i64::MAX` nanoseconds.
pub(super) fn step_nanos(duration: Duration, what: &str) -> i64 {
    match i64::try_from(duration.as_nanos()) {
        Ok(0) => panic!("timecast::ops: the {what} of a window must not be zero"),
        Ok(nanos) => nanos,
        Err(_) => panic!("timecast::ops: the {what} of a window must be under 292 years"),
    }
}

/// The start of the step-long slot holding `ts`, slots being aligned on
/// `origin`: `origin + floor((ts - origin) / step) · step`, unclamped.
pub(super) fn align(ts: Timestamp, origin: Timestamp, step: i64) -> i128 {
    align_nanos(
        i128::from(ts.unix_nanos()),
        i128::from(origin.unix_nanos()),
        i128::from(step),
    )
}

/// [`align`] on unclamped nanoseconds.
pub(super) fn align_nanos(ts: i128, origin: i128, step: i128) -> i128 {
    origin + (ts - origin).div_euclid(step) * step
}

/// An unclamped time in nanoseconds as a [`Timestamp`], clamped to its range.
pub(super) fn clamp(nanos: i128) -> Timestamp {
    let nanos = nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    Timestamp::from_unix_nanos(nanos as i64)
}

/// Where a windowed combinator stands, as its window assigner sees it.
/// Times are unclamped nanoseconds, so that no value stands for "none".
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// Windows whose first time after them ([`Window::end_excl`]) is at or
    /// before this are closed: the watermark minus the allowed lateness;
    /// below every time before the first event.
    pub(super) closed: i128,
    /// The latest first time after an emitted window; below every time
    /// before the first emission.
    pub(super) emitted_end: i128,
    /// The event is at or after every event seen before: it goes last.
    pub(super) in_order: bool,
}

/// Bounds before any event: nothing closed, nothing emitted.
pub(super) const NOTHING_CLOSED: i128 = i128::MIN;

/// What placing an event did to the open windows.
#[derive(Debug)]
pub(super) enum Placed<T> {
    /// No window's bounds changed: it joined the newest window, or fell
    /// between windows.
    Unchanged,
    /// It opened, merged or extended windows.
    Reshaped,
    /// It was late for some of its windows and joined the others (which it
    /// may have reshaped): hand it to the late output.
    PartlyLate(Timestamp, T),
    /// It was late for all its windows: hand it to the late output.
    Late(Timestamp, T),
}

/// The windows of a [`Windowed`] not emitted yet.
///
/// # Invariants
///
/// Sorted by start, and by end too (by [`Window::end_excl`]): tumbling and
/// hopping windows all have the same size, and sessions never overlap. Two
/// windows differ in start or end (near the ends of time, clamped hopping
/// windows may share one of them). No window is empty, and none is closed
/// once the engine has emitted the closed ones.
pub(super) struct Open<T> {
    pub(super) windows: VecDeque<Window<T>>,
    /// Capacity for new windows: the size of the last one emitted, capped.
    hint: usize,
}

/// New windows reserve room for as many items as the last one held, up to
/// this many.
const MAX_HINT: usize = 4096;

impl<T> Open<T> {
    pub(super) fn new() -> Self {
        Self {
            windows: VecDeque::new(),
            hint: 0,
        }
    }

    /// A new, empty window from `start` to `end` (the first time after it,
    /// unclamped: see [`Window::set_end_excl`]), with room reserved.
    pub(super) fn fresh(&self, start: i128, end: i128) -> Window<T> {
        let mut window = Window {
            start: clamp(start),
            end: Timestamp::MAX,
            includes_end: false,
            items: Vec::with_capacity(self.hint),
        };
        window.set_end_excl(end);
        window
    }

    /// The window from `start` to `end` (unclamped, as for
    /// [`fresh`](Self::fresh)), opened if need be.
    pub(super) fn window(&mut self, start: i128, end: i128) -> &mut Window<T> {
        let key = (clamp(start), end.min(i128::from(i64::MAX) + 1));
        let at = self
            .windows
            .partition_point(|w| (w.start, w.end_excl()) < key);
        if self
            .windows
            .get(at)
            .is_none_or(|w| (w.start, w.end_excl()) != key)
        {
            let window = self.fresh(start, end);
            self.windows.insert(at, window);
        }
        &mut self.windows[at]
    }

    /// The first time after the first window, `None` if there is none.
    fn front_end(&self) -> Option<i128> {
        self.windows.front().map(Window::end_excl)
    }

    fn pop_front(&mut self) -> Option<Window<T>> {
        let window = self.windows.pop_front()?;
        self.hint = window.items.len().min(MAX_HINT);
        Some(window)
    }
}

/// Where the late events of a windowed combinator go: a side output.
///
/// Implemented for closures `FnMut(Timestamp, T)`, for
/// [`PutSink`](crate::channel::PutSink) (from
/// [`AsyncStream::sink`](crate::AsyncStream::sink): late events become a
/// topic, with backpressure), for any `futures` sink wrapped in
/// [`LateSink`], and for [`CountLate`] (the default: count only).
///
/// Every late event is counted by the combinator whatever its output.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, time::Duration};
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::{ops::StreamOps, Timestamp};
///
/// let late = RefCell::new(Vec::new());
/// let events = stream::iter([(0, 'a'), (1_500, 'b'), (200, 'c')])
///     .map(|(ms, v)| (Timestamp::from_unix_millis(ms), v));
/// let windows: Vec<_> = block_on(
///     events
///         .tumbling(Duration::from_secs(1))
///         .on_late(|ts: Timestamp, v| late.borrow_mut().push((ts.unix_millis(), v)))
///         .collect(),
/// );
/// assert_eq!(windows.len(), 2);
/// assert_eq!(*late.borrow(), [(200, 'c')]);
/// ```
pub trait LateOutput<T> {
    /// Polls until the output can take one more event. Ready at once for
    /// closures and [`CountLate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll};
    /// use futures::task::noop_waker;
    /// use timecast::{ops::{LateOutput, LateSink}, AsyncStream, Timestamp};
    ///
    /// let topic = AsyncStream::with_capacity(1);
    /// let _consumer = topic.subscribe();
    /// let mut out = LateSink(topic.sink());
    /// let waker = noop_waker();
    /// let mut cx = Context::from_waker(&waker);
    /// assert_eq!(LateOutput::<u8>::poll_ready(&mut out, &mut cx), Poll::Ready(()));
    /// out.send(Timestamp::UNIX_EPOCH, 1u8);
    /// assert_eq!(LateOutput::<u8>::poll_ready(&mut out, &mut cx), Poll::Ready(())); // put
    /// out.send(Timestamp::UNIX_EPOCH, 2u8);
    /// assert_eq!(LateOutput::<u8>::poll_ready(&mut out, &mut cx), Poll::Pending); // full
    /// ```
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let _ = cx;
        Poll::Ready(())
    }

    /// Takes one late event; called after [`poll_ready`](Self::poll_ready)
    /// returned `Ready`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{ops::LateOutput, Timestamp};
    ///
    /// let mut seen = Vec::new();
    /// let mut out = |ts: Timestamp, v: char| seen.push((ts.unix_secs(), v));
    /// out.send(Timestamp::from_unix_secs(3), 'x');
    /// assert_eq!(seen, [(3, 'x')]);
    /// ```
    fn send(&mut self, time: Timestamp, value: T);

    /// Polls until the events taken are delivered. Ready at once for
    /// closures and [`CountLate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll};
    /// use futures::task::noop_waker;
    /// use timecast::{ops::{LateOutput, LateSink}, AsyncStream, Timestamp};
    ///
    /// let topic = AsyncStream::with_capacity(4);
    /// let mut late = topic.subscribe();
    /// let mut out = LateSink(topic.sink());
    /// out.send(Timestamp::UNIX_EPOCH, 'a');
    /// let waker = noop_waker();
    /// let mut cx = Context::from_waker(&waker);
    /// assert_eq!(LateOutput::<char>::poll_flush(&mut out, &mut cx), Poll::Ready(()));
    /// assert_eq!(late.try_recv(), Ok((Timestamp::UNIX_EPOCH, 'a')));
    /// ```
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let _ = cx;
        Poll::Ready(())
    }
}

/// The default [`LateOutput`]: late events are counted (see
/// [`Windowed::late_count`]), then dropped.
///
/// # Examples
///
/// ```
/// use timecast::ops::{CountLate, LateOutput};
/// use timecast::Timestamp;
///
/// let mut out = CountLate;
/// LateOutput::<u8>::send(&mut out, Timestamp::UNIX_EPOCH, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CountLate;

impl<T> LateOutput<T> for CountLate {
    fn send(&mut self, _time: Timestamp, _value: T) {}
}

impl<T, F: FnMut(Timestamp, T)> LateOutput<T> for F {
    fn send(&mut self, time: Timestamp, value: T) {
        self(time, value);
    }
}

/// A `futures` [`Sink`](futures_util::Sink) of `(Timestamp, T)` as a
/// [`LateOutput`]: the combinator waits for the sink to be ready before it
/// goes on. If the sink fails (a closed channel), the event is dropped; it
/// was counted.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::{ops::{LateSink, StreamOps}, AsyncStream, Timestamp};
///
/// let topic = AsyncStream::with_capacity(8);
/// let mut late = topic.subscribe();
/// let events = stream::iter([(5, 'a'), (9, 'b'), (1, 'c')])
///     .map(|(s, v)| (Timestamp::from_unix_secs(s), v));
/// let windows: Vec<_> = block_on(
///     events
///         .tumbling(Duration::from_secs(2))
///         .on_late(LateSink(topic.sink()))
///         .collect(),
/// );
/// assert_eq!(windows.len(), 2);
/// assert_eq!(late.try_recv(), Ok((Timestamp::from_unix_secs(1), 'c')));
/// ```
#[derive(Clone, Debug, Default)]
pub struct LateSink<K>(pub K);

impl<T, K> LateOutput<T> for LateSink<K>
where
    K: futures_util::Sink<(Timestamp, T)> + Unpin,
{
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll_ready(cx).map(drop)
    }

    fn send(&mut self, time: Timestamp, value: T) {
        let _refused = Pin::new(&mut self.0).start_send((time, value));
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll_flush(cx).map(drop)
    }
}

impl<T> LateOutput<T> for PutSink<(Timestamp, T)> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        futures_util::Sink::poll_ready(Pin::new(self), cx).map(drop)
    }

    fn send(&mut self, time: Timestamp, value: T) {
        let _refused = futures_util::Sink::start_send(Pin::new(self), (time, value));
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        futures_util::Sink::poll_flush(Pin::new(self), cx).map(drop)
    }
}

/// What tells a windowed combinator that time has passed while its input is
/// idle, so that it need not hold a finished window until the next event.
///
/// [`EventTime`] (the default) never does: windows close on event time and
/// at the end of the input only. [`LoopClock`] follows the
/// [`EventLoop`](crate::EventLoop)'s clock.
pub trait WindowClock {
    /// Polls until the clock reaches `deadline`, then returns its time (at
    /// or after `deadline`). May stay pending forever.
    ///
    /// # Examples
    ///
    /// A clock of your own, here one that is always past every deadline:
    /// windows close as soon as the input is idle.
    ///
    /// ```
    /// use std::{task::{Context, Poll}, time::Duration};
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::{StreamOps, WindowClock}, Timestamp};
    ///
    /// struct EndOfTime;
    /// impl WindowClock for EndOfTime {
    ///     fn poll_reach(&mut self, _deadline: Timestamp, _cx: &mut Context<'_>) -> Poll<Timestamp> {
    ///         Poll::Ready(Timestamp::MAX)
    ///     }
    /// }
    ///
    /// let events = stream::iter([(Timestamp::UNIX_EPOCH, 1)]).chain(stream::pending());
    /// let mut windows = events.tumbling(Duration::from_secs(1)).clock(EndOfTime);
    /// assert_eq!(block_on(windows.next()).map(|w| w.len()), Some(1));
    /// ```
    fn poll_reach(&mut self, deadline: Timestamp, cx: &mut Context<'_>) -> Poll<Timestamp>;
}

/// The default [`WindowClock`]: event time only. A window closes when an
/// event at or after its end (plus the allowed lateness) arrives, or when the
/// input ends. Works under any executor.
///
/// # Examples
///
/// ```
/// use std::task::{Context, Poll};
/// use futures::task::noop_waker;
/// use timecast::{ops::{EventTime, WindowClock}, Timestamp};
///
/// let waker = noop_waker();
/// let mut cx = Context::from_waker(&waker);
/// assert_eq!(EventTime.poll_reach(Timestamp::MIN, &mut cx), Poll::Pending);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventTime;

impl WindowClock for EventTime {
    fn poll_reach(&mut self, _deadline: Timestamp, _cx: &mut Context<'_>) -> Poll<Timestamp> {
        Poll::Pending
    }
}

/// A [`WindowClock`] following the clock of the
/// [`EventLoop`](crate::EventLoop) polling the combinator: while the input is
/// idle, a window is emitted once [`now()`](crate::now) reaches its end plus
/// the allowed lateness (the loop's rule "a window is emitted when the clock
/// passes its end"). The clock then counts as progress: a later event for
/// that window is late.
///
/// # Panics
///
/// Polled outside an [`EventLoop`](crate::EventLoop) while it has to wait.
///
/// # Examples
///
/// A session that the clock closes 5 s after its last event, although the
/// input stays open for a minute more:
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use timecast::{ops::{LoopClock, StreamOps}, now, AsyncStream, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let clicks = AsyncStream::new();
/// let mut sessions = clicks.subscribe().session(Duration::from_secs(5)).clock(LoopClock::new());
/// let input = clicks.clone();
/// el.spawn(async move {
///     input.put((now(), "click")).await.ok();
///     timecast::sleep(Duration::from_secs(60)).await;
/// });
/// drop(clicks);
/// let emitted_at = el.block_on(async move {
///     sessions.next().await;
///     now()
/// });
/// assert_eq!(emitted_at, Timestamp::from_unix_secs(5));
/// ```
#[derive(Debug, Default)]
pub struct LoopClock {
    sleep: Option<Sleep>,
}

impl LoopClock {
    /// A clock that follows the loop's.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{stream, StreamExt};
    /// use timecast::{ops::{LoopClock, StreamOps}, EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let windows = stream::iter([(Timestamp::UNIX_EPOCH, 'a')])
    ///     .session(Duration::from_secs(1))
    ///     .clock(LoopClock::new());
    /// assert_eq!(el.block_on(windows.count()), 1);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
}

impl WindowClock for LoopClock {
    fn poll_reach(&mut self, deadline: Timestamp, cx: &mut Context<'_>) -> Poll<Timestamp> {
        let sleep = match &mut self.sleep {
            Some(sleep) if sleep.deadline() == deadline => sleep,
            slot => slot.insert(crate::sleep_until(deadline)),
        };
        ready!(Pin::new(sleep).poll(cx));
        self.sleep = None;
        Poll::Ready(crate::now().max(deadline))
    }
}

/// The stream of [`Window`]s returned by
/// [`tumbling`](super::StreamOps::tumbling),
/// [`hopping`](super::StreamOps::hopping) and
/// [`session`](super::StreamOps::session); `K` is the window kind
/// ([`Tumbling`](super::Tumbling), [`Hopping`](super::Hopping),
/// [`Session`](super::Session)).
///
/// The builder methods set the allowed lateness, the late output `O`
/// ([`CountLate`] by default) and the clock `C` ([`EventTime`] by default);
/// call them before polling. The rules are the
/// [laws of windows](super#the-laws-of-windows).
///
/// Memory: the windows not emitted yet. With events in time order that is
/// one window (tumbling, session) or `size / hop` windows (hopping), plus
/// those the allowed lateness keeps open.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::{ops::StreamOps, Timestamp};
///
/// let events = stream::iter([(0, 'a'), (1_200, 'b'), (800, 'c'), (2_500, 'd')])
///     .map(|(ms, v)| (Timestamp::from_unix_millis(ms), v));
/// let mut windows = events.tumbling(Duration::from_secs(1)).allowed_lateness(Duration::from_millis(500));
/// let first = block_on(windows.next()).ok_or("no window")?;
/// assert_eq!(first.values().collect::<String>(), "ac"); // 'c' was late, but not too late
/// assert_eq!(windows.late_count(), 0);
/// # Ok::<(), &str>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Windowed<S, K, T, O = CountLate, C = EventTime> {
    stream: S,
    kind: K,
    open: Open<T>,
    /// The latest event time seen, or clock time reached; `None` at first.
    watermark: Option<Timestamp>,
    lateness: Duration,
    /// `lateness` in nanoseconds, saturated.
    lateness_nanos: i64,
    /// Windows whose first time after them is at or before this are
    /// closed: `watermark - lateness`, unclamped ([`NOTHING_CLOSED`] before
    /// the first event).
    closed_until: i128,
    /// The first time after the first open window (`None` if none): it
    /// closes first.
    next_end: Option<i128>,
    /// The first time after the latest window emitted, unclamped.
    emitted_end: i128,
    late_count: u64,
    late: O,
    /// A late event the late output was not ready for.
    pending_late: Option<(Timestamp, T)>,
    clock: C,
    /// The input has ended.
    done: bool,
}

impl<S, K, T> Windowed<S, K, T> {
    pub(super) fn new(stream: S, kind: K) -> Self {
        Self {
            stream,
            kind,
            open: Open::new(),
            watermark: None,
            lateness: Duration::ZERO,
            lateness_nanos: 0,
            closed_until: NOTHING_CLOSED,
            next_end: None,
            emitted_end: NOTHING_CLOSED,
            late_count: 0,
            late: CountLate,
            pending_late: None,
            clock: EventTime,
            done: false,
        }
    }
}

impl<S, K, T, O, C> Windowed<S, K, T, O, C> {
    /// Keeps windows open `lateness` longer: a window is emitted once the
    /// watermark reaches `end + lateness`, and events up to that late join
    /// it. Zero by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let events = stream::iter([(1, 'a'), (11, 'b'), (2, 'c')])
    ///     .map(|(s, v)| (Timestamp::from_unix_secs(s), v));
    /// let mut windows = events.tumbling(Duration::from_secs(10)).allowed_lateness(Duration::from_secs(5));
    /// let first = block_on(windows.next()).ok_or("no window")?;
    /// assert_eq!(first.len(), 2);
    /// # Ok::<(), &str>(())
    /// ```
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness;
        self.lateness_nanos = i64::try_from(lateness.as_nanos()).unwrap_or(i64::MAX);
        self.closed_until = self.frontier();
        self
    }

    /// Sends late events to `output` (a closure `FnMut(Timestamp, T)`, an
    /// [`AsyncStream::sink`](crate::AsyncStream::sink), a [`LateSink`], …)
    /// instead of only counting them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, time::Duration};
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let late = Cell::new(0);
    /// let events = stream::iter([(5, ()), (15, ()), (1, ())])
    ///     .map(|(s, v)| (Timestamp::from_unix_secs(s), v));
    /// let n = block_on(events.tumbling(Duration::from_secs(10)).on_late(|_, _| late.set(late.get() + 1)).count());
    /// assert_eq!((n, late.get()), (2, 1));
    /// ```
    pub fn on_late<O2: LateOutput<T>>(self, output: O2) -> Windowed<S, K, T, O2, C> {
        Windowed {
            stream: self.stream,
            kind: self.kind,
            open: self.open,
            watermark: self.watermark,
            lateness: self.lateness,
            lateness_nanos: self.lateness_nanos,
            closed_until: self.closed_until,
            next_end: self.next_end,
            emitted_end: self.emitted_end,
            late_count: self.late_count,
            late: output,
            pending_late: self.pending_late,
            clock: self.clock,
            done: self.done,
        }
    }

    /// Closes windows on `clock` too, while the input is idle; see
    /// [`LoopClock`] for the event loop's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{stream, StreamExt};
    /// use timecast::{ops::{LoopClock, StreamOps}, EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let windows = stream::iter([(Timestamp::UNIX_EPOCH, 1)])
    ///     .tumbling(Duration::from_secs(1))
    ///     .clock(LoopClock::new());
    /// assert_eq!(el.block_on(windows.count()), 1);
    /// ```
    pub fn clock<C2: WindowClock>(self, clock: C2) -> Windowed<S, K, T, O, C2> {
        Windowed {
            stream: self.stream,
            kind: self.kind,
            open: self.open,
            watermark: self.watermark,
            lateness: self.lateness,
            lateness_nanos: self.lateness_nanos,
            closed_until: self.closed_until,
            next_end: self.next_end,
            emitted_end: self.emitted_end,
            late_count: self.late_count,
            late: self.late,
            pending_late: self.pending_late,
            clock,
            done: self.done,
        }
    }

    /// How many late events arrived so far (whatever the late output did
    /// with them).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let events = stream::iter([3, 12, 4, 5, 25]).map(|s| (Timestamp::from_unix_secs(s), s));
    /// let mut windows = events.tumbling(Duration::from_secs(10));
    /// while block_on(windows.next()).is_some() {}
    /// assert_eq!(windows.late_count(), 2);
    /// ```
    pub fn late_count(&self) -> u64 {
        self.late_count
    }

    /// The watermark: the latest event time seen (or clock time reached
    /// with a [`LoopClock`]); `None` before the first event.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let mut windows = stream::iter([(t(3), ()), (t(12), ())]).tumbling(Duration::from_secs(10));
    /// assert_eq!(windows.watermark(), None);
    /// block_on(windows.next());
    /// assert_eq!(windows.watermark(), Some(t(12)));
    /// ```
    pub fn watermark(&self) -> Option<Timestamp> {
        self.watermark
    }

    /// The window kind, with its parameters.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::stream;
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let windows = stream::iter([(Timestamp::UNIX_EPOCH, ())]).tumbling(Duration::from_secs(60));
    /// assert_eq!(windows.kind().size(), Duration::from_secs(60));
    /// ```
    pub fn kind(&self) -> &K {
        &self.kind
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
    /// let windows = stream::iter([(Timestamp::UNIX_EPOCH, ())]).session(Duration::from_secs(1));
    /// let _input: &stream::Iter<_> = windows.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    pub(super) fn kind_mut(&mut self) -> &mut K {
        &mut self.kind
    }

    /// `watermark - lateness`, unclamped; [`NOTHING_CLOSED`] before the
    /// first event.
    fn frontier(&self) -> i128 {
        self.watermark.map_or(NOTHING_CLOSED, |w| {
            i128::from(w.unix_nanos()) - i128::from(self.lateness_nanos)
        })
    }

    /// Moves the watermark up to `t`.
    fn advance(&mut self, t: Timestamp) {
        if self.watermark.is_none_or(|w| t > w) {
            self.watermark = Some(t);
            // Never back: the end of the input may have closed more.
            self.closed_until = self.closed_until.max(self.frontier());
        }
    }

    /// Polls the input for the next event the general path must handle.
    ///
    /// Events in time order that the newest window takes as it is, without
    /// closing any window (the steady state), are pushed into it here, in a
    /// tight loop that keeps the watermark and the window at hand. `takes`
    /// says up to when (excluded, unclamped) the newest window takes events
    /// as they are; the newest window starts at or before the watermark.
    fn poll_input<F>(&mut self, cx: &mut Context<'_>, takes: F) -> Poll<Option<(Timestamp, T)>>
    where
        S: Stream<Item = (Timestamp, T)> + Unpin,
        F: Fn(&K, &Window<T>) -> i128,
    {
        let (Some(newest), Some(mut watermark)) = (self.open.windows.back_mut(), self.watermark)
        else {
            return Pin::new(&mut self.stream).poll_next(cx);
        };
        // An event at or after this would close the first window.
        let closes_at = self
            .next_end
            .map_or(i128::MAX, |end| end + i128::from(self.lateness_nanos));
        let until = takes(&self.kind, newest).min(closes_at);
        let polled = loop {
            match Pin::new(&mut self.stream).poll_next(cx) {
                Poll::Ready(Some((ts, value)))
                    if watermark <= ts && i128::from(ts.unix_nanos()) < until =>
                {
                    watermark = ts;
                    newest.items.push((ts, value));
                }
                polled => break polled,
            }
        };
        self.advance(watermark);
        polled
    }

    /// The state machine shared by every window kind; `place` assigns one
    /// event to the open windows; `takes` is the fast path's bound (see
    /// [`poll_input`](Self::poll_input)).
    pub(super) fn poll_windows<P, F>(
        &mut self,
        cx: &mut Context<'_>,
        mut place: P,
        takes: F,
    ) -> Poll<Option<Window<T>>>
    where
        S: Stream<Item = (Timestamp, T)> + Unpin,
        O: LateOutput<T>,
        C: WindowClock,
        P: FnMut(&K, &mut Open<T>, Bounds, Timestamp, T) -> Placed<T>,
        F: Fn(&K, &Window<T>) -> i128,
    {
        loop {
            if self.pending_late.is_some() {
                if self.late.poll_ready(cx).is_pending() {
                    return Poll::Pending;
                }
                if let Some((ts, value)) = self.pending_late.take() {
                    self.late.send(ts, value);
                }
            }
            let closed = self.next_end.is_some_and(|end| end <= self.closed_until);
            if closed || self.done {
                if let Some(window) = self.open.pop_front() {
                    self.next_end = self.open.front_end();
                    self.emitted_end = self.emitted_end.max(window.end_excl());
                    if self.done {
                        // Emitted by the end of the input: closed, with
                        // all before it (as a watermark past it would), so
                        // that a pipeline resumed from this state with
                        // more input counts their events late, and emits
                        // no interval twice.
                        self.closed_until = self.closed_until.max(window.end_excl());
                    }
                    return Poll::Ready(Some(window));
                }
            }
            if self.done {
                ready!(self.late.poll_flush(cx));
                return Poll::Ready(None);
            }
            match self.poll_input(cx, &takes) {
                Poll::Ready(Some((ts, value))) => {
                    let in_order = self.watermark.is_none_or(|w| ts >= w);
                    self.advance(ts);
                    let bounds = Bounds {
                        closed: self.closed_until,
                        emitted_end: self.emitted_end,
                        in_order,
                    };
                    let late = match place(&self.kind, &mut self.open, bounds, ts, value) {
                        Placed::Unchanged => continue,
                        Placed::Reshaped => None,
                        Placed::PartlyLate(ts, value) => Some((ts, value)),
                        Placed::Late(ts, value) => {
                            self.late_count += 1;
                            self.pending_late = Some((ts, value));
                            continue;
                        }
                    };
                    self.next_end = self.open.front_end();
                    if let Some(late) = late {
                        self.late_count += 1;
                        self.pending_late = Some(late);
                    }
                }
                Poll::Ready(None) => self.done = true,
                Poll::Pending => {
                    // Progress on a late value put earlier; its wake-up
                    // comes back here.
                    let _ = self.late.poll_flush(cx);
                    // The clock closes the first window once it reaches
                    // its end plus the lateness; never if that lies past
                    // the end of time (a window that includes `MAX`).
                    let deadline = self
                        .next_end
                        .map(|end| end + i128::from(self.lateness_nanos))
                        .filter(|deadline| *deadline <= i128::from(i64::MAX));
                    let Some(deadline) = deadline else {
                        return Poll::Pending;
                    };
                    let deadline = clamp(deadline);
                    let now = ready!(self.clock.poll_reach(deadline, cx));
                    self.advance(now.max(deadline));
                }
            }
        }
    }

    fn is_done(&self) -> bool {
        self.done && self.open.windows.is_empty() && self.pending_late.is_none()
    }
}

// Nothing but the input stream is ever pinned.
impl<S: Unpin, K, T, O, C> Unpin for Windowed<S, K, T, O, C> {}

/// The state of a tumbling, hopping or session combinator
/// ([`Windowed`]'s [`Stateful`](super::Stateful) state): its open
/// windows, watermark, what it emitted and how many events were late.
/// Serializable with serde (feature `store`) when the items are.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::{ops::{Stateful, StreamOps}, Timestamp};
///
/// let t = Timestamp::from_unix_secs;
/// let text = |w: Option<timecast::Window<char>>| w.map(|w| w.values().collect::<String>());
/// let mut windows = stream::iter([(t(1), 'a'), (t(2), 'b'), (t(12), 'c')])
///     .tumbling(Duration::from_secs(10));
/// assert_eq!(text(block_on(windows.next())).as_deref(), Some("ab")); // 'c' opened [10, 20)
/// let saved = windows.state();
/// let mut resumed = stream::iter([(t(13), 'd'), (t(5), 'e')]).tumbling(Duration::from_secs(10));
/// resumed.restore(saved);
/// assert_eq!(text(block_on(resumed.next())).as_deref(), Some("cd"));
/// assert_eq!(resumed.late_count(), 1); // 'e': its window was emitted before the save
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "store", derive(serde::Serialize, serde::Deserialize))]
pub struct WindowedState<T> {
    windows: Vec<Window<T>>,
    watermark: Option<Timestamp>,
    closed_until: i128,
    next_end: Option<i128>,
    emitted_end: i128,
    late_count: u64,
    pending_late: Option<(Timestamp, T)>,
}

impl<S, K, T: Clone, O, C> super::Stateful for Windowed<S, K, T, O, C> {
    type State = WindowedState<T>;

    fn state(&self) -> WindowedState<T> {
        WindowedState {
            windows: self.open.windows.iter().cloned().collect(),
            watermark: self.watermark,
            closed_until: self.closed_until,
            next_end: self.next_end,
            emitted_end: self.emitted_end,
            late_count: self.late_count,
            pending_late: self.pending_late.clone(),
        }
    }

    fn restore(&mut self, state: WindowedState<T>) {
        self.open.windows = state.windows.into();
        self.watermark = state.watermark;
        self.closed_until = state.closed_until;
        self.next_end = state.next_end;
        self.emitted_end = state.emitted_end;
        self.late_count = state.late_count;
        self.pending_late = state.pending_late;
    }
}

impl<S, K, T, O, C> FusedStream for Windowed<S, K, T, O, C>
where
    Self: Stream,
{
    fn is_terminated(&self) -> bool {
        self.is_done()
    }
}

impl<S: fmt::Debug, K: fmt::Debug, T, O, C> fmt::Debug for Windowed<S, K, T, O, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Windowed")
            .field("stream", &self.stream)
            .field("kind", &self.kind)
            .field("open_windows", &self.open.windows.len())
            .field("watermark", &self.watermark())
            .field("allowed_lateness", &self.lateness)
            .field("late_count", &self.late_count)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(nanos: i64) -> Timestamp {
        Timestamp::from_unix_nanos(nanos)
    }

    #[test]
    fn align_floors_towards_minus_infinity() {
        assert_eq!(align(t(0), t(0), 10), 0);
        assert_eq!(align(t(9), t(0), 10), 0);
        assert_eq!(align(t(10), t(0), 10), 10);
        assert_eq!(align(t(-1), t(0), 10), -10);
        assert_eq!(align(t(-10), t(0), 10), -10);
        assert_eq!(align(t(-11), t(0), 10), -20);
        assert_eq!(align(t(7), t(3), 10), 3);
        assert_eq!(align(t(2), t(3), 10), -7);
        assert_eq!(align(Timestamp::MIN, t(0), 10), i128::from(i64::MIN) - 2);
    }

    #[test]
    fn clamp_saturates() {
        assert_eq!(clamp(i128::from(i64::MAX) + 5), Timestamp::MAX);
        assert_eq!(clamp(i128::from(i64::MIN) - 5), Timestamp::MIN);
        assert_eq!(clamp(42), t(42));
    }

    #[test]
    fn insert_item_keeps_time_order_and_arrival_order_of_ties() {
        let mut items = Vec::new();
        for (ts, v) in [(5, 'a'), (7, 'b'), (5, 'c'), (1, 'd'), (7, 'e')] {
            insert_item(&mut items, t(ts), v, false);
        }
        let got: String = items.iter().map(|(_, v)| v).collect();
        assert_eq!(got, "dacbe");
    }

    #[test]
    fn open_window_finds_or_inserts_in_start_order() {
        let mut open = Open::<u8>::new();
        open.window(10, 20).items.push((t(10), 1));
        open.window(0, 10).items.push((t(0), 2));
        open.window(10, 20).items.push((t(11), 3));
        open.window(30, 40).items.push((t(30), 4));
        let starts: Vec<_> = open
            .windows
            .iter()
            .map(|w| (w.start.unix_nanos(), w.len()))
            .collect();
        assert_eq!(starts, [(0, 1), (10, 2), (30, 1)]);
        assert_eq!(open.pop_front().map(|w| w.len()), Some(1));
        assert_eq!(open.hint, 1);
    }

    #[test]
    #[should_panic(expected = "must not be zero")]
    fn zero_step_panics() {
        step_nanos(Duration::ZERO, "size");
    }

    #[test]
    #[should_panic(expected = "under 292 years")]
    fn huge_step_panics() {
        step_nanos(Duration::MAX, "size");
    }
}
