//! A pipeline against the same computation written by hand.
//!
//! source → pairwise → tumbling window → sink, over 10 million timestamped
//! events (`ts = i` ms, 1 s windows: 10 000 windows of 1 000 events); the
//! sink adds up each window's pair differences. Three contenders, all on
//! `futures::executor::block_on` over `futures::stream::iter` (the loops
//! iterate the same events):
//!
//! - `timecast`: `stream.pairwise().map(..).tumbling(1 s)` into
//!   `sink::handle(..).sink(..)`;
//! - `hand_loop/buffered`: one loop that, like the pipeline, gathers each
//!   window's items in a `Vec` and hands it over when the window closes;
//! - `hand_loop/streaming`: one loop that folds each difference into a
//!   running sum, keeping no window at all.
//!
//! Run with `cargo bench --bench pipeline`. Run without `--bench` (`cargo
//! test --benches`), it uses 100 times fewer events, as a quick smoke test.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use futures::executor::block_on;
use futures::{stream, Stream, StreamExt};
use timecast::ops::{StreamOps, Window};
use timecast::sink::handle;
use timecast::Timestamp;

const EVENTS: u64 = 10_000_000;
const WINDOW_NANOS: i64 = 1_000_000_000;

/// Event `i`: at `i` ms, with a value that is not a simple ramp.
fn event(i: u64) -> (Timestamp, u64) {
    let value = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (Timestamp::from_unix_millis(i as i64), value)
}

fn source(n: u64) -> impl Stream<Item = (Timestamp, u64)> + Unpin {
    stream::iter((0..n).map(event))
}

fn sum(window: &Window<u64>) -> u64 {
    window.values().fold(0, |s, d| s.wrapping_add(*d))
}

fn pipeline(n: u64) -> u64 {
    let mut total = 0u64;
    let windows = source(n)
        .pairwise()
        .map(|((_, a), (ts, b))| (ts, b.wrapping_sub(a)))
        .tumbling(Duration::from_secs(1));
    let run = handle(windows, |w: Window<u64>| Some(sum(&w)))
        .sink(|s| total = total.wrapping_add(s))
        .run();
    block_on(run).expect("the sink never closes");
    total
}

/// One loop, gathering each window's items as the pipeline does.
fn hand_loop_buffered(n: u64) -> u64 {
    block_on(async {
        let mut events = source(n);
        let mut total = 0u64;
        let mut previous: Option<u64> = None;
        let mut window: Vec<(Timestamp, u64)> = Vec::new();
        let mut end = i64::MIN;
        while let Some((ts, value)) = events.next().await {
            if let Some(previous) = previous {
                let t = ts.unix_nanos();
                if t >= end {
                    if !window.is_empty() {
                        let done = std::mem::take(&mut window);
                        total =
                            total.wrapping_add(done.iter().fold(0, |s, (_, d)| s.wrapping_add(*d)));
                        window = Vec::with_capacity(done.len());
                    }
                    end = t.div_euclid(WINDOW_NANOS) * WINDOW_NANOS + WINDOW_NANOS;
                }
                window.push((ts, value.wrapping_sub(previous)));
            }
            previous = Some(value);
        }
        total.wrapping_add(window.iter().fold(0, |s, (_, d)| s.wrapping_add(*d)))
    })
}

/// One loop, folding as it goes: no window kept.
fn hand_loop_streaming(n: u64) -> u64 {
    block_on(async {
        let mut events = source(n);
        let mut total = 0u64;
        let mut previous: Option<u64> = None;
        let mut window_sum = 0u64;
        let mut end = i64::MIN;
        while let Some((ts, value)) = events.next().await {
            if let Some(previous) = previous {
                let t = ts.unix_nanos();
                if t >= end {
                    total = total.wrapping_add(window_sum);
                    window_sum = 0;
                    end = t.div_euclid(WINDOW_NANOS) * WINDOW_NANOS + WINDOW_NANOS;
                }
                window_sum = window_sum.wrapping_add(value.wrapping_sub(previous));
            }
            previous = Some(value);
        }
        total.wrapping_add(window_sum)
    })
}

fn bench(c: &mut Criterion) {
    let events = if std::env::args().any(|arg| arg == "--bench") {
        EVENTS
    } else {
        EVENTS / 100
    };
    let expected = hand_loop_streaming(events);
    assert_eq!(pipeline(events), expected);
    assert_eq!(hand_loop_buffered(events), expected);

    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("timecast", |b| b.iter(|| pipeline(black_box(events))));
    group.bench_function("hand_loop/buffered", |b| {
        b.iter(|| hand_loop_buffered(black_box(events)))
    });
    group.bench_function("hand_loop/streaming", |b| {
        b.iter(|| hand_loop_streaming(black_box(events)))
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
