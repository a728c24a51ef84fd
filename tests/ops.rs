//! The ops and sink layers: every combinator with its edge cases, the
//! Slipstream cookbook's outputs exactly (the examples' own code), the
//! as-of join waiting for a slow side, windows closed by the loop's clock,
//! and pipelines with several sinks and a shared source.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::executor::block_on;
use futures::task::{waker, ArcWake};
use futures::{stream, Stream, StreamExt};
use timecast::ops::{LateSink, LoopClock, StreamOps, Window};
use timecast::sink::{fan_out, from_fn, handle, Discard};
use timecast::{now, sleep, sleep_until, AsyncStream, Closed, EventLoop, Timestamp};

// The examples, compiled here so that their exact output is tested. Their
// `main` is not called.
#[allow(dead_code)]
#[path = "../examples/slipstream_iterable.rs"]
mod iterable;
#[allow(dead_code)]
#[path = "../examples/slipstream_join.rs"]
mod join;
#[allow(dead_code)]
#[path = "../examples/slipstream_pipe.rs"]
mod pipe;
#[allow(dead_code)]
#[path = "../examples/slipstream_sink.rs"]
mod sink_example;
#[allow(dead_code)]
#[path = "../examples/slipstream_timer.rs"]
mod timer_example;
#[allow(dead_code)]
#[path = "../examples/slipstream_windows.rs"]
mod windows;

/// A time `ms` milliseconds after the epoch.
fn t(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

/// A stream of `(t(ms), value)` events.
fn events<T>(
    events: impl IntoIterator<Item = (i64, T)>,
) -> impl Stream<Item = (Timestamp, T)> + Unpin {
    stream::iter(
        events
            .into_iter()
            .map(|(ms, v)| (t(ms), v))
            .collect::<Vec<_>>(),
    )
}

/// Windows as `(start ms, end ms, values)`.
fn summary<T: Clone>(windows: &[Window<T>]) -> Vec<(i64, i64, Vec<T>)> {
    windows
        .iter()
        .map(|w| {
            (
                w.start.unix_millis(),
                w.end.unix_millis(),
                w.values().cloned().collect(),
            )
        })
        .collect()
}

fn collect<S: Stream + Unpin>(s: S) -> Vec<S::Item> {
    block_on(s.collect())
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------
// The cookbook, exactly

#[test]
fn cookbook_timer() {
    assert_eq!(timer_example::lines(), ["23:25:10", "23:25:11", "23:25:12"]);
}

#[test]
fn cookbook_iterable_interleaves_two_handlers() {
    assert_eq!(
        iterable::lines(),
        ["10 ms: a", "10 ms: 1", "20 ms: b", "20 ms: 2", "30 ms: c", "30 ms: 3"]
    );
}

#[test]
fn cookbook_pipe_table() {
    assert_eq!(
        pipe::lines(),
        [
            "# pipe=[pairwise] # pipe=[accumulate] # pipe=[accumulate, pairwise]",
            "(0, 1) 0 (0, 1)",
            "(1, 2) 1 (1, 3)",
            "(2, 3) 3 (3, 6)",
            "(3, 4) 6 (6, 10)",
            "... ... ...",
        ]
    );
}

#[test]
fn cookbook_pipe_full_outputs() {
    let (pairwise, accumulate, both) = pipe::outputs(100);
    assert_eq!(pairwise.len(), 99);
    assert_eq!(pairwise.last(), Some(&(98, 99)));
    assert_eq!(accumulate.len(), 100);
    assert_eq!(accumulate.last(), Some(&4950));
    assert_eq!(both.len(), 99);
    assert_eq!(both.last(), Some(&(4851, 4950)));
}

#[test]
fn cookbook_pipe_on_a_plain_executor() {
    // The same pipelines, without an event loop: futures' block_on over
    // plain iterators.
    let mut lines = Vec::new();
    let pairs = stream::iter(0..100).pairwise();
    let sums = stream::iter(0..100).accumulate(|a, b| a + b);
    let both = stream::iter(0..100).accumulate(|a, b| a + b).pairwise();
    let rows = pairs.zip(sums).zip(both).take(4);
    block_on(
        handle(rows, |((p, s), b)| Some(format!("{p:?} {s} {b:?}")))
            .sink(|line| lines.push(line))
            .run(),
    )
    .unwrap();
    assert_eq!(pipe::table(&pipe::outputs(5))[1..5], lines);
}

#[test]
fn cookbook_sink_counts() {
    assert_eq!(
        sink_example::lines(),
        ["{'👌': 2, '🏆': 2, '📞': 2, '🐟': 2}"]
    );
    let counts = sink_example::counts();
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|&n| n == 2));
}

#[test]
fn cookbook_sliding_then_tumbling_and_session_windows() {
    assert_eq!(
        windows::lines(),
        [
            "Sliding window ending at 0.0: {'🏆': 1}",
            "Sliding window ending at 0.5: {'🏆': 1, '📞': 1}",
            "Sliding window ending at 1.0: {'🏆': 1, '📞': 1, '🐟': 1}",
            "Sliding window ending at 2.0: {'🏆': 1, '📞': 1, '🐟': 1, '👌': 1}",
            "Sliding window ending at 3.5: {'📞': 1, '🐟': 1, '👌': 1, '🏆': 1}",
            "Sliding window ending at 4.0: {'🐟': 1, '👌': 1, '🏆': 1, '📞': 1}",
            "Sliding window ending at 5.0: {'👌': 1, '🏆': 1, '📞': 1, '🐟': 1}",
            "Sliding window ending at 5.5: {'🏆': 1, '📞': 1, '🐟': 1, '👌': 1}",
            "Tumbling window [0.0, 3.0): {'🏆': 1, '📞': 1, '🐟': 1, '👌': 1}",
            "Tumbling window [3.0, 6.0): {'🏆': 1, '📞': 1, '🐟': 1, '👌': 1}",
            "Session window [0.0, 3.5): {'🏆': 1, '📞': 1, '🐟': 1, '👌': 1}",
            "Session window [3.5, 7.0): {'🏆': 1, '📞': 1, '🐟': 1, '👌': 1}",
        ]
    );
}

const JOINED: [&str; 4] = [
    "The weather during swimming was 🌞",
    "The weather during walking home was ⛅",
    "The weather during shopping was 🌦️",
    "The weather during lunch was 🌧",
];

#[test]
fn cookbook_join() {
    assert_eq!(join::lines(), JOINED);
}

#[test]
fn cookbook_join_with_a_slow_weather_stream_needs_no_correction() {
    // The cookbook's "Synchronization" scenario: the weather stream lags
    // (5 s per message against 10 ms for activities). The join waits.
    assert_eq!(join::lines_with(Duration::from_secs(5)), JOINED);
    assert_eq!(join::lines_with(Duration::from_secs(3600)), JOINED);
}

// ---------------------------------------------------------------------------
// pairwise, accumulate

#[test]
fn pairwise_pairs_each_item_with_the_previous_one() {
    assert_eq!(
        collect(stream::iter(0..4).pairwise()),
        [(0, 1), (1, 2), (2, 3)]
    );
    assert_eq!(collect(stream::iter(0..0).pairwise()), []);
    assert_eq!(collect(stream::iter([7]).pairwise()), []);
    assert_eq!(collect(stream::iter([1, 1]).pairwise()), [(1, 1)]);
}

#[test]
fn pairwise_size_hint_counts_pairs() {
    let mut pairs = stream::iter(0..5).pairwise();
    assert_eq!(pairs.size_hint(), (4, Some(4)));
    assert_eq!(block_on(pairs.next()), Some((0, 1)));
    assert_eq!(pairs.size_hint(), (3, Some(3)));
    assert_eq!(stream::iter(0..0).pairwise().size_hint(), (0, Some(0)));
}

#[test]
fn accumulate_yields_running_folds() {
    assert_eq!(
        collect(stream::iter(0..5).accumulate(|a, b| a + b)),
        [0, 1, 3, 6, 10]
    );
    assert_eq!(collect(stream::iter(0..0).accumulate(|a, b| a + b)), [0; 0]);
    assert_eq!(collect(stream::iter([9]).accumulate(|a, b| a * b)), [9]);
    let product = stream::iter(1..=5u64).accumulate_from(1u64, |a, b| a * b);
    assert_eq!(collect(product), [1, 2, 6, 24, 120]);
    assert_eq!(
        collect(stream::iter(0..0).accumulate_from(5, |a, b: i32| a + b)),
        [0; 0]
    );
}

/// A panic of `accumulate`'s function ends the stream, rather than start
/// a new fold from the next item, and reads no more of the input.
#[test]
fn accumulate_ended_by_a_panic_does_not_start_over() {
    use futures::FutureExt;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    let read = Rc::new(Cell::new(0));
    let counted = read.clone();
    let input = stream::iter(1..=4).inspect(move |_| counted.set(counted.get() + 1));
    let mut sums = input.accumulate(|a, b| if b == 2 { panic!("two") } else { a + b });
    assert_eq!(sums.next().now_or_never(), Some(Some(1)));
    assert!(catch_unwind(AssertUnwindSafe(|| sums.next().now_or_never())).is_err());
    assert_eq!(sums.next().now_or_never(), Some(None));
    assert_eq!(read.get(), 2, "the third value is left in the input");
}

/// A panic of `accumulate_from`'s function ends the stream (its
/// accumulator is gone) without reading more of the input.
#[test]
fn accumulate_from_ended_by_a_panic_reads_no_more_input() {
    use futures::FutureExt;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    let read = Rc::new(Cell::new(0));
    let counted = read.clone();
    let input = stream::iter(1..=5).inspect(move |_| counted.set(counted.get() + 1));
    let mut sums = input.accumulate_from(0, |a, b| if b == 2 { panic!("two") } else { a + b });
    assert_eq!(sums.next().now_or_never(), Some(Some(1)));
    assert!(catch_unwind(AssertUnwindSafe(|| sums.next().now_or_never())).is_err());
    assert_eq!(read.get(), 2);
    assert_eq!(sums.next().now_or_never(), Some(None));
    assert_eq!(read.get(), 2, "the third value is left in the input");
}

#[test]
fn accumulate_then_pairwise_as_in_the_cookbook() {
    let pipe = stream::iter(0..5).accumulate(|a, b| a + b).pairwise();
    assert_eq!(collect(pipe), [(0, 1), (1, 3), (3, 6), (6, 10)]);
}

// ---------------------------------------------------------------------------
// tumbling

#[test]
fn tumbling_of_nothing_and_of_one_event() {
    let none = events(Vec::<(i64, u8)>::new()).tumbling(Duration::from_secs(1));
    assert!(collect(none).is_empty());
    let one = collect(events([(1_500, 'x')]).tumbling(Duration::from_secs(1)));
    assert_eq!(summary(&one), [(1_000, 2_000, vec!['x'])]);
}

#[test]
fn tumbling_windows_across_gaps_skip_empty_windows() {
    let got = collect(
        events([(100, 1), (900, 2), (1_000, 3), (5_500, 4)]).tumbling(Duration::from_secs(1)),
    );
    assert_eq!(
        summary(&got),
        [
            (0, 1_000, vec![1, 2]),
            (1_000, 2_000, vec![3]),
            (5_000, 6_000, vec![4])
        ]
    );
}

#[test]
fn tumbling_equal_timestamps_keep_arrival_order_and_end_is_excluded() {
    let got = collect(
        events([
            (1_000, 'a'),
            (1_000, 'b'),
            (1_999, 'c'),
            (2_000, 'd'),
            (2_000, 'e'),
        ])
        .tumbling(Duration::from_secs(1)),
    );
    assert_eq!(
        summary(&got),
        [
            (1_000, 2_000, vec!['a', 'b', 'c']),
            (2_000, 3_000, vec!['d', 'e'])
        ]
    );
}

#[test]
fn tumbling_aligns_negative_timestamps_on_the_epoch() {
    let got =
        collect(events([(-1_500, 1), (-500, 2), (-1, 3), (0, 4)]).tumbling(Duration::from_secs(1)));
    assert_eq!(
        summary(&got),
        [
            (-2_000, -1_000, vec![1]),
            (-1_000, 0, vec![2, 3]),
            (0, 1_000, vec![4])
        ]
    );
}

#[test]
fn tumbling_with_another_origin() {
    let got = collect(
        events([(0, 1), (249, 2), (250, 3)])
            .tumbling(Duration::from_secs(1))
            .origin(t(250)),
    );
    assert_eq!(
        summary(&got),
        [(-750, 250, vec![1, 2]), (250, 1_250, vec![3])]
    );
}

#[test]
fn tumbling_emits_a_window_once_an_event_passes_its_end() {
    let input = AsyncStream::with_capacity(8);
    let mut windows = input.subscribe().tumbling(Duration::from_secs(1));
    let counter = Arc::new(CountingWaker::default());
    let waker = waker(counter.clone());
    let mut cx = Context::from_waker(&waker);

    input.try_put((t(500), 'a')).unwrap();
    assert!(windows.poll_next_unpin(&mut cx).is_pending());
    input.try_put((t(999), 'b')).unwrap();
    assert_eq!(counter.count(), 1);
    assert!(windows.poll_next_unpin(&mut cx).is_pending());
    input.try_put((t(1_000), 'c')).unwrap();
    assert_eq!(counter.count(), 2);
    match windows.poll_next_unpin(&mut cx) {
        Poll::Ready(Some(w)) => assert_eq!(summary(&[w]), [(0, 1_000, vec!['a', 'b'])]),
        other => panic!("expected the first window, got {other:?}"),
    }
    assert!(windows.poll_next_unpin(&mut cx).is_pending());
    assert_eq!(windows.watermark(), Some(t(1_000)));
    drop(input);
    match windows.poll_next_unpin(&mut cx) {
        Poll::Ready(Some(w)) => assert_eq!(summary(&[w]), [(1_000, 2_000, vec!['c'])]),
        other => panic!("expected the last window, got {other:?}"),
    }
    assert!(matches!(
        windows.poll_next_unpin(&mut cx),
        Poll::Ready(None)
    ));
    assert!(futures::stream::FusedStream::is_terminated(&windows));
}

#[test]
fn tumbling_late_events_without_lateness_go_to_the_late_output() {
    let late = RefCell::new(Vec::new());
    let mut windows = events([
        (500, 'a'),
        (1_500, 'b'),
        (700, 'c'),
        (1_200, 'd'),
        (-3_000, 'e'),
    ])
    .tumbling(Duration::from_secs(1))
    .on_late(|ts: Timestamp, v| late.borrow_mut().push((ts.unix_millis(), v)));
    let mut got = Vec::new();
    while let Some(w) = block_on(windows.next()) {
        got.push(w);
    }
    assert_eq!(
        summary(&got),
        [(0, 1_000, vec!['a']), (1_000, 2_000, vec!['d', 'b'])]
    );
    assert_eq!(windows.late_count(), 2);
    drop(windows);
    assert_eq!(late.into_inner(), [(700, 'c'), (-3_000, 'e')]);
}

#[test]
fn tumbling_allowed_lateness_keeps_windows_open() {
    let mut windows = events([
        (500, 'a'),
        (1_200, 'b'),
        (700, 'c'),
        (1_600, 'd'),
        (800, 'e'),
    ])
    .tumbling(Duration::from_secs(1))
    .allowed_lateness(Duration::from_millis(500));
    let mut got = Vec::new();
    while let Some(w) = block_on(windows.next()) {
        got.push(w);
    }
    // 'c' is 500 ms behind the watermark: in time. 'e' comes once the
    // watermark (1.6 s) minus the lateness passed the end of [0, 1 s).
    assert_eq!(
        summary(&got),
        [(0, 1_000, vec!['a', 'c']), (1_000, 2_000, vec!['b', 'd'])]
    );
    assert_eq!(windows.late_count(), 1);
}

#[test]
fn tumbling_late_events_can_become_a_topic() {
    let topic = AsyncStream::with_capacity(1);
    let late = topic.subscribe();
    let windows = events([(5_000, 1), (9_000, 2), (1_000, 3), (2_000, 4), (12_000, 5)])
        .tumbling(Duration::from_secs(4))
        .on_late(topic.sink());
    drop(topic);
    // The late output holds one value at most: reading both concurrently
    // lets the windows go on.
    let (windows, late) = block_on(futures::future::join(
        windows.collect::<Vec<_>>(),
        late.collect::<Vec<_>>(),
    ));
    assert_eq!(
        summary(&windows),
        [
            (4_000, 8_000, vec![1]),
            (8_000, 12_000, vec![2]),
            (12_000, 16_000, vec![5])
        ]
    );
    assert_eq!(late, [(t(1_000), 3), (t(2_000), 4)]);
}

#[test]
fn tumbling_late_output_backpressure_holds_the_windows() {
    let topic = AsyncStream::with_capacity(1);
    let mut late = topic.subscribe();
    let mut windows = events([(5_000, 1), (1_000, 2), (2_000, 3), (3_000, 4), (9_000, 5)])
        .tumbling(Duration::from_secs(4))
        .on_late(LateSink(topic.sink()));
    drop(topic);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // 1 s fills the topic, 2 s waits in its sink, 3 s waits for the sink:
    // the windows wait too.
    assert!(windows.poll_next_unpin(&mut cx).is_pending());
    assert_eq!(windows.late_count(), 3);
    assert_eq!(late.try_recv(), Ok((t(1_000), 2)));
    match windows.poll_next_unpin(&mut cx) {
        Poll::Ready(Some(w)) => assert_eq!(summary(&[w]), [(4_000, 8_000, vec![1])]),
        other => panic!("expected a window, got {other:?}"),
    }
    assert_eq!(late.try_recv(), Ok((t(2_000), 3)));
    assert!(matches!(
        windows.poll_next_unpin(&mut cx),
        Poll::Ready(Some(_))
    ));
    // The end of the input flushes the last late event.
    assert!(matches!(
        windows.poll_next_unpin(&mut cx),
        Poll::Ready(None)
    ));
    assert_eq!(late.try_recv(), Ok((t(3_000), 4)));
    drop(windows);
    assert_eq!(block_on(late.next()), None);
}

// ---------------------------------------------------------------------------
// hopping

#[test]
fn hopping_with_hop_below_size_overlaps() {
    let got = collect(
        events([(0, 0), (1_000, 1), (2_000, 2), (5_000, 5)])
            .hopping(Duration::from_secs(3), Duration::from_secs(1)),
    );
    assert_eq!(
        summary(&got),
        [
            (-2_000, 1_000, vec![0]),
            (-1_000, 2_000, vec![0, 1]),
            (0, 3_000, vec![0, 1, 2]),
            (1_000, 4_000, vec![1, 2]),
            (2_000, 5_000, vec![2]),
            (3_000, 6_000, vec![5]),
            (4_000, 7_000, vec![5]),
            (5_000, 8_000, vec![5]),
        ]
    );
}

#[test]
fn hopping_with_hop_above_size_leaves_gaps() {
    let mut windows = events([
        (0, 'a'),
        (500, 'b'),
        (1_000, 'c'),
        (2_900, 'd'),
        (3_000, 'e'),
        (7_000, 'f'),
    ])
    .hopping(Duration::from_secs(1), Duration::from_secs(3));
    let mut got = Vec::new();
    while let Some(w) = block_on(windows.next()) {
        got.push(w);
    }
    assert_eq!(
        summary(&got),
        [(0, 1_000, vec!['a', 'b']), (3_000, 4_000, vec!['e'])]
    );
    assert_eq!(windows.late_count(), 0, "events in gaps are not late");
}

#[test]
fn hopping_with_hop_equal_to_size_is_tumbling() {
    let input = [(-700, 1), (100, 2), (900, 3), (1_000, 4), (4_200, 5)];
    let hopping = collect(events(input).hopping(Duration::from_secs(1), Duration::from_secs(1)));
    let tumbling = collect(events(input).tumbling(Duration::from_secs(1)));
    assert_eq!(hopping, tumbling);
}

#[test]
fn hopping_partly_late_event_joins_its_open_windows_and_is_reported() {
    let late = RefCell::new(Vec::new());
    let mut windows = events([(500, 'a'), (2_500, 'b'), (1_500, 'c')])
        .hopping(Duration::from_secs(2), Duration::from_secs(1))
        .on_late(|ts: Timestamp, v| late.borrow_mut().push((ts.unix_millis(), v)));
    let mut got = Vec::new();
    while let Some(w) = block_on(windows.next()) {
        got.push(w);
    }
    assert_eq!(
        summary(&got),
        [
            (-1_000, 1_000, vec!['a']),
            (0, 2_000, vec!['a']),
            (1_000, 3_000, vec!['c', 'b']),
            (2_000, 4_000, vec!['b']),
        ]
    );
    assert_eq!(windows.late_count(), 1);
    drop(windows);
    assert_eq!(late.into_inner(), [(1_500, 'c')]);
}

#[test]
fn hopping_origin() {
    let got = collect(
        events([(0, ())])
            .hopping(Duration::from_secs(2), Duration::from_secs(1))
            .origin(t(500)),
    );
    let spans: Vec<_> = summary(&got).into_iter().map(|(s, e, _)| (s, e)).collect();
    assert_eq!(spans, [(-1_500, 500), (-500, 1_500)]);
}

// ---------------------------------------------------------------------------
// session

#[test]
fn session_of_nothing_and_of_one_event() {
    assert!(collect(events(Vec::<(i64, ())>::new()).session(Duration::from_secs(1))).is_empty());
    let got = collect(events([(42, 'x')]).session(Duration::from_secs(1)));
    assert_eq!(summary(&got), [(42, 1_042, vec!['x'])]);
}

#[test]
fn session_gap_exactly_at_the_boundary_starts_a_new_session() {
    let got =
        collect(events([(0, 1), (999, 2), (1_999, 3), (2_998, 4)]).session(Duration::from_secs(1)));
    assert_eq!(
        summary(&got),
        [(0, 1_999, vec![1, 2]), (1_999, 3_998, vec![3, 4])]
    );
}

#[test]
fn session_equal_timestamps() {
    let got = collect(events([(5, 'a'), (5, 'b'), (5, 'c')]).session(Duration::from_millis(1)));
    assert_eq!(summary(&got), [(5, 6, vec!['a', 'b', 'c'])]);
}

#[test]
fn session_late_and_out_of_order_events() {
    let late = RefCell::new(Vec::new());
    let mut sessions = events([
        (0, 'a'),
        (5_000, 'b'),
        (500, 'c'),
        (4_500, 'd'),
        (3_000, 'e'),
    ])
    .session(Duration::from_secs(1))
    .on_late(|ts: Timestamp, v| late.borrow_mut().push((ts.unix_millis(), v)));
    let mut got = Vec::new();
    while let Some(w) = block_on(sessions.next()) {
        got.push(w);
    }
    // 'c' falls in [0, 1 s), emitted when 'b' came: late. 'd' is before the
    // watermark but its window [4.5 s, 5.5 s) is open: it extends the
    // session back. 'e''s window [3 s, 4 s) ends before the watermark: late.
    assert_eq!(
        summary(&got),
        [(0, 1_000, vec!['a']), (4_500, 6_000, vec!['d', 'b'])]
    );
    assert_eq!(sessions.late_count(), 2);
    drop(sessions);
    assert_eq!(late.into_inner(), [(500, 'c'), (3_000, 'e')]);
}

#[test]
fn session_allowed_lateness_merges_late_bridges() {
    let got = collect(
        events([(0, 'a'), (1_600, 'b'), (800, 'c')])
            .session(Duration::from_secs(1))
            .allowed_lateness(Duration::from_secs(1)),
    );
    // [0, 1 s) stays open until the watermark reaches 2 s; 'c' bridges it
    // with [1.6 s, 2.6 s).
    assert_eq!(summary(&got), [(0, 2_600, vec!['a', 'c', 'b'])]);
}

// ---------------------------------------------------------------------------
// sliding

#[test]
fn sliding_includes_both_ends() {
    let got = collect(
        events([
            (0, 'a'),
            (1_000, 'b'),
            (3_000, 'c'),
            (3_000, 'd'),
            (6_000, 'e'),
        ])
        .sliding(Duration::from_secs(3)),
    );
    assert_eq!(
        summary(&got),
        [
            (-3_000, 0, vec!['a']),
            (-2_000, 1_000, vec!['a', 'b']),
            (0, 3_000, vec!['a', 'b', 'c']),
            (0, 3_000, vec!['a', 'b', 'c', 'd']),
            (3_000, 6_000, vec!['c', 'd', 'e']),
        ]
    );
    assert!(collect(events(Vec::<(i64, ())>::new()).sliding(Duration::from_secs(1))).is_empty());
}

#[test]
fn sliding_late_events_without_and_with_lateness() {
    let late = RefCell::new(Vec::new());
    let mut strict = events([(1_000, 'a'), (2_000, 'b'), (1_500, 'c'), (2_000, 'd')])
        .sliding(Duration::from_secs(1))
        .on_late(|_, v| late.borrow_mut().push(v));
    let mut got = Vec::new();
    while let Some(w) = block_on(strict.next()) {
        got.push(w);
    }
    assert_eq!(
        summary(&got),
        [
            (0, 1_000, vec!['a']),
            (1_000, 2_000, vec!['a', 'b']),
            (1_000, 2_000, vec!['a', 'b', 'd'])
        ]
    );
    assert_eq!(strict.late_count(), 1);
    drop(strict);
    assert_eq!(late.into_inner(), ['c']);

    let lenient = events([(1_000, 'a'), (2_000, 'b'), (1_500, 'c'), (2_000, 'd')])
        .sliding(Duration::from_secs(1))
        .allowed_lateness(Duration::from_millis(500));
    assert_eq!(
        summary(&collect(lenient)),
        [
            (0, 1_000, vec!['a']),
            (1_000, 2_000, vec!['a', 'b']),
            (500, 1_500, vec!['a', 'c']),
            (1_000, 2_000, vec!['a', 'c', 'b', 'd']),
        ]
    );
}

// ---------------------------------------------------------------------------
// as-of join

#[test]
fn as_of_join_waits_for_the_right_side_to_pass_the_left_event() {
    let (left, right) = (AsyncStream::with_capacity(8), AsyncStream::with_capacity(8));
    let mut joined = left.subscribe().as_of_join(right.subscribe());
    let counter = Arc::new(CountingWaker::default());
    let waker = waker(counter.clone());
    let mut cx = Context::from_waker(&waker);

    left.try_put((t(10), "a")).unwrap();
    assert!(
        joined.poll_next_unpin(&mut cx).is_pending(),
        "no right data yet"
    );
    right.try_put((t(5), 'x')).unwrap();
    assert_eq!(counter.count(), 1);
    assert!(
        joined.poll_next_unpin(&mut cx).is_pending(),
        "right is at 5"
    );
    right.try_put((t(10), 'y')).unwrap();
    assert!(
        joined.poll_next_unpin(&mut cx).is_pending(),
        "right is at 10: another 10 may come"
    );
    right.try_put((t(11), 'z')).unwrap();
    assert_eq!(counter.count(), 3);
    assert_eq!(
        joined.poll_next_unpin(&mut cx),
        Poll::Ready(Some((t(10), "a", Some('y'))))
    );
    assert_eq!(joined.buffer_lens(), (0, 1));

    left.try_put((t(11), "b")).unwrap();
    left.try_put((t(20), "c")).unwrap();
    assert_eq!(
        joined.poll_next_unpin(&mut cx),
        Poll::Pending,
        "right is at 11"
    );
    drop(right);
    assert_eq!(
        joined.poll_next_unpin(&mut cx),
        Poll::Ready(Some((t(11), "b", Some('z'))))
    );
    assert_eq!(
        joined.poll_next_unpin(&mut cx),
        Poll::Ready(Some((t(20), "c", Some('z'))))
    );
    assert_eq!(
        joined.poll_next_unpin(&mut cx),
        Poll::Pending,
        "left is open"
    );
    drop(left);
    assert_eq!(joined.poll_next_unpin(&mut cx), Poll::Ready(None));
}

#[test]
fn as_of_join_edge_cases() {
    let join = |l: Vec<(i64, u8)>, r: Vec<(i64, char)>| {
        let got: Vec<_> = collect(events(l).as_of_join(events(r)));
        got.into_iter()
            .map(|(ts, l, r)| (ts.unix_millis(), l, r))
            .collect::<Vec<_>>()
    };
    assert_eq!(join(vec![], vec![(0, 'x')]), []);
    assert_eq!(
        join(vec![(0, 1), (5, 2)], vec![]),
        [(0, 1, None), (5, 2, None)]
    );
    // Before any right value: none. Equal times match; the last equal wins.
    assert_eq!(
        join(
            vec![(1, 1), (5, 2), (6, 3), (9, 4)],
            vec![(5, 'a'), (5, 'b'), (7, 'c')]
        ),
        [
            (1, 1, None),
            (5, 2, Some('b')),
            (6, 3, Some('b')),
            (9, 4, Some('c'))
        ]
    );
    // A right value older than the one kept is superseded.
    assert_eq!(
        join(vec![(10, 1)], vec![(8, 'a'), (3, 'b'), (12, 'c')]),
        [(10, 1, Some('a'))]
    );
}

#[test]
fn as_of_join_buffer_limit_applies_backpressure() {
    let (left, right) = (
        AsyncStream::with_capacity(16),
        AsyncStream::with_capacity(16),
    );
    let mut joined = left
        .subscribe()
        .as_of_join(right.subscribe())
        .buffer_limit(2);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for i in 0..5 {
        left.try_put((t(i), i)).unwrap();
    }
    assert!(joined.poll_next_unpin(&mut cx).is_pending());
    assert_eq!(
        joined.buffer_lens(),
        (2, 0),
        "two left events taken, three left in the channel"
    );
    assert_eq!(left.len(), 3);
    right.try_put((t(100), 'r')).unwrap();
    drop((left, right));
    let rest: Vec<_> = block_on(joined.map(|(ts, v, r)| (ts.unix_millis(), v, r)).collect());
    assert_eq!(rest, (0..5).map(|i| (i, i, None)).collect::<Vec<_>>());
}

#[test]
fn as_of_join_in_virtual_time_with_a_stalled_right_side() {
    // The right side says nothing for an hour of virtual time: the left
    // event waits rather than being joined with data that may be stale.
    let el = EventLoop::starting_at(t(0)).simulated();
    let emitted = el.block_on(async {
        let (left, right) = (AsyncStream::new(), AsyncStream::new());
        let mut joined = left.subscribe().as_of_join(right.subscribe());
        timecast::spawn(async move {
            right.put((t(0), "old")).await.unwrap();
            sleep(Duration::from_secs(3600)).await;
            right.put((t(3_000), "new")).await.unwrap();
        });
        timecast::spawn(async move {
            left.put((t(2_000), 'a')).await.unwrap();
            left.put((t(4_000), 'b')).await.unwrap();
        });
        let mut out = Vec::new();
        while let Some((ts, v, w)) = joined.next().await {
            out.push((now() - t(0), ts.unix_millis(), v, w));
        }
        out
    });
    let hour = Duration::from_secs(3600);
    assert_eq!(
        emitted,
        [
            (hour, 2_000, 'a', Some("old")),
            (hour, 4_000, 'b', Some("new"))
        ]
    );
}

// ---------------------------------------------------------------------------
// windows closed by the loop's clock

/// Puts `(ts, v)` at loop time `ts` for each event, then keeps the input
/// open until `close_at`. Returns `(emission time, start, values)` of each
/// window of `windows(consumer)`.
fn clocked<W>(
    inputs: Vec<(i64, char)>,
    close_at: i64,
    windows: impl FnOnce(timecast::Consumer<(Timestamp, char)>) -> W,
) -> Vec<(i64, i64, String)>
where
    W: Stream<Item = Window<char>> + Unpin + 'static,
{
    let el = EventLoop::starting_at(t(0)).simulated();
    let topic = AsyncStream::new();
    let windows = windows(topic.subscribe());
    el.spawn(async move {
        for (ms, v) in inputs {
            sleep_until(t(ms)).await;
            topic.put((t(ms), v)).await.unwrap();
        }
        sleep_until(t(close_at)).await;
    });
    let out = Rc::new(RefCell::new(Vec::new()));
    let sink = out.clone();
    el.spawn(
        handle(windows, |w: Window<char>| {
            Some((
                now().unix_millis(),
                w.start.unix_millis(),
                w.values().collect::<String>(),
            ))
        })
        .sink(move |x| sink.borrow_mut().push(x))
        .run(),
    );
    el.run().unwrap();
    out.take()
}

#[test]
fn loop_clock_emits_an_idle_window_when_the_clock_passes_its_end() {
    let inputs = vec![(500, 'a'), (1_200, 'b')];
    let by_clock = clocked(inputs.clone(), 10_000, |c| {
        c.tumbling(Duration::from_secs(1)).clock(LoopClock::new())
    });
    assert_eq!(
        by_clock,
        [(1_000, 0, "a".into()), (2_000, 1_000, "b".into())]
    );
    // Without the clock: at the next event, and at the end of the input.
    let by_events = clocked(inputs, 10_000, |c| c.tumbling(Duration::from_secs(1)));
    assert_eq!(
        by_events,
        [(1_200, 0, "a".into()), (10_000, 1_000, "b".into())]
    );
}

#[test]
fn loop_clock_waits_for_the_allowed_lateness() {
    let got = clocked(vec![(500, 'a'), (1_200, 'b')], 10_000, |c| {
        c.tumbling(Duration::from_secs(1))
            .allowed_lateness(Duration::from_millis(300))
            .clock(LoopClock::new())
    });
    assert_eq!(got, [(1_300, 0, "a".into()), (2_300, 1_000, "b".into())]);
}

#[test]
fn loop_clock_closes_sessions_and_hopping_windows() {
    let sessions = clocked(vec![(0, 'a'), (400, 'b'), (5_000, 'c')], 60_000, |c| {
        c.session(Duration::from_secs(1)).clock(LoopClock::new())
    });
    assert_eq!(
        sessions,
        [(1_400, 0, "ab".into()), (6_000, 5_000, "c".into())]
    );
    let hopping = clocked(vec![(500, 'a')], 60_000, |c| {
        c.hopping(Duration::from_secs(2), Duration::from_secs(1))
            .clock(LoopClock::new())
    });
    assert_eq!(
        hopping,
        [(1_000, -1_000, "a".into()), (2_000, 0, "a".into())]
    );
}

#[test]
fn loop_clock_makes_events_of_closed_windows_late() {
    let el = EventLoop::starting_at(t(0)).simulated();
    let topic = AsyncStream::new();
    let mut windows = topic
        .subscribe()
        .tumbling(Duration::from_secs(1))
        .clock(LoopClock::new());
    el.spawn(async move {
        topic.put((t(100), 'a')).await.unwrap();
        sleep_until(t(3_000)).await;
        // Stamped 0.9 s, arriving at 3 s: its window was closed at 1 s.
        topic.put((t(900), 'b')).await.unwrap();
    });
    let (got, late) = el.block_on(async move {
        let mut got = Vec::new();
        while let Some(w) = windows.next().await {
            got.push((now().unix_millis(), w.values().collect::<String>()));
        }
        (got, windows.late_count())
    });
    assert_eq!(got, [(1_000, "a".to_string())]);
    assert_eq!(late, 1);
}

// ---------------------------------------------------------------------------
// sinks and pipelines

#[test]
fn handlers_return_zero_one_or_many_outputs() {
    let run = |source: Vec<u32>| {
        let mut out = Vec::new();
        block_on(
            handle(stream::iter(source), |x| (0..x).collect::<Vec<_>>())
                .sink(|y| out.push(y))
                .run(),
        )
        .unwrap();
        out
    };
    assert_eq!(run(vec![0, 2, 3]), [0, 1, 0, 1, 2]);

    let mut out = Vec::new();
    block_on(
        handle(stream::iter(1..=4), |x| (x % 2 == 0).then_some(x))
            .sink(|y| out.push(y))
            .run(),
    )
    .unwrap();
    assert_eq!(out, [2, 4]);

    let mut out = Vec::new();
    block_on(
        handle(stream::iter(1..=2), |x| [x, -x])
            .sink(|y| out.push(y))
            .run(),
    )
    .unwrap();
    assert_eq!(out, [1, -1, 2, -2]);

    let seen = Cell::new(0);
    block_on(handle(stream::iter(1..=3), |x| seen.set(seen.get() + x)).run()).unwrap();
    assert_eq!(seen.get(), 6);
}

#[test]
fn async_handlers_and_async_sinks_run_in_virtual_time() {
    let el = EventLoop::starting_at(t(0)).simulated();
    let log = Rc::new(RefCell::new(Vec::new()));
    let sink_log = log.clone();
    let pipeline = handle(stream::iter(1..=3), |x: u64| async move {
        sleep(Duration::from_secs(x)).await;
        Some(x * 10)
    })
    .sink(move |y| {
        let log = sink_log.clone();
        async move {
            sleep(Duration::from_millis(500)).await;
            log.borrow_mut().push((now().unix_millis(), y));
        }
    });
    el.block_on(pipeline.run()).unwrap();
    assert_eq!(*log.borrow(), [(1_500, 10), (4_000, 20), (7_500, 30)]);

    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    el.block_on(
        handle(stream::iter([()]), move |()| {
            let d = d.clone();
            async move { d.set(true) }
        })
        .run(),
    )
    .unwrap();
    assert!(done.get());
}

#[test]
fn several_sinks_receive_every_output_in_order() {
    let log = RefCell::new(Vec::new());
    let topic = AsyncStream::with_capacity(8);
    let mut downstream = topic.subscribe();
    let pipeline = handle(stream::iter(["a", "b"]), |s| {
        [s.to_uppercase(), s.to_owned()]
    })
    .sink(|x| log.borrow_mut().push(format!("1:{x}")))
    .sink_to(topic)
    .sink_to(from_fn(|x| log.borrow_mut().push(format!("3:{x}"))));
    block_on(pipeline.run()).unwrap();
    assert_eq!(
        *log.borrow(),
        ["1:A", "3:A", "1:a", "3:a", "1:B", "3:B", "1:b", "3:b"]
    );
    let topic_got: Vec<_> = std::iter::from_fn(|| downstream.try_recv().ok()).collect();
    assert_eq!(topic_got, ["A", "a", "B", "b"]);
}

#[test]
fn a_closed_topic_stops_the_pipeline_with_the_refused_output() {
    let topic = AsyncStream::with_capacity(8);
    let _consumer = topic.subscribe();
    let handle_to_close = topic.clone();
    let mut seen = Vec::new();
    let pipeline = handle(stream::iter(1..=5), Some)
        .sink(|x| {
            seen.push(x);
            if x == 2 {
                handle_to_close.close();
            }
        })
        .sink_to(topic);
    assert_eq!(block_on(pipeline.run()), Err(Closed(2)));
    assert_eq!(seen, [1, 2]);
}

#[test]
fn fan_out_clones_to_all_but_the_last() {
    let (a, b) = (AsyncStream::with_capacity(4), AsyncStream::with_capacity(4));
    let (mut ca, mut cb) = (a.subscribe(), b.subscribe());
    block_on(
        handle(stream::iter([1, 2]), Some)
            .sink_to(fan_out(a, fan_out(b, Discard)))
            .run(),
    )
    .unwrap();
    assert_eq!((ca.try_recv(), ca.try_recv()), (Ok(1), Ok(2)));
    assert_eq!((cb.try_recv(), cb.try_recv()), (Ok(1), Ok(2)));
}

#[test]
fn a_shared_source_paces_every_handler_to_the_slowest() {
    // Slipstream: "Sharing sources is efficient. But processing delays in
    // one handler may delay consumption for both." A rendezvous topic
    // feeds two handlers; the slow one takes 1 s per message.
    let el = EventLoop::starting_at(t(0)).simulated();
    let topic = AsyncStream::new();
    let log = Rc::new(RefCell::new(Vec::new()));

    let fast_log = log.clone();
    el.spawn(
        handle(topic.subscribe(), move |i: u32| {
            fast_log
                .borrow_mut()
                .push(format!("{} fast {i}", now().unix_millis()));
        })
        .run(),
    );
    let slow_log = log.clone();
    el.spawn(
        handle(topic.subscribe(), move |i: u32| {
            slow_log
                .borrow_mut()
                .push(format!("{} slow {i}", now().unix_millis()));
            sleep(Duration::from_secs(1))
        })
        .run(),
    );
    let put_log = log.clone();
    el.spawn(
        handle(stream::iter(0..3u32), Some)
            .sink_to(topic)
            .sink(move |i| {
                put_log
                    .borrow_mut()
                    .push(format!("{} put {i}", now().unix_millis()))
            })
            .run(),
    );
    el.run().unwrap();
    assert_eq!(
        *log.borrow(),
        [
            "0 fast 0",
            "0 slow 0",
            "0 put 0",
            "0 fast 1",
            "1000 slow 1",
            "1000 put 1",
            "1000 fast 2",
            "2000 slow 2",
            "2000 put 2",
        ]
    );
}

#[test]
fn a_pipeline_future_is_send_and_runs_on_tokio() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let topic = AsyncStream::with_capacity(4);
    let downstream = topic.subscribe();
    let source = stream::iter((0..10).map(|i| (t(i), i)))
        .pairwise()
        .map(|((_, a), (ts, b))| (ts, b - a))
        .tumbling(Duration::from_secs(1));
    let pipeline = handle(source, |w: Window<i64>| Some(w.values().sum::<i64>()))
        .sink(|_sum| {})
        .sink_to(topic)
        .run();
    assert_send(&pipeline);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (result, sums) = rt.block_on(async {
        let task = tokio::spawn(pipeline);
        let sums = downstream.collect::<Vec<_>>().await;
        (task.await.unwrap(), sums)
    });
    assert_eq!(result, Ok(()));
    assert_eq!(sums, [9]);
}

#[test]
fn auto_traits() {
    fn send_unpin<T: Send + Unpin>() {}
    type Input = stream::Iter<std::vec::IntoIter<(Timestamp, u32)>>;
    send_unpin::<timecast::ops::Pairwise<Input>>();
    send_unpin::<timecast::ops::Windowed<Input, timecast::ops::Tumbling, u32>>();
    send_unpin::<timecast::ops::Windowed<Input, timecast::ops::Hopping, u32>>();
    send_unpin::<timecast::ops::Windowed<Input, timecast::ops::Session, u32>>();
    send_unpin::<timecast::ops::Sliding<Input, u32>>();
    send_unpin::<timecast::ops::AsOfJoin<Input, Input, u32, u32>>();
    send_unpin::<Window<u32>>();
    send_unpin::<Discard>();
    // A !Unpin item does not make a combinator !Unpin.
    type Pinned = stream::Iter<std::iter::RepeatWith<fn() -> std::marker::PhantomPinned>>;
    fn unpin<T: Unpin>() {}
    unpin::<timecast::ops::Pairwise<Pinned>>();
}

// ---------------------------------------------------------------------------
// tumbling and hopping against a reference model

/// Pseudo-random events: mostly in order, some jittered back by up to 2 s.
fn jittered(seed: u64, n: usize) -> Vec<(i64, usize)> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut clock = -5_000;
    (0..n)
        .map(|i| {
            clock += (next() % 300) as i64;
            let jitter = if next() % 5 == 0 {
                (next() % 2_000) as i64
            } else {
                0
            };
            (clock - jitter, i)
        })
        .collect()
}

/// The windows `[start, start + size)`, `start = k·hop`, that a stream of
/// `events` must produce with `lateness`: an event joins each of its windows
/// that was not closed (end + lateness <= the latest time seen, this event
/// included) when it came; windows by start, items by time then arrival.
fn reference(
    events: &[(i64, usize)],
    size: i64,
    hop: i64,
    lateness: i64,
) -> (Vec<(i64, i64, Vec<usize>)>, u64) {
    let mut windows = std::collections::BTreeMap::<i64, Vec<(i64, usize)>>::new();
    let mut watermark = i64::MIN;
    let mut late = 0;
    for &(ts, v) in events {
        watermark = watermark.max(ts);
        let mut missed = false;
        let mut start = (ts - size).div_euclid(hop) * hop + hop;
        while start <= ts {
            if start + size + lateness <= watermark {
                missed = true;
            } else {
                windows.entry(start).or_default().push((ts, v));
            }
            start += hop;
        }
        late += u64::from(missed);
    }
    let windows = windows
        .into_iter()
        .map(|(start, mut items)| {
            items.sort_by_key(|(ts, _)| *ts); // stable: arrival order within a time
            (
                start,
                start + size,
                items.into_iter().map(|(_, v)| v).collect(),
            )
        })
        .collect();
    (windows, late)
}

#[test]
fn tumbling_and_hopping_match_a_reference_model() {
    for seed in 1..=4 {
        let input = jittered(seed, 3_000);
        for lateness in [0, 300, 5_000] {
            let mut tumbling = events(input.clone())
                .tumbling(Duration::from_secs(1))
                .allowed_lateness(Duration::from_millis(lateness as u64));
            let got = block_on((&mut tumbling).collect::<Vec<_>>());
            let (want, late) = reference(&input, 1_000, 1_000, lateness);
            assert_eq!(
                summary(&got),
                want,
                "tumbling, seed {seed}, lateness {lateness}"
            );
            assert_eq!(tumbling.late_count(), late);

            for (size, hop) in [(1_000, 300), (500, 1_500)] {
                let mut hopping = events(input.clone())
                    .hopping(
                        Duration::from_millis(size as u64),
                        Duration::from_millis(hop as u64),
                    )
                    .allowed_lateness(Duration::from_millis(lateness as u64));
                let got = block_on((&mut hopping).collect::<Vec<_>>());
                let (want, late) = reference(&input, size, hop, lateness);
                assert_eq!(
                    summary(&got),
                    want,
                    "hopping {size}/{hop}, seed {seed}, lateness {lateness}"
                );
                assert_eq!(hopping.late_count(), late);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// windows at the ends of time, and what a window contains

/// A time `n` nanoseconds after the epoch.
fn ns(n: i64) -> Timestamp {
    Timestamp::from_unix_nanos(n)
}

/// Events at both ends of time and at the epoch, equal times included.
fn extremes() -> Vec<(Timestamp, char)> {
    vec![
        (Timestamp::MIN, 'a'),
        (ns(i64::MIN + 1), 'b'),
        (ns(0), 'c'),
        (ns(i64::MAX - 1), 'd'),
        (Timestamp::MAX, 'e'),
        (Timestamp::MAX, 'f'),
    ]
}

/// Checks that every item of every window is in it, and returns the
/// windows as `(start, end, includes_end, values)`.
fn checked(windows: &[Window<char>]) -> Vec<(Timestamp, Timestamp, bool, String)> {
    for w in windows {
        for (t, v) in &w.items {
            assert!(w.contains(*t), "{v} at {t:?} outside {w:?}");
        }
    }
    windows
        .iter()
        .map(|w| (w.start, w.end, w.includes_end, w.values().collect()))
        .collect()
}

#[test]
fn tumbling_windows_hold_events_at_both_ends_of_time() {
    let mut windows = stream::iter(extremes()).tumbling(Duration::from_secs(10));
    let got = block_on((&mut windows).collect::<Vec<_>>());
    let (top, _) = windows.kind().window_of(Timestamp::MAX);
    assert_eq!(
        checked(&got),
        [
            (
                Timestamp::MIN,
                Timestamp::from_unix_secs(-9_223_372_030),
                false,
                "ab".into()
            ),
            (ns(0), ns(10_000_000_000), false, "c".into()),
            (top, Timestamp::MAX, true, "def".into()),
        ]
    );
    assert_eq!(windows.late_count(), 0);

    // A grid with a boundary exactly at MAX: MAX opens a window of its own.
    let got = collect(
        stream::iter(extremes())
            .tumbling(Duration::from_nanos(10))
            .origin(Timestamp::MAX),
    );
    assert_eq!(
        checked(&got),
        [
            (Timestamp::MIN, ns(i64::MIN + 5), false, "ab".into()),
            (ns(-3), ns(7), false, "c".into()),
            (ns(i64::MAX - 10), Timestamp::MAX, false, "d".into()),
            (Timestamp::MAX, Timestamp::MAX, true, "ef".into()),
        ]
    );
}

#[test]
fn a_lone_event_at_the_end_of_time_gets_its_window() {
    for window in [
        collect(stream::iter([(Timestamp::MAX, 'x')]).tumbling(Duration::from_secs(1))),
        collect(
            stream::iter([(Timestamp::MAX, 'x')])
                .hopping(Duration::from_secs(2), Duration::from_secs(2)),
        ),
        collect(stream::iter([(Timestamp::MAX, 'x')]).session(Duration::from_secs(1))),
        collect(stream::iter([(Timestamp::MAX, 'x')]).sliding(Duration::from_secs(1))),
    ] {
        assert_eq!(checked(&window).len(), 1);
        assert!(window[0].includes_end && window[0].end == Timestamp::MAX);
    }
}

#[test]
fn hopping_windows_hold_events_at_both_ends_of_time() {
    let (size, hop) = (Duration::from_secs(10), Duration::from_secs(3));
    let mut windows = stream::iter(extremes()).hopping(size, hop);
    let got = block_on((&mut windows).collect::<Vec<_>>());
    let got = checked(&got);
    assert_eq!(windows.late_count(), 0);
    // Each event is in each of its windows, exactly once; windows that
    // would start before MIN start at MIN, and are still distinct.
    let kind = *windows.kind();
    for (ts, v) in extremes() {
        let holding = got.iter().filter(|w| w.3.contains(v)).count();
        assert_eq!(holding, kind.windows_of(ts).count(), "{v}");
        assert!(holding >= 3, "{v}");
    }
    for (start, end, includes_end, values) in &got {
        assert_eq!(
            values.len(),
            values
                .chars()
                .collect::<std::collections::HashSet<_>>()
                .len()
        );
        assert_eq!(*includes_end, *end == Timestamp::MAX, "{start:?}");
    }
    let bottom: Vec<_> = got.iter().filter(|w| w.0 == Timestamp::MIN).collect();
    assert!(bottom.len() >= 2, "{bottom:?}");
    assert!(bottom.windows(2).all(|w| w[0].1 < w[1].1), "{bottom:?}");
}

#[test]
fn sessions_hold_events_at_both_ends_of_time() {
    let got = collect(stream::iter(extremes()).session(Duration::from_secs(5)));
    assert_eq!(
        checked(&got),
        [
            (
                Timestamp::MIN,
                ns(i64::MIN + 5_000_000_001),
                false,
                "ab".into()
            ),
            (ns(0), ns(5_000_000_000), false, "c".into()),
            (ns(i64::MAX - 1), Timestamp::MAX, true, "def".into()),
        ]
    );
    // Out of order at the top: the late-coming event extends the session
    // down, and equal times at MAX are not late.
    let mut sessions = stream::iter([
        (Timestamp::MAX, 'x'),
        (ns(i64::MAX - 2), 'y'),
        (Timestamp::MAX, 'z'),
    ])
    .session(Duration::from_nanos(5))
    .allowed_lateness(Duration::from_nanos(10));
    let got = block_on((&mut sessions).collect::<Vec<_>>());
    assert_eq!(
        checked(&got),
        [(ns(i64::MAX - 2), Timestamp::MAX, true, "yxz".into())]
    );
    assert_eq!(sessions.late_count(), 0);
}

#[test]
fn sliding_windows_hold_events_at_both_ends_of_time() {
    let got = collect(stream::iter(extremes()).sliding(Duration::from_nanos(1)));
    assert_eq!(
        checked(&got),
        [
            (Timestamp::MIN, Timestamp::MIN, true, "a".into()),
            (Timestamp::MIN, ns(i64::MIN + 1), true, "ab".into()),
            (ns(-1), ns(0), true, "c".into()),
            (ns(i64::MAX - 2), ns(i64::MAX - 1), true, "d".into()),
            (ns(i64::MAX - 1), Timestamp::MAX, true, "de".into()),
            (ns(i64::MAX - 1), Timestamp::MAX, true, "def".into()),
        ]
    );
}

#[test]
fn windows_align_negative_times_on_a_custom_origin_near_the_ends() {
    // Origins at the far ends, events on the other side of the epoch.
    for origin in [Timestamp::MIN, ns(-7), Timestamp::MAX] {
        let input: Vec<_> = [-25_i64, -11, -10, -1, 0, 9, 23]
            .into_iter()
            .map(|s| (Timestamp::from_unix_secs(s), 'x'))
            .collect();
        let tumbling = collect(
            stream::iter(input.clone())
                .tumbling(Duration::from_secs(10))
                .origin(origin),
        );
        let hopping = collect(
            stream::iter(input.clone())
                .hopping(Duration::from_secs(10), Duration::from_secs(4))
                .origin(origin),
        );
        for w in tumbling.iter().chain(&hopping) {
            let offset = i128::from(w.start.unix_nanos()) - i128::from(origin.unix_nanos());
            assert_eq!(offset.rem_euclid(1_000_000_000), 0, "{origin:?}: {w:?}");
            assert_eq!(w.duration(), Duration::from_secs(10));
            assert!(w.items.iter().all(|(t, _)| w.contains(*t)), "{w:?}");
        }
        assert_eq!(tumbling.iter().map(Window::len).sum::<usize>(), input.len());
    }
}

#[test]
fn every_window_contains_its_items_and_its_end_as_its_kind_says() {
    let input: Vec<_> = jittered(7, 500)
        .into_iter()
        .map(|(ms, i)| (t(ms), char::from(b'a' + (i % 26) as u8)))
        .collect();
    let lateness = Duration::from_secs(3);
    let half_open = [
        collect(
            stream::iter(input.clone())
                .tumbling(Duration::from_secs(1))
                .origin(t(-333))
                .allowed_lateness(lateness),
        ),
        collect(
            stream::iter(input.clone())
                .hopping(Duration::from_secs(1), Duration::from_millis(300))
                .origin(t(-77))
                .allowed_lateness(lateness),
        ),
        collect(
            stream::iter(input.clone())
                .session(Duration::from_millis(200))
                .allowed_lateness(lateness),
        ),
    ];
    for windows in &half_open {
        assert!(!windows.is_empty());
        checked(windows);
        for w in windows {
            assert!(!w.includes_end && !w.contains(w.end) && w.contains(w.start));
        }
    }
    let sliding = collect(
        stream::iter(input)
            .sliding(Duration::from_secs(1))
            .allowed_lateness(lateness),
    );
    checked(&sliding);
    for w in &sliding {
        // [ts - size, ts]: the end is the event's own time, in the window.
        assert!(w.includes_end && w.contains(w.end) && w.contains(w.start));
        assert_eq!(w.duration(), Duration::from_secs(1));
        assert!(w.items.iter().any(|(t, _)| *t == w.end));
        assert!(!w.contains(w.end + Duration::from_nanos(1)));
        assert!(!w.contains(w.start - Duration::from_nanos(1)));
    }
}

#[test]
fn hopping_rejects_more_windows_per_event_than_the_bound() {
    use timecast::ops::Hopping;
    let at_bound = Hopping::new(Duration::from_secs(10_000), Duration::from_secs(1));
    assert_eq!(at_bound.windows_per_event(), Hopping::MAX_WINDOWS_PER_EVENT);
    let hour_by_second = events([(0, 'a'), (1_500, 'b')])
        .hopping(Duration::from_secs(3_600), Duration::from_secs(1));
    let windows = collect(hour_by_second);
    assert_eq!(windows.len(), 3_601);
    let refused = std::panic::catch_unwind(|| {
        Hopping::new(Duration::from_secs(10_001), Duration::from_secs(1))
    });
    assert!(refused.is_err());
}

#[test]
#[should_panic(expected = "puts each event in 86400000000000 windows, above the bound of 10000")]
fn hopping_of_a_day_every_nanosecond_panics_at_once() {
    let _ = events([(0, ())]).hopping(Duration::from_secs(86_400), Duration::from_nanos(1));
}

// ---------------------------------------------------------------------------
// the as-of join on out-of-order input

/// `(ms, left, right)` of a join's output.
type Joined<T, U> = Vec<(i64, T, Option<U>)>;

fn joined<T, U>(items: Vec<(Timestamp, T, Option<U>)>) -> Joined<T, U> {
    items
        .into_iter()
        .map(|(ts, l, r)| (ts.unix_millis(), l, r))
        .collect()
}

#[test]
fn as_of_join_a_late_left_event_is_reported_not_joined_with_a_later_right_value() {
    // Left at 5 after left at 10; right at 7. As of 5 there is no right
    // value: joining it with 7 would be wrong.
    let late = RefCell::new(Vec::new());
    let mut join = events([(10, "ten"), (5, "five")])
        .as_of_join(events([(7, 'a'), (20, 'b')]))
        .on_late_left(|ts: Timestamp, l| late.borrow_mut().push((ts.unix_millis(), l)));
    let got = block_on((&mut join).collect::<Vec<_>>());
    assert_eq!(joined(got), [(10, "ten", Some('a'))]);
    assert_eq!(join.late_counts(), (1, 0));
    drop(join);
    assert_eq!(late.into_inner(), [(5, "five")]);

    // Within the allowed lateness it is joined as of its own time.
    let mut join = events([(10, "ten"), (5, "five")])
        .as_of_join(events([(3, 'z'), (7, 'a'), (20, 'b')]))
        .allowed_lateness(Duration::from_millis(5));
    let got = block_on((&mut join).collect::<Vec<_>>());
    assert_eq!(
        joined(got),
        [(10, "ten", Some('a')), (5, "five", Some('z'))]
    );
    assert_eq!(join.late_counts(), (0, 0));
}

#[test]
fn as_of_join_a_late_right_value_is_reported_never_silently_dropped() {
    // Right at 2 after right at 8: left at 5 was answered once right
    // passed it, so the value at 2 is late. (Left at 30 has the right side
    // read on past it.)
    let late = RefCell::new(Vec::new());
    let mut join = events([(5, "five"), (30, "thirty")])
        .as_of_join(events([(8, 'a'), (2, 'b'), (20, 'c')]))
        .on_late_right(|ts: Timestamp, r| late.borrow_mut().push((ts.unix_millis(), r)));
    let got = block_on((&mut join).collect::<Vec<_>>());
    assert_eq!(joined(got), [(5, "five", None), (30, "thirty", Some('c'))]);
    assert_eq!(join.late_counts(), (0, 1));
    drop(join);
    assert_eq!(late.into_inner(), [(2, 'b')]);

    // Within the allowed lateness, the left event waits for the right side
    // to be past it by the lateness, and the value at 2 is used.
    let mut join = events([(5, "five")])
        .as_of_join(events([(8, 'a'), (2, 'b'), (20, 'c')]))
        .allowed_lateness(Duration::from_millis(10));
    let got = block_on((&mut join).collect::<Vec<_>>());
    assert_eq!(joined(got), [(5, "five", Some('b'))]);
    assert_eq!(join.late_counts(), (0, 0));
}

#[test]
fn as_of_join_waits_for_the_right_side_to_pass_by_the_lateness() {
    let (left, right) = (AsyncStream::with_capacity(8), AsyncStream::with_capacity(8));
    let mut join = left
        .subscribe()
        .as_of_join(right.subscribe())
        .allowed_lateness(Duration::from_millis(5));
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    left.try_put((t(10), "a")).unwrap();
    right.try_put((t(12), 'x')).unwrap();
    assert!(
        join.poll_next_unpin(&mut cx).is_pending(),
        "right at 12 - 5 < 10"
    );
    right.try_put((t(7), 'y')).unwrap();
    right.try_put((t(15), 'z')).unwrap();
    assert!(
        join.poll_next_unpin(&mut cx).is_pending(),
        "right at 15 - 5 = 10"
    );
    right.try_put((t(16), 'w')).unwrap();
    assert_eq!(
        join.poll_next_unpin(&mut cx),
        Poll::Ready(Some((t(10), "a", Some('y'))))
    );
    assert_eq!(join.watermarks(), (Some(t(10)), Some(t(16))));
}

/// A stream that is pending (and wakes itself) at pseudo-random polls, to
/// vary how the two sides of a join interleave.
struct Stutter<S> {
    inner: S,
    state: u64,
}

impl<S: Stream + Unpin> Stream for Stutter<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<S::Item>> {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        if (self.state >> 33).is_multiple_of(3) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.inner.poll_next_unpin(cx)
    }
}

/// The join as it must be whatever the interleaving: each side's events
/// more than `lateness` older than an earlier event of their side are
/// late; every other left event, in arrival order, with the latest other
/// right value at or before it (the last to arrive among equal times).
fn join_reference(
    left: &[(i64, usize)],
    right: &[(i64, usize)],
    lateness: i64,
) -> (Joined<usize, usize>, (u64, u64)) {
    let on_time = |side: &[(i64, usize)]| {
        let mut watermark = i64::MIN;
        let mut late = 0;
        let kept: Vec<_> = side
            .iter()
            .filter(|(ts, _)| {
                let ok = *ts >= watermark.saturating_sub(lateness);
                watermark = watermark.max(*ts);
                late += u64::from(!ok);
                ok
            })
            .copied()
            .collect();
        (kept, late)
    };
    let ((left, late_left), (right, late_right)) = (on_time(left), on_time(right));
    let out = left
        .iter()
        .map(|&(ts, l)| {
            let r = right.iter().filter(|(t, _)| *t <= ts).fold(
                None::<(i64, usize)>,
                |best, &(t, r)| match best {
                    Some((b, _)) if b > t => best,
                    _ => Some((t, r)),
                },
            );
            (ts, l, r.map(|(_, r)| r))
        })
        .collect();
    (out, (late_left, late_right))
}

#[test]
fn as_of_join_on_out_of_order_input_matches_a_reference_model() {
    for seed in 1..=6 {
        let left = jittered(seed, 400);
        let right: Vec<_> = jittered(seed + 100, 300)
            .into_iter()
            .map(|(ms, i)| (ms - 250, i))
            .collect();
        for lateness in [0, 300, 5_000] {
            let (want, late) = join_reference(&left, &right, lateness);
            for limit in [usize::MAX, 3] {
                let mut join = Stutter {
                    inner: events(left.clone()),
                    state: seed,
                }
                .as_of_join(Stutter {
                    inner: events(right.clone()),
                    state: seed * 7,
                })
                .allowed_lateness(Duration::from_millis(lateness as u64))
                .buffer_limit(limit);
                let got = block_on((&mut join).collect::<Vec<_>>());
                assert_eq!(
                    joined(got),
                    want,
                    "seed {seed}, lateness {lateness}, limit {limit}"
                );
                assert_eq!(join.late_counts(), late);
            }
        }
    }
}

#[test]
fn as_of_join_at_the_ends_of_time() {
    let got = collect(
        stream::iter([
            (Timestamp::MIN, 1),
            (Timestamp::MAX, 2),
            (Timestamp::MAX, 3),
        ])
        .as_of_join(stream::iter([(Timestamp::MIN, 'a'), (Timestamp::MAX, 'b')]))
        .allowed_lateness(Duration::MAX),
    );
    assert_eq!(
        got,
        [
            (Timestamp::MIN, 1, Some('a')),
            (Timestamp::MAX, 2, Some('b')),
            (Timestamp::MAX, 3, Some('b')),
        ]
    );
}

/// Two always-ready inputs of different densities in time (one event every
/// 10 ms on one side, every 1 ms on the other, both ways round) are read
/// in about the order of their times: the buffers never hold more than a
/// few events, where reading both sides at the same pace would buffer
/// thousands. The answers are the reference model's.
#[test]
fn as_of_join_of_ready_inputs_of_different_densities_buffers_a_few_events() {
    let sparse: Vec<(i64, usize)> = (0..500).map(|i| (10 * i as i64, i)).collect();
    let dense: Vec<(i64, usize)> = (0..5_000).map(|i| (i as i64 + 3, i)).collect();
    for (left, right) in [(&sparse, &dense), (&dense, &sparse)] {
        let (want, late) = join_reference(left, right, 0);
        let mut join = events(left.clone()).as_of_join(events(right.clone()));
        let mut got = Vec::new();
        let mut most = (0, 0);
        while let Some(item) = block_on(join.next()) {
            got.push(item);
            let (l, r) = join.buffer_lens();
            most = (most.0.max(l), most.1.max(r));
        }
        assert_eq!(joined(got), want);
        assert_eq!(join.late_counts(), late);
        assert!(most.0 <= 2 && most.1 <= 2, "{most:?}");
    }
}

/// One producer feeds both sides of a join, in time order, through two
/// rendezvous topics: each put waits for the join to take it, so the join
/// must read a side ahead in time while the other has nothing ready, or
/// the producer and the join wait on each other.
#[test]
fn as_of_join_of_two_topics_fed_in_turn_by_one_producer_goes_on() {
    let el = EventLoop::starting_at(t(0)).simulated();
    let (left, right) = (AsyncStream::new(), AsyncStream::new());
    let (lefts, rights) = (left.subscribe(), right.subscribe());
    el.spawn(async move {
        // Right every 3 ms from 0, left every 10 ms from 1.
        for ms in 0..300 {
            if ms % 3 == 0 {
                right.put((t(ms), ms)).await.unwrap();
            }
            if ms % 10 == 1 {
                left.put((t(ms), ms)).await.unwrap();
            }
        }
    });
    let joined = el
        .block_on(async move {
            let join = std::pin::pin!(lefts.as_of_join(rights).collect::<Vec<_>>());
            let deadline = std::pin::pin!(sleep(Duration::from_secs(3600)));
            match futures::future::select(join, deadline).await {
                futures::future::Either::Left((joined, _)) => Some(joined),
                futures::future::Either::Right(_) => None,
            }
        })
        .expect("the join and the producer do not wait on each other");
    assert_eq!(joined.len(), 30);
    for (ts, l, r) in joined {
        assert_eq!(ts, t(l));
        assert_eq!(r, Some(l / 3 * 3), "left at {l}");
    }
}
