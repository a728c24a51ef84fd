//! What supervision costs per item: the same pipeline run bare and under a
//! [`Flow`], side by side, so the results read as a ratio (the goal is at
//! most 1.05×).
//!
//! The pipeline replays one past of 4M events (event `i` at `i` ns) through
//! a [`process_stream`] whose handler adds the value into a `Cell<u64>`, on
//! a simulated [`EventLoop`]:
//!
//! - `bare`: `el.block_on(process_stream(h).past(past))`.
//! - `flow`: the same future built by the factory of a flow's only
//!   pipeline, `el.block_on(flow.run())`: a supervised task, its outcome
//!   handed back, the report built.
//! - `flow-counted`: as `flow`, with the past wrapped in
//!   [`PipelineContext::past`](timecast::flow::PipelineContext::past): it
//!   ends at shutdown and counts every event for the status (items, time
//!   reached).
//!
//! Run with `cargo bench --bench flow`. Run without `--bench` (`cargo test
//! --benches`), it uses 100 times fewer events, as a quick smoke test.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;

use criterion::{BatchSize, Criterion, Throughput};
use timecast::flow::Flow;
use timecast::{process_stream, EventLoop, Timestamp};

fn past(events: u64) -> impl Iterator<Item = (Timestamp, u64)> {
    (0..events).map(|i| (Timestamp::from_unix_nanos(i as i64), i))
}

fn expected(events: u64) -> u64 {
    events * (events - 1) / 2
}

fn bare(events: u64) -> u64 {
    let sum = Rc::new(Cell::new(0u64));
    let s = sum.clone();
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    el.block_on(
        process_stream(move |_ts: Timestamp, v: u64| s.set(s.get() + black_box(v)))
            .past(past(events)),
    );
    sum.get()
}

fn under_flow(events: u64, counted: bool) -> u64 {
    let sum = Rc::new(Cell::new(0u64));
    let s = sum.clone();
    let flow = Flow::new().pipeline_with_context("replay", move |ctx| {
        let s = s.clone();
        async move {
            let handler = move |_ts: Timestamp, v: u64| s.set(s.get() + black_box(v));
            if counted {
                process_stream(handler).past(ctx.past(past(events))).await;
            } else {
                process_stream(handler).past(past(events)).await;
            }
            Ok::<_, String>(())
        }
    });
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let report = el.block_on(flow.run());
    assert!(report.is_ok());
    sum.get()
}

fn bench(c: &mut Criterion) {
    let events = if std::env::args().any(|arg| arg == "--bench") {
        4_000_000
    } else {
        40_000
    };
    assert_eq!(bare(events), expected(events));
    assert_eq!(under_flow(events, false), expected(events));
    assert_eq!(under_flow(events, true), expected(events));

    let mut group = c.benchmark_group(format!("flow/{events}"));
    group.throughput(Throughput::Elements(events));
    group.sample_size(20);
    group.bench_function("bare", |b| {
        b.iter_batched(|| (), |()| bare(events), BatchSize::PerIteration)
    });
    group.bench_function("flow", |b| {
        b.iter_batched(
            || (),
            |()| under_flow(events, false),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("flow-counted", |b| {
        b.iter_batched(
            || (),
            |()| under_flow(events, true),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
