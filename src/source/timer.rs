//! [`timer`]: a stream of periodic ticks on the loop's clock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};

use crate::time::{Sleep, Timestamp};

/// A stream of ticks every `period` of the loop's time, at `start + k·period`
/// for k = 1, 2, …, never drifting. `start` defaults to the clock when the
/// timer is first polled; [`until`](Timer::until) ends it. Timers (and
/// sleeps) due at one instant fire in the order their waits were made: of
/// two timers ticking together, the one polled first for that tick.
///
/// Map it to `(tick, value)` pairs to use it as the live source of a
/// [`process_stream`](crate::process_stream).
///
/// # Panics
///
/// If `period` is zero. Polling it outside an [`EventLoop`](crate::EventLoop)
/// panics too.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use timecast::{timer, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let ticks: Vec<_> = el.block_on(
///     timer(Duration::from_secs(1))
///         .until(Timestamp::from_unix_secs(3))
///         .collect(),
/// );
/// assert_eq!(ticks, [1, 2, 3].map(Timestamp::from_unix_secs));
/// ```
pub fn timer(period: Duration) -> Timer {
    assert!(!period.is_zero(), "timecast::timer needs a non-zero period");
    Timer {
        period,
        start: None,
        until: None,
        ticks: 0,
        sleep: None,
        done: false,
    }
}

/// The stream returned by [`timer`]: ticks at `start + k·period`.
///
/// # Cancel safety
///
/// Dropping a pending `next()` loses no tick: the wait for the next tick
/// stays in the `Timer`, and the next poll goes on with it. Dropping the
/// `Timer` stops it.
///
/// # Examples
///
/// As the live source of a [`process_stream`](crate::process_stream): a
/// tick every minute for five minutes.
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use futures::StreamExt;
/// use timecast::{process_stream, timer, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let ticks = timer(Duration::from_secs(60))
///     .until(Timestamp::from_unix_secs(300))
///     .map(|tick| (tick, ()));
/// let count = Rc::new(Cell::new(0));
/// let c = count.clone();
/// el.block_on(process_stream(move |_ts: Timestamp, ()| c.set(c.get() + 1)).live(ticks));
/// assert_eq!(count.get(), 5);
/// assert_eq!(el.now(), Timestamp::from_unix_secs(300));
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Timer {
    period: Duration,
    start: Option<Timestamp>,
    until: Option<Timestamp>,
    /// Ticks yielded so far: the next is at `start + (ticks + 1)·period`.
    ticks: u64,
    sleep: Option<Sleep>,
    done: bool,
}

impl Timer {
    /// Ticks at `start + k·period` instead of from the clock at first poll.
    /// A start in the past replays the missed ticks first, in order (all of
    /// them: a start far in the past with a short period is that many
    /// ticks). Ticks after [`Timestamp::MAX`] end the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use timecast::{timer, EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::from_unix_secs(100)).simulated();
    /// let ticks: Vec<_> = el.block_on(
    ///     timer(Duration::from_secs(10))
    ///         .starting_at(Timestamp::from_unix_secs(75))
    ///         .take(3)
    ///         .collect(),
    /// );
    /// assert_eq!(ticks, [85, 95, 105].map(Timestamp::from_unix_secs));
    /// ```
    pub fn starting_at(mut self, start: Timestamp) -> Self {
        self.start = Some(start);
        self
    }

    /// Ends the stream after the last tick at or before `until`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use timecast::{timer, EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let ticks: Vec<_> = el.block_on(
    ///     timer(Duration::from_secs(2))
    ///         .until(Timestamp::from_unix_secs(5))
    ///         .collect(),
    /// );
    /// assert_eq!(ticks, [2, 4].map(Timestamp::from_unix_secs));
    /// ```
    pub fn until(mut self, until: Timestamp) -> Self {
        self.until = Some(until);
        self
    }
}

impl Stream for Timer {
    type Item = Timestamp;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Timestamp>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.sleep.is_none() {
            let start = *self.start.get_or_insert_with(crate::now);
            // Computed from the start, not the previous tick: no drift.
            let tick = self
                .period
                .as_nanos()
                .checked_mul(u128::from(self.ticks + 1))
                .and_then(|offset| u64::try_from(offset).ok())
                .and_then(|offset| start.checked_add(Duration::from_nanos(offset)));
            match tick {
                Some(tick) if self.until.is_none_or(|until| tick <= until) => {
                    self.sleep = Some(crate::sleep_until(tick));
                }
                _ => {
                    self.done = true;
                    return Poll::Ready(None);
                }
            }
        }
        let sleep = self.sleep.as_mut().expect("just set");
        std::task::ready!(Pin::new(sleep).poll(cx));
        let tick = self.sleep.take().expect("polled").deadline();
        self.ticks += 1;
        Poll::Ready(Some(tick))
    }
}

impl FusedStream for Timer {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("period", &self.period)
            .field("start", &self.start)
            .field("until", &self.until)
            .field("ticks", &self.ticks)
            .finish()
    }
}
