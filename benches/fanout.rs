//! Fan-out throughput: one producer puts `MESSAGES` values, every consumer
//! receives all of them.
//!
//! Each configuration is one criterion group, named
//! `fanout/<executor>/<payload>/cap<capacity>/c<consumers>`, holding one
//! bench per implementation, so the results read as ratios:
//!
//! - `timecast`: [`timecast::AsyncStream::with_capacity`] (capacity 0 is a
//!   rendezvous).
//! - `timecast-put-all` (capacity ≥ 1): the same stream, the producer
//!   putting every value with one [`timecast::AsyncStream::put_all`]; the
//!   consumers are unchanged. (On a rendezvous `put_all` puts one value at
//!   a time, as `put` does, so the `cap0` rows leave it out.)
//! - `tokio-broadcast`: `tokio::sync::broadcast`, given room for every
//!   message so it never lags (it is lossy otherwise: a lag fails the bench).
//!   It applies no backpressure, whatever the capacity of the row.
//! - `async-broadcast`: `async_broadcast` with the row's capacity, lossless
//!   (overflow off). It has no rendezvous: in the `cap0` rows it runs with
//!   capacity 1 and is named `async-broadcast-cap1`.
//! - `clone-floor` (`single` rows only): no channel, only the work any
//!   lossless broadcast that hands every consumer its own value must do:
//!   build each value, clone it for all consumers but one, drop every
//!   copy. Each value is dropped as soon as it is made, so the allocator
//!   serves every request from its fastest cache: no implementation can
//!   beat it, and it shows how much of a row's cost is the payload's.
//! - `held-floor` (`single` rows only): the same work in the order the
//!   channels do it on one thread: `max(capacity, 1)` values made, then
//!   each consumer in turn takes them all, so the allocator frees and
//!   serves them in bursts. It shows what that order adds to the floor.
//! - `sync-floor` (`single` rows of capacity ≥ 1 only): `held-floor` plus
//!   the least synchronization any lossless broadcast with backpressure
//!   and several producers does (see [`run_sync_floor`]): one
//!   compare-and-swap per message, one atomic read-modify-write per
//!   consumer per message, no futures. It is the floor for a channel's own
//!   cost.
//!
//! The matrix: executors `single` (the producer and every consumer joined
//! on one thread by `futures::executor::block_on`) and `threads` (a tokio
//! runtime with two worker threads, producer and consumers spawned as
//! tasks); payloads `u64` and `string` (`format!("{i}")`, built by the
//! producer); capacities 0, 64 and 1024; 1, 4 and 16 consumers.
//!
//! Each channel runs the producer and consumer loops its users write
//! (`while let Some(v) = consumer.recv().await`, and its peers' own
//! equivalents): a loop shared by all, calling each channel through one
//! more `async fn`, would add a future per message that no user pays.
//!
//! The timed region runs the producer and consumers to completion, dropping
//! every value and the channel; building the channel and subscribing are
//! not timed. Throughput is in elements: one element is one message
//! delivered to one consumer, so `time / (MESSAGES * consumers)` is the cost
//! per message per consumer.
//!
//! Three more groups run first. `put/u64/cap1024/c<consumers>` times the
//! producer's side alone (see [`bench_put_side`]): `put` against `put_all`
//! and `try_put`, with tokio's `send` beside them.
//! `rendezvous/threads/u64/c1` hands each message from one plain thread to
//! another through a rendezvous, with blocking calls (see
//! [`bench_blocking_threads`]): timecast against crossbeam-channel's and
//! flume's `bounded(0)` and std's `sync_channel(0)`;
//! `blocking/threads/u64/cap1024/c1` does the same with room for 1024
//! values.
//!
//! Run everything (about ten minutes), or filter by name:
//!
//! ```text
//! cargo bench --bench fanout
//! cargo bench --bench fanout -- fanout/single/u64/cap1024
//! ```
//!
//! With `--paired` (under a minute on a quiet host; a filter may follow),
//! criterion is left out: the one-thread rows of capacity ≥ 1 run their
//! implementations in turn, round after round, and the bench prints each
//! row's median time and its ratios to timecast, the medians of the ratios
//! within each round (see [`paired`]). Three more rows run there,
//! `timecast-try`: the same stream driven without futures ([`run_try`]),
//! `timecast-try-task`: that loop in one task ([`run_try_in_task`]), and
//! `timecast-sink`: the producer forwards its values into
//! [`timecast::AsyncStream::sink`] (`StreamExt::forward`). Its last rows,
//! `fanout/single/<payload>/live/cap64/c<consumers>`, run the producer
//! live: it yields after every value, as a source of live data does
//! between events, so that each value finds its consumers waiting and
//! wakes them (see [`paired_live`]); timecast, tokio's broadcast and
//! async-broadcast.
//! This host's speed changes over time, and criterion, which times one
//! implementation after another, can meet two speeds in one group; the
//! ratios of one round cannot. Where the compiler places each loop moves
//! a row by up to 15 % from one build to another (an unrelated change to
//! this file is enough); to compare builds, align every loop:
//! `RUSTFLAGS="-C llvm-args=-align-loops=64" CARGO_TARGET_DIR=target/aligned`.
//!
//! ```text
//! cargo bench --bench fanout -- --paired
//! cargo bench --bench fanout -- --paired u64/cap1024/c1/
//! cargo bench --bench fanout -- --paired live
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use futures::future::{join, join_all};

/// Values each producer puts per iteration: enough to amortize spawning.
const MESSAGES: u64 = 10_000;
const CAPACITIES: [usize; 3] = [0, 64, 1024];
const CONSUMERS: [usize; 3] = [1, 4, 16];

/// A value sent through the channels.
trait Payload: Clone + Debug + Send + Sync + 'static {
    const NAME: &'static str;

    /// The `i`-th value the producer sends.
    fn make(i: u64) -> Self;
}

impl Payload for u64 {
    const NAME: &'static str = "u64";

    fn make(i: u64) -> Self {
        i
    }
}

impl Payload for String {
    const NAME: &'static str = "string";

    fn make(i: u64) -> Self {
        format!("{i}")
    }
}

/// A broadcast channel under test: one sender, many receivers, closed when
/// the sender is dropped. The producer and consumer loops are the ones its
/// users write, one per channel: a shared generic loop would wrap each
/// send and receive in one more future, whose cost (a few nanoseconds a
/// message) every channel would pay and that no user does.
trait Channel<T: Payload>: 'static {
    const NAME: &'static str;
    type Tx: Send + Sync + 'static;
    type Rx: Send + 'static;

    /// The bench name in a row of the given capacity.
    fn id(_capacity: usize) -> String {
        Self::NAME.to_owned()
    }

    /// Builds a channel of `capacity` with `consumers` receivers.
    fn open(capacity: usize, consumers: usize) -> (Self::Tx, Vec<Self::Rx>);

    /// Sends every value of `values`, in order, then closes the channel
    /// by dropping `tx`.
    fn produce(
        tx: Self::Tx,
        values: impl Iterator<Item = T> + Send,
    ) -> impl Future<Output = ()> + Send;

    /// Receives until the channel is closed and drained; returns how many
    /// values came.
    fn consume(rx: Self::Rx) -> impl Future<Output = u64> + Send;
}

/// timecast's stream, `open` and consumers' loop, with the producer's
/// loop `P`: one `put` per value ([`PutEach`]), one `put_all`
/// ([`PutAllAtOnce`]), or `forward` into the stream's sink ([`ViaSink`]).
struct Timecast<P>(std::marker::PhantomData<P>);

/// How a timecast row's producer puts its values.
trait Producer<T: Payload>: Send + Sync + 'static {
    const NAME: &'static str;

    /// Puts every value of `values`, in order, then drops `tx`.
    fn produce(
        tx: timecast::AsyncStream<T>,
        values: impl Iterator<Item = T> + Send,
    ) -> impl Future<Output = ()> + Send;
}

struct PutEach;

impl<T: Payload> Producer<T> for PutEach {
    const NAME: &'static str = "timecast";

    async fn produce(tx: timecast::AsyncStream<T>, values: impl Iterator<Item = T> + Send) {
        for value in values {
            tx.put(value).await.expect("stream closed while sending");
        }
    }
}

struct PutAllAtOnce;

impl<T: Payload> Producer<T> for PutAllAtOnce {
    const NAME: &'static str = "timecast-put-all";

    async fn produce(tx: timecast::AsyncStream<T>, values: impl Iterator<Item = T> + Send) {
        if tx.put_all(values).await.is_err() {
            panic!("stream closed while sending");
        }
    }
}

struct ViaSink;

impl<T: Payload> Producer<T> for ViaSink {
    const NAME: &'static str = "timecast-sink";

    async fn produce(tx: timecast::AsyncStream<T>, values: impl Iterator<Item = T> + Send) {
        use futures::StreamExt;
        let sink = tx.sink();
        drop(tx);
        if futures::stream::iter(values)
            .map(Ok)
            .forward(sink)
            .await
            .is_err()
        {
            panic!("stream closed while sending");
        }
    }
}

impl<T: Payload, P: Producer<T>> Channel<T> for Timecast<P> {
    const NAME: &'static str = P::NAME;
    type Tx = timecast::AsyncStream<T>;
    type Rx = timecast::Consumer<T>;

    fn open(capacity: usize, consumers: usize) -> (Self::Tx, Vec<Self::Rx>) {
        let stream = timecast::AsyncStream::with_capacity(capacity);
        let rxs = (0..consumers).map(|_| stream.subscribe()).collect();
        (stream, rxs)
    }

    fn produce(
        tx: Self::Tx,
        values: impl Iterator<Item = T> + Send,
    ) -> impl Future<Output = ()> + Send {
        P::produce(tx, values)
    }

    async fn consume(mut rx: Self::Rx) -> u64 {
        let mut received = 0;
        while let Some(value) = rx.recv().await {
            black_box(value);
            received += 1;
        }
        received
    }
}

struct TokioBroadcast;

impl<T: Payload> Channel<T> for TokioBroadcast {
    const NAME: &'static str = "tokio-broadcast";
    type Tx = tokio::sync::broadcast::Sender<T>;
    type Rx = tokio::sync::broadcast::Receiver<T>;

    fn open(_capacity: usize, consumers: usize) -> (Self::Tx, Vec<Self::Rx>) {
        // Lossy: only room for every message guarantees no lag.
        let (tx, rx) = tokio::sync::broadcast::channel(MESSAGES as usize);
        let rxs = std::iter::once(rx)
            .chain((1..consumers).map(|_| tx.subscribe()))
            .collect();
        (tx, rxs)
    }

    async fn produce(tx: Self::Tx, values: impl Iterator<Item = T> + Send) {
        for value in values {
            tx.send(value).expect("no receiver");
        }
    }

    async fn consume(mut rx: Self::Rx) -> u64 {
        use tokio::sync::broadcast::error::RecvError;
        let mut received = 0;
        loop {
            match rx.recv().await {
                Ok(value) => {
                    black_box(value);
                    received += 1;
                }
                Err(RecvError::Closed) => return received,
                Err(RecvError::Lagged(n)) => panic!("tokio broadcast lost {n} messages"),
            }
        }
    }
}

struct AsyncBroadcast;

impl<T: Payload> Channel<T> for AsyncBroadcast {
    const NAME: &'static str = "async-broadcast";
    type Tx = async_broadcast::Sender<T>;
    type Rx = async_broadcast::Receiver<T>;

    fn id(capacity: usize) -> String {
        match capacity {
            0 => format!("{}-cap1", <Self as Channel<T>>::NAME),
            _ => <Self as Channel<T>>::NAME.to_owned(),
        }
    }

    fn open(capacity: usize, consumers: usize) -> (Self::Tx, Vec<Self::Rx>) {
        let (tx, rx) = async_broadcast::broadcast(capacity.max(1));
        let rxs = std::iter::once(rx.clone())
            .cycle()
            .take(consumers - 1)
            .chain(std::iter::once(rx))
            .collect();
        (tx, rxs)
    }

    async fn produce(tx: Self::Tx, values: impl Iterator<Item = T> + Send) {
        for value in values {
            tx.broadcast_direct(value).await.expect("channel closed");
        }
    }

    async fn consume(mut rx: Self::Rx) -> u64 {
        use async_broadcast::RecvError;
        let mut received = 0;
        loop {
            match rx.recv_direct().await {
                Ok(value) => {
                    black_box(value);
                    received += 1;
                }
                Err(RecvError::Closed) => return received,
                Err(RecvError::Overflowed(n)) => panic!("async-broadcast lost {n} messages"),
            }
        }
    }
}

/// A channel whose producer can also run live: it yields to the other
/// tasks after every value, so that the consumers take each value before
/// the next is sent (see [`paired_live`]).
trait LiveChannel<T: Payload>: Channel<T> {
    /// Sends every value of `values`, yielding after each, then closes the
    /// channel by dropping `tx`.
    fn produce_live(
        tx: Self::Tx,
        values: impl Iterator<Item = T> + Send,
    ) -> impl Future<Output = ()> + Send;
}

impl<T: Payload> LiveChannel<T> for Timecast<PutEach> {
    async fn produce_live(tx: Self::Tx, values: impl Iterator<Item = T> + Send) {
        for value in values {
            tx.put(value).await.expect("stream closed while sending");
            yield_now().await;
        }
    }
}

impl<T: Payload> LiveChannel<T> for TokioBroadcast {
    async fn produce_live(tx: Self::Tx, values: impl Iterator<Item = T> + Send) {
        for value in values {
            tx.send(value).expect("no receiver");
            yield_now().await;
        }
    }
}

impl<T: Payload> LiveChannel<T> for AsyncBroadcast {
    async fn produce_live(tx: Self::Tx, values: impl Iterator<Item = T> + Send) {
        for value in values {
            tx.broadcast_direct(value).await.expect("channel closed");
            yield_now().await;
        }
    }
}

/// [`run_channel`] with the producer live ([`LiveChannel::produce_live`]),
/// on one thread.
fn run_live<T: Payload, C: LiveChannel<T>>(capacity: usize, consumers: usize) -> Duration {
    let (tx, rxs) = C::open(capacity, consumers);
    let start = Instant::now();
    let consumers_done = join_all(rxs.into_iter().map(C::consume));
    let produce = C::produce_live(tx, (0..MESSAGES).map(T::make));
    let received = futures::executor::block_on(join(produce, consumers_done)).1;
    let elapsed = start.elapsed();
    assert_eq!(received, vec![MESSAGES; consumers], "a value was lost");
    elapsed
}

/// Puts `MESSAGES` values, then closes the channel by dropping `tx`.
fn produce<T: Payload, C: Channel<T>>(tx: C::Tx) -> impl Future<Output = ()> + Send {
    C::produce(tx, (0..MESSAGES).map(T::make))
}

/// Where the producer and consumers run.
enum Executor {
    /// All joined into one future, polled by `futures::executor::block_on`.
    Single,
    /// Spawned as tasks on a two-worker tokio runtime.
    Threads(tokio::runtime::Runtime),
}

impl Executor {
    fn name(&self) -> &'static str {
        match self {
            Executor::Single => "single",
            Executor::Threads(_) => "threads",
        }
    }

    /// Runs one producer and the consumers of `rxs` to completion; returns
    /// how many values each consumer received.
    fn run<T: Payload, C: Channel<T>>(&self, tx: C::Tx, rxs: Vec<C::Rx>) -> Vec<u64> {
        match self {
            Executor::Single => {
                let consumers = join_all(rxs.into_iter().map(C::consume));
                futures::executor::block_on(join(produce::<T, C>(tx), consumers)).1
            }
            Executor::Threads(runtime) => runtime.block_on(async {
                let consumers: Vec<_> = rxs
                    .into_iter()
                    .map(|rx| tokio::spawn(C::consume(rx)))
                    .collect();
                tokio::spawn(produce::<T, C>(tx))
                    .await
                    .expect("producer panicked");
                join_all(consumers)
                    .await
                    .into_iter()
                    .map(|received| received.expect("consumer panicked"))
                    .collect()
            }),
        }
    }
}

/// Runs channel `C` once in one configuration: opens it (untimed), then
/// times the producer and consumers to completion.
fn run_channel<T: Payload, C: Channel<T>>(
    executor: &Executor,
    capacity: usize,
    consumers: usize,
) -> Duration {
    let (tx, rxs) = C::open(capacity, consumers);
    let start = Instant::now();
    let received = executor.run::<T, C>(tx, rxs);
    let elapsed = start.elapsed();
    assert_eq!(received, vec![MESSAGES; consumers], "a value was lost");
    elapsed
}

/// timecast without futures, for `--paired`: the producer `try_put`s
/// until the stream is full, then each consumer `try_recv`s until it is
/// empty, in turn, on one thread. The gap between this row and `timecast`
/// is what the futures and wake-ups cost.
fn run_try<T: Payload>(capacity: usize, consumers: usize) -> Duration {
    time_try_loop::<T>(capacity, consumers, |stream, rxs, received| {
        let mut i = 0;
        while i < MESSAGES {
            try_turn(stream, rxs, received, &mut i);
        }
    })
}

/// [`run_try`]'s loop in one task, as a consumer that drains what is
/// waiting without a future per value writes it: polled by
/// `futures::executor::block_on`, yielding once per turn. The values
/// move through the task's state and the inlined `try_recv`.
fn run_try_in_task<T: Payload>(capacity: usize, consumers: usize) -> Duration {
    time_try_loop::<T>(capacity, consumers, |stream, rxs, received| {
        futures::executor::block_on(async {
            let mut i = 0;
            while i < MESSAGES {
                try_turn(stream, rxs, received, &mut i);
                yield_now().await;
            }
        });
    })
}

/// Opens a stream of `capacity` with `consumers` consumers (untimed), then
/// times `run`, which puts `MESSAGES` values with [`try_turn`] and counts
/// what each consumer receives.
fn time_try_loop<T: Payload>(
    capacity: usize,
    consumers: usize,
    run: impl FnOnce(&timecast::AsyncStream<T>, &mut [timecast::Consumer<T>], &mut [u64]),
) -> Duration {
    let stream = timecast::AsyncStream::<T>::with_capacity(capacity);
    let mut rxs: Vec<_> = (0..consumers).map(|_| stream.subscribe()).collect();
    let mut received = vec![0; consumers];
    let start = Instant::now();
    run(&stream, &mut rxs, &mut received);
    drop((stream, rxs));
    let elapsed = start.elapsed();
    assert_eq!(received, vec![MESSAGES; consumers], "a value was lost");
    elapsed
}

/// One turn of the loops without futures: `try_put`s from value `*i` on
/// until the stream is full, then each consumer `try_recv`s until it is
/// empty. Inlined, so that a task's loop holds the values as a caller's
/// own code would.
#[inline(always)]
fn try_turn<T: Payload>(
    stream: &timecast::AsyncStream<T>,
    rxs: &mut [timecast::Consumer<T>],
    received: &mut [u64],
    i: &mut u64,
) {
    while *i < MESSAGES && stream.try_put(T::make(black_box(*i))).is_ok() {
        *i += 1;
    }
    for (rx, received) in rxs.iter_mut().zip(received) {
        while let Ok(value) = rx.try_recv() {
            black_box(value);
            *received += 1;
        }
    }
}

/// Returns `Pending` once, waking itself: the task's turn ends.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// Benches channel `C` in one configuration.
fn bench_channel<T: Payload, C: Channel<T>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    executor: &Executor,
    capacity: usize,
    consumers: usize,
) {
    group.bench_function(C::id(capacity), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| run_channel::<T, C>(executor, capacity, consumers))
                .sum()
        });
    });
}

/// The payload's own cost, with no channel, for `MESSAGES` values: per
/// message, one value built, `consumers - 1` clones, `consumers` drops.
fn run_clone_floor<T: Payload>(consumers: usize) -> Duration {
    let start = Instant::now();
    for i in 0..MESSAGES {
        let value = T::make(black_box(i));
        for _ in 1..consumers {
            drop(black_box(value.clone()));
        }
        drop(black_box(value));
    }
    start.elapsed()
}

/// The work of [`run_clone_floor`] in the order a channel of `capacity`
/// does it on one thread: the producer makes `max(capacity, 1)` values,
/// then each consumer in turn takes them all, every one but the last
/// cloning and dropping each, the last dropping the values themselves. The
/// allocator then frees and serves values in bursts, not one at a time.
fn run_held_floor<T: Payload>(capacity: usize, consumers: usize) -> Duration {
    let burst = capacity.max(1);
    let mut buffered = Vec::with_capacity(burst);
    let start = Instant::now();
    let mut i = 0;
    while i < MESSAGES {
        let end = MESSAGES.min(i + burst as u64);
        buffered.extend((i..end).map(|i| T::make(black_box(i))));
        i = end;
        for _ in 1..consumers {
            for value in &buffered {
                drop(black_box(value.clone()));
            }
        }
        for value in buffered.drain(..) {
            drop(black_box(value));
        }
    }
    start.elapsed()
}

/// [`run_held_floor`] plus the least synchronization a lossless broadcast
/// with backpressure and several producers does per message, on a ring of
/// `max(capacity, 1)` slots: the producer claims each slot with one
/// compare-and-swap and publishes it with a release store of the tail;
/// each consumer loads the tail, then releases the slot with one atomic
/// read-modify-write on its count, and the last one moves the value out.
/// The read-modify-write is the least a consumer can do: freeing room must
/// also tell whether a producer waits for it, and a store followed by a
/// load of another location would need a full fence, which costs as much.
/// No futures, no wake-ups, no waits: no channel of this kind can beat it.
fn run_sync_floor<T: Payload>(capacity: usize, consumers: usize) -> Duration {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    let burst = capacity.max(1);
    let len = burst.next_power_of_two();
    let mask = len as u64 - 1;
    let mut values: Vec<Option<T>> = (0..len).map(|_| None).collect();
    let counts: Vec<AtomicUsize> = (0..len).map(|_| AtomicUsize::new(0)).collect();
    // Behind `black_box`, as a channel's shared words are: the compiler
    // may not treat them as this loop's own (it dropped the tail's store
    // per message when they were plain locals, keeping only the last).
    let (claim, tail) = (AtomicU64::new(0), AtomicU64::new(0));
    let (claim, tail) = (black_box(&claim), black_box(&tail));
    let mut positions = vec![0u64; consumers];
    let start = Instant::now();
    let mut i = 0;
    while i < MESSAGES {
        let end = MESSAGES.min(i + burst as u64);
        while i < end {
            let seq = claim.load(Ordering::Acquire);
            claim
                .compare_exchange(seq, seq + 1, Ordering::AcqRel, Ordering::Relaxed)
                .expect("one producer");
            let slot = (seq & mask) as usize;
            values[slot] = Some(T::make(black_box(i)));
            counts[slot].store(consumers + 1, Ordering::Relaxed);
            tail.store(seq + 1, Ordering::Release);
            i += 1;
        }
        for pos in &mut positions {
            while *pos != tail.load(Ordering::Acquire) {
                let slot = (*pos & mask) as usize;
                *pos += 1;
                let count = &counts[slot];
                if count.load(Ordering::Acquire) == 2 {
                    let value = values[slot].take();
                    black_box(count.swap(0, Ordering::AcqRel));
                    drop(black_box(value));
                } else {
                    let value = values[slot].as_ref().cloned();
                    black_box(count.fetch_sub(1, Ordering::AcqRel));
                    drop(black_box(value));
                }
            }
        }
    }
    start.elapsed()
}

/// Benches a floor: `run` times one pass over `MESSAGES` values.
fn bench_floor(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, run: impl Fn() -> Duration) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run()).sum())
    });
}

/// Benches every implementation, in every configuration, for payload `T`.
fn bench_payload<T: Payload>(c: &mut Criterion, executor: &Executor) {
    for capacity in CAPACITIES {
        for consumers in CONSUMERS {
            let mut group = c.benchmark_group(format!(
                "fanout/{}/{}/cap{capacity}/c{consumers}",
                executor.name(),
                T::NAME,
            ));
            group
                .throughput(Throughput::Elements(MESSAGES * consumers as u64))
                .sampling_mode(SamplingMode::Flat)
                .sample_size(10)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(2));
            bench_channel::<T, Timecast<PutEach>>(&mut group, executor, capacity, consumers);
            if capacity > 0 {
                bench_channel::<T, Timecast<PutAllAtOnce>>(
                    &mut group, executor, capacity, consumers,
                );
            }
            bench_channel::<T, TokioBroadcast>(&mut group, executor, capacity, consumers);
            bench_channel::<T, AsyncBroadcast>(&mut group, executor, capacity, consumers);
            if let Executor::Single = executor {
                bench_floor(&mut group, "clone-floor", || {
                    run_clone_floor::<T>(consumers)
                });
                bench_floor(&mut group, "held-floor", || {
                    run_held_floor::<T>(capacity, consumers)
                });
                if capacity > 0 {
                    bench_floor(&mut group, "sync-floor", || {
                        run_sync_floor::<T>(capacity, consumers)
                    });
                }
            }
            group.finish();
        }
    }
}

/// Benches the producer's side alone: `put/u64/cap1024/c<consumers>` times
/// putting 1024 `u64`s into a stream of capacity 1024 whose consumers have
/// taken everything before, so that no put waits; the consumers then take
/// the values, untimed. The stream lives through the sample, so its buffer
/// has grown before the first timed put. Rows: `put` (each value awaited),
/// `put-all` (one `put_all` of the 1024), `try-put`, and tokio's
/// broadcast `send` as the peer.
fn bench_put_side(c: &mut Criterion) {
    const BURST: u64 = 1024;
    for consumers in [1, 16] {
        let mut group = c.benchmark_group(format!("put/u64/cap{BURST}/c{consumers}"));
        group
            .throughput(Throughput::Elements(BURST))
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2));
        for kind in ["put", "put-all", "try-put"] {
            group.bench_function(kind, |b| {
                let stream = timecast::AsyncStream::with_capacity(BURST as usize);
                let mut rxs: Vec<_> = (0..consumers).map(|_| stream.subscribe()).collect();
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        match kind {
                            "put" => futures::executor::block_on(async {
                                for i in 0..BURST {
                                    stream.put(black_box(i)).await.expect("open");
                                }
                            }),
                            "put-all" => futures::executor::block_on(async {
                                if stream.put_all((0..BURST).map(black_box)).await.is_err() {
                                    panic!("closed");
                                }
                            }),
                            _ => {
                                for i in 0..BURST {
                                    stream.try_put(black_box(i)).expect("room");
                                }
                            }
                        }
                        elapsed += start.elapsed();
                        for rx in &mut rxs {
                            for _ in 0..BURST {
                                black_box(rx.try_recv().expect("a value"));
                            }
                        }
                    }
                    elapsed
                });
            });
        }
        group.bench_function("tokio-broadcast", |b| {
            let (tx, rx) = tokio::sync::broadcast::channel(BURST as usize);
            let mut rxs: Vec<_> = std::iter::once(rx)
                .chain((1..consumers).map(|_| tx.subscribe()))
                .collect();
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for i in 0..BURST {
                        tx.send(black_box(i)).expect("a receiver");
                    }
                    elapsed += start.elapsed();
                    for rx in &mut rxs {
                        for _ in 0..BURST {
                            black_box(rx.try_recv().expect("a value"));
                        }
                    }
                }
                elapsed
            });
        });
        group.finish();
    }
}

/// A bounded channel's two ends, used from plain threads with blocking
/// calls.
trait Blocking: Send + 'static {
    type Tx: Send + 'static;
    type Rx: Send + 'static;

    /// A channel of `capacity` (0: a rendezvous).
    fn open(capacity: usize) -> (Self::Tx, Self::Rx);
    fn send(tx: &Self::Tx, value: u64);
    /// The next value, or `None` once the sender is gone.
    fn recv(rx: &mut Self::Rx) -> Option<u64>;
}

struct TimecastBlocking;

impl Blocking for TimecastBlocking {
    type Tx = timecast::AsyncStream<u64>;
    type Rx = timecast::Consumer<u64>;

    fn open(capacity: usize) -> (Self::Tx, Self::Rx) {
        let stream = timecast::AsyncStream::with_capacity(capacity);
        let consumer = stream.subscribe();
        (stream, consumer)
    }

    fn send(tx: &Self::Tx, value: u64) {
        tx.put_blocking(value).expect("open");
    }

    fn recv(rx: &mut Self::Rx) -> Option<u64> {
        rx.recv_blocking()
    }
}

struct CrossbeamBlocking;

impl Blocking for CrossbeamBlocking {
    type Tx = crossbeam_channel::Sender<u64>;
    type Rx = crossbeam_channel::Receiver<u64>;

    fn open(capacity: usize) -> (Self::Tx, Self::Rx) {
        crossbeam_channel::bounded(capacity)
    }

    fn send(tx: &Self::Tx, value: u64) {
        tx.send(value).expect("a receiver");
    }

    fn recv(rx: &mut Self::Rx) -> Option<u64> {
        rx.recv().ok()
    }
}

struct FlumeBlocking;

impl Blocking for FlumeBlocking {
    type Tx = flume::Sender<u64>;
    type Rx = flume::Receiver<u64>;

    fn open(capacity: usize) -> (Self::Tx, Self::Rx) {
        flume::bounded(capacity)
    }

    fn send(tx: &Self::Tx, value: u64) {
        tx.send(value).expect("a receiver");
    }

    fn recv(rx: &mut Self::Rx) -> Option<u64> {
        rx.recv().ok()
    }
}

struct StdBlocking;

impl Blocking for StdBlocking {
    type Tx = std::sync::mpsc::SyncSender<u64>;
    type Rx = std::sync::mpsc::Receiver<u64>;

    fn open(capacity: usize) -> (Self::Tx, Self::Rx) {
        std::sync::mpsc::sync_channel(capacity)
    }

    fn send(tx: &Self::Tx, value: u64) {
        tx.send(value).expect("a receiver");
    }

    fn recv(rx: &mut Self::Rx) -> Option<u64> {
        rx.recv().ok()
    }
}

/// Benches channel `R` of `capacity`: the calling thread sends `MESSAGES`
/// values, a consumer thread receives them; the time includes spawning
/// and joining that thread.
fn bench_blocking<R: Blocking>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    capacity: usize,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let (tx, mut rx) = R::open(capacity);
                let start = Instant::now();
                let consumer = std::thread::spawn(move || {
                    let mut received = 0;
                    while let Some(value) = R::recv(&mut rx) {
                        black_box(value);
                        received += 1;
                    }
                    received
                });
                for i in 0..MESSAGES {
                    R::send(&tx, black_box(i));
                }
                drop(tx);
                let received = consumer.join().expect("consumer panicked");
                elapsed += start.elapsed();
                assert_eq!(received, MESSAGES, "a value was lost");
            }
            elapsed
        });
    });
}

/// `rendezvous/threads/u64/c1`: a rendezvous (capacity 0) between two
/// plain threads, each message handed from the producer's thread to the
/// consumer's, with blocking calls: timecast's `put_blocking` /
/// `recv_blocking` beside crossbeam-channel's and flume's `bounded(0)` and
/// std's `sync_channel(0)`. `blocking/threads/u64/cap1024/c1`: the same
/// with room for 1024 values, where a call blocks only on a full or empty
/// channel.
fn bench_blocking_threads(c: &mut Criterion) {
    for (group, capacity) in [
        ("rendezvous/threads/u64/c1", 0),
        ("blocking/threads/u64/cap1024/c1", 1024),
    ] {
        let mut group = c.benchmark_group(group);
        group
            .throughput(Throughput::Elements(MESSAGES))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        bench_blocking::<TimecastBlocking>(&mut group, "timecast", capacity);
        bench_blocking::<CrossbeamBlocking>(&mut group, "crossbeam-channel", capacity);
        bench_blocking::<FlumeBlocking>(&mut group, "flume", capacity);
        bench_blocking::<StdBlocking>(&mut group, "std-sync-channel", capacity);
        group.finish();
    }
}

fn fanout(c: &mut Criterion) {
    let threads = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    for executor in [Executor::Single, Executor::Threads(threads)] {
        bench_payload::<u64>(c, &executor);
        bench_payload::<String>(c, &executor);
    }
}

/// Rounds of `--paired`, after the warm-up ones; odd, for a median.
const PAIRED_ROUNDS: usize = 51;
const PAIRED_WARM_UP: usize = 5;
/// Passes of each implementation per round.
const PAIRED_PASSES: u32 = 3;

/// `--paired`: the one-thread rows of capacity ≥ 1, each implementation
/// run in turn in every round (the order rotating), so that all of them
/// meet the host in the same state. Criterion times one implementation
/// after another, seconds apart; on a host whose speed changes over time,
/// the rows of one group may then meet different speeds. Here each round
/// gives its own ratios, and the medians of those are printed.
fn paired(filter: Option<&str>) {
    println!(
        "{PAIRED_ROUNDS} rounds of {PAIRED_PASSES} passes each; ns per message per consumer \
         (median of rounds); each row's time over timecast's and timecast's over the row's, \
         medians of the rounds' ratios [quartiles]"
    );
    paired_payload::<u64>(filter);
    paired_payload::<String>(filter);
    paired_live::<u64>(filter);
    paired_live::<String>(filter);
}

fn paired_payload<T: Payload>(filter: Option<&str>) {
    let executor = Executor::Single;
    for capacity in [64, 1024] {
        for consumers in CONSUMERS {
            let name = format!("fanout/single/{}/cap{capacity}/c{consumers}", T::NAME);
            // With a slash after the name, so that a filter ending in one
            // (`c1/`) tells `c1` from `c16`.
            if filter.is_some_and(|filter| !format!("{name}/").contains(filter)) {
                continue;
            }
            let rows: [Row<'_>; 9] = [
                (
                    "timecast",
                    Box::new(|| {
                        run_channel::<T, Timecast<PutEach>>(&executor, capacity, consumers)
                    }),
                ),
                (
                    "timecast-try",
                    Box::new(|| run_try::<T>(capacity, consumers)),
                ),
                (
                    "timecast-try-task",
                    Box::new(|| run_try_in_task::<T>(capacity, consumers)),
                ),
                (
                    "timecast-put-all",
                    Box::new(|| {
                        run_channel::<T, Timecast<PutAllAtOnce>>(&executor, capacity, consumers)
                    }),
                ),
                (
                    "timecast-sink",
                    Box::new(|| {
                        run_channel::<T, Timecast<ViaSink>>(&executor, capacity, consumers)
                    }),
                ),
                (
                    "tokio-broadcast",
                    Box::new(|| run_channel::<T, TokioBroadcast>(&executor, capacity, consumers)),
                ),
                (
                    "async-broadcast",
                    Box::new(|| run_channel::<T, AsyncBroadcast>(&executor, capacity, consumers)),
                ),
                (
                    "held-floor",
                    Box::new(|| run_held_floor::<T>(capacity, consumers)),
                ),
                (
                    "sync-floor",
                    Box::new(|| run_sync_floor::<T>(capacity, consumers)),
                ),
            ];
            run_paired(&name, consumers, &rows);
        }
    }
}

/// A row of a paired run: its name, and one timed pass over `MESSAGES`.
type Row<'a> = (&'a str, Box<dyn Fn() -> Duration + 'a>);

/// Runs `rows` in turn, round after round, and prints each row's median
/// time per message per consumer and its ratios to the first row's.
fn run_paired(name: &str, consumers: usize, rows: &[Row<'_>]) {
    // times[row][round], ns per message per consumer.
    let mut times = vec![Vec::with_capacity(PAIRED_ROUNDS); rows.len()];
    for round in 0..PAIRED_WARM_UP + PAIRED_ROUNDS {
        for k in 0..rows.len() {
            let row = (round + k) % rows.len();
            let elapsed: Duration = (0..PAIRED_PASSES).map(|_| rows[row].1()).sum();
            if round >= PAIRED_WARM_UP {
                let messages = (MESSAGES * consumers as u64 * u64::from(PAIRED_PASSES)) as f64;
                times[row].push(elapsed.as_nanos() as f64 / messages);
            }
        }
    }
    println!("\n{name}");
    for (row, (id, _)) in rows.iter().enumerate() {
        let over: Vec<f64> = (0..PAIRED_ROUNDS)
            .map(|r| times[row][r] / times[0][r])
            .collect();
        let under: Vec<f64> = over.iter().map(|ratio| 1.0 / ratio).collect();
        let (q1, median, q3) = quartiles(&over);
        let (u1, under_median, u3) = quartiles(&under);
        println!(
            "  {id:<17} {:>8.2} ns   {median:>5.2}× [{q1:.2}–{q3:.2}]   {under_median:>5.2}× [{u1:.2}–{u3:.2}]",
            quartiles(&times[row]).1,
        );
    }
}

/// The live rows of a paired run, `fanout/single/<payload>/live/cap64/c<n>`:
/// the producer yields to the consumers after every value, as a source of
/// live data does between events, so that every value finds its consumers
/// waiting and wakes them: each message costs a round of wake-ups, not a
/// share of a buffer's. timecast, tokio's broadcast and async-broadcast.
fn paired_live<T: Payload>(filter: Option<&str>) {
    let capacity = 64;
    for consumers in CONSUMERS {
        let name = format!("fanout/single/{}/live/cap{capacity}/c{consumers}", T::NAME);
        if filter.is_some_and(|filter| !format!("{name}/").contains(filter)) {
            continue;
        }
        let rows: [Row<'_>; 3] = [
            (
                "timecast",
                Box::new(|| run_live::<T, Timecast<PutEach>>(capacity, consumers)),
            ),
            (
                "tokio-broadcast",
                Box::new(|| run_live::<T, TokioBroadcast>(capacity, consumers)),
            ),
            (
                "async-broadcast",
                Box::new(|| run_live::<T, AsyncBroadcast>(capacity, consumers)),
            ),
        ];
        run_paired(&name, consumers, &rows);
    }
}

/// The first quartile, median and third quartile of `values`.
fn quartiles(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--paired") {
        let filter = args.iter().find(|arg| !arg.starts_with('-'));
        paired(filter.map(String::as_str));
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_put_side(&mut criterion);
    bench_blocking_threads(&mut criterion);
    fanout(&mut criterion);
    criterion.final_summary();
}
