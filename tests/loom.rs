//! loom models of the channel: every interleaving of a few threads, to show
//! that no wake-up is lost. Under `--cfg loom` the crate's mutex and `Arc`
//! are loom's (`src/sync.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test loom
//! ```
//!
//! The crate's blocking helpers park real threads, so the models drive the
//! async API with [`block_on`] below, which parks loom threads.
#![cfg(loom)]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::Notify;
use loom::thread;
use timecast::{AsyncStream, Closed, TryRecvError};

/// Runs `fut` to completion on the current loom thread, parking it while
/// the future is pending. (What `loom::future::block_on` does, without
/// needing loom's `futures` feature.) A wake-up before the park is kept,
/// not lost: `Notify` holds one permit.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unparker(Notify);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.notify();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.notify();
        }
    }

    let unparker = Arc::new(Unparker(Notify::new()));
    let waker = Waker::from(unparker.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        unparker.0.wait();
    }
}

/// Wake-up on room: a producer blocked on a full buffer completes once the
/// consumer takes a value.
#[test]
fn put_is_woken_by_room() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut consumer = stream.subscribe();
        stream.try_put(1).unwrap();

        let producer = thread::spawn(move || {
            block_on(stream.put(2)).unwrap();
            stream // keep the stream open until joined
        });
        assert_eq!(block_on(consumer.recv()), Some(1));
        let _stream = producer.join().unwrap();
        assert_eq!(consumer.try_recv(), Ok(2));
    });
}

/// Wake-up on value: a consumer waiting on an empty stream receives the
/// value a producer puts.
#[test]
fn recv_is_woken_by_a_value() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut consumer = stream.subscribe();

        let receiver = thread::spawn(move || block_on(consumer.recv()));
        block_on(stream.put(7)).unwrap();
        assert_eq!(receiver.join().unwrap(), Some(7));
    });
}

/// Close while both sides wait: a consumer waiting for a value ends, and a
/// producer waiting for room (behind a consumer that never takes) gets its
/// value back. Both consumers outlive the producer's join: a consumer's
/// drop also wakes producers, which would hide a close that does not.
#[test]
fn close_releases_both_sides() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut fast = stream.subscribe();
        let slow = stream.subscribe();
        stream.try_put(1).unwrap();
        assert_eq!(fast.try_recv(), Ok(1));

        let producer = {
            let stream = stream.clone();
            thread::spawn(move || block_on(stream.put(2)))
        };
        let receiver = thread::spawn(move || (block_on(fast.recv()), fast));
        stream.close();
        assert_eq!(producer.join().unwrap(), Err(Closed(2)));
        let (received, fast) = receiver.join().unwrap();
        assert_eq!(received, None);
        drop((fast, slow));
    });
}

/// A consumer dropped while a producer waits for it releases the producer.
#[test]
fn consumer_drop_releases_a_waiting_producer() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut fast = stream.subscribe();
        let slow = stream.subscribe();
        stream.try_put(1).unwrap();
        assert_eq!(fast.try_recv(), Ok(1));

        let producer = thread::spawn(move || {
            block_on(stream.put(2)).unwrap();
            stream
        });
        drop(slow);
        let _stream = producer.join().unwrap();
        assert_eq!(fast.try_recv(), Ok(2));
        assert_eq!(fast.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Rendezvous: the put completes only after the consumer took the value
/// (nothing is left buffered), and the value received is the one put.
#[test]
fn rendezvous_completes_after_the_take() {
    loom::model(|| {
        let stream = AsyncStream::new();
        let mut consumer = stream.subscribe();

        let producer = thread::spawn(move || {
            block_on(stream.put(5)).unwrap();
            assert!(stream.is_empty(), "put returned before the value was taken");
            stream
        });
        assert_eq!(block_on(consumer.recv()), Some(5));
        let _stream = producer.join().unwrap();
    });
}

/// A value that counts its drops, to catch a double drop or a leak in the
/// slots' take-by-move / clone protocol.
#[derive(Debug)]
struct Counted(u32, Arc<loom::sync::atomic::AtomicUsize>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted(self.0, self.1.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
    }
}

/// Two consumers on two threads take the same value without the lock: one
/// clones, the last one moves it out (or drops the original, if it cloned
/// too). Each gets the value once; exactly three values are dropped: the two
/// received, and nothing else (the original was moved or dropped once).
#[test]
fn two_consumers_take_one_value() {
    loom::model(|| {
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let stream = AsyncStream::with_capacity(1);
        let mut a = stream.subscribe();
        let mut b = stream.subscribe();
        stream.try_put(Counted(9, drops.clone())).unwrap();
        drop(stream);

        let other = thread::spawn(move || {
            let got = a.try_recv().unwrap();
            assert_eq!(got.0, 9);
        });
        let got = b.try_recv().unwrap();
        assert_eq!(got.0, 9);
        drop(got);
        other.join().unwrap();
        drop(b);
        // Two received values dropped; the original was moved into one of
        // them, or dropped in its slot after two clones.
        let dropped = drops.load(loom::sync::atomic::Ordering::Relaxed);
        assert!(dropped == 2 || dropped == 3, "{dropped} drops");
    });
}

/// A rendezvous put dropped while a consumer takes its value: either the
/// consumer got it (the put was committed), or the put was retracted and
/// the stream is exactly as before: the next value is the next one received.
#[test]
fn withdrawn_rendezvous_put_races_a_take() {
    loom::model(|| {
        let stream = AsyncStream::new();
        let mut consumer = stream.subscribe();
        let taker = thread::spawn(move || {
            let first = consumer.try_recv();
            (first, consumer)
        });
        {
            let waker = Waker::from(Arc::new(Noop));
            let mut put = pin!(stream.put(1));
            let _ = put.as_mut().poll(&mut Context::from_waker(&waker));
        } // dropped: withdraws the value unless the consumer claimed it
        let (first, mut consumer) = taker.join().unwrap();
        match first {
            Ok(1) => {}
            Err(TryRecvError::Empty) => {
                // Retracted: nothing is left in the stream.
                assert_eq!(stream.len(), 0);
                assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
            }
            other => panic!("unexpected {other:?}"),
        }
        stream.try_put(2).unwrap();
        assert_eq!(consumer.try_recv(), Ok(2));
    });
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// The slot a value leaves is refilled at once: two consumers on two
/// threads take the first value (one clones, the last moves or drops it)
/// while the producer waits for room for the second. The producer must not
/// write the slot before the first value is gone (loom checks every access
/// to the slot's cell).
#[test]
fn a_freed_slot_is_refilled_only_after_its_value_is_gone() {
    loom::model(|| {
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let stream = AsyncStream::with_capacity(1);
        let mut a = stream.subscribe();
        let mut b = stream.subscribe();
        stream.try_put(Counted(1, drops.clone())).unwrap();

        let other = thread::spawn(move || {
            assert_eq!(block_on(a.recv()).map(|v| v.0), Some(1));
            a
        });
        let refill = drops.clone();
        let producer = thread::spawn(move || {
            block_on(stream.put(Counted(2, refill))).unwrap();
        });
        assert_eq!(block_on(b.recv()).map(|v| v.0), Some(1));
        producer.join().unwrap();
        let mut a = other.join().unwrap();
        assert_eq!(a.try_recv().map(|v| v.0), Ok(2));
        assert_eq!(b.try_recv().map(|v| v.0), Ok(2));
    });
}

/// A value that counts how many copies of it are alive: clones add one,
/// drops take one away. Zero at the end means nothing leaked and nothing
/// was dropped twice.
#[derive(Debug)]
struct Live(Arc<loom::sync::atomic::AtomicUsize>);

impl Live {
    fn new(alive: &Arc<loom::sync::atomic::AtomicUsize>) -> Self {
        alive.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
        Live(alive.clone())
    }
}

impl Clone for Live {
    fn clone(&self) -> Self {
        Live::new(&self.0)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, loom::sync::atomic::Ordering::Relaxed);
    }
}

/// A consumer dropped (under the lock) while another takes the same value
/// without it: whichever is last to let go of the value moves or drops it,
/// once, and frees the slot, so the producer has room again.
#[test]
fn a_take_races_a_consumer_drop() {
    loom::model(|| {
        let alive = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let stream = AsyncStream::with_capacity(1);
        let mut a = stream.subscribe();
        let b = stream.subscribe();
        stream.try_put(Live::new(&alive)).unwrap();

        let taker = thread::spawn(move || {
            drop(a.try_recv().unwrap());
            a
        });
        drop(b);
        let mut a = taker.join().unwrap();
        assert_eq!(
            alive.load(loom::sync::atomic::Ordering::Relaxed),
            0,
            "a copy leaked or was dropped twice"
        );
        stream.try_put(Live::new(&alive)).unwrap();
        drop(a.try_recv().unwrap());
        assert_eq!(alive.load(loom::sync::atomic::Ordering::Relaxed), 0);
    });
}

/// A cancelled rendezvous put is withdrawn (the tail moves back) and a new
/// put reuses its slot while a consumer that read the old tail races to
/// take it: the consumer must see the new value fully written (loom checks
/// the slot's cell), or nothing.
#[test]
fn a_retracted_slot_is_reused_while_a_consumer_races() {
    loom::model(|| {
        let stream = AsyncStream::new();
        let mut consumer = stream.subscribe();
        let taker = thread::spawn(move || {
            let first = consumer.try_recv();
            (first, consumer)
        });
        {
            let waker = Waker::from(Arc::new(Noop));
            let mut put = pin!(stream.put(1));
            let _ = put.as_mut().poll(&mut Context::from_waker(&waker));
        } // dropped: withdraws the value unless the consumer claimed it
        let second = stream.try_put(2);
        let (first, mut consumer) = taker.join().unwrap();
        match (first, second) {
            // The consumer claimed 1 first: the withdrawal failed, so 1
            // stayed in flight and 2 found no room.
            (Ok(1), Err(e)) => assert!(e.is_full()),
            (Ok(1), Ok(())) => assert_eq!(consumer.try_recv(), Ok(2)),
            // 1 was retracted; the consumer took 2, or nothing yet.
            (Ok(2), Ok(())) => {}
            (Err(TryRecvError::Empty), Ok(())) => assert_eq!(consumer.try_recv(), Ok(2)),
            other => panic!("unexpected {other:?}"),
        }
    });
}

/// A value whose `Clone` and `Drop` call back into its stream (through the
/// producer handle it carries), which locks the stream's mutex.
struct Reentrant(AsyncStream<Reentrant>);

impl Clone for Reentrant {
    fn clone(&self) -> Self {
        let _ = self.0.consumer_count();
        Reentrant(self.0.clone())
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        let _ = self.0.is_closed();
    }
}

/// A consumer waiting for a value that must be cloned (another consumer
/// takes it too) while the producer puts it: however the put interleaves
/// with the receive's look, register and look-again, the clone never runs
/// under the stream's mutex (loom reports the deadlock if it does).
#[test]
fn a_waiting_receive_clones_outside_the_lock() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut a = stream.subscribe();
        let mut b = stream.subscribe();
        let value = Reentrant(stream.clone());

        let receiver = thread::spawn(move || {
            drop(block_on(a.recv()));
            a
        });
        block_on(stream.put(value)).unwrap_or_else(|_| panic!("closed"));
        let a = receiver.join().unwrap();
        drop(b.try_recv().unwrap_or_else(|e| panic!("{e}")));
        drop((a, b, stream));
    });
}

/// A rendezvous value one consumer takes on its thread while the other
/// leaves: the put completes, the value received once. If instead both
/// leave, the put takes its value back and offers it to the next consumer.
#[test]
fn a_rendezvous_take_races_a_consumer_drop() {
    loom::model(|| {
        let stream = AsyncStream::new();
        let mut a = stream.subscribe();
        let b = stream.subscribe();
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let mut put = pin!(stream.put(1));
        assert!(put.as_mut().poll(&mut cx).is_pending());

        let taker = thread::spawn(move || a.try_recv());
        drop(b);
        assert_eq!(taker.join().unwrap(), Ok(1));
        assert_eq!(put.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    });
    loom::model(|| {
        let stream = AsyncStream::new();
        let a = stream.subscribe();
        let b = stream.subscribe();
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let mut put = pin!(stream.put(1));
        assert!(put.as_mut().poll(&mut cx).is_pending());

        let leaver = thread::spawn(move || drop(a));
        drop(b);
        leaver.join().unwrap();
        assert!(put.as_mut().poll(&mut cx).is_pending());
        let mut c = stream.subscribe();
        assert!(put.as_mut().poll(&mut cx).is_pending());
        assert_eq!(c.try_recv(), Ok(1));
        assert_eq!(put.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    });
}

/// The buffer grows while a consumer takes on its thread (under loom a
/// stream starts with one slot, so capacity 2 grows once): the consumer
/// moves on to the new ring and receives every value in order, each
/// written before it is read (loom checks every access to the slots).
#[test]
fn a_consumer_follows_the_buffer_as_it_grows() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(2);
        let mut a = stream.subscribe();
        stream.try_put(0).unwrap();
        let taker = thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 3 {
                match a.try_recv() {
                    Ok(v) => got.push(v),
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(TryRecvError::Closed) => break,
                }
            }
            got
        });
        // Slot 0 may still hold 0: then a ring of 2 starts at 1.
        stream.try_put(1).unwrap();
        block_on(stream.put(2)).unwrap();
        drop(stream);
        assert_eq!(taker.join().unwrap(), [0, 1, 2]);
    });
}

/// A consumer takes two values after one load of the tail (the second
/// without loading it) while a producer puts into a buffer that grows
/// (under loom a stream starts with one slot, so capacity 3 has rings of
/// 1, 2 and 4): the value it takes without loading the tail was written
/// before it is read, and the producer's next value, in the ring the
/// consumer stands in or a newer one, arrives after it, in order.
#[test]
fn a_consumer_takes_a_value_known_ready_while_the_buffer_grows() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(3);
        let mut consumer = stream.subscribe();
        // 0 in the first ring; 1 and 2 in the second.
        for v in 0..3 {
            stream.try_put(v).unwrap();
        }
        let producer = thread::spawn(move || {
            // Fits once 0 is taken; starts the third ring if 1 is not.
            block_on(stream.put(3)).unwrap();
        });
        let got: Vec<_> = std::iter::from_fn(|| block_on(consumer.recv())).collect();
        assert_eq!(got, [0, 1, 2, 3]);
        producer.join().unwrap();
    });
}

/// A batched put across a buffer that grows (under loom a stream starts
/// with one slot, so capacity 2 grows once) while a consumer on another
/// thread receives: the put waits for room, is woken, and every value
/// arrives once, in order, written before it is read.
#[test]
fn put_all_is_woken_by_room() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(2);
        let mut consumer = stream.subscribe();
        let producer = thread::spawn(move || {
            block_on(stream.put_all(0..3)).unwrap();
            stream // keep the stream open until joined
        });
        let got: Vec<_> = (0..3).map(|_| block_on(consumer.recv())).collect();
        assert_eq!(got, [Some(0), Some(1), Some(2)]);
        let _stream = producer.join().unwrap();
    });
}

/// A close races a batched put waiting for room: the values put stay for
/// the consumer, those pulled and not put come back in the error, the rest
/// stay in the iterator; nothing is lost or duplicated.
#[test]
fn put_all_races_a_close() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut consumer = stream.subscribe();
        let closer = stream.clone();
        let producer = thread::spawn(move || {
            let mut values = 0..3;
            let result = block_on(stream.put_all(values.by_ref()));
            (result, values)
        });
        closer.close();
        let (result, values) = producer.join().unwrap();
        let mut seen: Vec<i32> = std::iter::from_fn(|| consumer.try_recv().ok()).collect();
        assert_eq!(consumer.try_recv(), Err(TryRecvError::Closed));
        match result {
            Ok(()) => panic!("the consumer never took a value: the put cannot finish"),
            Err(Closed(back)) => seen.extend(back),
        }
        seen.extend(values);
        assert_eq!(seen, [0, 1, 2]);
    });
}

/// A slow consumer leaves while a batched put waits for it: its drop
/// releases the put, and the other consumer receives every value.
#[test]
fn put_all_is_released_by_a_consumer_drop() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut fast = stream.subscribe();
        let slow = stream.subscribe();
        let producer = thread::spawn(move || {
            block_on(stream.put_all(0..2)).unwrap();
            stream
        });
        assert_eq!(block_on(fast.recv()), Some(0));
        drop(slow);
        assert_eq!(block_on(fast.recv()), Some(1));
        let _stream = producer.join().unwrap();
    });
}

// ---- The put without the lock ----
//
// A buffered put claims the tail with a compare-and-swap and writes its
// slot without the mutex, while anything that takes the mutex waits for
// the claim in flight. These models race such a put against each party
// that takes the mutex, and against another put.

/// A stream of capacity 2 with one consumer, and a put of `Counted(5)`
/// started on another thread through a second producer handle: the
/// setup of the races below. Returns the drop counter, the stream, the
/// consumer and the put's thread.
fn a_put_of_5_on_another_thread() -> (
    Arc<loom::sync::atomic::AtomicUsize>,
    AsyncStream<Counted>,
    timecast::Consumer<Counted>,
    thread::JoinHandle<()>,
) {
    let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
    let stream = AsyncStream::with_capacity(2);
    let first = stream.subscribe();
    let other = stream.clone();
    let value = Counted(5, drops.clone());
    let producer = thread::spawn(move || {
        block_on(other.put(value)).unwrap();
    });
    (drops, stream, first, producer)
}

/// Nothing is buffered, and the stream (capacity 2) has room for exactly
/// two values: every slot the race used was freed.
fn assert_two_values_fit(
    stream: &AsyncStream<Counted>,
    drops: &Arc<loom::sync::atomic::AtomicUsize>,
) {
    assert_eq!(stream.len(), 0);
    stream.try_put(Counted(6, drops.clone())).unwrap();
    stream.try_put(Counted(7, drops.clone())).unwrap();
    assert!(stream.try_put(Counted(8, drops.clone())).is_err());
}

/// Two producers on two threads put at once: one claims, the other finds
/// the claim in flight (or loses the compare-and-swap) and puts under the
/// lock. The consumer receives both values, each once, and nothing else.
#[test]
fn unlocked_puts_race_from_two_producers() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(2);
        let mut consumer = stream.subscribe();
        let other = stream.clone();
        let producer = thread::spawn(move || {
            block_on(other.put(1)).unwrap();
        });
        block_on(stream.put(2)).unwrap();
        producer.join().unwrap();
        let mut got = [consumer.try_recv().unwrap(), consumer.try_recv().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
    });
}

/// A put without the lock races a consumer subscribing: the new consumer
/// is counted for the value exactly when it starts before it. Either way
/// every copy is dropped once, and the slot frees once both consumers have
/// passed it, so the stream has room for two values again.
#[test]
fn an_unlocked_put_races_a_subscribe() {
    loom::model(|| {
        let (drops, stream, mut first, producer) = a_put_of_5_on_another_thread();
        let mut late = stream.subscribe();
        producer.join().unwrap();
        assert_eq!(first.try_recv().unwrap().0, 5);
        let late_got = match late.try_recv() {
            Ok(v) => {
                assert_eq!(v.0, 5);
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(e) => panic!("{e:?}"),
        };
        // The value left its slot, and nothing is buffered.
        assert_eq!(stream.len(), 0);
        let dropped = drops.load(loom::sync::atomic::Ordering::Relaxed);
        // One copy per consumer that received it (the last one moved the
        // original out, or dropped it after cloning).
        let received = 1 + usize::from(late_got);
        assert!(
            dropped == received || dropped == received + 1,
            "{dropped} drops for {received} received"
        );
        // The slot is free: two values fit.
        assert_two_values_fit(&stream, &drops);
    });
}

/// A put without the lock races a close: it either put the value, which
/// the consumer then receives before the end, or gets it back.
#[test]
fn an_unlocked_put_races_a_close() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut consumer = stream.subscribe();
        let other = stream.clone();
        let producer = thread::spawn(move || block_on(other.put(3)));
        stream.close();
        match producer.join().unwrap() {
            Ok(()) => assert_eq!(consumer.try_recv(), Ok(3)),
            Err(Closed(v)) => assert_eq!(v, 3),
        }
        assert_eq!(consumer.try_recv(), Err(TryRecvError::Closed));
    });
}

/// A put without the lock races a consumer leaving: the value is for the
/// consumer that stays, and is dropped exactly once, whether the leaving
/// one was counted for it or not.
#[test]
fn an_unlocked_put_races_a_consumer_drop() {
    loom::model(|| {
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let stream = AsyncStream::with_capacity(1);
        let mut stays = stream.subscribe();
        let leaves = stream.subscribe();
        let other = stream.clone();
        let value = Counted(8, drops.clone());
        let producer = thread::spawn(move || {
            block_on(other.put(value)).unwrap();
        });
        drop(leaves);
        producer.join().unwrap();
        let got = stays.try_recv().unwrap();
        assert_eq!(got.0, 8);
        assert_eq!(stream.len(), 0);
        drop(got);
        // The received copy; the original too, if the consumer cloned it
        // before the other one's count was released.
        let dropped = drops.load(loom::sync::atomic::Ordering::Relaxed);
        assert!(dropped == 1 || dropped == 2, "{dropped} drops");
        // The slot is free again.
        stream.try_put(Counted(9, drops.clone())).unwrap();
    });
}

/// A consumer about to wait registers under the lock while a put without
/// the lock is in flight: the consumer either sees the value (the lock
/// waited for the claim to finish) or is woken by the put, which then
/// finds the waiter and takes the lock. No wake-up is lost.
#[test]
fn an_unlocked_put_races_a_consumer_going_to_wait() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(4);
        let mut consumer = stream.subscribe();
        let receiver = thread::spawn(move || {
            let a = block_on(consumer.recv());
            let b = block_on(consumer.recv());
            (a, b)
        });
        block_on(stream.put(1)).unwrap();
        block_on(stream.put(2)).unwrap();
        assert_eq!(receiver.join().unwrap(), (Some(1), Some(2)));
    });
}

/// A put without the lock reads the newest ring while another producer,
/// under the lock, starts a new one (under loom a stream starts with one
/// slot, so capacity 2 grows once). The new ring's index is published for
/// puts without the lock when the guard drops; a put that reads it must
/// also find the ring itself, not a null pointer. One of the two values
/// fits, the other finds the stream full.
#[test]
fn an_unlocked_put_reads_a_ring_another_put_started() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(2);
        let mut consumer = stream.subscribe();
        stream.try_put(0).unwrap();
        let other = stream.clone();
        let producer = thread::spawn(move || other.try_put(1).is_ok());
        let mine = stream.try_put(2).is_ok();
        let theirs = producer.join().unwrap();
        assert!(mine != theirs, "both or neither fit: {mine} {theirs}");
        assert_eq!(consumer.try_recv(), Ok(0));
        assert_eq!(consumer.try_recv(), Ok(if mine { 2 } else { 1 }));
        assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Between a put's load of the claim word and its compare-and-swap, a
/// consumer subscribes and leaves: each guard sets `SLOW` and stores the
/// same word back (the tail did not move). The put that then claims
/// counts the consumers there are, and the room it found still holds:
/// the value reaches the consumer once, and two values fit again after.
#[test]
fn an_unlocked_put_claims_after_a_subscribe_and_a_leave() {
    loom::model(|| {
        let (drops, stream, mut first, producer) = a_put_of_5_on_another_thread();
        drop(stream.subscribe());
        producer.join().unwrap();
        assert_eq!(first.try_recv().unwrap().0, 5);
        assert_two_values_fit(&stream, &drops);
    });
}

/// A put without the lock races a consumer's clone: the clone starts where
/// the original stands, so both receive the value whichever came first,
/// and the slot frees once both took it.
#[test]
fn an_unlocked_put_races_a_consumer_clone() {
    loom::model(|| {
        let (drops, stream, mut first, producer) = a_put_of_5_on_another_thread();
        let mut cloned = first.clone();
        producer.join().unwrap();
        assert_eq!(first.try_recv().unwrap().0, 5);
        assert_eq!(cloned.try_recv().unwrap().0, 5);
        assert_two_values_fit(&stream, &drops);
    });
}

/// and is woken again: no wake-up is lost.
#[test]
fn a_put_waiting_for_room_races_an_unlocked_put() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut consumer = stream.subscribe();
        stream.try_put(0).unwrap();
        let other = stream.clone();
        let producer = thread::spawn(move || block_on(other.put(1)).unwrap());
        assert_eq!(consumer.try_recv(), Ok(0));
        let mine = stream.try_put(2).is_ok();
        let mut got = vec![block_on(consumer.recv()).unwrap()];
        if mine {
            got.push(block_on(consumer.recv()).unwrap());
        }
        producer.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, if mine { vec![1, 2] } else { vec![1] });
        assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
    });
}

/// The same with a batched put waiting for room: its values arrive in
/// order, whatever the put without the lock slips in between.
#[test]
fn put_all_waiting_for_room_races_an_unlocked_put() {
    loom::model(|| {
        let stream = AsyncStream::with_capacity(1);
        let mut consumer = stream.subscribe();
        stream.try_put(0).unwrap();
        let other = stream.clone();
        let producer = thread::spawn(move || block_on(other.put_all(1..3)).unwrap());
        assert_eq!(consumer.try_recv(), Ok(0));
        let mine = stream.try_put(9).is_ok();
        let n = if mine { 3 } else { 2 };
        let got: Vec<_> = (0..n).map(|_| block_on(consumer.recv()).unwrap()).collect();
        producer.join().unwrap();
        let batch: Vec<_> = got.iter().copied().filter(|v| *v != 9).collect();
        assert_eq!(batch, [1, 2]);
        assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
    });
}

/// A rendezvous put dropped after a later subscribe leaves a tombstone;
/// the next put waits for its slot while a consumer on another thread
/// steps over it. Whichever comes first, no wake-up is lost: the consumer
/// that frees the slot wakes the put waiting for it (even when it finds
/// nothing after the tombstone), or the put finds the slot free.
#[test]
fn a_put_waiting_for_a_tombstones_slot_races_the_consumer_stepping_over_it() {
    loom::model(|| {
        let stream = AsyncStream::new();
        let mut consumer = stream.subscribe();
        let waker = Waker::from(Arc::new(Noop));
        let mut put = stream.put(1);
        assert!(Pin::new(&mut put)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        let mut late = stream.subscribe();
        drop(put); // withdrawn after `late` subscribed: a tombstone
        let taker = thread::spawn(move || block_on(consumer.recv()));
        let (put, received) = block_on(futures::future::join(stream.put(2), late.recv()));
        assert_eq!(put, Ok(()));
        assert_eq!(received, Some(2));
        assert_eq!(taker.join().unwrap(), Some(2));
    });
}

/// A put finds the value under the tail taken and stores the room known
/// ahead; a put on another thread uses it, without looking at a slot, and
/// writes the slot whose value a consumer on a third thread moved out. The
/// bound must carry the consumer's release to that put (loom reports the
/// slot's write racing the move otherwise), and no value is lost or
/// written over: the consumer receives what was put, in order.
#[test]
fn a_put_within_the_room_known_ahead_writes_a_slot_another_thread_freed() {
    loom::model(|| {
        // Capacity 2: under loom, a ring of 1 slot, then the last of 2.
        let stream = AsyncStream::with_capacity(2);
        // Values 1 and 2 in the last ring, in slots 1 and 0.
        let mut consumer = stream.subscribe();
        stream.try_put(0).unwrap();
        stream.try_put(1).unwrap();
        assert_eq!(consumer.try_recv(), Ok(0));
        stream.try_put(2).unwrap();
        let taker = thread::spawn(move || {
            assert_eq!(consumer.try_recv(), Ok(1));
            assert_eq!(consumer.try_recv(), Ok(2));
            consumer
        });
        // Whichever puts as 3 writes slot 1, where 1 was.
        let other = stream.clone();
        let producer = thread::spawn(move || other.try_put(4).is_ok());
        let mine = stream.try_put(3).is_ok();
        let theirs = producer.join().unwrap();
        let mut consumer = taker.join().unwrap();
        let mut got = Vec::new();
        while let Ok(value) = consumer.try_recv() {
            got.push(value);
        }
        let mut put: Vec<_> = [(mine, 3), (theirs, 4)]
            .into_iter()
            .filter_map(|(ok, value)| ok.then_some(value))
            .collect();
        put.sort_unstable();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, put, "received {got:?}");
        assert_eq!(stream.len(), 0);
        stream.try_put(5).unwrap();
        stream.try_put(6).unwrap();
        assert!(stream.try_put(7).is_err());
        assert_eq!(consumer.try_recv(), Ok(5));
        assert_eq!(consumer.try_recv(), Ok(6));
    });
}

/// A batched put without the lock (one claim for the values of a batch,
/// within the room known ahead) races a consumer subscribing and one
/// taking. `put_all` puts one value first, then what fits, so here `[4]`
/// and then `[5, 6]` in one claim. A subscribe waits for a batch in
/// flight: the new consumer receives `[]`, `[5, 6]` or all three, never
/// `[6]` alone; the first consumer receives all three, in order.
#[test]
fn an_unlocked_batch_races_a_subscribe_and_a_take() {
    loom::model(|| {
        // Capacity 3: under loom, rings of 1, 2 and 4 slots; three values
        // buffered at once reach the last one. All taken, the next put
        // finds the room known ahead.
        let stream = AsyncStream::with_capacity(3);
        let mut consumer = stream.subscribe();
        for value in 0..3 {
            stream.try_put(value).unwrap();
        }
        assert_eq!(consumer.try_recv(), Ok(0));
        stream.try_put(3).unwrap();
        for value in 1..4 {
            assert_eq!(consumer.try_recv(), Ok(value));
        }
        let other = stream.clone();
        let producer = thread::spawn(move || block_on(other.put_all([4, 5, 6])).unwrap());
        let taker = thread::spawn(move || {
            let first = block_on(consumer.recv());
            (first, consumer)
        });
        let mut late = stream.subscribe();
        producer.join().unwrap();
        let (first, mut consumer) = taker.join().unwrap();
        assert_eq!(first, Some(4));
        assert_eq!(consumer.try_recv(), Ok(5));
        assert_eq!(consumer.try_recv(), Ok(6));
        let seen: Vec<i32> = std::iter::from_fn(|| late.try_recv().ok()).collect();
        assert!(
            [&[][..], &[5, 6], &[4, 5, 6]].contains(&&seen[..]),
            "the late consumer saw {seen:?}"
        );
    });
}
