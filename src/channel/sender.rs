//! The producer side: [`AsyncStream`], its [`Put`] future and [`PutSink`].

use std::fmt;
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::Sink;

use super::error::{Closed, TryPutError};
use super::receiver::Consumer;
use super::shared::{NeedsClone, Shared, Wake, MAX_CAPACITY};
use crate::sync::Arc;

/// A lossless broadcast stream: every [`Consumer`] receives every value, in
/// put order, and producers wait for the slowest consumer.
///
/// `AsyncStream` is the producer handle. Clone it for more producers; call
/// [`subscribe`](Self::subscribe) for consumers. The stream closes when
/// [`close`](Self::close) is called or the last producer handle is dropped;
/// consumers then receive what was already put, and end.
///
/// Backpressure is global. [`new`](Self::new) builds a rendezvous stream: a
/// [`put`](Self::put) returns once every consumer has taken the value.
/// [`with_capacity(n)`](Self::with_capacity) lets producers run `n` values
/// ahead of the slowest consumer. A put with no consumer subscribed waits for
/// the first one, so no value is ever put for nobody.
///
/// # Examples
///
/// The streamx example: a producer that is faster than its consumer is
/// held back to the consumer's pace.
///
/// ```
/// use timecast::AsyncStream;
/// use futures::{join, StreamExt};
///
/// # futures::executor::block_on(async {
/// let stream = AsyncStream::<u32>::new();
/// let mut consumer = stream.subscribe();
///
/// let producer = async {
///     for i in 0..5 {
///         stream.put(i).await?;
///     }
///     stream.close();
///     Ok::<_, timecast::Closed<u32>>(())
/// };
/// let consumer = async {
///     let mut seen = Vec::new();
///     while let Some(v) = consumer.next().await {
///         seen.push(v);
///     }
///     seen
/// };
/// let (produced, seen) = join!(producer, consumer);
/// produced?;
/// assert_eq!(seen, [0, 1, 2, 3, 4]);
/// # Ok::<_, timecast::Closed<u32>>(()) }).unwrap();
/// ```
pub struct AsyncStream<T> {
    pub(crate) shared: Arc<Shared<T>>,
}

impl<T> AsyncStream<T> {
    /// Builds a rendezvous stream (capacity 0), the strict streamx mode: a
    /// [`put`](Self::put) returns once every consumer has taken the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::<String>::new();
    /// assert_eq!(stream.capacity(), 0);
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// The largest capacity a stream may have, `usize::MAX >> 1`. A stream
    /// of this capacity is bounded only by memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::AsyncStream;
    ///
    /// // Allocates a few slots, not `MAX_CAPACITY` of them.
    /// let stream = AsyncStream::<u64>::with_capacity(AsyncStream::<u64>::MAX_CAPACITY);
    /// let mut consumer = stream.subscribe();
    /// for i in 0..1000 {
    ///     stream.try_put(i)?; // never full
    /// }
    /// assert_eq!(consumer.try_recv(), Ok(0));
    /// # Ok::<_, timecast::TryPutError<u64>>(())
    /// ```
    pub const MAX_CAPACITY: usize = MAX_CAPACITY;

    /// Builds a stream whose producers may run `capacity` values ahead of
    /// the slowest consumer. Capacity 0 is a rendezvous, as [`new`](Self::new).
    ///
    /// Memory follows what is buffered, not the capacity: the stream
    /// starts with a few slots and doubles its buffer, up to `capacity`,
    /// when more values are buffered at once than it holds. A large
    /// capacity (up to [`MAX_CAPACITY`](Self::MAX_CAPACITY)) thus means
    /// "bounded only by memory". Once the buffer has reached the size the
    /// stream needs, putting and receiving allocate nothing.
    ///
    /// # Panics
    ///
    /// If `capacity` is more than [`MAX_CAPACITY`](Self::MAX_CAPACITY)
    /// (`usize::MAX >> 1`).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::AsyncStream;
    ///
    /// let stream = AsyncStream::with_capacity(2);
    /// let mut consumer = stream.subscribe();
    /// stream.try_put(1)?;
    /// stream.try_put(2)?;
    /// assert!(stream.try_put(3).unwrap_err().is_full());
    /// assert_eq!(consumer.try_recv(), Ok(1));
    /// # Ok::<_, timecast::TryPutError<i32>>(())
    /// ```
    #[track_caller]
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(
            capacity <= MAX_CAPACITY,
            "AsyncStream::with_capacity({capacity}): the capacity is more than \
             AsyncStream::MAX_CAPACITY (usize::MAX >> 1); for a stream bounded only \
             by memory, pass AsyncStream::MAX_CAPACITY"
        );
        Self {
            shared: Arc::new(Shared::new(capacity)),
        }
    }

    /// Returns a consumer that receives every value put after this call.
    ///
    /// If no consumer was subscribed and the last one left values no
    /// consumer received, the new consumer receives those first (see the
    /// module docs, "Where a value goes"). A consumer subscribed to a closed
    /// stream receives those values, if any, then ends.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::with_capacity(4);
    /// let mut early = stream.subscribe();
    /// stream.try_put(1)?;
    /// let mut late = stream.subscribe();
    /// stream.try_put(2)?;
    /// assert_eq!(early.try_recv(), Ok(1));
    /// assert_eq!(late.try_recv(), Ok(2));
    /// # Ok::<_, timecast::TryPutError<i32>>(())
    /// ```
    pub fn subscribe(&self) -> Consumer<T> {
        let mut state = self.shared.lock();
        let cursor = self.shared.subscribe(&mut state);
        self.shared.release(state, Wake::PRODUCERS);
        Consumer::new(self.shared.clone(), cursor)
    }

    /// Puts `value` into the stream, waiting for room.
    ///
    /// With capacity 0 the returned future completes once every consumer has
    /// taken the value; with capacity `n` once the value is buffered and the
    /// slowest consumer is at most `n` values behind. With no consumer
    /// subscribed it waits for the first one.
    ///
    /// # Errors
    ///
    /// [`Closed`] with the value if the stream is closed before the value
    /// could be put.
    ///
    /// A rendezvous put whose consumers all leave before any of them
    /// received the value does not complete: it offers the value again, to
    /// the consumers subscribed then or to the next one (see the module
    /// docs, "Where a value goes").
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes delivers the value to no one
    /// and leaves the stream as it was. The one exception is a rendezvous
    /// put some consumer has already received: the value then stays in the
    /// stream, so that every consumer sees the same sequence.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let stream = timecast::AsyncStream::with_capacity(8);
    /// let mut consumer = stream.subscribe();
    /// stream.put("hello").await?;
    /// assert_eq!(consumer.recv().await, Some("hello"));
    /// # Ok::<_, timecast::Closed<&str>>(()) }).unwrap();
    /// ```
    pub fn put(&self, value: T) -> Put<'_, T> {
        Put {
            shared: &self.shared,
            op: PutOp::new(value),
        }
    }

    /// Puts every value of `values`, in order, paying the synchronization
    /// once per batch rather than once per value.
    ///
    /// The future takes the stream's lock once for as many values as there
    /// is room for (up to a batch of 32), writes them all, and publishes
    /// them to the consumers at once, with one wake-up. It pulls values
    /// from the iterator outside the lock, and only as many as it saw room
    /// for: while it waits for room (or for a consumer), it holds the values
    /// it pulled and could not put. That is one value, unless another
    /// producer took the room it saw, or every consumer left, between its
    /// look and its put. Otherwise it behaves as [`put`](Self::put) of
    /// each value in turn: it waits for room, and for a first consumer.
    /// On a rendezvous stream (capacity 0) it is exactly that, one value
    /// at a time, each taken by every consumer before the next is put.
    ///
    /// [`PutAll::put_count`] tells how many values are put so far.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the stream closes before every value is put, with the
    /// values pulled from the iterator and not put, in order (at least
    /// one). The values put before the close stay put: consumers receive
    /// them. The values not yet pulled stay in the iterator: pass
    /// [`by_ref()`](Iterator::by_ref) to keep them. An empty iterator puts
    /// nothing and succeeds, even on a closed stream.
    ///
    /// # Panics
    ///
    /// If the iterator panics, the panic reaches the caller of `poll`. The
    /// values put before stay put; those pulled in the same batch are not
    /// put, and are dropped with the future.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes keeps every value put so
    /// far in the stream (consumers receive them) and drops the values it
    /// pulled and had not put (see above: usually one). The values not yet
    /// pulled stay in the iterator, which is dropped with the future
    /// unless it was passed by reference. On a rendezvous stream, the value
    /// being put is withdrawn as dropping a [`Put`] withdraws it.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::join;
    ///
    /// # futures::executor::block_on(async {
    /// let stream = timecast::AsyncStream::with_capacity(64);
    /// let mut consumer = stream.subscribe();
    /// let producer = async {
    ///     stream.put_all(0..1000).await?;
    ///     stream.close();
    ///     Ok::<_, timecast::Closed<Vec<u32>>>(())
    /// };
    /// let consumer = async {
    ///     let mut sum = 0;
    ///     while let Some(v) = consumer.recv().await {
    ///         sum += v;
    ///     }
    ///     sum
    /// };
    /// let (produced, sum) = join!(producer, consumer);
    /// produced?;
    /// assert_eq!(sum, 999 * 1000 / 2);
    /// # Ok::<_, timecast::Closed<Vec<u32>>>(()) }).unwrap();
    /// ```
    ///
    /// On a close, the values not put are handed back, and the iterator
    /// keeps the rest:
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let stream = timecast::AsyncStream::with_capacity(2);
    /// let mut consumer = stream.subscribe();
    /// let mut values = 0..10;
    /// let mut put = stream.put_all(values.by_ref());
    /// // Two values fit; the future waits with the third.
    /// assert!(futures::poll!(&mut put).is_pending());
    /// assert_eq!(put.put_count(), 2);
    /// stream.close();
    /// assert_eq!(put.await, Err(timecast::Closed(vec![2])));
    /// assert_eq!(values.next(), Some(3));
    /// assert_eq!(consumer.recv().await, Some(0));
    /// assert_eq!(consumer.recv().await, Some(1));
    /// assert_eq!(consumer.recv().await, None);
    /// # });
    /// ```
    pub fn put_all<I>(&self, values: I) -> PutAll<'_, T, I::IntoIter>
    where
        I: IntoIterator<Item = T>,
    {
        PutAll {
            shared: &self.shared,
            values: Some(values.into_iter()),
            pulled: Pulled::new(),
            rendezvous: None,
            room: 1,
            key: None,
            put: 0,
            done: false,
        }
    }

    /// Puts `value` if there is room now, without waiting.
    ///
    /// On a rendezvous stream the value is accepted when no other value is
    /// in flight and at least one consumer is subscribed; `try_put` then
    /// returns without waiting for the consumers to take it.
    ///
    /// # Errors
    ///
    /// [`TryPutError::Full`] when there is no room (or no consumer);
    /// [`TryPutError::Closed`] when the stream is closed. Both hand the
    /// value back.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{AsyncStream, TryPutError};
    ///
    /// let stream = AsyncStream::with_capacity(1);
    /// let mut consumer = stream.subscribe();
    /// assert_eq!(stream.try_put('a'), Ok(()));
    /// assert_eq!(stream.try_put('b'), Err(TryPutError::Full('b')));
    /// assert_eq!(consumer.try_recv(), Ok('a'));
    /// assert_eq!(stream.try_put('b'), Ok(()));
    /// ```
    pub fn try_put(&self, value: T) -> Result<(), TryPutError<T>> {
        match self.shared.try_push_unlocked(value) {
            Ok(()) => Ok(()),
            Err(value) => self.try_put_locked(value),
        }
    }

    /// [`try_put`](Self::try_put) under the lock, out of line: the inlined
    /// put without the lock then needs fewer registers.
    #[inline(never)]
    fn try_put_locked(&self, value: T) -> Result<(), TryPutError<T>> {
        let mut state = self.shared.lock();
        let result = self.shared.try_push(&mut state, value, false);
        let wake = if result.is_ok() {
            Wake::CONSUMERS
        } else {
            Wake::NONE
        };
        self.shared.release(state, wake);
        result.map(drop)
    }

    /// Puts `value`, blocking the current thread until [`put`](Self::put)
    /// would complete.
    ///
    /// # Errors
    ///
    /// [`Closed`] with the value if the stream is closed first.
    ///
    /// # Blocking
    ///
    /// Parks the calling thread for as long as [`put`](Self::put) would
    /// wait (room, the first consumer, or for a rendezvous stream every
    /// consumer's take), after a short spin for the wake-up. Use it from
    /// plain threads, not from inside an async task, where
    /// [`put`](Self::put) lets other tasks run.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::new();
    /// let mut consumer = stream.subscribe();
    /// let reader = std::thread::spawn(move || consumer.recv_blocking());
    /// stream.put_blocking(42)?;
    /// assert_eq!(reader.join().unwrap(), Some(42));
    /// # Ok::<_, timecast::Closed<i32>>(())
    /// ```
    pub fn put_blocking(&self, value: T) -> Result<(), Closed<T>> {
        // The common case puts as `put`'s first poll would, without setting
        // up a waker to block on. (A full stream is not tried again in a
        // spin, as `recv_blocking` does for an empty one: the retries load
        // the slots the consumers are freeing, and slow them down more than
        // parking costs.)
        match self.shared.try_push_unlocked(value) {
            Ok(()) => Ok(()),
            Err(value) => crate::sync::block_on(self.put(value)),
        }
    }

    /// Closes the stream. Later puts fail with the value handed back; pending
    /// puts that have not buffered their value fail likewise; consumers
    /// receive every value already put, then end.
    ///
    /// Returns `true` if this call closed the stream, `false` if it was
    /// closed already.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::with_capacity(2);
    /// let mut consumer = stream.subscribe();
    /// stream.try_put(1)?;
    /// assert!(stream.close());
    /// assert!(!stream.close());
    /// assert_eq!(consumer.recv_blocking(), Some(1));
    /// assert_eq!(consumer.recv_blocking(), None);
    /// # Ok::<_, timecast::TryPutError<i32>>(())
    /// ```
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// Whether the stream is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::<()>::new();
    /// assert!(!stream.is_closed());
    /// stream.close();
    /// assert!(stream.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Number of consumers subscribed now. Read without the stream's lock:
    /// it counts every subscribe and consumer drop that has returned.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::<()>::new();
    /// let consumer = stream.subscribe();
    /// assert_eq!(stream.consumer_count(), 1);
    /// drop(consumer);
    /// assert_eq!(stream.consumer_count(), 0);
    /// ```
    pub fn consumer_count(&self) -> usize {
        self.shared.consumer_count()
    }

    /// Number of producer handles alive (this one included). Read without
    /// the stream's lock, as [`consumer_count`](Self::consumer_count).
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::<()>::new();
    /// let _other = stream.clone();
    /// assert_eq!(stream.producer_count(), 2);
    /// ```
    pub fn producer_count(&self) -> usize {
        self.shared.producer_count()
    }

    /// The capacity the stream was built with (0: rendezvous).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(timecast::AsyncStream::<u8>::with_capacity(64).capacity(), 64);
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Number of values buffered that some consumer has yet to take.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::with_capacity(4);
    /// let mut consumer = stream.subscribe();
    /// stream.try_put(1)?;
    /// assert_eq!(stream.len(), 1);
    /// consumer.try_recv().unwrap();
    /// assert!(stream.is_empty());
    /// # Ok::<_, timecast::TryPutError<i32>>(())
    /// ```
    pub fn len(&self) -> usize {
        let state = self.shared.lock();
        self.shared.len(&state)
    }

    /// Whether every consumer has taken every value put.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(timecast::AsyncStream::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns a [`Sink`] that puts into this stream, for use with
    /// `futures`' `SinkExt` (`send`, `send_all`, `forward`).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{SinkExt, StreamExt};
    ///
    /// # futures::executor::block_on(async {
    /// let stream = timecast::AsyncStream::with_capacity(4);
    /// let consumer = stream.subscribe();
    /// let mut sink = stream.sink();
    /// sink.send(1).await?;
    /// sink.send(2).await?;
    /// drop((sink, stream)); // the last producer handle: the stream closes
    /// assert_eq!(consumer.collect::<Vec<_>>().await, [1, 2]);
    /// # Ok::<_, timecast::Closed<i32>>(()) }).unwrap();
    /// ```
    pub fn sink(&self) -> PutSink<T> {
        PutSink {
            stream: Some(self.clone()),
            op: None,
        }
    }
}

impl<T> Default for AsyncStream<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for AsyncStream<T> {
    /// Returns another producer handle to the same stream.
    fn clone(&self) -> Self {
        self.shared.lock().producers += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for AsyncStream<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.producers -= 1;
        if state.producers == 0 && !state.closed {
            drop(state);
            self.shared.close();
        }
    }
}

impl<T> fmt::Debug for AsyncStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("AsyncStream")
            .field("capacity", &self.shared.capacity)
            .field("len", &self.shared.len(&state))
            .field("consumers", &state.consumers)
            .field("producers", &state.producers)
            .field("closed", &state.closed)
            .finish()
    }
}

/// A put in progress: the value, and where the put stands.
///
/// `repr(C)`, the value first, here and in [`Put`]: a `Put` is built on
/// the caller's stack and moved into its future, and with the value at
/// offset 0 it moves in the same words it was written in. (Left to the
/// compiler, the order cost a `String` put about 8 ns on x86-64: copies
/// that straddle two earlier stores stall the store-to-load forwarding.)
#[repr(C)]
pub(crate) struct PutOp<T> {
    stage: Stage<T>,
    /// This put's key in the producers' waiter list.
    key: Option<usize>,
}

enum Stage<T> {
    /// Waiting for room (or a consumer); the value is still ours.
    Waiting(T),
    /// Rendezvous: buffered as this sequence number, when the consumers'
    /// subscription epoch was the second number; waiting to be taken.
    Buffered(u64, u64),
    Done,
}

impl<T> PutOp<T> {
    fn new(value: T) -> Self {
        Self {
            stage: Stage::Waiting(value),
            key: None,
        }
    }

    #[inline(always)]
    fn poll(&mut self, shared: &Shared<T>, cx: &mut Context<'_>) -> Poll<Result<(), Closed<T>>> {
        if self.key.is_none() {
            // The common case takes no lock; a put registered as a waiter
            // takes it, to remove its waker. (A rendezvous stream sends
            // every put to the lock: for its puts this fails at once.)
            if let Stage::Waiting(value) = std::mem::replace(&mut self.stage, Stage::Done) {
                match shared.try_push_unlocked(value) {
                    Ok(()) => return Poll::Ready(Ok(())),
                    Err(value) => self.stage = Stage::Waiting(value),
                }
            }
        }
        self.poll_slow(shared, cx)
    }

    /// [`poll`](Self::poll) under the lock, out of line: the inlined put
    /// without the lock then needs fewer registers, and the caller's loop
    /// stays small.
    #[inline(never)]
    fn poll_slow(
        &mut self,
        shared: &Shared<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed<T>>> {
        // To register, a waker is cloned before locking: cloning a waker
        // runs the executor's code, which must not run under the lock. A
        // rendezvous put always waits for its takes, so it clones at once.
        // So does a buffered put whose first try without the lock failed
        // while producers could claim without it: the stream was full (or
        // a ring must start, or another producer's claim was in flight),
        // and a full stream means a wait, which would otherwise take the
        // lock twice, once to find out and once to register. A put sent to
        // the lock because a consumer waits puts at once, and clones
        // nothing.
        if matches!(self.stage, Stage::Waiting(_))
            && (shared.capacity == 0 || (self.key.is_none() && shared.claims_unlocked()))
        {
            return self.poll_with_waker(shared, cx);
        }
        match self.poll_locked(shared, cx, None) {
            Ok(outcome) => outcome,
            Err(NeedsClone) => self.poll_with_waker(shared, cx),
        }
    }

    /// [`poll`](Self::poll) with a clone of the waker at hand.
    fn poll_with_waker(
        &mut self,
        shared: &Shared<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed<T>>> {
        loop {
            let fresh = Some(cx.waker().clone());
            if let Ok(outcome) = self.poll_locked(shared, cx, fresh) {
                return outcome;
            }
        }
    }

    /// One attempt under the lock. Registering the waker needs a clone of it
    /// made before locking (`fresh`), unless the one registered already
    /// wakes the same task: without one it fails with [`NeedsClone`]. An
    /// unused `fresh` is dropped after unlocking.
    #[inline(always)]
    fn poll_locked(
        &mut self,
        shared: &Shared<T>,
        cx: &mut Context<'_>,
        mut fresh: Option<Waker>,
    ) -> Result<Poll<Result<(), Closed<T>>>, NeedsClone> {
        let mut state = shared.lock();
        let mut wake = Wake::NONE;
        let mut replaced = None;
        // Consumers free slots without the lock: before waiting for a slot,
        // mark it (`await_slot`), and if it turns out free, try again.
        let outcome = loop {
            match std::mem::replace(&mut self.stage, Stage::Done) {
                Stage::Waiting(value) => match shared.try_push(&mut state, value, true) {
                    Ok(seq) if shared.capacity == 0 => {
                        self.stage = Stage::Buffered(seq, state.epoch);
                        wake = Wake::CONSUMERS;
                        continue;
                    }
                    Ok(_) => {
                        wake = Wake::CONSUMERS;
                        break Poll::Ready(Ok(()));
                    }
                    Err(TryPutError::Closed(value)) => break Poll::Ready(Err(Closed(value))),
                    Err(TryPutError::Full(value)) => {
                        self.stage = Stage::Waiting(value);
                        if state.consumers > 0
                            && shared.await_slot(&state, shared.room_seq(shared.tail()))
                        {
                            continue;
                        }
                    }
                },
                Stage::Buffered(seq, _) if shared.is_taken(&state, seq) => {
                    break Poll::Ready(Ok(()))
                }
                Stage::Buffered(seq, epoch) => {
                    if let Some(value) = shared.reclaim(&state, seq) {
                        // Every consumer it was for left without taking
                        // it: offer it again.
                        self.stage = Stage::Waiting(value);
                        wake = Wake::PRODUCERS;
                        continue;
                    }
                    self.stage = Stage::Buffered(seq, epoch);
                    if shared.await_slot(&state, seq) {
                        continue;
                    }
                }
                Stage::Done => {
                    drop(state);
                    panic!("`Put` polled after it completed");
                }
            }
            match state
                .put_waiters
                .register(&mut self.key, cx.waker(), &mut fresh)
            {
                Ok(old) => replaced = old,
                Err(NeedsClone) => {
                    shared.release(state, wake);
                    return Err(NeedsClone);
                }
            }
            break Poll::Pending;
        };
        let old_waker = if outcome.is_ready() {
            state.put_waiters.remove(&mut self.key)
        } else {
            None
        };
        shared.release(state, wake);
        drop((old_waker, replaced, fresh));
        Ok(outcome)
    }

    /// Undoes a put that will not complete: releases its waiter slot and
    /// withdraws a rendezvous value nobody has received.
    fn cancel(&mut self, shared: &Shared<T>) {
        if self.key.is_none() && !matches!(self.stage, Stage::Buffered(..)) {
            return;
        }
        let mut state = shared.lock();
        let old_waker = state.put_waiters.remove(&mut self.key);
        let withdrawn = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Buffered(seq, epoch) => shared.withdraw(&state, seq, epoch),
            _ => None,
        };
        // A retracted value frees its slot for other producers; consumers
        // step over a tombstone, which frees it soon.
        let wake = if withdrawn.is_some() {
            Wake::ALL
        } else {
            Wake::NONE
        };
        shared.release(state, wake);
        drop((old_waker, withdrawn));
    }

    #[inline(always)]
    fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }
}

/// The future returned by [`AsyncStream::put`]: resolves to `Ok(())` once
/// the value is put (for a rendezvous stream: taken by every consumer), or
/// to [`Closed`] with the value if the stream closes first.
///
/// `Put` is `Unpin`: it can be polled by hand, or kept and polled again in
/// a `select!` loop.
///
/// # Cancel safety
///
/// Dropping a `Put` before it completes delivers its value to no one and
/// leaves the stream as it was, unless some consumer of a rendezvous
/// stream already received the value: it then stays in the stream, so that
/// every consumer sees the same sequence. See [`AsyncStream::put`].
///
/// # Panics
///
/// Polling a `Put` again after it completed panics.
///
/// # Examples
///
/// Polled by hand: pending while the buffer is full, ready once the
/// consumer makes room.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use futures::task::noop_waker;
///
/// let stream = timecast::AsyncStream::with_capacity(1);
/// let mut consumer = stream.subscribe();
/// stream.try_put(1)?;
/// let mut put = stream.put(2);
/// let waker = noop_waker();
/// let mut cx = Context::from_waker(&waker);
/// assert!(Pin::new(&mut put).poll(&mut cx).is_pending());
/// assert_eq!(consumer.try_recv(), Ok(1));
/// assert_eq!(Pin::new(&mut put).poll(&mut cx), Poll::Ready(Ok(())));
/// # Ok::<_, timecast::TryPutError<i32>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
#[repr(C)] // the value first: see `PutOp`
pub struct Put<'a, T> {
    op: PutOp<T>,
    shared: &'a Shared<T>,
}

// `Put` never pins its value: it moves it in and out freely.
impl<T> Unpin for Put<'_, T> {}

impl<T> Future for Put<'_, T> {
    type Output = Result<(), Closed<T>>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.op.poll(this.shared, cx)
    }
}

impl<T> Drop for Put<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        if !self.op.is_done() {
            self.op.cancel(self.shared);
        }
    }
}

impl<T> fmt::Debug for Put<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put")
            .field("done", &self.op.is_done())
            .finish_non_exhaustive()
    }
}

/// The most values a [`PutAll`] puts under one lock.
const BATCH: usize = 32;

/// Values a [`PutAll`] pulled from its iterator and has yet to put, in
/// order: `values[start..end]`, the only ones initialized.
struct Pulled<T> {
    values: [MaybeUninit<T>; BATCH],
    start: usize,
    end: usize,
}

impl<T> Pulled<T> {
    fn new() -> Self {
        Self {
            values: [const { MaybeUninit::uninit() }; BATCH],
            start: 0,
            end: 0,
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    /// Pulls values from `values` until `want` are held (or the buffer is
    /// full); clears `values` once it is exhausted.
    #[inline(always)]
    fn fill<I: Iterator<Item = T>>(&mut self, values: &mut Option<I>, want: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let Some(iter) = values else {
            return;
        };
        let want = (self.start + want).min(BATCH);
        // `end` lives in a register while the loop runs, and is stored back
        // even if `next` panics: every value written is counted, once.
        let mut end = SetOnDrop {
            index: self.end,
            field: &mut self.end,
        };
        while end.index < want {
            let Some(value) = iter.next() else {
                *values = None;
                return;
            };
            self.values[end.index].write(value);
            end.index += 1;
        }
    }

    /// Calls `put` with a function that moves out the next `count` values
    /// held, one per call, in order. `put` must call it at most `count`
    /// times, and at most `len()`.
    #[inline(always)]
    fn take_with<R>(&mut self, count: usize, put: impl FnOnce(&mut dyn FnMut() -> T) -> R) -> R {
        let last = self.start + count.min(self.len());
        let values = &self.values;
        // `start` is stored back even if `put` panics: every value moved
        // out is counted as gone, once.
        let mut start = SetOnDrop {
            index: self.start,
            field: &mut self.start,
        };
        put(&mut || {
            assert!(start.index < last, "more values taken than pulled");
            // SAFETY: `values[start..end]` are initialized, and this one is
            // below `last <= end`; `start` moves past it at once, so it is
            // read once, and no longer counted as held.
            let value = unsafe { values[start.index].assume_init_read() };
            start.index += 1;
            value
        })
    }

    /// The next value held. Call only while some are.
    fn take(&mut self) -> T {
        self.take_with(1, |next| next())
    }

    /// The values held, in order.
    fn drain(&mut self) -> Vec<T> {
        let mut values = Vec::with_capacity(self.len());
        while self.start < self.end {
            values.push(self.take());
        }
        values
    }
}

impl<T> Drop for Pulled<T> {
    fn drop(&mut self) {
        // One at a time: if a drop panics, the values after it leak; none
        // is dropped twice.
        while self.start < self.end {
            drop(self.take());
        }
    }
}

/// Stores `index` into `field` when dropped, unwinding included: a counter
/// kept in a register through a loop that may panic.
struct SetOnDrop<'a> {
    index: usize,
    field: &'a mut usize,
}

impl Drop for SetOnDrop<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        *self.field = self.index;
    }
}

/// The future returned by [`AsyncStream::put_all`]: puts every value of an
/// iterator, a batch at a time, and resolves to `Ok(())` once all are put
/// (for a rendezvous stream: taken by every consumer), or to [`Closed`]
/// with the values pulled and not put if the stream closes first.
///
/// `PutAll` is `Unpin`: it can be polled by hand, or kept and polled again
/// in a `select!` loop.
///
/// # Cancel safety
///
/// Dropping a `PutAll` keeps the values already put in the stream, drops
/// those it pulled from the iterator and had not put, and leaves the rest
/// in the iterator. See [`AsyncStream::put_all`].
///
/// # Panics
///
/// Polling a `PutAll` again after it completed panics. A panic of the
/// iterator reaches the caller of `poll`, as [`AsyncStream::put_all`] says.
///
/// # Examples
///
/// Polled by hand: pending once the buffer is full, woken and ready once
/// the consumer makes room.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use futures::task::noop_waker;
///
/// let stream = timecast::AsyncStream::with_capacity(4);
/// let mut consumer = stream.subscribe();
/// let mut put = stream.put_all(0..6);
/// let waker = noop_waker();
/// let mut cx = Context::from_waker(&waker);
/// assert!(Pin::new(&mut put).poll(&mut cx).is_pending());
/// assert_eq!(put.put_count(), 4);
/// assert_eq!(consumer.try_recv(), Ok(0));
/// assert_eq!(consumer.try_recv(), Ok(1));
/// assert_eq!(Pin::new(&mut put).poll(&mut cx), Poll::Ready(Ok(())));
/// assert_eq!(put.put_count(), 6);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct PutAll<'a, T, I> {
    shared: &'a Shared<T>,
    /// The values to put; `None` once the iterator returned `None`.
    values: Option<I>,
    /// Capacity ≥ 1: values pulled and not yet put.
    pulled: Pulled<T>,
    /// Capacity 0: the put of the value under way.
    rendezvous: Option<PutOp<T>>,
    /// How many values fit at the last look: how many to pull next.
    room: usize,
    /// This put's key in the producers' waiter list.
    key: Option<usize>,
    /// Values put so far.
    put: usize,
    done: bool,
}

// `PutAll` never pins its values or its iterator: it moves them freely.
impl<T, I> Unpin for PutAll<'_, T, I> {}

impl<T, I> PutAll<'_, T, I> {
    /// How many values this future has put so far (for a rendezvous
    /// stream: that every consumer took).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let stream = timecast::AsyncStream::with_capacity(8);
    /// let _consumer = stream.subscribe();
    /// let mut put = stream.put_all(["a", "b", "c"]);
    /// assert_eq!(put.put_count(), 0);
    /// (&mut put).await?;
    /// assert_eq!(put.put_count(), 3);
    /// # Ok::<_, timecast::Closed<Vec<&str>>>(()) }).unwrap();
    /// ```
    pub fn put_count(&self) -> usize {
        self.put
    }

    /// Releases this future's waiter slot, if it took one.
    fn release_key(&mut self) {
        if self.key.is_some() {
            let old_waker = self.shared.lock().put_waiters.remove(&mut self.key);
            drop(old_waker);
        }
    }
}

impl<T, I: Iterator<Item = T>> PutAll<'_, T, I> {
    /// Puts batches while there is room; waits once there is none.
    fn poll_batches(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed<Vec<T>>>> {
        let shared = self.shared;
        let mut fresh = None;
        loop {
            // The iterator is the caller's code: it never runs under the
            // lock. Pull what fits, or one value to wait with.
            self.pulled.fill(&mut self.values, self.room.max(1));
            let count = self.pulled.len();
            if count == 0 {
                return self.finish(Ok(()));
            }
            // The common case takes no lock (see `try_push_batch_unlocked`);
            // a put registered as a waiter takes it, to remove its waker.
            if self.key.is_none() {
                let pushed = self
                    .pulled
                    .take_with(count, |next| shared.try_push_batch_unlocked(count, next));
                if let Some(room) = pushed {
                    self.put += count;
                    // Pull no more than is known to fit.
                    self.room = room.min(BATCH as u64) as usize;
                    continue;
                }
            }
            let mut state = shared.lock();
            let room = shared.room(&state, count);
            if room > 0 {
                self.pulled
                    .take_with(room, |next| shared.push_batch(&mut state, room, next));
                self.put += room;
                self.room = shared.room(&state, BATCH);
                // Put: no longer a waiter, so the next batch may go
                // without the lock. The waker is dropped after unlocking.
                let old_waker = state.put_waiters.remove(&mut self.key);
                shared.release(state, Wake::CONSUMERS);
                drop(old_waker);
                continue;
            }
            if state.closed {
                drop(state);
                let values = self.pulled.drain();
                return self.finish(Err(Closed(values)));
            }
            // Full, or no consumer: wait for room. Consumers free slots
            // without the lock: mark the slot awaited, and if it turns out
            // free, try again.
            self.room = 0;
            if state.consumers > 0 && shared.await_slot(&state, shared.room_seq(shared.tail())) {
                drop(state);
                continue;
            }
            if shared.wait_in(
                state,
                |state| &mut state.put_waiters,
                &mut self.key,
                cx.waker(),
                &mut fresh,
            ) {
                return Poll::Pending;
            }
        }
    }

    /// Rendezvous: puts one value at a time, as [`Put`] does.
    fn poll_rendezvous(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed<Vec<T>>>> {
        loop {
            let op = match &mut self.rendezvous {
                Some(op) => op,
                None => {
                    let next = self.values.as_mut().and_then(Iterator::next);
                    let Some(value) = next else {
                        self.values = None;
                        return self.finish(Ok(()));
                    };
                    self.rendezvous.insert(PutOp::new(value))
                }
            };
            let result = std::task::ready!(op.poll(self.shared, cx));
            self.rendezvous = None;
            match result {
                Ok(()) => self.put += 1,
                Err(Closed(value)) => return self.finish(Err(Closed(vec![value]))),
            }
        }
    }

    /// Completes the future: releases its waiter slot, if it took one.
    fn finish(&mut self, result: Result<(), Closed<Vec<T>>>) -> Poll<Result<(), Closed<Vec<T>>>> {
        self.done = true;
        self.release_key();
        Poll::Ready(result)
    }
}

impl<T, I: Iterator<Item = T>> Future for PutAll<'_, T, I> {
    type Output = Result<(), Closed<Vec<T>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "`PutAll` polled after it completed");
        if this.shared.capacity == 0 {
            this.poll_rendezvous(cx)
        } else {
            this.poll_batches(cx)
        }
    }
}

impl<T, I> Drop for PutAll<'_, T, I> {
    fn drop(&mut self) {
        if let Some(op) = &mut self.rendezvous {
            if !op.is_done() {
                op.cancel(self.shared);
            }
        }
        self.release_key();
    }
}

impl<T, I> fmt::Debug for PutAll<'_, T, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutAll")
            .field("put", &self.put)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// A [`Sink`] into an [`AsyncStream`], from [`AsyncStream::sink`].
///
/// `poll_ready` completes the previous put; `start_send` starts the next,
/// and finishes it at once when a buffered stream is open, has consumers,
/// none of them waiting, and has room (no lock is taken then, as for
/// [`AsyncStream::try_put`]); `poll_flush` waits until the last value is
/// put (for a rendezvous stream: taken by every consumer). `poll_close`
/// flushes, then releases this producer handle: when it was the last one,
/// the stream closes.
///
/// # Errors
///
/// Every method fails with [`Closed`], handing the value back, if the
/// stream closed before the value could be put.
///
/// # Cancel safety
///
/// Dropping a `PutSink` while a value is being put cancels that put as
/// dropping a [`Put`] does: the value is delivered to no one, unless some
/// consumer of a rendezvous stream already received it. A value
/// `start_send` put at once is put: nothing is pending then. A `send`
/// future hands its value to the sink first: dropped before that, it drops
/// the value; dropped after, it leaves the value in the sink, whose next
/// `poll_ready`, `poll_flush` or `poll_close` puts it (or whose drop
/// cancels it). As a pipeline's sink (timecast's own
/// [`Sink`](crate::sink::Sink)), a send dropped leaves nothing in the
/// sink: it cancels its put.
///
/// # Examples
///
/// ```
/// use futures::{stream, SinkExt, StreamExt};
///
/// # futures::executor::block_on(async {
/// let source = timecast::AsyncStream::with_capacity(8);
/// let consumer = source.subscribe();
/// let mut sink = source.sink();
/// drop(source);
/// sink.send_all(&mut stream::iter([1, 2, 3]).map(Ok)).await?;
/// sink.close().await?; // the last producer handle: the stream closes
/// assert_eq!(consumer.collect::<Vec<_>>().await, [1, 2, 3]);
/// # Ok::<_, timecast::Closed<i32>>(()) }).unwrap();
/// ```
pub struct PutSink<T> {
    stream: Option<AsyncStream<T>>,
    op: Option<PutOp<T>>,
}

impl<T> Unpin for PutSink<T> {}

impl<T> PutSink<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed<T>>> {
        let Some(stream) = &self.stream else {
            return match self.op.take() {
                Some(mut op) => match std::mem::replace(&mut op.stage, Stage::Done) {
                    Stage::Waiting(value) => Poll::Ready(Err(Closed(value))),
                    _ => Poll::Ready(Ok(())),
                },
                None => Poll::Ready(Ok(())),
            };
        };
        let Some(op) = &mut self.op else {
            return Poll::Ready(Ok(()));
        };
        let result = std::task::ready!(op.poll(&stream.shared, cx));
        self.op = None;
        Poll::Ready(result)
    }
}

impl<T> PutSink<T> {
    /// Cancels the put of the value waiting in the sink, if any (as
    /// dropping a [`Put`] does).
    fn cancel_pending(&mut self) {
        if let (Some(stream), Some(mut op)) = (&self.stream, self.op.take()) {
            if !op.is_done() {
                op.cancel(&stream.shared);
            }
        }
    }

    /// Sends `item` as a pipeline's sink: waits for a value left in the
    /// sink to be put, then puts `item`. Dropped before it completes, it
    /// leaves nothing in the sink: its value is not delivered (as dropping
    /// a [`Put`]).
    pub(crate) async fn send_whole(&mut self, item: T) -> Result<(), Closed<T>> {
        // A value left by an abandoned `futures::Sink` send: when the
        // stream is closed, the error hands back this send's own value.
        if std::future::poll_fn(|cx| self.poll_pending(cx))
            .await
            .is_err()
        {
            return Err(Closed(item));
        }
        Pin::new(&mut *self).start_send(item)?;
        let sending = CancelOnDrop(self);
        let sink = &mut *sending.0;
        std::future::poll_fn(|cx| sink.poll_pending(cx)).await
    }
}

/// Cancels its sink's pending put when dropped (a no-op once it is done).
struct CancelOnDrop<'a, T>(&'a mut PutSink<T>);

impl<T> Drop for CancelOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.cancel_pending();
    }
}

impl<T> Sink<T> for PutSink<T> {
    type Error = Closed<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        match &this.stream {
            None => Err(Closed(item)),
            Some(stream) if stream.shared.is_closed() => Err(Closed(item)),
            Some(stream) => {
                debug_assert!(this.op.is_none(), "start_send without poll_ready");
                // In the common case the value goes in at once, without the
                // lock, as `try_put`'s does; otherwise `poll_ready` or
                // `poll_flush` puts it. (Never ahead of a put still pending,
                // should `start_send` come without `poll_ready`.)
                let item = match &this.op {
                    None => match stream.shared.try_push_unlocked(item) {
                        Ok(()) => return Ok(()),
                        Err(item) => item,
                    },
                    Some(_) => item,
                };
                this.op = Some(PutOp::new(item));
                Ok(())
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let result = std::task::ready!(this.poll_pending(cx));
        this.stream = None;
        Poll::Ready(result)
    }
}

impl<T> Drop for PutSink<T> {
    fn drop(&mut self) {
        self.cancel_pending();
    }
}

impl<T> fmt::Debug for PutSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutSink")
            .field("open", &self.stream.is_some())
            .field("sending", &self.op.is_some())
            .finish()
    }
}
