//! [`poll`]: a source that fetches a value every interval, forever
//! (aiopype's `RestSource`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use crate::time::{now, sleep, sleep_until, Sleep, Timestamp};

/// A source that calls `fetch` every `every` of the loop's time and yields
/// each value it fetched, stamped with the time the request completed:
/// aiopype's `RestSource`. A stream of `(Timestamp, T)`: the live source of
/// a [`process_stream`](crate::process_stream), or a plain stream.
///
/// - **Schedule.** The first request starts when the stream is first
///   polled, at `t0`; the next at `t0 + k·every` (k = 1, 2, …), never
///   drifting. One request runs at a time: a request still running at a
///   tick makes the next request wait for the first tick after it ends
///   (the missed ticks are skipped, not made up in a burst).
/// - **Timeout.** A request that has not completed after
///   [`timeout`](PollSource::timeout) (by default `every`) is dropped and
///   skipped: no value, and it counts neither as a failure nor as a
///   success (aiopype's `TimeoutError` branch).
/// - **Failures.** A request that returns `Err` counts as a consecutive
///   failure; a success resets the count. Once the count passes
///   [`error_threshold`](PollSource::error_threshold) (`count > n`), each
///   further failure is reported to [`on_error`](PollSource::on_error)
///   (and to `tracing` under the `tracing` feature). The source never
///   stops because of a failed request.
///
/// It never ends but at the end of time (its last tick is the last one not
/// after [`Timestamp::MAX`]):
/// drop it, or wrap it in
/// [`PipelineContext::live`](crate::flow::PipelineContext::live) to end it
/// at a flow's shutdown.
///
/// # Panics
///
/// If `every` is zero. Polling it outside an
/// [`EventLoop`](crate::EventLoop) panics too.
///
/// # Examples
///
/// A quote endpoint that fails twice in a row, with a threshold of 1: the
/// second failure is reported.
///
/// ```
/// use std::{cell::{Cell, RefCell}, rc::Rc, time::Duration};
/// use futures::StreamExt;
/// use timecast::source::poll;
/// use timecast::{EventLoop, Timestamp};
///
/// let calls = Rc::new(Cell::new(0));
/// let reported = Rc::new(RefCell::new(Vec::new()));
/// let (c, r) = (calls.clone(), reported.clone());
/// let quotes = poll(Duration::from_secs(30), move || {
///     c.set(c.get() + 1);
///     let n = c.get();
///     async move { if n == 2 || n == 3 { Err("503 Service Unavailable") } else { Ok(100 + n) } }
/// })
/// .error_threshold(1)
/// .on_error(move |e| r.borrow_mut().push((e.consecutive, e.at)));
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let got: Vec<_> = el.block_on(quotes.take(2).collect());
/// let secs = Timestamp::from_unix_secs;
/// assert_eq!(got, [(secs(0), 101), (secs(90), 104)]);
/// assert_eq!(*reported.borrow(), [(2, secs(60))]);
/// ```
pub fn poll<F, Fut, T, E>(every: Duration, fetch: F) -> PollSource<F, Fut, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    assert!(
        !every.is_zero(),
        "timecast::source::poll needs a non-zero interval"
    );
    PollSource {
        every,
        timeout: None,
        threshold: 0,
        fetch,
        on_error: None,
        start: None,
        tick: 0,
        state: State::Idle,
        consecutive: 0,
    }
}

/// A failure of a [`poll`] source that passed its error threshold.
///
/// # Examples
///
/// ```
/// use timecast::source::PollError;
/// use timecast::Timestamp;
///
/// let e = PollError { error: "connection refused", consecutive: 4, at: Timestamp::UNIX_EPOCH };
/// assert_eq!(
///     e.to_string(),
///     "4 requests in a row failed, the latest at 1970-01-01T00:00:00Z: connection refused"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollError<E> {
    /// The latest request's error.
    pub error: E,
    /// How many requests in a row failed, this one included.
    pub consecutive: u32,
    /// When this request failed, on the loop's clock.
    pub at: Timestamp,
}

impl<E: fmt::Display> fmt::Display for PollError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests in a row failed, the latest at {}: {}",
            self.consecutive, self.at, self.error
        )
    }
}

impl<E: fmt::Display + fmt::Debug> std::error::Error for PollError<E> {}

enum State<Fut> {
    /// Not started, or between a request and the next tick's wait.
    Idle,
    /// Waiting for the next tick.
    Waiting(Sleep),
    /// A request in flight, and its deadline.
    Fetching(Pin<Box<Fut>>, Sleep),
    /// The next tick would be past [`Timestamp::MAX`].
    Done,
}

type OnError<E> = Box<dyn FnMut(PollError<E>)>;

/// The stream returned by [`poll`].
///
/// # Cancel safety
///
/// Dropping a pending `next()` loses nothing: the wait or the request in
/// flight stays in the source and the next poll goes on with it. Dropping
/// the source drops the request in flight.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use timecast::source::{poll, PollSource};
/// use timecast::{EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let source: PollSource<_, _, String> = poll(Duration::from_secs(1), || async { Ok(7) });
/// let values: Vec<_> = el.block_on(source.map(|(_ts, v)| v).take(3).collect());
/// assert_eq!(values, [7, 7, 7]);
/// assert_eq!(el.now(), Timestamp::from_unix_secs(2));
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct PollSource<F, Fut, E> {
    every: Duration,
    timeout: Option<Duration>,
    threshold: u32,
    fetch: F,
    on_error: Option<OnError<E>>,
    /// The time of the first request.
    start: Option<Timestamp>,
    /// The index of the current (or next) tick: at `start + tick·every`.
    tick: u64,
    state: State<Fut>,
    consecutive: u32,
}

// Nothing is pinned in place: the request is boxed, the rest is moved freely.
impl<F, Fut, E> Unpin for PollSource<F, Fut, E> {}

impl<F, Fut, E> fmt::Debug for PollSource<F, Fut, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollSource")
            .field("every", &self.every)
            .field("timeout", &self.timeout)
            .field("error_threshold", &self.threshold)
            .field("consecutive_failures", &self.consecutive)
            .finish_non_exhaustive()
    }
}

impl<F, Fut, E> PollSource<F, Fut, E> {
    /// Reports failures only once more than `n` requests in a row failed
    /// (aiopype's `exception_threshold`). The default, 0, reports every
    /// failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let source = timecast::source::poll(Duration::from_secs(30), || async { Ok::<_, String>(()) })
    ///     .error_threshold(10);
    /// # drop(source);
    /// ```
    pub fn error_threshold(mut self, n: u32) -> Self {
        self.threshold = n;
        self
    }

    /// Drops a request that has not completed after `timeout` of the
    /// loop's time, and skips it (default: the interval).
    ///
    /// # Panics
    ///
    /// If `timeout` is zero.
    ///
    /// # Examples
    ///
    /// A request that hangs is skipped; the next one is on schedule.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// use futures::StreamExt;
    /// use timecast::source::poll;
    /// use timecast::{sleep, EventLoop, Timestamp};
    ///
    /// let calls = Rc::new(Cell::new(0));
    /// let c = calls.clone();
    /// let source = poll(Duration::from_secs(10), move || {
    ///     c.set(c.get() + 1);
    ///     let hang = c.get() == 1;
    ///     async move {
    ///         if hang { sleep(Duration::from_secs(3600)).await }
    ///         Ok::<_, String>("quote")
    ///     }
    /// })
    /// .timeout(Duration::from_secs(8));
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let first = el.block_on(async move { source.map(|(ts, _)| ts).next().await });
    /// assert_eq!(first, Some(Timestamp::from_unix_secs(10)));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "PollSource::timeout needs a non-zero timeout"
        );
        self.timeout = Some(timeout);
        self
    }

    /// Calls `f` with each failure past the threshold: typically
    /// [`PipelineContext::report`](crate::flow::PipelineContext::report),
    /// so that it reaches a flow's errors stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Flow;
    /// use timecast::process_stream;
    /// use timecast::source::poll;
    ///
    /// let flow = Flow::new().pipeline_with_context("quotes", |ctx| {
    ///     let reporter = ctx.clone();
    ///     let quotes = poll(Duration::from_secs(30), || async { Err::<f64, _>("timed out upstream") })
    ///         .on_error(move |e| reporter.report(e));
    ///     async move {
    ///         process_stream(|_ts: timecast::Timestamp, _price: f64| {}).live(ctx.live(quotes)).await;
    ///         Ok::<_, String>(())
    ///     }
    /// });
    /// # drop(flow);
    /// ```
    pub fn on_error(mut self, f: impl FnMut(PollError<E>) + 'static) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }

    /// How many requests in a row have failed so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let source = timecast::source::poll(Duration::from_secs(1), || async { Ok::<_, String>(()) });
    /// assert_eq!(source.consecutive_failures(), 0);
    /// ```
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Moves to the first tick after the current one that is not before
    /// the clock, or ends the source if that tick is past the end of time.
    fn schedule_next(&mut self, start: Timestamp) {
        let elapsed = now().checked_duration_since(start).unwrap_or_default();
        let every = self.every.as_nanos();
        let due = u64::try_from(elapsed.as_nanos().div_ceil(every)).unwrap_or(u64::MAX);
        let next = self.tick.checked_add(1).and_then(|tick| {
            let tick = tick.max(due);
            let offset = u64::try_from(every.checked_mul(u128::from(tick))?).ok()?;
            Some((tick, start.checked_add(Duration::from_nanos(offset))?))
        });
        self.state = match next {
            Some((tick, at)) => {
                self.tick = tick;
                State::Waiting(sleep_until(at))
            }
            None => State::Done,
        };
    }
}

impl<F, Fut, T, E> Stream for PollSource<F, Fut, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display,
{
    type Item = (Timestamp, T);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<(Timestamp, T)>> {
        let this = self.get_mut();
        loop {
            let start = *this.start.get_or_insert_with(now);
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Idle => this.state = State::Waiting(sleep_until(start)),
                State::Waiting(tick) => {
                    if Pin::new(tick).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let request = Box::pin((this.fetch)());
                    let deadline = sleep(this.timeout.unwrap_or(this.every));
                    this.state = State::Fetching(request, deadline);
                }
                State::Fetching(request, deadline) => {
                    match request.as_mut().poll(cx) {
                        Poll::Ready(Ok(value)) => {
                            this.consecutive = 0;
                            this.schedule_next(start);
                            return Poll::Ready(Some((now(), value)));
                        }
                        Poll::Ready(Err(error)) => {
                            this.consecutive = this.consecutive.saturating_add(1);
                            // Dropped before the report, so that the
                            // report runs with no request in flight.
                            this.schedule_next(start);
                            if this.consecutive > this.threshold {
                                let error = PollError {
                                    error,
                                    consecutive: this.consecutive,
                                    at: now(),
                                };
                                #[cfg(feature = "tracing")]
                                tracing::warn!(
                                    consecutive = error.consecutive,
                                    at = %error.at,
                                    "poll source request failed: {}",
                                    error.error
                                );
                                if let Some(report) = &mut this.on_error {
                                    report(error);
                                }
                            }
                        }
                        Poll::Pending => {
                            if Pin::new(deadline).poll(cx).is_pending() {
                                return Poll::Pending;
                            }
                            // Timed out: skipped.
                            this.schedule_next(start);
                        }
                    }
                }
            }
        }
    }
}
