//! [`Tumbling`] windows: fixed size, no overlap.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

#[cfg(test)]
use super::window::NOTHING_CLOSED;
use super::window::{align, clamp, insert_item, step_nanos, Bounds, Open, Placed};
use super::{LateOutput, Window, WindowClock, Windowed};
use crate::time::Timestamp;

/// Tumbling windows: `[origin + k·size, origin + (k+1)·size)` for every
/// integer `k`. Each event falls in exactly one window. The origin is the
/// Unix epoch unless set.
///
/// Built by [`StreamOps::tumbling`](super::StreamOps::tumbling); the
/// assignment itself is [`window_of`](Self::window_of).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::{ops::Tumbling, Timestamp};
///
/// let minutes = Tumbling::new(Duration::from_secs(60));
/// let t = Timestamp::from_unix_secs;
/// assert_eq!(minutes.window_of(t(61)), (t(60), t(120)));
/// assert_eq!(minutes.window_of(t(-1)), (t(-60), t(0)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tumbling {
    size: i64,
    origin: Timestamp,
}

impl Tumbling {
    /// Windows of `size`, aligned on the Unix epoch.
    ///
    /// # Panics
    ///
    /// If `size` is zero or longer than [`i64::MAX`] nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Tumbling, Timestamp};
    ///
    /// let hours = Tumbling::new(Duration::from_secs(3600));
    /// let (start, end) = hours.window_of(Timestamp::from_unix_secs(5_000));
    /// assert_eq!((start.unix_secs(), end.unix_secs()), (3_600, 7_200));
    /// ```
    pub fn new(size: Duration) -> Self {
        Self {
            size: step_nanos(size, "size"),
            origin: Timestamp::UNIX_EPOCH,
        }
    }

    /// The same windows aligned on `origin`: one of them starts there.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Tumbling, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let w = Tumbling::new(Duration::from_secs(10)).with_origin(t(3));
    /// assert_eq!(w.window_of(t(12)), (t(3), t(13)));
    /// ```
    pub fn with_origin(mut self, origin: Timestamp) -> Self {
        self.origin = origin;
        self
    }

    /// The size of the windows.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(timecast::ops::Tumbling::new(Duration::from_secs(1)).size(), Duration::from_secs(1));
    /// ```
    pub fn size(&self) -> Duration {
        Duration::from_nanos(self.size.unsigned_abs())
    }

    /// The time one window starts at.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Tumbling, Timestamp};
    /// assert_eq!(Tumbling::new(Duration::from_secs(1)).origin(), Timestamp::UNIX_EPOCH);
    /// ```
    pub fn origin(&self) -> Timestamp {
        self.origin
    }

    /// The window `[start, end)` holding `ts`, clamped to the range of
    /// [`Timestamp`]: the window holding [`Timestamp::MAX`] may end past
    /// it, and then ends at `MAX` and includes it (see [`Window`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Tumbling, Timestamp};
    ///
    /// let t = Timestamp::from_unix_millis;
    /// let seconds = Tumbling::new(Duration::from_secs(1));
    /// assert_eq!(seconds.window_of(t(1_000)), (t(1_000), t(2_000)));
    /// assert_eq!(seconds.window_of(t(999)), (t(0), t(1_000)));
    /// ```
    pub fn window_of(&self, ts: Timestamp) -> (Timestamp, Timestamp) {
        let (start, end) = self.slot(ts);
        (clamp(start), clamp(end))
    }

    /// The window holding `ts`, unclamped: `[start, end)`.
    fn slot(&self, ts: Timestamp) -> (i128, i128) {
        let start = align(ts, self.origin, self.size);
        (start, start + i128::from(self.size))
    }

    fn place<T>(&self, open: &mut Open<T>, bounds: Bounds, ts: Timestamp, value: T) -> Placed<T> {
        // Fast path: the event is in the newest window (the only open one
        // when events come in order). Open windows are never closed.
        if let Some(window) = open.windows.back_mut() {
            if window.contains(ts) {
                insert_item(&mut window.items, ts, value, bounds.in_order);
                return Placed::Unchanged;
            }
        }
        let (start, end) = self.slot(ts);
        if end <= bounds.closed {
            return Placed::Late(ts, value);
        }
        insert_item(
            &mut open.window(start, end).items,
            ts,
            value,
            bounds.in_order,
        );
        Placed::Reshaped
    }
}

impl<S, T, O, C> Windowed<S, Tumbling, T, O, C> {
    /// Aligns the windows on `origin` instead of the Unix epoch: they
    /// become `[origin + k·size, origin + (k+1)·size)`. Call it before
    /// polling.
    ///
    /// # Examples
    ///
    /// Days starting at 06:00 UTC:
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let at = |h: i64| Timestamp::from_unix_secs(1_735_776_000 + 3600 * h); // 2025-01-02
    /// let events = stream::iter([(at(5), 'a'), (at(6), 'b'), (at(23), 'c')]);
    /// let days: Vec<_> = block_on(
    ///     events
    ///         .tumbling(Duration::from_secs(86_400))
    ///         .origin(at(6))
    ///         .map(|w| (w.start.to_string(), w.len()))
    ///         .collect(),
    /// );
    /// assert_eq!(days, [("2025-01-01T06:00:00Z".to_string(), 1), ("2025-01-02T06:00:00Z".to_string(), 2)]);
    /// ```
    pub fn origin(mut self, origin: Timestamp) -> Self {
        let kind = self.kind_mut();
        *kind = kind.with_origin(origin);
        self
    }
}

impl<S, T, O, C> Stream for Windowed<S, Tumbling, T, O, C>
where
    S: Stream<Item = (Timestamp, T)> + Unpin,
    O: LateOutput<T>,
    C: WindowClock,
{
    type Item = Window<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Window<T>>> {
        self.get_mut().poll_windows(
            cx,
            |kind, open, bounds, ts, value| kind.place(open, bounds, ts, value),
            // Every later event before its end, as the newest window starts
            // at or before the watermark.
            |_, newest| newest.end_excl(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    /// The open windows as `(start, end, values)`, and the late events.
    type Assigned = (Vec<(i64, i64, Vec<i64>)>, Vec<i64>);

    fn place_all(kind: Tumbling, closed: i64, events: &[i64]) -> Assigned {
        let mut open = Open::new();
        let mut late = Vec::new();
        let bounds = Bounds {
            closed: i128::from(t(closed).unix_nanos()),
            emitted_end: NOTHING_CLOSED,
            in_order: false,
        };
        for &s in events {
            if let Placed::Late(ts, _) = kind.place(&mut open, bounds, t(s), s) {
                late.push(ts.unix_secs());
            }
        }
        let windows = open
            .windows
            .iter()
            .map(|w| {
                (
                    w.start.unix_secs(),
                    w.end.unix_secs(),
                    w.values().copied().collect(),
                )
            })
            .collect();
        (windows, late)
    }

    #[test]
    fn assigns_each_event_to_one_epoch_aligned_window() {
        let kind = Tumbling::new(Duration::from_secs(10));
        let (windows, late) = place_all(kind, -100, &[0, 9, 10, 35, -1, -10, -11]);
        assert_eq!(
            windows,
            [
                (-20, -10, vec![-11]),
                (-10, 0, vec![-10, -1]),
                (0, 10, vec![0, 9]),
                (10, 20, vec![10]),
                (30, 40, vec![35]),
            ]
        );
        assert!(late.is_empty());
    }

    #[test]
    fn events_of_closed_windows_are_late() {
        let kind = Tumbling::new(Duration::from_secs(10));
        // Windows ending at or before 20 are closed.
        let (windows, late) = place_all(kind, 20, &[25, 19, 20, 10, 9]);
        assert_eq!(windows, [(20, 30, vec![20, 25])]);
        assert_eq!(late, [19, 10, 9]);
    }

    #[test]
    fn origin_shifts_the_grid() {
        let kind = Tumbling::new(Duration::from_secs(10)).with_origin(t(3));
        assert_eq!(kind.window_of(t(3)), (t(3), t(13)));
        assert_eq!(kind.window_of(t(2)), (t(-7), t(3)));
        assert_eq!(kind.window_of(t(-8)), (t(-17), t(-7)));
    }

    #[test]
    fn windows_clamp_at_the_ends_of_time() {
        let kind = Tumbling::new(Duration::from_secs(10));
        let (start, end) = kind.window_of(Timestamp::MAX);
        assert!(start <= Timestamp::MAX && end == Timestamp::MAX);
        let (start, _) = kind.window_of(Timestamp::MIN);
        assert_eq!(start, Timestamp::MIN);
    }
}
