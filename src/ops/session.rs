//! [`Session`] windows: runs of events closer than a gap.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

#[cfg(test)]
use super::window::NOTHING_CLOSED;
use super::window::{clamp, insert_item, step_nanos, Bounds, Open, Placed};
use super::{LateOutput, Window, WindowClock, Windowed};
use crate::time::Timestamp;

/// Session windows: an event at `t` opens `[t, t + gap)`, and overlapping
/// windows merge. A session thus covers `[first event, last event + gap)`;
/// an event exactly `gap` after the previous one starts a new session.
///
/// An event is late if its own window `[t, t + gap)` is closed, or if it
/// falls in a session already emitted (`t` before that session's end): it
/// would have changed a window the stream has already handed out.
///
/// Built by [`StreamOps::session`](super::StreamOps::session).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::{ops::Session, Timestamp};
///
/// let t = Timestamp::from_unix_secs;
/// let s = Session::new(Duration::from_secs(30));
/// assert_eq!(s.window_of(t(100)), (t(100), t(130)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Session {
    gap: i64,
}

impl Session {
    /// Sessions that end after `gap` without events.
    ///
    /// # Panics
    ///
    /// If `gap` is zero or longer than [`i64::MAX`] nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = timecast::ops::Session::new(Duration::from_secs(1800));
    /// assert_eq!(s.gap(), Duration::from_secs(1800));
    /// ```
    pub fn new(gap: Duration) -> Self {
        Self {
            gap: step_nanos(gap, "gap"),
        }
    }

    /// The gap that ends a session.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(timecast::ops::Session::new(Duration::from_secs(5)).gap(), Duration::from_secs(5));
    /// ```
    pub fn gap(&self) -> Duration {
        Duration::from_nanos(self.gap.unsigned_abs())
    }

    /// The window `[ts, ts + gap)` an event at `ts` opens, before merging,
    /// clamped to the range of [`Timestamp`]: near [`Timestamp::MAX`] it
    /// ends at `MAX` and includes it (see [`Window`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{ops::Session, Timestamp};
    /// let t = Timestamp::from_unix_secs;
    /// assert_eq!(Session::new(Duration::from_secs(5)).window_of(t(1)), (t(1), t(6)));
    /// ```
    pub fn window_of(&self, ts: Timestamp) -> (Timestamp, Timestamp) {
        (
            ts,
            clamp(i128::from(ts.unix_nanos()) + i128::from(self.gap)),
        )
    }

    fn place<T>(&self, open: &mut Open<T>, bounds: Bounds, ts: Timestamp, value: T) -> Placed<T> {
        // All in unclamped nanoseconds; ends are first times after the
        // window (see `Window::end_excl`).
        let start = i128::from(ts.unix_nanos());
        let end = start + i128::from(self.gap);
        if end <= bounds.closed || start < bounds.emitted_end {
            return Placed::Late(ts, value);
        }
        // Fast paths for events in order: extend the last session, or
        // open one after it.
        if let Some(last) = open.windows.back_mut() {
            if last.contains(ts) {
                last.set_end_excl(last.end_excl().max(end));
                insert_item(&mut last.items, ts, value, bounds.in_order);
                return Placed::Reshaped;
            }
        }
        if open
            .windows
            .back()
            .is_none_or(|last| last.end_excl() <= start)
        {
            let mut window = open.fresh(start, end);
            window.items.push((ts, value));
            open.windows.push_back(window);
            return Placed::Reshaped;
        }
        // Sessions are disjoint and sorted: those [start, end) overlaps
        // form a run first..last.
        let first = open.windows.partition_point(|w| w.end_excl() <= start);
        let last = open
            .windows
            .partition_point(|w| i128::from(w.start.unix_nanos()) < end);
        if first == last {
            let mut window = open.fresh(start, end);
            window.items.push((ts, value));
            open.windows.insert(first, window);
            return Placed::Reshaped;
        }
        let mut merged = open.windows.remove(first).expect("an overlapping session");
        for _ in first + 1..last {
            let next = open.windows.remove(first).expect("an overlapping session");
            // Disjoint sessions in start order: their items follow on.
            merged.set_end_excl(next.end_excl());
            merged.items.extend(next.items);
        }
        merged.start = merged.start.min(ts);
        merged.set_end_excl(merged.end_excl().max(end));
        insert_item(&mut merged.items, ts, value, bounds.in_order);
        open.windows.insert(first, merged);
        Placed::Reshaped
    }
}

impl<S, T, O, C> Stream for Windowed<S, Session, T, O, C>
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
            // Each event moves the session's end: no fast path.
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

    fn sessions(open: &Open<i64>) -> Vec<(i64, i64, Vec<i64>)> {
        open.windows
            .iter()
            .map(|w| {
                (
                    w.start.unix_secs(),
                    w.end.unix_secs(),
                    w.values().copied().collect(),
                )
            })
            .collect()
    }

    const OPEN: Bounds = Bounds {
        closed: NOTHING_CLOSED,
        emitted_end: NOTHING_CLOSED,
        in_order: false,
    };

    fn is_late<T>(placed: Placed<T>) -> Option<i64> {
        match placed {
            Placed::Late(ts, _) | Placed::PartlyLate(ts, _) => Some(ts.unix_secs()),
            Placed::Reshaped | Placed::Unchanged => None,
        }
    }

    #[test]
    fn a_gap_exactly_at_the_boundary_starts_a_new_session() {
        let kind = Session::new(Duration::from_secs(5));
        let mut open = Open::new();
        for s in [0, 4, 9, 13, 14] {
            assert_eq!(is_late(kind.place(&mut open, OPEN, t(s), s)), None);
        }
        assert_eq!(
            sessions(&open),
            [(0, 9, vec![0, 4]), (9, 19, vec![9, 13, 14])]
        );
    }

    #[test]
    fn an_out_of_order_event_can_bridge_sessions() {
        let kind = Session::new(Duration::from_secs(5));
        let mut open = Open::new();
        for s in [0, 8, 16, 30, 4, 12, 40] {
            assert_eq!(is_late(kind.place(&mut open, OPEN, t(s), s)), None);
        }
        // 4 bridges [0, 5) and [8, 13); 12 then bridges that and [16, 21).
        assert_eq!(
            sessions(&open),
            [
                (0, 21, vec![0, 4, 8, 12, 16]),
                (30, 35, vec![30]),
                (40, 45, vec![40])
            ]
        );
    }

    #[test]
    fn an_out_of_order_event_extends_a_session_backwards_or_stands_alone() {
        let kind = Session::new(Duration::from_secs(5));
        let mut open = Open::new();
        for s in [10, 30, 7, 20] {
            assert_eq!(is_late(kind.place(&mut open, OPEN, t(s), s)), None);
        }
        assert_eq!(
            sessions(&open),
            [(7, 15, vec![7, 10]), (20, 25, vec![20]), (30, 35, vec![30])]
        );
    }

    #[test]
    fn events_of_closed_or_emitted_sessions_are_late() {
        let kind = Session::new(Duration::from_secs(5));
        let mut open = Open::new();
        let bounds = Bounds {
            closed: i128::from(t(20).unix_nanos()),
            emitted_end: i128::from(t(18).unix_nanos()),
            in_order: false,
        };
        assert_eq!(is_late(kind.place(&mut open, bounds, t(15), 15)), Some(15));
        assert_eq!(is_late(kind.place(&mut open, bounds, t(17), 17)), Some(17));
        assert_eq!(is_late(kind.place(&mut open, bounds, t(18), 18)), None);
        assert_eq!(sessions(&open), [(18, 23, vec![18])]);
    }
}
