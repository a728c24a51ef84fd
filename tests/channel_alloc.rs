//! The channel allocates nothing in steady state: once the buffer and the
//! waiter lists have reached their size, putting and receiving allocate
//! nothing, with the non-blocking calls and with the async ones.
//!
//! A counting global allocator counts only allocations made on a thread
//! that has switched counting on, so tests running in parallel on other
//! threads do not disturb the measure.
#![cfg(not(loom))] // loom's `Arc` and mutex work only inside `loom::model`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use futures::executor::block_on;
use futures::future::{join, join_all};
use timecast::{AsyncStream, Consumer};

/// Forwards to the system allocator, counting what the measured thread asks.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without `Drop`: reading it never allocates.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn record(size: usize) {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size, Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counting switched on for this thread while alive; the totals are read
/// when it is finished. Tests in this file run on their own threads, but
/// the totals are global: a mutex keeps one measure at a time.
struct Measure {
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Measure {
    fn start() -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        ALLOCATIONS.store(0, Relaxed);
        BYTES.store(0, Relaxed);
        MEASURING.with(|m| m.set(true));
        Measure { _serial: serial }
    }

    /// Stops counting; returns (allocations, bytes).
    fn finish(self) -> (usize, usize) {
        MEASURING.with(|m| m.set(false));
        (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed))
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        MEASURING.with(|m| m.set(false));
    }
}

const MESSAGES: u64 = 100_000;
/// Longer than any capacity used here, so that warm-up also fills the
/// buffer and makes every party wait once (sizing the waiter lists).
const WARM_UP: u64 = 5_000;

/// Puts `n` values from `start` with `try_put`, draining the consumers with
/// `try_recv` whenever the buffer is full; checks every value received.
fn pump(stream: &AsyncStream<u64>, consumers: &mut [Consumer<u64>; 4], start: u64, n: u64) {
    let mut next_put = start;
    let mut next_recv = [start; 4];
    while next_put < start + n {
        while next_put < start + n && stream.try_put(next_put).is_ok() {
            next_put += 1;
        }
        for (consumer, next) in consumers.iter_mut().zip(&mut next_recv) {
            while let Ok(v) = consumer.try_recv() {
                assert_eq!(v, *next);
                *next += 1;
            }
        }
    }
    assert!(next_recv.iter().all(|&n| n == next_put));
}

/// `try_put` / `try_recv` with 4 consumers: 0 bytes over 100 000 messages.
#[test]
fn try_put_try_recv_steady_state_allocates_nothing() {
    for capacity in [0, 1, 64] {
        let stream = AsyncStream::with_capacity(capacity);
        let mut consumers: [_; 4] = std::array::from_fn(|_| stream.subscribe());
        pump(&stream, &mut consumers, 0, WARM_UP);

        let measure = Measure::start();
        pump(&stream, &mut consumers, WARM_UP, MESSAGES);
        let (allocations, bytes) = measure.finish();
        assert_eq!(
            (allocations, bytes),
            (0, 0),
            "capacity {capacity}: (allocations, bytes) in steady state"
        );
    }
}

/// Receives until the stream ends, checking the values count up from 0.
async fn consume(mut consumer: Consumer<u64>) -> u64 {
    let mut next = 0;
    while let Some(v) = consumer.recv().await {
        assert_eq!(v, next);
        next += 1;
    }
    next
}

/// `put` / `recv` awaited under `futures::executor::block_on`, one producer
/// and 4 consumers `join`ed: after warm-up, 0 allocations over 100 000
/// messages. The executor and the joined futures exist before counting
/// starts; the producer switches counting on after the warm-up and off
/// after its last put. (`block_on` polls with a thread-local waker and
/// `join` keeps its futures inline, so the executor allocates nothing per
/// poll: whatever is counted is the channel's.)
#[test]
fn put_recv_steady_state_allocates_nothing() {
    for capacity in [1024, 0] {
        let stream = AsyncStream::with_capacity(capacity);
        let consumers = join_all((0..4).map(|_| consume(stream.subscribe())));
        let mut measure = None;
        let producer = async {
            for i in 0..WARM_UP + MESSAGES {
                if i == WARM_UP {
                    measure = Some(Measure::start());
                }
                stream.put(i).await.unwrap();
            }
            let counted = measure.take().unwrap().finish();
            stream.close();
            counted
        };
        let ((allocations, bytes), received) = block_on(join(producer, consumers));
        assert_eq!(
            (allocations, bytes),
            (0, 0),
            "capacity {capacity}: (allocations, bytes) in steady state"
        );
        assert_eq!(received, [WARM_UP + MESSAGES; 4]);
    }
}

/// `put_all` under the same executor and consumers: one `put_all` of the
/// warm-up values, then one of 100 000 more, counted from its start to its
/// end: 0 allocations.
#[test]
fn put_all_steady_state_allocates_nothing() {
    for capacity in [1024, 64, 1, 0] {
        let stream = AsyncStream::with_capacity(capacity);
        let consumers = join_all((0..4).map(|_| consume(stream.subscribe())));
        let producer = async {
            let closed = |_| panic!("closed");
            stream.put_all(0..WARM_UP).await.unwrap_or_else(closed);
            let measure = Measure::start();
            stream
                .put_all(WARM_UP..WARM_UP + MESSAGES)
                .await
                .unwrap_or_else(closed);
            let counted = measure.finish();
            stream.close();
            counted
        };
        let ((allocations, bytes), received) = block_on(join(producer, consumers));
        assert_eq!(
            (allocations, bytes),
            (0, 0),
            "capacity {capacity}: (allocations, bytes) in steady state"
        );
        assert_eq!(received, [WARM_UP + MESSAGES; 4]);
    }
}

/// Memory follows what a stream buffers, not its capacity: a stream of
/// capacity 2^40 is built with a few slots, and buffering 1 000 values
/// allocates a small multiple of their size (the buffer doubles as it
/// fills), not a terabyte.
#[test]
fn a_large_capacity_allocates_only_what_is_buffered() {
    const SLOT: usize = 24; // a u64, its count, its flag: 17 bytes, aligned
    let measure = Measure::start();
    let stream = AsyncStream::<u64>::with_capacity(1 << 40);
    let mut consumer = stream.subscribe();
    let (_, built) = measure.finish();
    assert!(built < 64 * SLOT, "{built} bytes to build the stream");

    let measure = Measure::start();
    for i in 0..1_000 {
        stream.try_put(i).unwrap();
    }
    let (allocations, buffered) = measure.finish();
    assert!(
        buffered < 3 * 1_024 * SLOT,
        "{buffered} bytes in {allocations} allocations to buffer 1 000 values"
    );
    for i in 0..1_000 {
        assert_eq!(consumer.try_recv(), Ok(i));
    }
}
