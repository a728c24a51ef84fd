//! Replay and timer throughput of the time layer, each measured side by side
//! with a bare loop doing the same work without an event loop, so the
//! results read as ratios.
//!
//! - `replay/8x1000000`: 8 past streams of 1M events each (event `i` of
//!   stream `s` at `8·i + s` ns, so the streams interleave), each spawned as
//!   a [`process_stream`] whose handler adds the value into a `Cell<u64>`.
//!   `timecast-simulated` runs them on `EventLoop::starting_at(t0)
//!   .simulated()`, `timecast-realtime` on the default real-time loop with
//!   every event before the wall clock (replayed as fast as possible, so it
//!   shows what pacing costs over the past), `timecast-fallible` the
//!   simulated loop with [`try_process_stream`] and a handler returning
//!   `Ok(())` (what checking for a failure costs). `heap-merge` is the baseline: a
//!   k-way merge of the same 8 lazy iterators through a
//!   `BinaryHeap<Reverse<(i64, u32, u64)>>` calling the same handler.
//! - `replay/1x8000000`: one stream of 8M events, against a plain `for`
//!   loop over the same iterator, and `clock-floor`: the same loop doing
//!   the least any replay in virtual time adds per event, setting a clock
//!   to the event's time (a handler may ask `now()`) and checking that no
//!   pending timer comes first; `shared-clock-floor` the same with the
//!   clock in memory the handler could read, as a loop's is.
//! - `timers/<pending>`: the hold model of a timer queue. `pending` tasks
//!   each sleep 4M / `pending` times in turn, each sleep a pseudo-random
//!   delay of up to a second, so exactly `pending` timers wait at every
//!   moment. One element is one timer inserted and fired; the time per
//!   element is the cost of a sleep with `pending` timers pending, and
//!   should grow like its logarithm. `binary-heap` is the baseline: the same
//!   schedule on a bare `BinaryHeap`. Spawning the tasks is not timed.
//!
//! Throughput is in elements: events dispatched, or timers fired.
//!
//! Before the benches, `main` checks memory once, with a counting global
//! allocator: the peak of bytes allocated (above what was live before) while
//! replaying 8 streams of 100k and of 1M events. Past events are pulled
//! lazily, so the peak must not grow with the number of events.
//!
//! Run everything (about eight minutes, three of them in `timers/1000000`),
//! or filter by name:
//!
//! ```text
//! cargo bench --bench replay
//! cargo bench --bench replay -- timers
//! ```
//!
//! Run without `--bench` (`cargo test --benches`), every size is divided by
//! 100 so the smoke test stays quick.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use timecast::{process_stream, sleep, try_process_stream, EventLoop, Timestamp};

/// Streams of the multi-stream replay.
const STREAMS: u64 = 8;
/// Events per stream of the multi-stream replay, at full scale.
const EVENTS_PER_STREAM: u64 = 1_000_000;
/// Timers pending in the timer benches, at full scale.
const PENDING: [u64; 3] = [10_000, 100_000, 1_000_000];
/// Timers fired per iteration of a timer bench, at full scale.
const FIRES: u64 = 4_000_000;
/// The longest delay of a sleep in the timer benches, in nanoseconds.
const MAX_DELAY_NANOS: u64 = 1_000_000_000;
/// When the clock starts: every event is long past.
const T0: Timestamp = Timestamp::UNIX_EPOCH;

/// Counts bytes allocated while [`Tracker`] is on, and their peak.
struct CountingAlloc;

static TRACKING: AtomicBool = AtomicBool::new(false);
/// Bytes live now minus bytes live when tracking started (negative if
/// older memory was freed).
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn record_alloc(bytes: usize) {
    if TRACKING.load(Ordering::Relaxed) {
        let bytes = bytes as isize;
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(live, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

fn record_free(bytes: usize) {
    if TRACKING.load(Ordering::Relaxed) {
        LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only
// observe sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            record_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            record_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        record_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            record_alloc(new_size);
            record_free(layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Tracks allocations from creation to [`finish`](Tracker::finish).
struct Tracker;

impl Tracker {
    fn start() -> Self {
        LIVE.store(0, Ordering::Relaxed);
        PEAK.store(0, Ordering::Relaxed);
        ALLOCATIONS.store(0, Ordering::Relaxed);
        TRACKING.store(true, Ordering::SeqCst);
        Tracker
    }

    /// Peak bytes allocated above the start, and the number of allocations.
    fn finish(self) -> (usize, usize) {
        TRACKING.store(false, Ordering::SeqCst);
        let peak = PEAK.load(Ordering::Relaxed).max(0) as usize;
        (peak, ALLOCATIONS.load(Ordering::Relaxed))
    }
}

/// The sizes of one run: full under `cargo bench`, a hundredth otherwise.
#[derive(Clone, Copy)]
struct Scale(u64);

impl Scale {
    fn from_args() -> Self {
        Scale(if std::env::args().any(|a| a == "--bench") {
            1
        } else {
            100
        })
    }

    fn of(self, n: u64) -> u64 {
        (n / self.0).max(1)
    }
}

/// Past of stream `stream` among `streams`: `events` values `0..events`,
/// value `i` at `streams·i + stream` ns, pulled lazily.
fn past(stream: u64, streams: u64, events: u64) -> impl Iterator<Item = (Timestamp, u64)> {
    (0..events).map(move |i| (Timestamp::from_unix_nanos((i * streams + stream) as i64), i))
}

/// The handler every variant calls: adds the value into `sum` (through
/// `black_box`, so the bare loops cannot fold the sum away).
fn add_into(sum: Rc<Cell<u64>>) -> impl FnMut(Timestamp, u64) + 'static {
    move |_ts, value| sum.set(sum.get().wrapping_add(black_box(value)))
}

/// What every replay of `streams` × `events` sums to.
fn expected_sum(streams: u64, events: u64) -> u64 {
    streams * (events * (events - 1) / 2)
}

/// How the timecast loop paces the replay.
#[derive(Clone, Copy)]
enum Mode {
    Simulated,
    RealTime,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Simulated => "timecast-simulated",
            Mode::RealTime => "timecast-realtime",
        }
    }

    fn event_loop(self) -> EventLoop {
        let el = EventLoop::starting_at(T0);
        match self {
            Mode::Simulated => el.simulated(),
            Mode::RealTime => el,
        }
    }
}

/// Replays `streams` × `events` through `process_stream`s; returns the sum.
fn replay_timecast(mode: Mode, streams: u64, events: u64) -> u64 {
    let el = mode.event_loop();
    let sum = Rc::new(Cell::new(0));
    for stream in 0..streams {
        el.spawn(process_stream(add_into(sum.clone())).past(past(stream, streams, events)));
    }
    el.run().expect("no handler panics");
    sum.get()
}

/// Replays `streams` × `events` through `try_process_stream`s whose handler
/// never fails, in simulated time; returns the sum.
fn replay_fallible(streams: u64, events: u64) -> u64 {
    let el = Mode::Simulated.event_loop();
    let sum = Rc::new(Cell::new(0));
    for stream in 0..streams {
        let mut add = add_into(sum.clone());
        let handler = move |ts: Timestamp, v: u64| {
            add(ts, v);
            Ok::<_, String>(())
        };
        el.spawn(try_process_stream(handler).past(past(stream, streams, events)));
    }
    el.run().expect("no handler panics");
    sum.get()
}

/// Replays `streams` × `events` through a bare k-way merge; returns the sum.
fn replay_heap_merge(streams: u64, events: u64) -> u64 {
    let sum = Rc::new(Cell::new(0));
    let mut handler = add_into(sum.clone());
    let mut sources: Vec<_> = (0..streams)
        .map(|stream| past(stream, streams, events))
        .collect();
    let mut heads = vec![None; sources.len()];
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (stream, source) in sources.iter_mut().enumerate() {
        if let Some((time, value)) = source.next() {
            heads[stream] = Some((time, value));
            heap.push(Reverse((time.unix_nanos(), stream as u32, 0_u64)));
        }
    }
    while let Some(Reverse((_, stream, seq))) = heap.pop() {
        let stream = stream as usize;
        let (time, value) = heads[stream].take().expect("a head per queued stream");
        handler(time, value);
        if let Some((time, value)) = sources[stream].next() {
            heads[stream] = Some((time, value));
            heap.push(Reverse((time.unix_nanos(), stream as u32, seq + 1)));
        }
    }
    sum.get()
}

/// Replays one stream of `events` through a plain `for` loop; returns the sum.
fn replay_for_loop(events: u64) -> u64 {
    let sum = Rc::new(Cell::new(0));
    let mut handler = add_into(sum.clone());
    for (time, value) in past(0, 1, events) {
        handler(time, value);
    }
    sum.get()
}

/// [`replay_for_loop`] with the least a replay in virtual time must add
/// per event: a check that nothing pending (a timer) comes first, and the
/// clock set to the event's time (a handler may ask `now()`): one load,
/// one comparison and one store, kept in the loop by volatile accesses;
/// returns the sum.
fn replay_clock_floor(events: u64) -> u64 {
    let sum = Rc::new(Cell::new(0));
    let mut handler = add_into(sum.clone());
    let mut clock = i64::MIN;
    let next_timer = i64::MAX;
    for (time, value) in past(0, 1, events) {
        let at = time.unix_nanos();
        // SAFETY: both point to live locals of this function.
        if at >= unsafe { std::ptr::read_volatile(&next_timer) } {
            panic!("no timer is pending");
        }
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(&mut clock, at) };
        handler(time, value);
    }
    black_box(clock);
    sum.get()
}

/// [`replay_clock_floor`] with the clock where a loop keeps it: in memory
/// the handler may read (`now()`), whose address the compiler does not
/// know apart from the handler's own state. A store to it may then change
/// what the handler reads, so the handler's state is loaded again after
/// each event's store instead of staying in a register, as it does in the
/// `for` loop and [`replay_clock_floor`]; returns the sum.
fn replay_shared_clock_floor(events: u64) -> u64 {
    let sum = Rc::new(Cell::new(0));
    let mut handler = add_into(sum.clone());
    let clock = Rc::new(Cell::new(i64::MIN));
    let next_timer = Rc::new(Cell::new(i64::MAX));
    let (clock, next_timer) = (black_box(&*clock), black_box(&*next_timer));
    for (time, value) in past(0, 1, events) {
        let at = time.unix_nanos();
        if at >= next_timer.get() {
            panic!("no timer is pending");
        }
        clock.set(at);
        handler(time, value);
    }
    sum.get()
}

/// Configures a group of long iterations: ten flat samples.
fn long_group<'a>(
    c: &'a mut Criterion,
    name: String,
    elements: u64,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Elements(elements))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

/// Benches the replay of `streams` × `events`, timecast against the bare
/// loop (a heap merge, or a `for` loop for one stream).
fn bench_replay(c: &mut Criterion, streams: u64, events: u64) {
    let mut group = long_group(c, format!("replay/{streams}x{events}"), streams * events);
    let expected = expected_sum(streams, events);
    for mode in [Mode::Simulated, Mode::RealTime] {
        group.bench_function(mode.name(), |b| {
            b.iter(|| assert_eq!(replay_timecast(mode, streams, events), expected));
        });
    }
    group.bench_function("timecast-fallible", |b| {
        b.iter(|| assert_eq!(replay_fallible(streams, events), expected));
    });
    if streams == 1 {
        group.bench_function("for-loop", |b| {
            b.iter(|| assert_eq!(replay_for_loop(events), expected));
        });
        group.bench_function("clock-floor", |b| {
            b.iter(|| assert_eq!(replay_clock_floor(events), expected));
        });
        group.bench_function("shared-clock-floor", |b| {
            b.iter(|| assert_eq!(replay_shared_clock_floor(events), expected));
        });
    } else {
        group.bench_function("heap-merge", |b| {
            b.iter(|| assert_eq!(replay_heap_merge(streams, events), expected));
        });
    }
    group.finish();
}

/// The delay of sleep `round` of task `task`: 1 ns to [`MAX_DELAY_NANOS`],
/// from a SplitMix64 hash.
fn delay_nanos(task: u64, round: u64) -> u64 {
    let mut z = (task << 32 | round).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    1 + z % MAX_DELAY_NANOS
}

/// A simulated loop with `pending` tasks spawned, each to sleep `rounds`
/// times; counts the sleeps that ended in the returned cell.
fn spawn_sleepers(pending: u64, rounds: u64) -> (EventLoop, Rc<Cell<u64>>) {
    let el = EventLoop::starting_at(T0).simulated();
    let fired = Rc::new(Cell::new(0));
    for task in 0..pending {
        let fired = fired.clone();
        el.spawn(async move {
            for round in 0..rounds {
                sleep(Duration::from_nanos(delay_nanos(task, round))).await;
                fired.set(fired.get() + 1);
            }
        });
    }
    (el, fired)
}

/// The schedule of [`spawn_sleepers`] on a bare heap; returns the timers
/// fired.
fn timers_heap(pending: u64, rounds: u64) -> u64 {
    let mut heap = BinaryHeap::with_capacity(pending as usize);
    let mut seq = 0_u64;
    for task in 0..pending {
        heap.push(Reverse((
            delay_nanos(task, 0) as i64,
            seq,
            task as u32,
            0_u32,
        )));
        seq += 1;
    }
    let mut fired = 0;
    while let Some(Reverse((due, _, task, round))) = heap.pop() {
        fired += 1;
        let round = round + 1;
        if u64::from(round) < rounds {
            let due = due + delay_nanos(u64::from(task), u64::from(round)) as i64;
            heap.push(Reverse((due, seq, task, round)));
            seq += 1;
        }
    }
    black_box(fired)
}

/// Benches timers with `pending` of them pending, timecast against the
/// bare heap.
fn bench_timers(c: &mut Criterion, pending: u64, fires: u64) {
    let rounds = (fires / pending).max(1);
    let fires = pending * rounds;
    let mut group = long_group(c, format!("timers/{pending}"), fires);
    group.bench_function("timecast", |b| {
        b.iter_batched(
            || spawn_sleepers(pending, rounds),
            |(el, fired)| {
                el.run().expect("no sleeper panics");
                assert_eq!(fired.get(), fires);
                el
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("binary-heap", |b| {
        b.iter(|| assert_eq!(timers_heap(pending, rounds), fires));
    });
    group.finish();
}

/// Prints the peak of memory allocated while replaying 8 streams, for two
/// lengths of stream.
fn memory_check(scale: Scale) {
    println!("memory: peak bytes allocated during a replay of {STREAMS} streams");
    println!(
        "{:<20} {:<10} {:>12} {:>12}",
        "mode", "events", "peak bytes", "allocations"
    );
    for mode in [Mode::Simulated, Mode::RealTime] {
        for events in [scale.of(100_000), scale.of(1_000_000)] {
            let tracker = Tracker::start();
            let sum = replay_timecast(mode, STREAMS, events);
            let (peak, allocations) = tracker.finish();
            assert_eq!(sum, expected_sum(STREAMS, events));
            let total = format!("{STREAMS}x{events}");
            println!(
                "{:<20} {total:<10} {peak:>12} {allocations:>12}",
                mode.name()
            );
        }
    }
}

fn main() {
    let scale = Scale::from_args();
    memory_check(scale);
    let mut criterion = Criterion::default().configure_from_args();
    let events = scale.of(EVENTS_PER_STREAM);
    bench_replay(&mut criterion, STREAMS, events);
    bench_replay(&mut criterion, 1, STREAMS * events);
    for pending in PENDING {
        bench_timers(&mut criterion, scale.of(pending), scale.of(FIRES));
    }
    criterion.final_summary();
}
