//! The channel's contract (DESIGN.md, "Channel"), one rule per test.
//!
//! Wake-ups are tested by polling by hand with a counting waker: `Pending`,
//! then woken, then `Ready`. Ordering and loss are tested under several
//! executors and on plain threads. A model-based test checks random
//! sequences of non-blocking operations against a plain `VecDeque` model.
#![cfg(not(loom))] // loom's `Arc` and mutex work only inside `loom::model`

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::executor::block_on;
use futures::future::{join, join_all};
use futures::stream::FusedStream;
use futures::{Sink, SinkExt, StreamExt};
use timecast::{AsyncStream, Closed, Consumer, TryPutError, TryRecvError};

/// The capacities every ordering test runs with: rendezvous, one slot, an
/// odd size, and a size larger than most bursts.
const CAPACITIES: [usize; 4] = [0, 1, 7, 64];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A waker that counts how often it was woken.
#[derive(Default)]
struct CountingWaker {
    wakes: AtomicUsize,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.wakes.load(SeqCst)
    }
}

/// A fresh counting waker: the counter, and the `Waker` to poll with.
fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    (counter, waker)
}

/// Polls `fut` once with `waker`.
fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// A tiny executor for two futures: polls both, then re-polls only those
/// whose waker has been woken since, until neither is. A future left
/// `Pending` here would hang forever under a real executor.
fn run_until_stalled<A, B>(a: &mut A, b: &mut B) -> (Option<A::Output>, Option<B::Output>)
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    let (wa, waker_a) = counting_waker();
    let (wb, waker_b) = counting_waker();
    let (mut out_a, mut out_b) = (None, None);
    let (mut seen_a, mut seen_b) = (usize::MAX, usize::MAX);
    loop {
        let mut progressed = false;
        if out_a.is_none() && wa.count() != seen_a {
            seen_a = wa.count();
            progressed = true;
            if let Poll::Ready(v) = poll(a, &waker_a) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() && wb.count() != seen_b {
            seen_b = wb.count();
            progressed = true;
            if let Poll::Ready(v) = poll(b, &waker_b) {
                out_b = Some(v);
            }
        }
        if !progressed {
            return (out_a, out_b);
        }
    }
}

/// Receives until the stream ends.
async fn collect_all<T: Clone>(mut consumer: Consumer<T>) -> Vec<T> {
    let mut seen = Vec::new();
    while let Some(v) = consumer.recv().await {
        seen.push(v);
    }
    seen
}

/// Puts `0..n`, then drops the handle (closing the stream if it was the last).
async fn produce(stream: AsyncStream<u64>, n: u64) {
    for i in 0..n {
        stream
            .put(i)
            .await
            .expect("stream closed under the producer");
    }
}

fn expected(n: u64) -> Vec<u64> {
    (0..n).collect()
}

// ---------------------------------------------------------------------------
// Every consumer gets every value, in put order
// ---------------------------------------------------------------------------

/// One thread, `join`ed futures: each consumer receives exactly `0..N`.
#[test]
fn every_consumer_gets_every_value_in_order_single_thread() {
    const N: u64 = 500;
    for capacity in CAPACITIES {
        for consumers in [1, 2, 5] {
            let stream = AsyncStream::with_capacity(capacity);
            let all = join_all((0..consumers).map(|_| collect_all(stream.subscribe())));
            let ((), seen) = block_on(join(produce(stream, N), all));
            for s in seen {
                assert_eq!(s, expected(N), "capacity {capacity}, {consumers} consumers");
            }
        }
    }
}

/// Plain threads with the blocking triad: each consumer receives `0..N`.
#[test]
fn every_consumer_gets_every_value_in_order_threads() {
    const N: u64 = 2_000;
    for capacity in CAPACITIES {
        let stream = AsyncStream::with_capacity(capacity);
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let mut consumer = stream.subscribe();
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while let Some(v) = consumer.recv_blocking() {
                        seen.push(v);
                    }
                    seen
                })
            })
            .collect();
        for i in 0..N {
            stream.put_blocking(i).unwrap();
        }
        drop(stream);
        for reader in readers {
            assert_eq!(reader.join().unwrap(), expected(N), "capacity {capacity}");
        }
    }
}

/// A multi-threaded tokio runtime: tasks migrate between threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consumer_gets_every_value_in_order_tokio_multi_thread() {
    const N: u64 = 2_000;
    for capacity in CAPACITIES {
        let stream = AsyncStream::with_capacity(capacity);
        let readers: Vec<_> = (0..3)
            .map(|_| tokio::spawn(collect_all(stream.subscribe())))
            .collect();
        tokio::spawn(produce(stream, N)).await.unwrap();
        for reader in readers {
            assert_eq!(reader.await.unwrap(), expected(N), "capacity {capacity}");
        }
    }
}

/// `async_executor::Executor` run by two threads.
#[test]
fn every_consumer_gets_every_value_in_order_async_executor() {
    const N: u64 = 2_000;
    let ex = async_executor::Executor::new();
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    std::thread::scope(|s| {
        // Dropped on unwind too, so the helper thread never outlives a failure.
        let _stop = stop;
        s.spawn(|| block_on(ex.run(stopped)));
        block_on(ex.run(async {
            for capacity in CAPACITIES {
                let stream = AsyncStream::with_capacity(capacity);
                let readers: Vec<_> = (0..3)
                    .map(|_| ex.spawn(collect_all(stream.subscribe())))
                    .collect();
                ex.spawn(produce(stream, N)).await;
                for reader in readers {
                    assert_eq!(reader.await, expected(N), "capacity {capacity}");
                }
            }
        }));
    });
}

// ---------------------------------------------------------------------------
// Several producers
// ---------------------------------------------------------------------------

/// Checks that `seen` holds, for each of `producers`, exactly its values
/// `0..n` in order (interleaved with the others' in any way).
fn check_tagged(seen: &[(usize, u64)], producers: usize, n: u64, context: &str) {
    assert_eq!(
        seen.len() as u64,
        producers as u64 * n,
        "{context}: total count"
    );
    let mut next = vec![0u64; producers];
    for &(producer, value) in seen {
        assert_eq!(
            value, next[producer],
            "{context}: producer {producer} out of order, lost or duplicated"
        );
        next[producer] += 1;
    }
}

/// Producer clones on their own threads: every consumer receives every
/// value of every producer once, each producer's values in its put order.
#[test]
fn concurrent_producers_lose_and_duplicate_nothing_threads() {
    const PRODUCERS: usize = 3;
    const N: u64 = 500;
    for capacity in [0, 1, 7] {
        let stream = AsyncStream::<(usize, u64)>::with_capacity(capacity);
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let mut consumer = stream.subscribe();
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while let Some(v) = consumer.recv_blocking() {
                        seen.push(v);
                    }
                    seen
                })
            })
            .collect();
        let writers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let producer = stream.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        producer.put_blocking((p, i)).unwrap();
                    }
                })
            })
            .collect();
        drop(stream); // the writers hold the last handles: the stream closes after them
        for writer in writers {
            writer.join().unwrap();
        }
        for reader in readers {
            let seen = reader.join().unwrap();
            check_tagged(&seen, PRODUCERS, N, &format!("capacity {capacity}"));
        }
    }
}

/// The same with `join`ed futures on one thread, where several puts are
/// pending at the same time.
#[test]
fn concurrent_producers_lose_and_duplicate_nothing_single_thread() {
    const PRODUCERS: usize = 3;
    const N: u64 = 300;
    for capacity in CAPACITIES {
        let stream = AsyncStream::<(usize, u64)>::with_capacity(capacity);
        let readers = join_all((0..3).map(|_| collect_all(stream.subscribe())));
        let writers = join_all((0..PRODUCERS).map(|p| {
            let producer = stream.clone();
            async move {
                for i in 0..N {
                    producer.put((p, i)).await.unwrap();
                }
            }
        }));
        drop(stream);
        let (_, seen) = block_on(join(writers, readers));
        for s in seen {
            check_tagged(&s, PRODUCERS, N, &format!("capacity {capacity}"));
        }
    }
}

// ---------------------------------------------------------------------------
// Backpressure
// ---------------------------------------------------------------------------

/// Rendezvous: a put completes only once every consumer has taken the value.
#[test]
fn rendezvous_put_returns_once_every_consumer_took_the_value() {
    let stream = AsyncStream::new();
    let mut a = stream.subscribe();
    let mut b = stream.subscribe();
    let (woken, waker) = counting_waker();

    let mut put = stream.put(1);
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(a.try_recv(), Ok(1));
    assert!(
        poll(&mut put, &waker).is_pending(),
        "b has not taken it yet"
    );
    let before = woken.count();
    assert_eq!(b.try_recv(), Ok(1));
    assert!(woken.count() > before, "the last take wakes the producer");
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
}

/// `with_capacity(n)`: the producer runs exactly `n` values ahead of the
/// slowest consumer, not `n + 1`, with `try_put` and with `put`.
#[test]
fn with_capacity_runs_exactly_n_ahead_of_the_slowest_consumer() {
    for n in [1u64, 2, 7] {
        let stream = AsyncStream::with_capacity(n as usize);
        let mut fast = stream.subscribe();
        let mut slow = stream.subscribe();
        for i in 0..n {
            assert_eq!(stream.try_put(i), Ok(()), "capacity {n}");
        }
        assert_eq!(stream.try_put(n), Err(TryPutError::Full(n)));

        // The fast consumer catching up does not make room: slow is n behind.
        for i in 0..n {
            assert_eq!(fast.try_recv(), Ok(i));
        }
        assert_eq!(stream.try_put(n), Err(TryPutError::Full(n)));

        let (woken, waker) = counting_waker();
        let mut put = stream.put(n);
        assert!(poll(&mut put, &waker).is_pending());
        assert_eq!(slow.try_recv(), Ok(0));
        assert_eq!(woken.count(), 1);
        assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
        // Slow is n behind again.
        assert_eq!(stream.try_put(n + 1), Err(TryPutError::Full(n + 1)));
    }
}

/// A put that finds every value taken knows the next `capacity` values
/// fit and checks no slot for them: that bound must never let the stream
/// run more than `capacity` ahead of its slowest consumer, whether the
/// buffer is still growing (capacities above 32 start with a smaller ring),
/// consumers take at different paces, or one subscribes in between. After
/// each round of puts, the stream is full after exactly as many values as
/// the slowest consumer left room for, and every value arrives in order.
#[test]
fn the_room_known_ahead_never_runs_past_the_slowest_consumer() {
    for capacity in [1usize, 2, 5, 32, 33, 40, 100] {
        let stream = AsyncStream::with_capacity(capacity);
        let mut consumers = vec![(stream.subscribe(), 0u64), (stream.subscribe(), 0u64)];
        let mut rng = Rng::new(capacity as u64);
        let mut next = 0u64;
        // Fewer rounds under Miri, which runs the slot protocol checked.
        for round in 0..if cfg!(miri) { 30 } else { 200 } {
            // Every consumer's position: the slowest bounds the room.
            let slowest = consumers.iter().map(|(_, pos)| *pos).min().unwrap();
            let room = capacity as u64 - (next - slowest);
            for _ in 0..room {
                assert_eq!(
                    stream.try_put(next),
                    Ok(()),
                    "capacity {capacity}, round {round}"
                );
                next += 1;
            }
            assert_eq!(
                stream.try_put(next),
                Err(TryPutError::Full(next)),
                "capacity {capacity}, round {round}: {room} values fit, one more did too"
            );
            for (consumer, pos) in &mut consumers {
                let take = rng.below(capacity + 1) as u64;
                for _ in 0..take.min(next - *pos) {
                    assert_eq!(consumer.try_recv(), Ok(*pos), "capacity {capacity}");
                    *pos += 1;
                }
            }
            if round % 50 == 25 {
                // A consumer subscribed now starts at the tail: it does not
                // hold back the values before it.
                consumers.push((stream.subscribe(), next));
            }
        }
    }
}

/// Capacity 0 holds one value in flight at a time; `try_put` does not wait.
#[test]
fn rendezvous_try_put_accepts_one_value_in_flight() {
    let stream = AsyncStream::new();
    let mut consumer = stream.subscribe();
    assert_eq!(stream.try_put(1), Ok(()));
    assert_eq!(stream.try_put(2), Err(TryPutError::Full(2)));
    assert_eq!(consumer.try_recv(), Ok(1));
    assert_eq!(stream.try_put(2), Ok(()));
}

/// With no consumer, `try_put` is `Full` and `put` waits for the first
/// subscriber, which wakes it: no value is ever put for nobody.
#[test]
fn put_without_consumer_waits_for_the_first_subscriber() {
    for capacity in [0, 4] {
        let stream = AsyncStream::with_capacity(capacity);
        assert_eq!(stream.try_put(1), Err(TryPutError::Full(1)));

        let (woken, waker) = counting_waker();
        let mut put = stream.put(1);
        assert!(poll(&mut put, &waker).is_pending());
        assert!(poll(&mut put, &waker).is_pending());
        assert_eq!(woken.count(), 0);

        let mut consumer = stream.subscribe();
        assert_eq!(woken.count(), 1, "subscribing wakes the waiting producer");
        if capacity == 0 {
            assert!(poll(&mut put, &waker).is_pending(), "not taken yet");
            assert_eq!(consumer.try_recv(), Ok(1));
            assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
        } else {
            assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
            assert_eq!(consumer.try_recv(), Ok(1));
        }
    }
}

/// A consumer dropped mid-stream releases the producer it held back at
/// once: its waker is woken by the drop, and the put completes.
#[test]
fn dropped_consumer_releases_a_waiting_producer_at_once() {
    // Capacity 1: slow lags, the put waits for room.
    let stream = AsyncStream::with_capacity(1);
    let mut fast = stream.subscribe();
    let slow = stream.subscribe();
    stream.try_put(1).unwrap();
    assert_eq!(fast.try_recv(), Ok(1));
    let (woken, waker) = counting_waker();
    let mut put = stream.put(2);
    assert!(poll(&mut put, &waker).is_pending());
    drop(slow);
    assert_eq!(woken.count(), 1);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
    assert_eq!(fast.try_recv(), Ok(2));

    // Rendezvous: the put waits for the value to be taken by everyone.
    let stream = AsyncStream::new();
    let mut fast = stream.subscribe();
    let slow = stream.subscribe();
    let (woken, waker) = counting_waker();
    let mut put = stream.put(1);
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(fast.try_recv(), Ok(1));
    assert!(poll(&mut put, &waker).is_pending());
    let before = woken.count();
    drop(slow);
    assert!(woken.count() > before);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
    assert!(stream.is_empty());
}

// ---------------------------------------------------------------------------
// Close
// ---------------------------------------------------------------------------

/// Values already put are received after `close`, then the stream ends.
#[test]
fn close_drains_then_ends() {
    let stream = AsyncStream::with_capacity(4);
    let mut a = stream.subscribe();
    let mut b = stream.subscribe();
    for i in 1..=3 {
        stream.try_put(i).unwrap();
    }
    assert!(stream.close());
    block_on(async {
        for i in 1..=3 {
            assert_eq!(a.recv().await, Some(i));
        }
        assert_eq!(a.recv().await, None);
        assert_eq!(a.recv().await, None);
    });
    assert_eq!(b.recv_blocking(), Some(1));
    assert_eq!(b.try_recv(), Ok(2));
    assert_eq!(b.try_recv(), Ok(3));
    assert_eq!(b.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(b.recv_blocking(), None);
}

/// Every put after `close` fails and hands the value back.
#[test]
fn put_after_close_hands_the_value_back() {
    let stream = AsyncStream::with_capacity(4);
    let _consumer = stream.subscribe();
    stream.close();
    assert_eq!(
        block_on(stream.put(String::from("a"))),
        Err(Closed("a".into()))
    );
    assert_eq!(
        stream.try_put(String::from("b")),
        Err(TryPutError::Closed("b".into()))
    );
    assert_eq!(
        stream.put_blocking(String::from("c")),
        Err(Closed("c".into()))
    );
    // Closed without a consumer: `Closed` wins over `Full`.
    let lonely = AsyncStream::<u8>::with_capacity(4);
    lonely.close();
    assert_eq!(lonely.try_put(1), Err(TryPutError::Closed(1)));
    assert_eq!(block_on(lonely.put(2)), Err(Closed(2)));
}

/// `close` says whether this call closed the stream: true once, then false,
/// from any handle.
#[test]
fn close_returns_true_once() {
    let stream = AsyncStream::<u8>::new();
    let other = stream.clone();
    assert!(!stream.is_closed());
    assert!(other.close());
    assert!(stream.is_closed());
    assert!(!stream.close());
    assert!(!other.close());
}

/// Dropping every producer handle closes the stream; consumers still
/// receive what was put.
#[test]
fn dropping_every_producer_closes() {
    let stream = AsyncStream::with_capacity(2);
    let mut consumer = stream.subscribe();
    let other = stream.clone();
    stream.try_put(1).unwrap();
    drop(stream);
    assert!(!consumer.is_closed(), "a producer handle is still alive");
    other.try_put(2).unwrap();
    drop(other);
    assert!(consumer.is_closed());
    assert_eq!(consumer.recv_blocking(), Some(1));
    assert_eq!(consumer.recv_blocking(), Some(2));
    assert_eq!(consumer.recv_blocking(), None);
}

/// A put waiting for room (or for a consumer) fails with the value when the
/// stream is closed, and the close wakes it.
#[test]
fn pending_put_fails_with_closed_when_closed() {
    // Waiting for room.
    let stream = AsyncStream::with_capacity(1);
    let mut consumer = stream.subscribe();
    stream.try_put(1).unwrap();
    let (woken, waker) = counting_waker();
    let mut put = stream.put(2);
    assert!(poll(&mut put, &waker).is_pending());
    stream.close();
    assert_eq!(woken.count(), 1);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Err(Closed(2))));
    drop(put);
    assert_eq!(consumer.try_recv(), Ok(1));
    assert_eq!(consumer.try_recv(), Err(TryRecvError::Closed));

    // Waiting for a first consumer.
    let stream = AsyncStream::<u8>::new();
    let (woken, waker) = counting_waker();
    let mut put = stream.put(3);
    assert!(poll(&mut put, &waker).is_pending());
    stream.close();
    assert_eq!(woken.count(), 1);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Err(Closed(3))));
}

// ---------------------------------------------------------------------------
// Cancel safety
// ---------------------------------------------------------------------------

/// A put dropped while waiting for room delivers nothing, and the stream
/// goes on as if it had never been made.
#[test]
fn dropped_pending_put_delivers_nothing() {
    let stream = AsyncStream::with_capacity(2);
    let mut consumer = stream.subscribe();
    stream.try_put(1).unwrap();
    stream.try_put(2).unwrap();
    let (_, waker) = counting_waker();
    let mut put = stream.put(99);
    assert!(poll(&mut put, &waker).is_pending());
    drop(put);
    assert_eq!(stream.len(), 2);
    assert_eq!(consumer.try_recv(), Ok(1));
    assert_eq!(consumer.try_recv(), Ok(2));
    assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(stream.try_put(3), Ok(()));
    assert_eq!(consumer.try_recv(), Ok(3));

    // Dropped while waiting for a first consumer: the consumer sees nothing.
    let stream = AsyncStream::with_capacity(2);
    let mut put = stream.put(99);
    assert!(poll(&mut put, &waker).is_pending());
    drop(put);
    let mut consumer = stream.subscribe();
    assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
}

/// A rendezvous put dropped before any consumer received its value
/// delivers nothing: consumers never see it, and the next put works and is
/// received next, with no further help (a real executor would hang on a
/// `Pending` left here).
#[test]
fn dropped_rendezvous_put_nobody_received_delivers_nothing() {
    let stream = AsyncStream::new();
    let mut a = stream.subscribe();
    let (_, waker) = counting_waker();
    let mut put = stream.put(1);
    assert!(poll(&mut put, &waker).is_pending());
    drop(put);

    let mut next_put = stream.put(2);
    let mut next_recv = a.recv();
    let (put_done, received) = run_until_stalled(&mut next_put, &mut next_recv);
    // `None` for either: stalled, each side waiting for the other.
    assert_eq!(
        (put_done, received),
        (Some(Ok(())), Some(Some(2))),
        "(next put, next recv) after the dropped rendezvous put"
    );
}

/// Right after dropping a pending rendezvous put nobody received, the
/// stream is as it was before: empty, and `try_put` has room.
#[test]
fn dropped_rendezvous_put_leaves_the_stream_unchanged() {
    let stream = AsyncStream::new();
    let mut a = stream.subscribe();
    let mut b = stream.subscribe();
    let (_, waker) = counting_waker();
    let mut put = stream.put(1);
    assert!(poll(&mut put, &waker).is_pending());
    drop(put);
    assert_eq!(
        stream.len(),
        0,
        "the withdrawn value still counts as buffered"
    );
    assert_eq!(a.len(), 0);
    assert_eq!(
        stream.try_put(2),
        Ok(()),
        "the withdrawn value still takes room"
    );
    assert_eq!(a.try_recv(), Ok(2));
    assert_eq!(b.try_recv(), Ok(2));
}

/// The documented exception: once some consumer has received a rendezvous
/// value, dropping the put leaves it in, so every consumer sees the same
/// sequence.
#[test]
fn dropped_rendezvous_put_some_consumer_received_reaches_all() {
    let stream = AsyncStream::new();
    let mut a = stream.subscribe();
    let mut b = stream.subscribe();
    let (_, waker) = counting_waker();
    let mut put = stream.put(1);
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(a.try_recv(), Ok(1));
    drop(put);
    assert_eq!(b.try_recv(), Ok(1));
    assert_eq!(stream.try_put(2), Ok(()));
    assert_eq!(a.try_recv(), Ok(2));
    assert_eq!(b.try_recv(), Ok(2));
}

/// Dropping a pending `recv` loses no value: neither one put before the
/// next poll, nor one put after it was woken.
#[test]
fn dropped_pending_recv_loses_nothing() {
    let stream = AsyncStream::with_capacity(4);
    let mut consumer = stream.subscribe();
    let (_, waker) = counting_waker();

    let mut recv = consumer.recv();
    assert!(poll(&mut recv, &waker).is_pending());
    drop(recv);
    stream.try_put(1).unwrap();
    assert_eq!(consumer.try_recv(), Ok(1));

    let (woken, waker) = counting_waker();
    let mut recv = consumer.recv();
    assert!(poll(&mut recv, &waker).is_pending());
    stream.try_put(2).unwrap();
    assert_eq!(woken.count(), 1);
    drop(recv); // woken, never polled again
    assert_eq!(block_on(consumer.recv()), Some(2));
}

// ---------------------------------------------------------------------------
// Subscribing and cloning consumers
// ---------------------------------------------------------------------------

/// The handle counts follow every subscribe, clone and drop, on buffered
/// and rendezvous streams, and from another thread once it is joined.
#[test]
fn handle_counts_follow_subscribes_clones_and_drops() {
    for capacity in [0, 1, 8] {
        let stream = AsyncStream::<String>::with_capacity(capacity);
        assert_eq!((stream.consumer_count(), stream.producer_count()), (0, 1));
        let a = stream.subscribe();
        let b = a.clone();
        let other = stream.clone();
        assert_eq!((stream.consumer_count(), stream.producer_count()), (2, 2));
        let moved = stream.clone();
        let kept = std::thread::spawn(move || {
            let c = moved.subscribe();
            c.clone() // `c` and `moved` drop here
        })
        .join()
        .unwrap();
        assert_eq!((stream.consumer_count(), stream.producer_count()), (3, 2));
        drop((a, other));
        assert_eq!((stream.consumer_count(), stream.producer_count()), (2, 1));
        stream.close();
        drop(b);
        assert_eq!((stream.consumer_count(), stream.producer_count()), (1, 1));
        drop(kept);
        assert_eq!(stream.consumer_count(), 0);
    }
}

/// A cloned consumer starts at its original's position and then sees the
/// same values; it also holds producers back like any consumer.
#[test]
fn cloned_consumer_starts_at_the_same_position() {
    let stream = AsyncStream::with_capacity(8);
    let mut a = stream.subscribe();
    for i in 1..=3 {
        stream.try_put(i).unwrap();
    }
    assert_eq!(a.try_recv(), Ok(1));
    let mut b = a.clone();
    assert_eq!(stream.consumer_count(), 2);
    stream.try_put(4).unwrap();
    for i in 2..=4 {
        assert_eq!(a.try_recv(), Ok(i));
    }
    assert_eq!(stream.len(), 3, "b still has 2, 3, 4 to take");
    for i in 2..=4 {
        assert_eq!(b.try_recv(), Ok(i));
    }
    assert!(stream.is_empty());
}

/// A consumer subscribed late sees only values put after it subscribed.
#[test]
fn late_subscriber_sees_only_later_values() {
    let stream = AsyncStream::with_capacity(8);
    let mut early = stream.subscribe();
    stream.try_put(1).unwrap();
    let mut late = stream.subscribe();
    stream.try_put(2).unwrap();
    assert_eq!(early.try_recv(), Ok(1));
    assert_eq!(early.try_recv(), Ok(2));
    assert_eq!(late.try_recv(), Ok(2));
    assert_eq!(late.try_recv(), Err(TryRecvError::Empty));

    // A consumer subscribed to a closed stream ends at once.
    stream.close();
    let mut after = stream.subscribe();
    assert_eq!(after.recv_blocking(), None);
}

/// Counts its clones, in a counter no other test uses.
#[derive(PartialEq, Debug)]
struct Counted(u32);

static CLONES: AtomicUsize = AtomicUsize::new(0);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, SeqCst);
        Counted(self.0)
    }
}

/// The last consumer to take a value gets it by move: with `k` consumers
/// each value is cloned exactly `k - 1` times, whatever order they take it in.
#[test]
fn last_consumer_takes_by_move() {
    const M: u32 = 50;
    for k in [1usize, 2, 3, 5] {
        CLONES.store(0, SeqCst);
        let stream = AsyncStream::with_capacity(4);
        let mut consumers: Vec<_> = (0..k).map(|_| stream.subscribe()).collect();
        let mut put = 0;
        let mut round = 0;
        while put < M {
            while put < M && stream.try_put(Counted(put)).is_ok() {
                put += 1;
            }
            // Drain in a different order each round.
            round += 1;
            for j in 0..k {
                let consumer = &mut consumers[(j + round) % k];
                while let Ok(v) = consumer.try_recv() {
                    assert!(v.0 < M);
                }
            }
        }
        assert_eq!(CLONES.load(SeqCst), M as usize * (k - 1), "{k} consumers");
    }

    // Through the async path and a rendezvous, with a cloned consumer.
    CLONES.store(0, SeqCst);
    let stream = AsyncStream::new();
    let a = stream.subscribe();
    let b = a.clone();
    let producer = async move {
        for i in 0..M {
            stream.put(Counted(i)).await.unwrap();
        }
    };
    let ((), seen) = block_on(join(producer, join(collect_all(a), collect_all(b))));
    assert_eq!(seen.0.len() + seen.1.len(), 2 * M as usize);
    assert_eq!(CLONES.load(SeqCst), M as usize);
}

/// Counts the copies of it alive: clones add one, drops take one away.
struct Live(&'static AtomicUsize);

impl Live {
    fn new(alive: &'static AtomicUsize) -> Self {
        alive.fetch_add(1, SeqCst);
        Live(alive)
    }
}

impl Clone for Live {
    fn clone(&self) -> Self {
        Live::new(self.0)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Consumers leaving at different positions drop what only they still held,
/// once: the values alive are exactly those some consumer has yet to take,
/// plus those received and kept.
#[test]
fn values_are_dropped_exactly_once_when_consumers_leave() {
    static ALIVE: AtomicUsize = AtomicUsize::new(0);
    let stream = AsyncStream::with_capacity(8);
    let mut a = stream.subscribe();
    let mut b = stream.subscribe();
    let c = stream.subscribe();
    for _ in 0..8 {
        stream.try_put(Live::new(&ALIVE)).unwrap();
    }
    let kept: Vec<Live> = (0..3).map(|_| a.try_recv().unwrap()).collect();
    for _ in 0..5 {
        drop(b.try_recv().unwrap());
    }
    assert_eq!(ALIVE.load(SeqCst), 8 + 3, "8 buffered, 3 kept");
    drop(c); // held all 8: the 3 that a and b both took are freed
    assert_eq!(ALIVE.load(SeqCst), 8 + 3 - 3);
    drop(b); // held 3 with a
    assert_eq!(ALIVE.load(SeqCst), 8 + 3 - 3, "a still holds 5");
    for _ in 0..5 {
        drop(a.try_recv().unwrap());
    }
    assert_eq!(ALIVE.load(SeqCst), 3, "only the kept values are left");
    assert_eq!(stream.len(), 0);
    // Every slot is free again: a full round fits.
    for _ in 0..8 {
        stream.try_put(Live::new(&ALIVE)).unwrap();
    }
    drop(a); // the last consumer: the 8 values it left wait for the next
    drop(kept);
    assert_eq!(ALIVE.load(SeqCst), 8, "held for the next consumer");
    drop(stream);
    assert_eq!(ALIVE.load(SeqCst), 0, "nothing leaked");
}

// ---------------------------------------------------------------------------
// Sink and Stream
// ---------------------------------------------------------------------------

/// `send` and `send_all` put through the sink; closing the sink releases
/// its producer handle, closing the stream when it was the last.
#[test]
fn sink_send_send_all_and_close() {
    block_on(async {
        let stream = AsyncStream::with_capacity(8);
        let consumer = stream.subscribe();
        let mut sink = stream.sink();
        sink.send(1).await.unwrap();
        sink.send_all(&mut futures::stream::iter([2, 3].map(Ok)))
            .await
            .unwrap();
        drop(stream);
        assert!(!consumer.is_closed(), "the sink is still a producer");
        sink.close().await.unwrap();
        assert!(consumer.is_closed());
        assert_eq!(consumer.collect::<Vec<_>>().await, [1, 2, 3]);
    });
}

/// Closing a sink that is not the last producer leaves the stream open; the
/// closed sink refuses values and hands them back.
#[test]
fn sink_close_releases_only_its_own_handle() {
    block_on(async {
        let stream = AsyncStream::with_capacity(8);
        let mut consumer = stream.subscribe();
        let mut sink = stream.sink();
        assert_eq!(stream.producer_count(), 2);
        sink.close().await.unwrap();
        assert_eq!(stream.producer_count(), 1);
        assert!(!stream.is_closed());
        assert_eq!(sink.send(9).await, Err(Closed(9)));
        stream.put(1).await.unwrap();
        assert_eq!(consumer.recv().await, Some(1));

        // Into a closed stream, the sink hands the value back too.
        let mut sink = stream.sink();
        stream.close();
        assert_eq!(sink.send(2).await, Err(Closed(2)));
    });
}

/// On a rendezvous stream `poll_flush` completes only once every consumer
/// has taken the value, and the last take wakes it.
#[test]
fn sink_flush_waits_for_rendezvous() {
    let stream = AsyncStream::new();
    let mut a = stream.subscribe();
    let mut b = stream.subscribe();
    let mut sink = stream.sink();
    let (woken, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);

    assert_eq!(Pin::new(&mut sink).poll_ready(&mut cx), Poll::Ready(Ok(())));
    Pin::new(&mut sink).start_send(5).unwrap();
    assert!(Pin::new(&mut sink).poll_flush(&mut cx).is_pending());
    assert_eq!(a.try_recv(), Ok(5));
    assert!(Pin::new(&mut sink).poll_flush(&mut cx).is_pending());
    let before = woken.count();
    assert_eq!(b.try_recv(), Ok(5));
    assert!(woken.count() > before);
    assert_eq!(Pin::new(&mut sink).poll_flush(&mut cx), Poll::Ready(Ok(())));
}

/// `start_send` puts at once when the stream has room and no consumer
/// waits; otherwise the value waits in the sink for `poll_ready` or
/// `poll_flush`, which wake the consumers and the sink's task as a `put`
/// does, and dropping the sink then cancels it.
#[test]
fn sink_start_send_puts_at_once_when_it_can() {
    let stream = AsyncStream::with_capacity(2);
    let mut consumer = stream.subscribe();
    let mut sink = stream.sink();
    let (woken, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);

    // Room, nobody waiting: in at once, before any flush.
    assert_eq!(Pin::new(&mut sink).poll_ready(&mut cx), Poll::Ready(Ok(())));
    Pin::new(&mut sink).start_send(1).unwrap();
    assert_eq!(stream.len(), 1);
    assert_eq!(consumer.try_recv(), Ok(1));

    // A consumer waits: the value waits for `poll_flush`, which wakes it.
    let (consumer_woken, consumer_waker) = counting_waker();
    let mut consumer_cx = Context::from_waker(&consumer_waker);
    assert!(consumer.poll_recv(&mut consumer_cx).is_pending());
    assert_eq!(Pin::new(&mut sink).poll_ready(&mut cx), Poll::Ready(Ok(())));
    Pin::new(&mut sink).start_send(2).unwrap();
    assert_eq!(consumer_woken.count(), 0);
    assert_eq!(Pin::new(&mut sink).poll_flush(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(consumer_woken.count(), 1);
    assert_eq!(consumer.poll_recv(&mut consumer_cx), Poll::Ready(Some(2)));

    // Full: `poll_ready` waits for room, and a take wakes it.
    for value in [3, 4, 5] {
        assert_eq!(Pin::new(&mut sink).poll_ready(&mut cx), Poll::Ready(Ok(())));
        Pin::new(&mut sink).start_send(value).unwrap();
    }
    assert_eq!(stream.len(), 2);
    assert!(Pin::new(&mut sink).poll_ready(&mut cx).is_pending());
    let before = woken.count();
    assert_eq!(consumer.try_recv(), Ok(3));
    assert!(woken.count() > before);
    assert_eq!(Pin::new(&mut sink).poll_ready(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(consumer.try_recv(), Ok(4));
    assert_eq!(consumer.try_recv(), Ok(5));

    // Dropped while full, the value waiting in the sink is put nowhere.
    for value in [6, 7, 8] {
        assert_eq!(Pin::new(&mut sink).poll_ready(&mut cx), Poll::Ready(Ok(())));
        Pin::new(&mut sink).start_send(value).unwrap();
    }
    drop(sink);
    stream.close();
    assert_eq!(consumer.try_recv(), Ok(6));
    assert_eq!(consumer.try_recv(), Ok(7));
    assert_eq!(consumer.try_recv(), Err(TryRecvError::Closed));
}

/// A `send` future hands its value to the sink (`start_send`) before it
/// waits: dropped then, it leaves the value there, and the sink's next
/// `poll_ready` puts it.
#[test]
fn a_send_future_dropped_after_start_send_leaves_its_value_in_the_sink() {
    let stream = AsyncStream::with_capacity(1);
    let mut consumer = stream.subscribe();
    stream.try_put(0).unwrap();
    let mut sink = stream.sink();
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    {
        // Full: `start_send` keeps 1 in the sink; the flush waits.
        let mut send = sink.send(1);
        assert!(Pin::new(&mut send).poll(&mut cx).is_pending());
    }
    assert_eq!(consumer.try_recv(), Ok(0));
    assert_eq!(Pin::new(&mut sink).poll_ready(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(consumer.try_recv(), Ok(1));
}

/// `recv_blocking` on a closed stream: every value, then `None`, and the
/// consumer is terminated as after `recv().await`.
#[test]
fn recv_blocking_ends_a_closed_stream_and_terminates() {
    let stream = AsyncStream::<u8>::with_capacity(2);
    let mut consumer = stream.subscribe();
    stream.try_put(1).unwrap();
    drop(stream);
    assert_eq!(consumer.recv_blocking(), Some(1));
    assert!(!consumer.is_terminated());
    assert_eq!(consumer.recv_blocking(), None);
    assert!(consumer.is_terminated());
    assert_eq!(consumer.recv_blocking(), None);
}

/// A consumer is a `FusedStream`: terminated once it has yielded `None`,
/// not before.
#[test]
fn consumer_is_terminated_after_none() {
    block_on(async {
        let stream = AsyncStream::with_capacity(1);
        let mut consumer = stream.subscribe();
        stream.put(1).await.unwrap();
        stream.close();
        assert!(!consumer.is_terminated());
        assert_eq!(consumer.next().await, Some(1));
        assert!(!consumer.is_terminated(), "closed but not yet seen the end");
        assert_eq!(consumer.next().await, None);
        assert!(consumer.is_terminated());
        assert_eq!(consumer.next().await, None);
    });
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A payload that implements neither `Debug` nor `PartialEq`.
struct Opaque(u8);

fn assert_message(message: String) {
    assert!(!message.is_empty());
    let first = message.chars().next().unwrap();
    assert!(!first.is_uppercase(), "starts with a capital: {message:?}");
    assert!(
        !message.ends_with('.'),
        "ends with a full stop: {message:?}"
    );
}

/// `Display` is lowercase with no full stop; every error is a `std` error.
#[test]
fn error_messages_are_lowercase_without_full_stop() {
    assert_message(Closed(Opaque(0)).to_string());
    assert_message(TryPutError::Full(Opaque(0)).to_string());
    assert_message(TryPutError::Closed(Opaque(0)).to_string());
    assert_message(TryRecvError::Empty.to_string());
    assert_message(TryRecvError::Closed.to_string());
    let errors: [Box<dyn std::error::Error>; 3] = [
        Box::new(Closed(Opaque(0))),
        Box::new(TryPutError::Full(Opaque(0))),
        Box::new(TryRecvError::Empty),
    ];
    assert_eq!(errors.len(), 3);
}

/// `Debug` does not need `T: Debug`, and does not show the value.
#[test]
fn error_debug_does_not_require_debug_values() {
    let closed = format!("{:?}", Closed(Opaque(7)));
    let full = format!("{:?}", TryPutError::Full(Opaque(7)));
    let try_closed = format!("{:?}", TryPutError::Closed(Opaque(7)));
    assert!(closed.contains("Closed"), "{closed}");
    assert!(full.contains("Full"), "{full}");
    assert!(try_closed.contains("Closed"), "{try_closed}");
    assert_ne!(full, try_closed);
}

/// The errors hand the value back and say what they are.
#[test]
fn errors_hand_the_value_back() {
    assert_eq!(Closed(Opaque(1)).into_inner().0, 1);
    assert_eq!(Closed(Opaque(6)).0 .0, 6);
    let full = TryPutError::Full(Opaque(2));
    assert!(full.is_full() && !full.is_closed());
    assert_eq!(full.into_inner().0, 2);
    let closed = TryPutError::Closed(Opaque(3));
    assert!(closed.is_closed() && !closed.is_full());
    assert_eq!(closed.into_inner().0, 3);
    let from: TryPutError<Opaque> = Closed(Opaque(4)).into();
    assert!(from.is_closed());
    assert_eq!(from.into_inner().0, 4);
    // From the channel itself.
    let stream = AsyncStream::with_capacity(1);
    assert_eq!(stream.try_put(Opaque(5)).unwrap_err().into_inner().0, 5);
}

// ---------------------------------------------------------------------------
// Wake-ups, polled by hand
// ---------------------------------------------------------------------------

/// A pending `recv` is woken exactly once by a put, then is `Ready`.
#[test]
fn pending_recv_is_woken_by_put() {
    let stream = AsyncStream::with_capacity(4);
    let mut consumer = stream.subscribe();
    let (woken, waker) = counting_waker();
    let mut recv = consumer.recv();
    assert!(poll(&mut recv, &waker).is_pending());
    assert_eq!(woken.count(), 0);

    let (_, put_waker) = counting_waker();
    assert_eq!(poll(&mut stream.put(1), &put_waker), Poll::Ready(Ok(())));
    assert_eq!(woken.count(), 1);
    assert_eq!(poll(&mut recv, &waker), Poll::Ready(Some(1)));
    drop(recv);

    // And by `try_put`, waking the waker of the latest poll only.
    let (stale, stale_waker) = counting_waker();
    let mut recv = consumer.recv();
    assert!(poll(&mut recv, &stale_waker).is_pending());
    assert!(poll(&mut recv, &waker).is_pending());
    stream.try_put(2).unwrap();
    assert_eq!(woken.count(), 2);
    assert_eq!(stale.count(), 0);
    assert_eq!(poll(&mut recv, &waker), Poll::Ready(Some(2)));
}

/// A put pending on a full buffer is woken exactly once by the `recv` that
/// makes room, then is `Ready`.
#[test]
fn pending_put_is_woken_by_recv() {
    let stream = AsyncStream::with_capacity(1);
    let mut consumer = stream.subscribe();
    stream.try_put(1).unwrap();
    let (woken, waker) = counting_waker();
    let mut put = stream.put(2);
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(woken.count(), 0);

    let (_, recv_waker) = counting_waker();
    assert_eq!(
        poll(&mut consumer.recv(), &recv_waker),
        Poll::Ready(Some(1))
    );
    assert_eq!(woken.count(), 1);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
    assert_eq!(consumer.try_recv(), Ok(2));
}

/// `close` wakes a waiting consumer and a waiting producer; the consumer
/// ends, the producer gets its value back.
#[test]
fn close_wakes_both_sides() {
    let stream = AsyncStream::with_capacity(1);
    let mut fast = stream.subscribe();
    let mut slow = stream.subscribe();
    stream.try_put(1).unwrap();
    assert_eq!(fast.try_recv(), Ok(1));

    let (recv_woken, recv_waker) = counting_waker();
    let mut recv = fast.recv();
    assert!(poll(&mut recv, &recv_waker).is_pending());
    let (put_woken, put_waker) = counting_waker();
    let mut put = stream.put(2);
    assert!(poll(&mut put, &put_waker).is_pending(), "slow lags");

    assert!(stream.close());
    assert_eq!(recv_woken.count(), 1);
    assert_eq!(put_woken.count(), 1);
    assert_eq!(poll(&mut recv, &recv_waker), Poll::Ready(None));
    assert_eq!(poll(&mut put, &put_waker), Poll::Ready(Err(Closed(2))));
    assert_eq!(slow.try_recv(), Ok(1));
    assert_eq!(slow.try_recv(), Err(TryRecvError::Closed));
}

/// Dropping a waker is user code (its vtable's `drop`): the design says
/// none runs while the stream's lock is held. A waker replaced by a newer
/// one is dropped here from inside `poll`; it checks, from another thread,
/// that the stream is not locked. The timeout only bounds the failing case
/// (the lock held for the whole of the drop).
#[test]
fn no_waker_is_dropped_under_the_lock() {
    struct LockProbe {
        stream: Option<AsyncStream<u32>>,
        locked: Arc<AtomicBool>,
    }
    impl Wake for LockProbe {
        fn wake(self: Arc<Self>) {}
    }
    impl Drop for LockProbe {
        fn drop(&mut self) {
            let stream = self.stream.take().unwrap();
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = stream.len(); // locks the stream
                let _ = done.send(());
            });
            let timeout = std::time::Duration::from_secs(5);
            if finished.recv_timeout(timeout).is_err() {
                self.locked.store(true, SeqCst);
            }
        }
    }

    let mut failed = Vec::new();
    for side in ["consumer", "producer"] {
        let stream = AsyncStream::<u32>::with_capacity(1);
        let mut consumer = stream.subscribe();
        let locked = Arc::new(AtomicBool::new(false));
        let probe = Waker::from(Arc::new(LockProbe {
            stream: Some(stream.clone()),
            locked: locked.clone(),
        }));
        let (_, other) = counting_waker();
        if side == "consumer" {
            let mut recv = consumer.recv();
            assert!(poll(&mut recv, &probe).is_pending());
            drop(probe); // the stream now holds the only handle to it
            assert!(poll(&mut recv, &other).is_pending());
        } else {
            stream.try_put(0).unwrap();
            let mut put = stream.put(1);
            assert!(poll(&mut put, &probe).is_pending());
            drop(probe);
            assert!(poll(&mut put, &other).is_pending());
        }
        if locked.load(SeqCst) {
            failed.push(side);
        }
    }
    assert!(
        failed.is_empty(),
        "a replaced waker was dropped while the stream's lock was held, on the side of: {failed:?}"
    );
}

// ---------------------------------------------------------------------------
// Against a model
// ---------------------------------------------------------------------------

/// xorshift64: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Never zero, and distinct seeds give distinct streams.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs `ops` random operations on a stream of `capacity` and on a model of
/// it: one queue of pending values per consumer, and the rules
/// - `try_put` is `Closed` iff closed, else `Full` iff there is no consumer
///   or the longest queue holds `max(capacity, 1)` values, else every
///   queue gets the value;
/// - `try_recv` gives the queue's front, else `Closed` iff closed, else `Empty`;
/// - a put polled once then dropped (with `dropped_puts`) completes, fails
///   or leaves everything unchanged;
/// - when the last consumer leaves, the values in its queue from the first
///   one no consumer received are held, and the next consumer's queue
///   starts with them.
///
/// Returns a description of the first divergence.
fn run_model(seed: u64, capacity: usize, ops: usize, dropped_puts: bool) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let stream = AsyncStream::<u64>::with_capacity(capacity);
    let mut real: Vec<Consumer<u64>> = Vec::new();
    let mut model: Vec<VecDeque<u64>> = Vec::new();
    let mut closed = false;
    let mut next = 0u64;
    let limit = capacity.max(1);
    let mut received = std::collections::HashSet::new();
    let mut held = VecDeque::new();
    let (_, waker) = counting_waker();

    for step in 0..ops {
        let lag = model.iter().map(VecDeque::len).max().unwrap_or(0);
        let full = model.is_empty() || lag >= limit;
        let roll = rng.below(100);
        let what;
        match roll {
            0 => {
                what = "close";
                let got = stream.close();
                if got == closed {
                    return Err(format!("step {step}: close returned {got}"));
                }
                closed = true;
            }
            1..=10 => {
                what = "subscribe";
                if real.len() < 5 {
                    real.push(stream.subscribe());
                    model.push(std::mem::take(&mut held));
                }
            }
            11..=18 => {
                what = "drop consumer";
                if !real.is_empty() {
                    let i = rng.below(real.len());
                    drop(real.swap_remove(i));
                    let mut left = model.swap_remove(i);
                    if model.is_empty() {
                        while left.front().is_some_and(|v| received.contains(v)) {
                            left.pop_front();
                        }
                        held = left;
                    }
                }
            }
            19..=24 => {
                what = "clone consumer";
                if !real.is_empty() && real.len() < 5 {
                    let i = rng.below(real.len());
                    real.push(real[i].clone());
                    model.push(model[i].clone());
                }
            }
            25..=59 if !dropped_puts || roll < 45 => {
                what = "try_put";
                next += 1;
                let want = if closed {
                    Err(TryPutError::Closed(next))
                } else if full {
                    Err(TryPutError::Full(next))
                } else {
                    model.iter_mut().for_each(|q| q.push_back(next));
                    Ok(())
                };
                let got = stream.try_put(next);
                if got != want {
                    return Err(format!("step {step}: try_put got {got:?}, want {want:?}"));
                }
            }
            25..=59 => {
                what = "put polled once, then dropped";
                next += 1;
                let want = if closed {
                    Poll::Ready(Err(Closed(next)))
                } else if full {
                    Poll::Pending
                } else if capacity > 0 {
                    model.iter_mut().for_each(|q| q.push_back(next));
                    Poll::Ready(Ok(()))
                } else {
                    // A rendezvous put waits for the takes: dropping it
                    // withdraws the value.
                    Poll::Pending
                };
                let mut put = stream.put(next);
                let got = poll(&mut put, &waker);
                drop(put);
                if got != want {
                    return Err(format!("step {step}: put got {got:?}, want {want:?}"));
                }
            }
            _ => {
                what = "try_recv";
                if !real.is_empty() {
                    let i = rng.below(real.len());
                    let want = match model[i].pop_front() {
                        Some(v) => {
                            received.insert(v);
                            Ok(v)
                        }
                        None if closed => Err(TryRecvError::Closed),
                        None => Err(TryRecvError::Empty),
                    };
                    let got = real[i].try_recv();
                    if got != want {
                        return Err(format!(
                            "step {step}: consumer {i} try_recv got {got:?}, want {want:?}"
                        ));
                    }
                }
            }
        }

        // The observable state after every operation.
        let lag = model.iter().map(VecDeque::len).max().unwrap_or(held.len());
        let observed = (stream.len(), stream.consumer_count(), stream.is_closed());
        if observed != (lag, model.len(), closed) {
            return Err(format!(
                "step {step} ({what}): (len, consumers, closed) = {observed:?}, want {:?}",
                (lag, model.len(), closed)
            ));
        }
        for (i, (c, q)) in real.iter().zip(&model).enumerate() {
            if c.len() != q.len() {
                return Err(format!(
                    "step {step} ({what}): consumer {i} len {}, want {}",
                    c.len(),
                    q.len()
                ));
            }
        }
    }
    Ok(())
}

/// Runs 500 seeds x 200 operations for each capacity 0..=4; reports the
/// first failing seed of every failing capacity.
fn check_model(dropped_puts: bool) {
    let failures: Vec<String> = (0..=4)
        .filter_map(|capacity| {
            (0..500).find_map(|seed| {
                run_model(seed, capacity, 200, dropped_puts)
                    .err()
                    .map(|e| format!("capacity {capacity}, seed {seed}: {e}"))
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// 500 seeds x 200 operations per capacity 0..=4 of subscribe, drop and
/// clone consumers, `try_put`, `try_recv` and `close`, against the model.
#[test]
fn matches_the_model() {
    check_model(false);
}

/// The same, with puts polled once and dropped (cancelled) mixed in: a
/// dropped put must leave the stream as it was.
#[test]
fn matches_the_model_with_dropped_puts() {
    check_model(true);
}

// ---------------------------------------------------------------------------
// No user code under the lock; panicking `Clone`; values whose consumers left
// ---------------------------------------------------------------------------

/// Runs `body` on a thread of its own and fails if it has not finished
/// within a bound far above its running time: a body that re-enters a lock
/// the stream holds deadlocks, and the test then fails instead of hanging.
fn finishes(what: &str, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(()) => thread.join().unwrap(),
        // The body panicked: report its panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(thread.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: deadlocked (user code ran under the stream's lock)")
        }
    }
}

/// A value whose `Clone` and `Drop` call back into its own stream, which
/// locks the stream: run under the stream's lock, they deadlock.
struct Reentrant {
    stream: Arc<std::sync::OnceLock<AsyncStream<Reentrant>>>,
    alive: Arc<AtomicUsize>,
}

impl Reentrant {
    fn new(
        stream: &Arc<std::sync::OnceLock<AsyncStream<Reentrant>>>,
        alive: &Arc<AtomicUsize>,
    ) -> Self {
        alive.fetch_add(1, SeqCst);
        Reentrant {
            stream: stream.clone(),
            alive: alive.clone(),
        }
    }

    fn touch(&self) {
        if let Some(stream) = self.stream.get() {
            let _ = stream.consumer_count();
            let _ = stream.is_closed();
            let _ = stream.len();
        }
    }
}

impl Clone for Reentrant {
    fn clone(&self) -> Self {
        self.touch();
        Reentrant::new(&self.stream, &self.alive)
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        self.touch();
        self.alive.fetch_sub(1, SeqCst);
    }
}

/// A stream of [`Reentrant`] values (its handle is what their `Clone` and
/// `Drop` call), and the count of values alive.
fn reentrant_stream(
    capacity: usize,
) -> (
    AsyncStream<Reentrant>,
    Arc<std::sync::OnceLock<AsyncStream<Reentrant>>>,
    Arc<AtomicUsize>,
) {
    let stream = AsyncStream::with_capacity(capacity);
    let cell = Arc::new(std::sync::OnceLock::new());
    let _ = cell.set(stream.clone());
    (stream, cell, Arc::new(AtomicUsize::new(0)))
}

/// Every path that clones, drops or hands back a value runs that user code
/// with the stream unlocked: receiving (`recv`, `try_recv`,
/// `recv_blocking`, `poll_next`) while a producer on another thread puts,
/// dropping a consumer with values pending, closing, cancelling a put, a
/// put taken back from consumers that left, and values handed back in
/// errors. Two consumers, so that values are cloned as well as moved.
#[test]
fn no_value_is_cloned_or_dropped_under_the_lock() {
    const N: usize = if cfg!(miri) { 20 } else { 2_000 };
    for capacity in [0, 1, 4] {
        finishes("receiving while a producer puts", move || {
            let (stream, cell, alive) = reentrant_stream(capacity);
            let mut consumers: Vec<_> = (0..4).map(|_| stream.subscribe()).collect();
            let producer = {
                let stream = stream.clone();
                let (cell, alive) = (cell.clone(), alive.clone());
                std::thread::spawn(move || {
                    for _ in 0..N {
                        if stream.put_blocking(Reentrant::new(&cell, &alive)).is_err() {
                            panic!("closed under the producer");
                        }
                    }
                    stream.close();
                })
            };
            let mut d = consumers.pop().unwrap();
            let mut c = consumers.pop().unwrap();
            let mut b = consumers.pop().unwrap();
            let mut a = consumers.pop().unwrap();
            let receivers = [
                std::thread::spawn(move || {
                    let mut n = 0;
                    while a.recv_blocking().is_some() {
                        n += 1;
                    }
                    n
                }),
                std::thread::spawn(move || block_on(async { b.by_ref().count().await })),
                std::thread::spawn(move || {
                    block_on(async {
                        let mut n = 0;
                        while c.recv().await.is_some() {
                            n += 1;
                        }
                        n
                    })
                }),
                std::thread::spawn(move || {
                    let mut n = 0;
                    loop {
                        match d.try_recv() {
                            Ok(_) => n += 1,
                            Err(TryRecvError::Empty) => std::thread::yield_now(),
                            Err(TryRecvError::Closed) => return n,
                        }
                    }
                }),
            ];
            producer.join().unwrap();
            for receiver in receivers {
                assert_eq!(receiver.join().unwrap(), N);
            }
            drop((stream, cell));
            assert_eq!(alive.load(SeqCst), 0, "a value leaked or was dropped twice");
        });
    }
    finishes("dropping consumers with values pending, closing", || {
        let (stream, cell, alive) = reentrant_stream(4);
        let mut a = stream.subscribe();
        let b = stream.subscribe();
        for _ in 0..4 {
            assert!(stream.try_put(Reentrant::new(&cell, &alive)).is_ok());
        }
        drop(a.try_recv().unwrap());
        let c = b.clone();
        drop(b); // held 4 with a and c
        assert!(stream.close());
        drop(c); // the last to hold the one a received: drops it
        while let Some(value) = a.recv_blocking() {
            drop(value);
        }
        drop(a);
        drop((stream, cell));
        assert_eq!(alive.load(SeqCst), 0);
    });
    finishes("dropping the consumer values were put for", || {
        let (stream, cell, alive) = reentrant_stream(4);
        let a = stream.subscribe();
        for _ in 0..4 {
            assert!(stream.try_put(Reentrant::new(&cell, &alive)).is_ok());
        }
        let later = stream.subscribe();
        drop(a); // the values were for a alone: dropped
        assert_eq!(alive.load(SeqCst), 0);
        drop((later, stream, cell));
    });
    finishes("cancelling puts, values handed back", || {
        let (waker_count, waker) = counting_waker();
        let (stream, cell, alive) = reentrant_stream(0);
        // No consumer: `try_put` hands the value back.
        drop(stream.try_put(Reentrant::new(&cell, &alive)));
        let a = stream.subscribe();
        // A rendezvous put cancelled before anyone received it.
        let mut put = stream.put(Reentrant::new(&cell, &alive));
        assert!(poll(&mut put, &waker).is_pending());
        drop(put);
        // A put whose only consumer left before taking the value: it takes
        // it back, then hands it back on close.
        let mut put = stream.put(Reentrant::new(&cell, &alive));
        assert!(poll(&mut put, &waker).is_pending());
        drop(a);
        assert!(waker_count.count() > 0);
        assert!(poll(&mut put, &waker).is_pending());
        stream.close();
        match poll(&mut put, &waker) {
            Poll::Ready(Err(Closed(value))) => drop(value),
            other => panic!(
                "expected the value back, got {:?}",
                other.map(|r| r.is_ok())
            ),
        }
        drop(put);
        // After close: handed back at once.
        drop(stream.try_put(Reentrant::new(&cell, &alive)));
        drop(block_on(stream.put(Reentrant::new(&cell, &alive))));
        drop((stream, cell));
        assert_eq!(alive.load(SeqCst), 0);
    });
}

/// A waker whose `clone`, `wake` and `drop` call back into a stream, which
/// locks it: run under the stream's lock, they deadlock.
mod reentrant_waker {
    use std::sync::Arc;
    use std::task::{RawWaker, RawWakerVTable, Waker};

    use timecast::AsyncStream;

    type Probe = AsyncStream<u32>;

    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

    fn touch(data: *const ()) {
        // SAFETY: `data` comes from `Arc::into_raw` in `waker` or `clone`,
        // and the reference it stands for is still held.
        let probe = unsafe { &*data.cast::<Probe>() };
        let _ = probe.consumer_count();
        let _ = probe.is_closed();
    }

    fn clone(data: *const ()) -> RawWaker {
        touch(data);
        // SAFETY: `data` is a live `Arc<Probe>` reference (see `touch`); the
        // new waker owns the count added here.
        unsafe { Arc::increment_strong_count(data.cast::<Probe>()) };
        RawWaker::new(data, &VTABLE)
    }

    fn wake(data: *const ()) {
        wake_by_ref(data);
        drop(data);
    }

    fn wake_by_ref(data: *const ()) {
        touch(data);
    }

    fn drop(data: *const ()) {
        touch(data);
        // SAFETY: the waker being dropped owned this reference.
        std::mem::drop(unsafe { Arc::from_raw(data.cast::<Probe>()) });
    }

    /// A waker that calls into `stream` whenever it is cloned, woken or
    /// dropped.
    pub(super) fn waker(stream: &Probe) -> Waker {
        let data = Arc::into_raw(Arc::new(stream.clone())).cast::<()>();
        // SAFETY: the vtable's functions uphold `RawWaker`'s contract: each
        // waker owns one reference to the `Arc`, cloned and released with it.
        unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }
    }
}

/// Wakers are cloned, woken and dropped with the stream unlocked, on both
/// sides: a waker that calls back into the stream does not deadlock.
#[test]
fn no_waker_is_cloned_woken_or_dropped_under_the_lock() {
    finishes("a waiting receive", || {
        let stream = AsyncStream::<u32>::with_capacity(1);
        let mut consumer = stream.subscribe();
        let waker = reentrant_waker::waker(&stream);
        let mut recv = consumer.recv();
        assert!(poll(&mut recv, &waker).is_pending());
        assert!(poll(&mut recv, &reentrant_waker::waker(&stream)).is_pending());
        stream.try_put(1).unwrap();
        assert_eq!(poll(&mut recv, &waker), Poll::Ready(Some(1)));
        drop(recv);
        let mut recv = consumer.recv();
        assert!(poll(&mut recv, &waker).is_pending());
        drop(recv);
        drop(consumer);
    });
    finishes("a waiting put", || {
        let stream = AsyncStream::<u32>::new();
        let waker = reentrant_waker::waker(&stream);
        let mut put = stream.put(1);
        assert!(poll(&mut put, &waker).is_pending()); // no consumer
        let mut consumer = stream.subscribe();
        assert!(poll(&mut put, &reentrant_waker::waker(&stream)).is_pending());
        assert_eq!(consumer.try_recv(), Ok(1));
        assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
        drop(put);
        let mut put = stream.put(2);
        assert!(poll(&mut put, &waker).is_pending());
        drop(put); // cancelled
        stream.close();
    });
}

/// A value whose `clone` panics on chosen calls (counted across all its
/// copies), and that counts the copies alive.
#[derive(Debug)]
struct Fragile {
    id: u64,
    clones: Arc<AtomicUsize>,
    panic_on: Arc<std::sync::Mutex<Vec<usize>>>,
    alive: Arc<AtomicUsize>,
}

impl Fragile {
    fn new(id: u64, like: &Fragile) -> Self {
        like.alive.fetch_add(1, SeqCst);
        Fragile {
            id,
            clones: like.clones.clone(),
            panic_on: like.panic_on.clone(),
            alive: like.alive.clone(),
        }
    }
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        let call = self.clones.fetch_add(1, SeqCst) + 1;
        if self.panic_on.lock().unwrap().contains(&call) {
            panic!("clone number {call} panics");
        }
        Fragile::new(self.id, self)
    }
}

impl Drop for Fragile {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, SeqCst);
    }
}

/// A `Clone` that panics mid-receive: the panic reaches the caller, the
/// consumer stays at the value and receives it on its next call, the other
/// consumers lose nothing, producers go on past many wraps of a small ring,
/// and every copy is dropped exactly once.
#[test]
fn a_panicking_clone_loses_blocks_and_leaks_nothing() {
    for capacity in [0, 1, 2, 3] {
        let template = Fragile {
            id: u64::MAX,
            clones: Arc::new(AtomicUsize::new(0)),
            panic_on: Arc::new(std::sync::Mutex::new(Vec::new())),
            alive: Arc::new(AtomicUsize::new(1)),
        };
        let stream = AsyncStream::with_capacity(capacity);
        let mut consumers: Vec<_> = (0..3).map(|_| stream.subscribe()).collect();
        let mut received = vec![Vec::new(); 3];
        let mut panics = 0;
        const N: u64 = 40;
        for id in 0..N {
            // Every few values, one of the cloning consumers' clones panics.
            if id % 3 == 1 {
                let next = template.clones.load(SeqCst) + 1;
                template.panic_on.lock().unwrap().push(next);
            }
            let mut put = stream.put(Fragile::new(id, &template));
            let (_, waker) = counting_waker();
            let mut done = poll(&mut put, &waker).is_ready(); // buffered, or in flight
            for (i, consumer) in consumers.iter_mut().enumerate() {
                loop {
                    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        consumer.try_recv()
                    }));
                    match caught {
                        Ok(Ok(v)) => received[i].push(v.id),
                        Ok(Err(TryRecvError::Empty)) => break,
                        Ok(Err(TryRecvError::Closed)) => unreachable!("never closed"),
                        Err(_) => panics += 1, // the next call receives it
                    }
                }
            }
            done = done || poll(&mut put, &waker).is_ready();
            assert!(done, "capacity {capacity}: the put of {id} is stuck");
        }
        assert!(panics > 0);
        for (i, seen) in received.iter().enumerate() {
            assert_eq!(
                *seen,
                (0..N).collect::<Vec<_>>(),
                "capacity {capacity}, consumer {i}"
            );
        }
        assert_eq!(stream.len(), 0);
        // The ring is whole: a full round fits.
        for id in 0..capacity.max(1) as u64 {
            assert!(stream.try_put(Fragile::new(id, &template)).is_ok());
        }
        drop(consumers);
        drop(received);
        drop(stream);
        assert_eq!(
            template.alive.load(SeqCst),
            1,
            "capacity {capacity}: a copy leaked or was dropped twice"
        );
    }
}

/// A consumer whose clone panicked and that is then dropped releases the
/// value it was at: the producer goes on, and nothing leaks.
#[test]
fn a_consumer_dropped_after_a_panicking_clone_releases_its_value() {
    for capacity in [0, 2] {
        let template = Fragile {
            id: 0,
            clones: Arc::new(AtomicUsize::new(0)),
            panic_on: Arc::new(std::sync::Mutex::new(vec![1])),
            alive: Arc::new(AtomicUsize::new(1)),
        };
        let stream = AsyncStream::with_capacity(capacity);
        let mut a = stream.subscribe();
        let mut b = stream.subscribe();
        let (woken, waker) = counting_waker();
        let mut put = stream.put(Fragile::new(7, &template));
        let mut done = poll(&mut put, &waker).is_ready();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.try_recv()));
        assert!(caught.is_err(), "the first clone panics");
        assert_eq!(b.try_recv().map(|v| v.id), Ok(7));
        drop(a);
        assert!(capacity > 0 || woken.count() > 0);
        done = done || poll(&mut put, &waker).is_ready();
        assert!(done, "capacity {capacity}: the put is stuck");
        for id in 0..capacity.max(1) as u64 {
            assert!(
                stream.try_put(Fragile::new(id, &template)).is_ok(),
                "the slot is free"
            );
        }
        drop((b, put));
        drop(stream);
        assert_eq!(
            template.alive.load(SeqCst),
            1,
            "capacity {capacity}: leaked"
        );
    }
}

/// A rendezvous put whose only consumer leaves before taking the value does
/// not complete: it is woken, keeps waiting, and the next consumer to
/// subscribe receives the value; only then does the put return `Ok`.
#[test]
fn rendezvous_value_whose_consumer_left_goes_to_the_next_subscriber() {
    let stream = AsyncStream::new();
    let a = stream.subscribe();
    let (woken, waker) = counting_waker();
    let mut put = stream.put(String::from("v"));
    assert!(poll(&mut put, &waker).is_pending());
    drop(a);
    assert_eq!(woken.count(), 1, "the consumer's drop wakes the put");
    assert!(poll(&mut put, &waker).is_pending(), "nobody took the value");
    assert_eq!(stream.len(), 0);
    let mut b = stream.subscribe();
    assert_eq!(woken.count(), 2, "subscribing wakes the put");
    assert!(poll(&mut put, &waker).is_pending(), "offered to b");
    assert_eq!(b.try_recv().as_deref(), Ok("v"));
    assert_eq!(woken.count(), 3);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
    assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
}

/// ... and if the stream closes first, the put hands the value back,
/// whether it closes before or after the put looks again.
#[test]
fn rendezvous_value_whose_consumer_left_is_handed_back_on_close() {
    for poll_before_close in [false, true] {
        let stream = AsyncStream::new();
        let a = stream.subscribe();
        let (woken, waker) = counting_waker();
        let mut put = stream.put(7);
        assert!(poll(&mut put, &waker).is_pending());
        drop(a);
        if poll_before_close {
            assert!(poll(&mut put, &waker).is_pending());
        }
        let before = woken.count();
        stream.close();
        if poll_before_close {
            assert!(woken.count() > before, "closing wakes the waiting put");
        }
        assert_eq!(poll(&mut put, &waker), Poll::Ready(Err(Closed(7))));
    }
}

/// A consumer that subscribed after the put, while the consumers the value
/// was for all leave without taking it, receives it: the put offers it
/// again to the consumers there are.
#[test]
fn rendezvous_value_whose_consumers_left_goes_to_a_later_consumer() {
    let stream = AsyncStream::new();
    let a = stream.subscribe();
    let (woken, waker) = counting_waker();
    let mut put = stream.put(1);
    assert!(poll(&mut put, &waker).is_pending());
    let mut late = stream.subscribe();
    assert_eq!(
        late.try_recv(),
        Err(TryRecvError::Empty),
        "put before it subscribed"
    );
    drop(a);
    assert!(woken.count() > 0);
    assert!(
        poll(&mut put, &waker).is_pending(),
        "offered to the late consumer"
    );
    assert_eq!(late.try_recv(), Ok(1));
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
    // The stream goes on as usual.
    let mut put = stream.put(2);
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(late.try_recv(), Ok(2));
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
}

/// A rendezvous put dropped after a consumer subscribed leaves a tombstone
/// in its slot; the next put waits for that slot. The consumer that steps
/// over the tombstone, freeing the slot, and finds nothing after it wakes
/// that put: otherwise both would wait for each other for good.
#[test]
fn stepping_over_a_tombstone_wakes_the_put_waiting_for_its_slot() {
    let stream = AsyncStream::new();
    let mut a = stream.subscribe();
    let (_, waker) = counting_waker();
    let mut put = stream.put(1);
    assert!(poll(&mut put, &waker).is_pending());
    let mut late = stream.subscribe();
    drop(put); // withdrawn, but `late` subscribed since: a tombstone

    let (woken, put_waker) = counting_waker();
    let mut next = stream.put(2);
    assert!(
        poll(&mut next, &put_waker).is_pending(),
        "waits for the tombstone's slot, or for its consumers"
    );
    let before = woken.count();
    let (_, recv_waker) = counting_waker();
    let mut recv = a.recv();
    assert!(
        poll(&mut recv, &recv_waker).is_pending(),
        "nothing after the tombstone yet"
    );
    drop(recv);
    assert!(
        woken.count() > before,
        "the consumer freed the slot the put waits for, and did not wake it"
    );
    let mut recv = a.recv();
    let (put_done, received) = run_until_stalled(&mut next, &mut recv);
    assert_eq!(
        (put_done, received),
        (None, Some(Some(2))),
        "(next put, a's recv) after stepping over the tombstone: the put \
         still waits for `late`"
    );
    assert_eq!(late.try_recv(), Ok(2));
    assert_eq!(poll(&mut next, &put_waker), Poll::Ready(Ok(())));
}

/// A value one consumer took while the other left is delivered: the put
/// completes. A put cancelled after its consumers left gives its value up
/// and frees its slot.
#[test]
fn rendezvous_value_taken_by_one_consumer_completes_the_put() {
    let stream = AsyncStream::new();
    let mut a = stream.subscribe();
    let b = stream.subscribe();
    let (_, waker) = counting_waker();
    let mut put = stream.put(1);
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(a.try_recv(), Ok(1));
    drop(b);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));

    let mut put = stream.put(2);
    assert!(poll(&mut put, &waker).is_pending());
    drop(a);
    drop(put); // cancelled after every consumer left: the value is dropped
    let mut c = stream.subscribe();
    assert_eq!(stream.try_put(3), Ok(()), "the slot is free");
    assert_eq!(c.try_recv(), Ok(3));
}

/// A value whose put completed (buffered, or `try_put`) and that the last
/// consumer left untaken waits, with every later value, for the next
/// consumer, which receives it first; meanwhile puts wait for that
/// consumer, as with no consumer at all. Values some consumer received
/// before it left are not held; nor are values whose consumers left while
/// consumers subscribed after them remain (those were put for nobody
/// there is).
#[test]
fn values_the_last_consumer_left_wait_for_the_next_one() {
    static ALIVE: AtomicUsize = AtomicUsize::new(0);
    let value = |v: u64| (v, Live::new(&ALIVE));
    let ids = |got: Vec<(u64, Live)>| got.into_iter().map(|(v, _)| v).collect::<Vec<_>>();
    for capacity in [0, 1, 4] {
        let limit = capacity.max(1) as u64;
        let stream = AsyncStream::with_capacity(capacity);

        // The last consumer leaves untaken values: held for the next one.
        let mut a = stream.subscribe();
        for v in 0..limit {
            assert!(stream.try_put(value(v)).is_ok());
        }
        if limit > 1 {
            assert_eq!(a.try_recv().map(|(v, _)| v), Ok(0));
        }
        drop(a);
        let held = if limit > 1 { limit - 1 } else { 1 };
        assert_eq!(ALIVE.load(SeqCst), held as usize, "capacity {capacity}");
        assert_eq!(stream.len(), held as usize);
        assert!(stream.try_put(value(99)).unwrap_err().is_full());
        let (woken, waker) = counting_waker();
        let mut put = stream.put(value(limit));
        assert!(poll(&mut put, &waker).is_pending(), "no consumer");
        let mut b = stream.subscribe();
        assert_eq!(woken.count(), 1);
        assert_eq!(b.len(), held as usize);
        let mut got = Vec::new();
        let mut done = false;
        while got.len() < held as usize + 1 {
            done = done || poll(&mut put, &waker).is_ready();
            if let Ok(v) = b.try_recv() {
                got.push(v);
            }
        }
        let first = limit - held;
        assert_eq!(
            ids(got),
            (first..=limit).collect::<Vec<_>>(),
            "capacity {capacity}"
        );
        assert!(done || poll(&mut put, &waker).is_ready());
        drop(put);

        // Two consumers: what one received before leaving is not held.
        let mut c = stream.subscribe();
        for v in 10..10 + limit {
            assert!(stream.try_put(value(v)).is_ok());
        }
        if limit > 1 {
            assert_eq!(c.try_recv().map(|(v, _)| v), Ok(10));
        }
        drop(c);
        drop(b);
        let mut d = stream.subscribe();
        let mut got = Vec::new();
        while let Ok(v) = d.try_recv() {
            got.push(v);
        }
        let first = if limit > 1 { 11 } else { 10 };
        assert_eq!(
            ids(got),
            (first..10 + limit).collect::<Vec<_>>(),
            "capacity {capacity}"
        );

        // Consumers that subscribed after a value remain: it is dropped.
        assert!(stream.try_put(value(20)).is_ok());
        let mut e = stream.subscribe();
        drop(d);
        assert_eq!(
            ALIVE.load(SeqCst),
            0,
            "capacity {capacity}: 20 was put for d alone"
        );
        assert!(stream.try_put(value(21)).is_ok());
        assert_eq!(e.try_recv().map(|(v, _)| v), Ok(21));

        // Held values outlive a close, for a consumer that subscribes after
        // it, and are dropped with the stream if none does.
        assert!(stream.try_put(value(30)).is_ok());
        drop(e);
        stream.close();
        let mut f = stream.subscribe();
        assert_eq!(f.try_recv().map(|(v, _)| v), Ok(30));
        assert_eq!(f.try_recv().map(|(v, _)| v), Err(TryRecvError::Closed));
        drop(f);
        let stream = AsyncStream::with_capacity(capacity);
        let g = stream.subscribe();
        assert!(stream.try_put(value(40)).is_ok());
        drop(g);
        assert_eq!(ALIVE.load(SeqCst), 1);
        drop(stream);
        assert_eq!(ALIVE.load(SeqCst), 0, "capacity {capacity}: leaked");
    }
}

// ---------------------------------------------------------------------------
// Capacity
// ---------------------------------------------------------------------------

/// A capacity above `MAX_CAPACITY` panics with a message that says which
/// capacity and what to pass instead; `MAX_CAPACITY` itself works.
#[test]
fn a_capacity_above_the_maximum_panics_with_a_clear_message() {
    for capacity in [AsyncStream::<u8>::MAX_CAPACITY + 1, usize::MAX] {
        let caught = std::panic::catch_unwind(|| AsyncStream::<u8>::with_capacity(capacity));
        let message = caught.expect_err("accepted").downcast::<String>().unwrap();
        assert!(
            message.contains(&capacity.to_string()) && message.contains("MAX_CAPACITY"),
            "{message}"
        );
    }
    let stream = AsyncStream::with_capacity(AsyncStream::<u8>::MAX_CAPACITY);
    let mut consumer = stream.subscribe();
    stream.try_put(1).unwrap();
    assert_eq!(consumer.try_recv(), Ok(1));
}

/// The buffer grows while values are buffered, across several doublings,
/// with consumers at different positions in different rings: every
/// consumer receives every value in order, the capacity still bounds what
/// is buffered, and the grown buffer is reused.
#[test]
fn the_buffer_grows_as_values_are_buffered() {
    for capacity in [33, 100, 1000] {
        let stream = AsyncStream::with_capacity(capacity);
        let mut fast = stream.subscribe();
        let mut slow = stream.subscribe();
        let mut late = None;
        let (mut next_fast, mut next_slow, mut next_late) = (0, 0, 0);
        let mut put = 0;
        for round in 0..4 {
            while stream.try_put(put).is_ok() {
                put += 1;
                if put == 50 && late.is_none() {
                    late = Some((stream.subscribe(), put));
                    next_late = put;
                }
                // The fast consumer keeps up, half the time.
                if put % 2 == 0 {
                    assert_eq!(fast.try_recv(), Ok(next_fast));
                    next_fast += 1;
                }
            }
            assert_eq!(stream.len(), capacity, "round {round}");
            assert_eq!(slow.len(), capacity);
            // The slow consumer takes a third, the others everything.
            for _ in 0..capacity / 3 {
                assert_eq!(slow.try_recv(), Ok(next_slow));
                next_slow += 1;
            }
            while let Ok(v) = fast.try_recv() {
                assert_eq!(v, next_fast);
                next_fast += 1;
            }
            if let Some((late, _)) = &mut late {
                while let Ok(v) = late.try_recv() {
                    assert_eq!(v, next_late);
                    next_late += 1;
                }
            }
        }
        let late = late.map(|(late, _)| late);
        drop(late);
        while let Ok(v) = slow.try_recv() {
            assert_eq!(v, next_slow);
            next_slow += 1;
        }
        assert_eq!((next_fast, next_slow), (put, put));
        assert!(stream.is_empty());
        // A clone made mid-stream sees the same values as its original.
        for i in 0..capacity as u64 / 2 {
            stream.try_put(put + i).unwrap();
        }
        let mut twin = slow.clone();
        for i in 0..capacity as u64 / 2 {
            assert_eq!(slow.try_recv(), Ok(put + i));
            assert_eq!(twin.try_recv(), Ok(put + i));
            assert_eq!(fast.try_recv(), Ok(put + i));
        }
    }
}

/// The whole capacity is there even when the buffer had not grown to it
/// while the first `capacity` values went through: a consumer that kept up
/// at first and then falls behind holds back the producer only once
/// `capacity` values wait for it (the small first ring is reused, and then
/// a larger one starts), and `len` counts each buffered value once.
#[test]
fn the_whole_capacity_is_there_after_a_consumer_kept_up() {
    for capacity in [64, 100, 1000] {
        let stream = AsyncStream::with_capacity(capacity);
        let mut consumer = stream.subscribe();
        // Well past the capacity, one value buffered at a time: the first
        // ring is reused, never grown.
        let mut put = 0u64;
        while put < 3 * capacity as u64 {
            stream.try_put(put).unwrap();
            assert_eq!(consumer.try_recv(), Ok(put));
            put += 1;
        }
        // Now the consumer falls behind: `capacity` values fit.
        for i in 0..capacity {
            assert_eq!(stream.try_put(put), Ok(()), "value {i} of {capacity}");
            put += 1;
            assert_eq!(stream.len(), i + 1);
        }
        assert_eq!(stream.try_put(put), Err(TryPutError::Full(put)));
        for expected in put - capacity as u64..put {
            assert_eq!(consumer.try_recv(), Ok(expected));
        }
        assert!(stream.is_empty());
    }
}

// ---------------------------------------------------------------------------
// Values a consumer knows ready (taken without loading the tail)
// ---------------------------------------------------------------------------

/// A consumer whose first receive loads a tail past the end of the ring it
/// stands in (the first ring holds 32 values; at capacity 33 and 100 the
/// buffer grows once and twice) takes the rest from the newer rings, in
/// order, and so does a clone made right after that receive.
#[test]
fn a_consumer_that_loaded_a_tail_past_its_ring_takes_the_rest_from_the_newer_rings() {
    for capacity in [33, 100] {
        let n = capacity as u64;
        let stream = AsyncStream::with_capacity(capacity);
        let mut reader = stream.subscribe();
        for v in 0..n {
            stream.try_put(v).unwrap();
        }
        assert_eq!(reader.try_recv(), Ok(0));
        let mut twin = reader.clone();
        for v in 1..n {
            assert_eq!(reader.try_recv(), Ok(v), "capacity {capacity}");
            assert_eq!(twin.try_recv(), Ok(v), "capacity {capacity}, the clone");
        }
        assert_eq!(reader.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(twin.try_recv(), Err(TryRecvError::Empty));
        // Once more, in the grown buffer.
        for v in n..2 * n {
            stream.try_put(v).unwrap();
        }
        for v in n..2 * n {
            assert_eq!(reader.try_recv(), Ok(v), "capacity {capacity}");
            assert_eq!(twin.try_recv(), Ok(v), "capacity {capacity}, the clone");
        }
        assert!(stream.is_empty());
    }
}

/// Values the last consumer left, some in the first ring and some in the
/// next one, go to the next consumer in order: it starts in the older ring
/// and moves on at its end, though the tail is past it. The same from a
/// value in the newer ring, with a clone made partway.
#[test]
fn values_held_across_a_ring_boundary_reach_the_next_consumer_in_order() {
    let stream = AsyncStream::with_capacity(100);
    let mut a = stream.subscribe();
    // The first ring holds 0..32; 32.. start the next one.
    for v in 0..40 {
        stream.try_put(v).unwrap();
    }
    for v in 0..5 {
        assert_eq!(a.try_recv(), Ok(v));
    }
    drop(a);
    let mut b = stream.subscribe();
    assert_eq!(b.len(), 35);
    for v in 40..60 {
        stream.try_put(v).unwrap();
    }
    for v in 5..35 {
        assert_eq!(b.try_recv(), Ok(v));
    }
    drop(b);
    let mut c = stream.subscribe();
    assert_eq!(c.len(), 25);
    for v in 35..45 {
        assert_eq!(c.try_recv(), Ok(v));
    }
    let mut twin = c.clone();
    for v in 45..60 {
        assert_eq!(c.try_recv(), Ok(v));
        assert_eq!(twin.try_recv(), Ok(v));
    }
    assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(twin.try_recv(), Err(TryRecvError::Empty));
    assert!(stream.is_empty());
}

/// A `Clone` that panics on a value the consumer already knew ready (its
/// previous receive loaded the tail past it): the consumer stays at the
/// value and its next receive clones it again; dropped after another such
/// panic, it releases the values it was at, which the other consumer then
/// gets by move; the slots free, and every copy is dropped once.
#[test]
fn a_clone_that_panics_on_a_value_known_ready_leaves_the_consumer_at_it() {
    let template = Fragile {
        id: u64::MAX,
        clones: Arc::new(AtomicUsize::new(0)),
        // The clones of values 1 and 2 (the first tries) panic.
        panic_on: Arc::new(std::sync::Mutex::new(vec![2, 4])),
        alive: Arc::new(AtomicUsize::new(1)),
    };
    let stream = AsyncStream::with_capacity(8);
    let mut a = stream.subscribe();
    let mut b = stream.subscribe();
    for id in 0..4 {
        assert!(stream.try_put(Fragile::new(id, &template)).is_ok());
    }
    let try_recv = |consumer: &mut Consumer<Fragile>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| consumer.try_recv()))
            .map(|got| got.map(|v| v.id))
    };
    assert_eq!(try_recv(&mut a).ok(), Some(Ok(0)));
    assert!(try_recv(&mut a).is_err(), "the clone of 1 panics");
    assert_eq!(a.len(), 3);
    assert_eq!(try_recv(&mut a).ok(), Some(Ok(1)));
    assert!(try_recv(&mut a).is_err(), "the clone of 2 panics");
    assert_eq!(a.len(), 2);
    drop(a);
    for id in 0..4 {
        assert_eq!(try_recv(&mut b).ok(), Some(Ok(id)));
    }
    assert_eq!(b.try_recv().map(|v| v.id), Err(TryRecvError::Empty));
    assert_eq!(stream.len(), 0);
    for id in 0..8 {
        assert!(
            stream.try_put(Fragile::new(id, &template)).is_ok(),
            "slot {id} is free"
        );
    }
    drop((b, stream));
    assert_eq!(
        template.alive.load(SeqCst),
        1,
        "a copy leaked or was dropped twice"
    );
}

// ---------------------------------------------------------------------------
// Threads (also run under Miri, with fewer values)
// ---------------------------------------------------------------------------

/// Two producers and three consumers on five threads share heap values
/// (`String`s, so that Miri sees every allocation): consumers that block,
/// poll as a `Stream` and spin on `try_recv` receive every value of every
/// producer once, in each producer's order; a fourth consumer is dropped
/// midway with values pending; the buffer grows as values pile up. Miri
/// checks every access to the slots, and that nothing leaks.
#[test]
fn threads_share_heap_values_without_races() {
    const N: u64 = if cfg!(miri) { 24 } else { 1_000 };
    const PRODUCERS: usize = 2;
    for capacity in [0, 1, 40] {
        let stream = AsyncStream::<String>::with_capacity(capacity);
        let parse = |s: String| {
            let (p, i) = s.split_once(':').unwrap();
            (p.parse::<usize>().unwrap(), i.parse::<u64>().unwrap())
        };
        let mut blocking = stream.subscribe();
        let mut polled = stream.subscribe();
        let mut spinning = stream.subscribe();
        let mut leaving = stream.subscribe();
        let readers = vec![
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while let Some(v) = blocking.recv_blocking() {
                    seen.push(parse(v));
                }
                seen
            }),
            std::thread::spawn(move || {
                block_on(async {
                    let mut seen = Vec::new();
                    while let Some(v) = polled.next().await {
                        seen.push(parse(v));
                    }
                    seen
                })
            }),
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    match spinning.try_recv() {
                        Ok(v) => seen.push(parse(v)),
                        Err(TryRecvError::Empty) => std::thread::yield_now(),
                        Err(TryRecvError::Closed) => return seen,
                    }
                }
            }),
        ];
        let writers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let producer = stream.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        producer.put_blocking(format!("{p}:{i}")).unwrap();
                    }
                })
            })
            .collect();
        // The fourth consumer takes a few values, then leaves with values
        // pending: the others go on.
        for _ in 0..3 {
            assert!(leaving.recv_blocking().is_some());
        }
        drop(leaving);
        drop(stream);
        for writer in writers {
            writer.join().unwrap();
        }
        for reader in readers {
            let seen = reader.join().unwrap();
            check_tagged(&seen, PRODUCERS, N, &format!("capacity {capacity}"));
        }
    }
}

// ---------------------------------------------------------------------------
// Batched put
// ---------------------------------------------------------------------------

/// `put_all` delivers every value, in order, to every consumer, at every
/// capacity, joined on one thread and across threads.
#[test]
fn put_all_delivers_every_value_in_order() {
    const N: u64 = if cfg!(miri) { 40 } else { 2_000 };
    for capacity in CAPACITIES {
        // Three consumers `join`ed (not `join_all`, whose boxed futures
        // Miri's Stacked Borrows rejects).
        let stream = AsyncStream::with_capacity(capacity);
        let readers = futures::future::join3(
            collect_all(stream.subscribe()),
            collect_all(stream.subscribe()),
            collect_all(stream.subscribe()),
        );
        let writer = async move {
            stream.put_all(0..N).await.unwrap();
        };
        let ((), (a, b, c)) = block_on(join(writer, readers));
        for s in [a, b, c] {
            assert_eq!(s, expected(N), "capacity {capacity}, one thread");
        }

        let stream = AsyncStream::with_capacity(capacity);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let mut consumer = stream.subscribe();
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while let Some(v) = consumer.recv_blocking() {
                        seen.push(v);
                    }
                    seen
                })
            })
            .collect();
        block_on(stream.put_all(0..N)).unwrap();
        drop(stream);
        for reader in readers {
            assert_eq!(
                reader.join().unwrap(),
                expected(N),
                "capacity {capacity}, threads"
            );
        }
    }
}

/// Backpressure partway through a batch: the put fills the buffer, waits
/// holding one value it pulled, is woken by the consumer's receive, goes on
/// where it stopped, and completes once every value is put.
#[test]
fn put_all_waits_for_room_partway_and_is_woken_by_recv() {
    let stream = AsyncStream::with_capacity(4);
    let mut consumer = stream.subscribe();
    let (woken, waker) = counting_waker();
    let mut values = 0..10u64;
    let mut put = stream.put_all(values.by_ref());

    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(put.put_count(), 4);
    assert_eq!(stream.len(), 4);
    assert_eq!(woken.count(), 0);
    assert_eq!(consumer.try_recv(), Ok(0));
    assert_eq!(woken.count(), 1, "the receive that made room wakes the put");
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(put.put_count(), 5);
    for i in 1..5 {
        assert_eq!(consumer.try_recv(), Ok(i));
    }
    assert_eq!(woken.count(), 2, "one wake-up for the four receives");
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(put.put_count(), 9, "5 to 8 put, 9 waits");
    assert_eq!(consumer.try_recv(), Ok(5));
    assert_eq!(woken.count(), 3);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
    assert_eq!(put.put_count(), 10);
    drop(put);
    assert_eq!(values.next(), None);
    let rest: Vec<_> = std::iter::from_fn(|| consumer.try_recv().ok()).collect();
    assert_eq!(rest, [6, 7, 8, 9]);
}

/// While it waits, `put_all` holds the one value it pulled to wait with:
/// the iterator keeps the others.
#[test]
fn put_all_pulls_only_what_fits() {
    let stream = AsyncStream::with_capacity(4);
    let _consumer = stream.subscribe();
    let (_, waker) = counting_waker();
    let mut values = 0..10u64;
    let mut put = stream.put_all(values.by_ref());
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(put.put_count(), 4);
    drop(put);
    assert_eq!(values, 5..10, "4 put, 1 held (dropped with the future)");
}

/// The same once the room known ahead is set (a value put and taken
/// before): a batch put without the lock pulls no more than is known to
/// fit, so on a close `put_all` hands back only the value it held, and
/// the iterator keeps the rest.
#[test]
fn put_all_pulls_only_what_fits_after_a_batch_without_the_lock() {
    for capacity in [2u64, 5, 40] {
        let stream = AsyncStream::with_capacity(capacity as usize);
        let mut consumer = stream.subscribe();
        stream.try_put(0).unwrap();
        assert_eq!(consumer.try_recv(), Ok(0));
        let (_, waker) = counting_waker();
        let mut values = 10..100u64;
        let mut put = stream.put_all(values.by_ref());
        assert!(poll(&mut put, &waker).is_pending());
        assert_eq!(put.put_count() as u64, capacity, "capacity {capacity}");
        assert!(stream.close());
        assert_eq!(
            poll(&mut put, &waker),
            Poll::Ready(Err(Closed(vec![10 + capacity]))),
            "capacity {capacity}"
        );
        drop(put);
        assert_eq!(values.next(), Some(11 + capacity), "capacity {capacity}");
    }
}

/// With no consumer, `put_all` waits for the first one, woken by its
/// subscription, which then receives every value.
#[test]
fn put_all_without_consumer_waits_for_the_first_subscriber() {
    let stream = AsyncStream::with_capacity(8);
    let (woken, waker) = counting_waker();
    let mut put = stream.put_all(0..3u64);
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(put.put_count(), 0);
    let mut consumer = stream.subscribe();
    assert_eq!(woken.count(), 1);
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
    drop(put);
    let seen: Vec<_> = std::iter::from_fn(|| consumer.try_recv().ok()).collect();
    assert_eq!(seen, [0, 1, 2]);
}

/// A close while `put_all` waits: the future is woken and hands back the
/// value it held; the values put before stay for the consumers; the
/// iterator keeps the values not pulled.
#[test]
fn put_all_on_close_hands_back_what_it_did_not_put() {
    let stream = AsyncStream::with_capacity(3);
    let mut consumer = stream.subscribe();
    let (woken, waker) = counting_waker();
    let mut values = 0..10u64;
    let mut put = stream.put_all(values.by_ref());
    assert!(poll(&mut put, &waker).is_pending());
    assert!(stream.close());
    assert_eq!(woken.count(), 1, "the close wakes the waiting put");
    assert_eq!(poll(&mut put, &waker), Poll::Ready(Err(Closed(vec![3]))));
    drop(put);
    assert_eq!(values.next(), Some(4));
    let seen: Vec<_> = std::iter::from_fn(|| consumer.try_recv().ok()).collect();
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(consumer.try_recv(), Err(TryRecvError::Closed));

    // Into a closed stream: the first value comes back.
    let mut values = 0..3u64;
    assert_eq!(
        block_on(stream.put_all(values.by_ref())),
        Err(Closed(vec![0]))
    );
    assert_eq!(values, 1..3);
}

/// An empty iterator puts nothing and succeeds at once, with no consumer,
/// with no room, or closed.
#[test]
fn put_all_of_nothing_completes_at_once() {
    let stream = AsyncStream::<u64>::with_capacity(1);
    let (_, waker) = counting_waker();
    assert_eq!(poll(&mut stream.put_all([]), &waker), Poll::Ready(Ok(())));
    let _consumer = stream.subscribe();
    stream.try_put(1).unwrap();
    assert_eq!(poll(&mut stream.put_all([]), &waker), Poll::Ready(Ok(())));
    stream.close();
    assert_eq!(poll(&mut stream.put_all([]), &waker), Poll::Ready(Ok(())));
    let rendezvous = AsyncStream::<u64>::new();
    assert_eq!(
        poll(&mut rendezvous.put_all([]), &waker),
        Poll::Ready(Ok(()))
    );
}

/// Dropping a waiting `put_all` keeps what it put, drops the one value it
/// held, leaves the rest in the iterator, and frees its waiter slot: the
/// next put still works and nothing leaks.
#[test]
fn dropped_put_all_keeps_what_it_put_and_drops_what_it_held() {
    static ALIVE: AtomicUsize = AtomicUsize::new(0);
    let stream = AsyncStream::with_capacity(2);
    let mut consumer = stream.subscribe();
    let (_, waker) = counting_waker();
    let mut values = (0..6).map(|_| Live::new(&ALIVE));
    let mut put = stream.put_all(values.by_ref());
    assert!(poll(&mut put, &waker).is_pending());
    assert_eq!(ALIVE.load(SeqCst), 3, "2 put, 1 held");
    drop(put);
    assert_eq!(ALIVE.load(SeqCst), 2, "the held value is dropped");
    assert_eq!(values.len(), 3, "the rest were never pulled");
    drop(consumer.try_recv().unwrap());
    drop(consumer.try_recv().unwrap());
    assert_eq!(consumer.try_recv().err(), Some(TryRecvError::Empty));
    // The waiter slot was released: the rest goes in through a new put.
    let receive = async {
        for _ in 0..3 {
            drop(consumer.recv().await);
        }
    };
    let (put, ()) = block_on(join(stream.put_all(values), receive));
    assert!(put.is_ok());
    assert_eq!(ALIVE.load(SeqCst), 0, "nothing leaked");
}

/// Rendezvous: `put_all` puts one value at a time, each taken by every
/// consumer before the next is offered; dropping it withdraws the value
/// nobody received, as dropping a `Put` does.
#[test]
fn put_all_on_a_rendezvous_puts_one_value_at_a_time() {
    let stream = AsyncStream::new();
    let mut a = stream.subscribe();
    let mut b = stream.subscribe();
    let (woken, waker) = counting_waker();
    let mut put = stream.put_all(0..3u64);
    assert!(poll(&mut put, &waker).is_pending());
    for i in 0..3 {
        assert_eq!(stream.len(), 1, "one value in flight");
        assert_eq!(a.try_recv(), Ok(i));
        assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
        let before = woken.count();
        assert_eq!(b.try_recv(), Ok(i));
        assert!(woken.count() > before, "the last take wakes the put");
        assert_eq!(put.put_count(), i as usize);
        let done = poll(&mut put, &waker);
        assert_eq!(done.is_ready(), i == 2);
    }
    assert_eq!(put.put_count(), 3);
    drop(put);

    let mut put = stream.put_all(10..13u64);
    assert!(poll(&mut put, &waker).is_pending());
    drop(put); // nobody received 10: withdrawn
    assert_eq!(stream.len(), 0);
    assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
    stream.try_put(20).unwrap();
    assert_eq!(a.try_recv(), Ok(20));
    assert_eq!(b.try_recv(), Ok(20));
}

/// The iterator runs with the stream unlocked: an iterator that puts into
/// the same stream (another producer taking the room the batch saw) does
/// not deadlock. The batch then holds the values the room no longer fits,
/// puts them once room frees, and the stream shows both producers' values
/// in the order they were put.
#[test]
fn put_all_iterator_runs_unlocked_and_yields_room_to_other_producers() {
    finishes("an iterator putting into its own stream", || {
        let stream = AsyncStream::with_capacity(4);
        let mut consumer = stream.subscribe();
        let other = stream.clone();
        let (woken, waker) = counting_waker();
        let values = (0..6u64).inspect(move |&i| {
            if i == 2 {
                other.try_put(100).unwrap();
            }
            let _ = other.len();
        });
        let mut put = stream.put_all(values);
        assert!(poll(&mut put, &waker).is_pending());
        // 0 alone (the first look), then 1, 2, 3 pulled for the room of
        // three: 100 took one place, so 1 and 2 went in and 3 waits.
        assert_eq!(put.put_count(), 3);
        let seen: Vec<_> = std::iter::from_fn(|| consumer.try_recv().ok()).collect();
        assert_eq!(seen, [0, 100, 1, 2]);
        assert_eq!(woken.count(), 1);
        assert_eq!(poll(&mut put, &waker), Poll::Ready(Ok(())));
        drop(put);
        let seen: Vec<_> = std::iter::from_fn(|| consumer.try_recv().ok()).collect();
        assert_eq!(seen, [3, 4, 5]);
    });
}

/// An iterator that panics partway: the panic reaches the caller, the
/// values put before stay put, those pulled in the same batch are dropped
/// with the future, and the stream goes on working.
#[test]
fn put_all_with_a_panicking_iterator_keeps_the_stream_working() {
    static ALIVE: AtomicUsize = AtomicUsize::new(0);
    let stream = AsyncStream::with_capacity(8);
    let mut consumer = stream.subscribe();
    let (_, waker) = counting_waker();
    let values = (0..6).map(|i| {
        assert!(i != 4, "the iterator fails at 4");
        Live::new(&ALIVE)
    });
    let mut put = stream.put_all(values);
    let panicked =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poll(&mut put, &waker)));
    assert!(panicked.is_err());
    // 0 went in alone (the first look found room for one); 1, 2, 3 were
    // pulled for the next batch when the iterator failed.
    assert_eq!(put.put_count(), 1);
    assert_eq!(ALIVE.load(SeqCst), 4);
    drop(put);
    assert_eq!(
        ALIVE.load(SeqCst),
        1,
        "the pulled values drop with the future"
    );
    assert!(consumer.try_recv().is_ok());
    assert_eq!(ALIVE.load(SeqCst), 0);
    stream.try_put(Live::new(&ALIVE)).unwrap();
    block_on(stream.put_all([Live::new(&ALIVE)])).unwrap_or_else(|_| panic!("closed"));
    assert_eq!(stream.len(), 2);
}

/// Several `put_all`s on their own threads: every consumer receives every
/// value of every producer once, each producer's values in order.
#[test]
fn concurrent_put_alls_lose_and_duplicate_nothing_threads() {
    const PRODUCERS: usize = 3;
    const N: u64 = if cfg!(miri) { 30 } else { 3_000 };
    for capacity in [0, 1, 7, 64] {
        let stream = AsyncStream::<(usize, u64)>::with_capacity(capacity);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let mut consumer = stream.subscribe();
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while let Some(v) = consumer.recv_blocking() {
                        seen.push(v);
                    }
                    seen
                })
            })
            .collect();
        let writers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let producer = stream.clone();
                std::thread::spawn(move || {
                    block_on(producer.put_all((0..N).map(|i| (p, i))))
                        .unwrap_or_else(|_| panic!("closed"));
                })
            })
            .collect();
        drop(stream);
        for writer in writers {
            writer.join().unwrap();
        }
        for reader in readers {
            let seen = reader.join().unwrap();
            check_tagged(&seen, PRODUCERS, N, &format!("capacity {capacity}"));
        }
    }
}

#[test]
fn a_try_recv_error_fills_a_word_so_a_result_moves_in_whole_words() {
    // `Result<T, TryRecvError>` keeps the error in the word beside the
    // value's niche; a byte-sized error there makes the compiler write a
    // `String`'s pointer in pieces and read it back whole.
    use std::mem::size_of;
    assert_eq!(size_of::<TryRecvError>(), size_of::<usize>());
    assert_eq!(
        size_of::<Result<String, TryRecvError>>(),
        size_of::<String>()
    );
}
