//! [`Hopping`] windows: fixed size, starting every `hop`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

#[cfg(test)]
use super::window::NOTHING_CLOSED;
use super::window::{align_nanos, clamp, insert_item, step_nanos, Bounds, Open, Placed};
use super::{LateOutput, Window, WindowClock, Windowed};
use crate::time::Timestamp;

/// Hopping windows: `[origin + k·hop, origin + k·hop + size)` for every
/// integer `k`. With `hop < size` they overlap and an event falls in up to
/// `⌈size / hop⌉` of them; with `hop == size` they are tumbling windows; with
/// `hop > size` they leave gaps, and an event in a gap falls in none.
///
/// Built by [`StreamOps::hopping`](super::StreamOps::hopping); the
/// assignment itself is [`windows_of`](Self::windows_of).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::{ops::Hopping, Timestamp};
///
/// let t = Timestamp::from_unix_secs;
/// let every_5s_for_10s = Hopping::new(Duration::from_secs(10), Duration::from_secs(5));
/// assert_eq!(every_5s_for_10s.windows_of(t(7)).collect::<Vec<_>>(), [(t(0), t(10)), (t(5), t(15))]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hopping {
    size: i64,
    hop: i64,
    origin: Timestamp,
}

impl Hopping {
    /// The most windows an event may fall in: `⌈size / hop⌉` must not exceed
    /// it. Each event is copied into each of its windows, and as many
    /// windows stay open: beyond this bound a hopping window is the wrong
    /// tool. For a long window moving in small steps, aggregate into
    /// [tumbling](super::StreamOps::tumbling) windows of `hop` and combine
    /// the last `size / hop` of them, or use a
    /// [sliding](super::StreamOps::sliding) window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::ops::Hopping;
    ///
    /// let hour_by_second = Hopping::new(Duration::from_secs(3_600), Duration::from_secs(1));
    /// assert!(hour_by_second.windows_per_event() <= Hopping::MAX_WINDOWS_PER_EVENT);
    /// ```
    pub const MAX_WINDOWS_PER_EVENT: u64 = 10_000;

    /// Windows of `size` starting every `hop`, aligned on the Unix epoch.
    ///
    /// # Panics
    ///
    /// If `size` or `hop` is zero or longer than [`i64::MAX`] nanoseconds,
    /// or if an event would fall in more than
    /// [`MAX_WINDOWS_PER_EVENT`](Self::MAX_WINDOWS_PER_EVENT) windows
    /// (`size / hop` above 10,000, as in `hopping(1 day, 1 s)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let w = timecast::ops::Hopping::new(Duration::from_secs(60), Duration::from_secs(10));
    /// assert_eq!(w.windows_of(timecast::Timestamp::UNIX_EPOCH).count(), 6);
    /// ```
    ///
    /// A window of a day hopping every nanosecond would put each event in
    /// 86 trillion windows:
    ///
    /// ```should_panic
    /// use std::time::Duration;
    /// timecast::ops::Hopping::new(Duration::from_secs(86_400), Duration::from_nanos(1));
    /// ```
    pub fn new(size: Duration, hop: Duration) -> Self {
        let (size, hop) = (step_nanos(size, "size"), step_nanos(hop, "hop"));
        let per_event = windows_per_event(size, hop);
        assert!(
            per_event <= Self::MAX_WINDOWS_PER_EVENT,
            "timecast::ops: a hopping window of {size} ns every {hop} ns puts each event in \
             {per_event} windows, above the bound of {}: use a longer hop, or tumbling \
             windows of the hop combined downstream, or a sliding window",
            Self::MAX_WINDOWS_PER_EVENT,
        );
        Self {
            size,
            hop,
            origin: Timestamp::UNIX_EPOCH,
        }
    }

    /// How many windows an event falls in, at most: `⌈size / hop⌉` (at
    /// most one if `hop >= size`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::ops::Hopping;
    ///
    /// assert_eq!(Hopping::new(Duration::from_secs(10), Duration::from_secs(3)).windows_per_event(), 4);
    /// assert_eq!(Hopping::new(Duration::from_secs(1), Duration::from_secs(5)).windows_per_event(), 1);
    /// ```
    pub fn windows_per_event(&self) -> u64 {
        windows_per_event(self.size, self.hop)
    }

    /// The same windows aligned on `origin`: one of them starts there.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Hopping, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let w = Hopping::new(Duration::from_secs(4), Duration::from_secs(2)).with_origin(t(1));
    /// assert_eq!(w.windows_of(t(4)).collect::<Vec<_>>(), [(t(1), t(5)), (t(3), t(7))]);
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
    /// let w = timecast::ops::Hopping::new(Duration::from_secs(60), Duration::from_secs(10));
    /// assert_eq!(w.size(), Duration::from_secs(60));
    /// ```
    pub fn size(&self) -> Duration {
        Duration::from_nanos(self.size.unsigned_abs())
    }

    /// The time between the starts of two windows.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let w = timecast::ops::Hopping::new(Duration::from_secs(60), Duration::from_secs(10));
    /// assert_eq!(w.hop(), Duration::from_secs(10));
    /// ```
    pub fn hop(&self) -> Duration {
        Duration::from_nanos(self.hop.unsigned_abs())
    }

    /// The time one window starts at.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Hopping, Timestamp};
    /// let w = Hopping::new(Duration::from_secs(2), Duration::from_secs(1));
    /// assert_eq!(w.origin(), Timestamp::UNIX_EPOCH);
    /// ```
    pub fn origin(&self) -> Timestamp {
        self.origin
    }

    /// The windows `[start, end)` holding `ts`, by start (empty if `ts` is
    /// in a gap between windows), clamped to the range of [`Timestamp`]: a
    /// window ending past [`Timestamp::MAX`] ends at `MAX` and includes it
    /// (see [`Window`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Hopping, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let samples = Hopping::new(Duration::from_secs(1), Duration::from_secs(10));
    /// assert_eq!(samples.windows_of(t(10)).collect::<Vec<_>>(), [(t(10), t(11))]);
    /// assert_eq!(samples.windows_of(t(15)).count(), 0);
    /// ```
    pub fn windows_of(
        &self,
        ts: Timestamp,
    ) -> impl DoubleEndedIterator<Item = (Timestamp, Timestamp)> + '_ {
        let (first, last) = self.starts(ts);
        let (hop, size) = (i128::from(self.hop), i128::from(self.size));
        let count = if first > last {
            0
        } else {
            (last - first) / hop + 1
        };
        (0..count).map(move |i| {
            let start = first + i * hop;
            (clamp(start), clamp(start + size))
        })
    }

    /// The starts of the first and the last window holding `ts` (first >
    /// last when there is none), unclamped.
    fn starts(&self, ts: Timestamp) -> (i128, i128) {
        let (ts, hop) = (i128::from(ts.unix_nanos()), i128::from(self.hop));
        let origin = i128::from(self.origin.unix_nanos());
        let last = align_nanos(ts, origin, hop);
        // The first window ends after ts: it starts after ts - size.
        let first = align_nanos(ts - i128::from(self.size), origin, hop) + hop;
        (first, last)
    }

    fn place<T: Clone>(
        &self,
        open: &mut Open<T>,
        bounds: Bounds,
        ts: Timestamp,
        value: T,
    ) -> Placed<T> {
        let (first, last) = self.starts(ts);
        if first > last {
            return Placed::Unchanged; // in a gap: no window to join or miss
        }
        let (hop, size) = (i128::from(self.hop), i128::from(self.size));
        // Windows end in start order, so the closed ones come first.
        let closed = bounds.closed;
        let mut open_from = first;
        if first + size <= closed {
            open_from = first + ((closed - size - first) / hop + 1) * hop;
        }
        if open_from > last {
            return Placed::Late(ts, value);
        }
        let late = (open_from > first).then(|| value.clone());
        let mut start = open_from;
        while start < last {
            let window = open.window(start, start + size);
            insert_item(&mut window.items, ts, value.clone(), bounds.in_order);
            start += hop;
        }
        let window = open.window(last, last + size);
        insert_item(&mut window.items, ts, value, bounds.in_order);
        match late {
            Some(value) => Placed::PartlyLate(ts, value),
            None => Placed::Reshaped,
        }
    }
}

/// `⌈size / hop⌉`, at least 1: how many windows an event falls in, at most.
fn windows_per_event(size: i64, hop: i64) -> u64 {
    (size.unsigned_abs().div_ceil(hop.unsigned_abs())).max(1)
}

impl<S, T, O, C> Windowed<S, Hopping, T, O, C> {
    /// Aligns the windows on `origin` instead of the Unix epoch: they
    /// become `[origin + k·hop, origin + k·hop + size)`. Call it before
    /// polling.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::{ops::StreamOps, Timestamp};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let windows: Vec<_> = block_on(
    ///     stream::iter([(t(2), ())])
    ///         .hopping(Duration::from_secs(4), Duration::from_secs(2))
    ///         .origin(t(1))
    ///         .map(|w| (w.start, w.end))
    ///         .collect(),
    /// );
    /// assert_eq!(windows, [(t(-1), t(3)), (t(1), t(5))]);
    /// ```
    pub fn origin(mut self, origin: Timestamp) -> Self {
        let kind = self.kind_mut();
        *kind = kind.with_origin(origin);
        self
    }
}

impl<S, T, O, C> Stream for Windowed<S, Hopping, T, O, C>
where
    S: Stream<Item = (Timestamp, T)> + Unpin,
    T: Clone,
    O: LateOutput<T>,
    C: WindowClock,
{
    type Item = Window<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Window<T>>> {
        self.get_mut().poll_windows(
            cx,
            |kind, open, bounds, ts, value| kind.place(open, bounds, ts, value),
            // An event may fall in several windows: no fast path.
            |_, _| i128::MIN,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    fn starts(kind: &Hopping, ts: i64) -> Vec<i64> {
        kind.windows_of(t(ts)).map(|(s, _)| s.unix_secs()).collect()
    }

    #[test]
    fn overlapping_windows_when_hop_is_below_size() {
        let kind = Hopping::new(Duration::from_secs(10), Duration::from_secs(3));
        assert_eq!(starts(&kind, 0), [-9, -6, -3, 0]);
        assert_eq!(starts(&kind, 10), [3, 6, 9]);
        assert_eq!(starts(&kind, -1), [-9, -6, -3]);
        for ts in -30..30 {
            for (s, e) in kind.windows_of(t(ts)) {
                assert!(s <= t(ts) && t(ts) < e, "{ts} in [{s}, {e})");
            }
        }
    }

    #[test]
    fn gaps_when_hop_is_above_size() {
        let kind = Hopping::new(Duration::from_secs(2), Duration::from_secs(5));
        assert_eq!(starts(&kind, 0), [0]);
        assert_eq!(starts(&kind, 1), [0]);
        assert_eq!(starts(&kind, 2), Vec::<i64>::new());
        assert_eq!(starts(&kind, 4), Vec::<i64>::new());
        assert_eq!(starts(&kind, 5), [5]);
        assert_eq!(starts(&kind, -4), [-5]);
        assert_eq!(starts(&kind, -1), Vec::<i64>::new());
    }

    #[test]
    fn equal_hop_and_size_are_tumbling() {
        let kind = Hopping::new(Duration::from_secs(4), Duration::from_secs(4));
        for ts in -20..20 {
            let tumbling = super::super::Tumbling::new(Duration::from_secs(4)).window_of(t(ts));
            assert_eq!(kind.windows_of(t(ts)).collect::<Vec<_>>(), [tumbling]);
        }
    }

    #[test]
    fn places_into_open_windows_and_reports_partly_late_events() {
        let kind = Hopping::new(Duration::from_secs(10), Duration::from_secs(5));
        let mut open = Open::new();
        // Windows ending at or before 10 are closed: [0, 10) is, [5, 15) not.
        let bounds = Bounds {
            closed: i128::from(t(10).unix_nanos()),
            emitted_end: NOTHING_CLOSED,
            in_order: false,
        };
        let late = |placed| match placed {
            Placed::PartlyLate(ts, v) => format!("partly {} {v}", ts.unix_secs()),
            Placed::Late(ts, v) => format!("late {} {v}", ts.unix_secs()),
            Placed::Reshaped | Placed::Unchanged => String::new(),
        };
        assert_eq!(late(kind.place(&mut open, bounds, t(7), 7)), "partly 7 7");
        assert_eq!(late(kind.place(&mut open, bounds, t(12), 12)), "");
        assert_eq!(late(kind.place(&mut open, bounds, t(3), 3)), "late 3 3");
        let windows: Vec<_> = open
            .windows
            .iter()
            .map(|w| (w.start.unix_secs(), w.values().copied().collect::<Vec<_>>()))
            .collect();
        assert_eq!(windows, [(5, vec![7, 12]), (10, vec![12])]);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let kind = Hopping::new(Duration::from_secs(10), Duration::from_secs(3));
        assert!(kind.windows_of(Timestamp::MIN).count() >= 1);
        assert!(kind.windows_of(Timestamp::MAX).count() >= 1);
    }
}
