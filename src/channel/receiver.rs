//! The consumer side: [`Consumer`] and its [`Recv`] future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::error::TryRecvError;
use super::shared::{Cursor, Shared, Took, Wake};
use crate::sync::Arc;

/// Receives every value put into an [`AsyncStream`](crate::AsyncStream)
/// after it subscribed, in put order.
///
/// A consumer is a [`Stream`]: `while let Some(v) = consumer.next().await`.
/// It ends (`None`) once the stream is closed and it has received
/// everything. Values are cloned for every consumer but the last one to take
/// each value, which gets it by move.
///
/// Dropping a consumer releases at once any producer it held back. Cloning
/// one gives a consumer at the same position, that receives the same values
/// from there on.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
///
/// # futures::executor::block_on(async {
/// let stream = timecast::AsyncStream::with_capacity(4);
/// let mut a = stream.subscribe();
/// let mut b = stream.subscribe();
/// stream.put(String::from("x")).await?;
/// stream.close();
/// assert_eq!(a.next().await.as_deref(), Some("x")); // a clone
/// assert_eq!(b.next().await.as_deref(), Some("x")); // the original, moved
/// assert_eq!(a.next().await, None);
/// # Ok::<_, timecast::Closed<String>>(()) }).unwrap();
/// ```
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Where this consumer stands: the next value it takes.
    cursor: Cursor<T>,
    /// This consumer's key in the consumers' waiter list.
    key: Option<usize>,
    terminated: bool,
}

impl<T> Consumer<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>, cursor: Cursor<T>) -> Self {
        Self {
            shared,
            cursor,
            key: None,
            terminated: false,
        }
    }

    /// Whether the stream is closed (values may still be waiting here).
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::<u8>::new();
    /// let consumer = stream.subscribe();
    /// drop(stream);
    /// assert!(consumer.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Number of values waiting for this consumer.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::with_capacity(4);
    /// let consumer = stream.subscribe();
    /// stream.try_put(1)?;
    /// assert_eq!(consumer.len(), 1);
    /// # Ok::<_, timecast::TryPutError<i32>>(())
    /// ```
    pub fn len(&self) -> usize {
        (self.shared.tail() - self.cursor.pos) as usize
    }

    /// Whether no value is waiting for this consumer.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::<u8>::new();
    /// assert!(stream.subscribe().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity of the stream (0: rendezvous).
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::<u8>::with_capacity(3);
    /// assert_eq!(stream.subscribe().capacity(), 3);
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }
}

impl<T: Clone> Consumer<T> {
    /// Takes the next value if one is waiting, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if no value is waiting now;
    /// [`TryRecvError::Closed`] if the stream is closed and this consumer has
    /// received everything.
    ///
    /// # Panics
    ///
    /// If `T::clone` panics (every consumer but the last to take a value
    /// gets a clone), the panic propagates and the consumer stays at the
    /// value: the next receive clones it again, and dropping the consumer
    /// releases it. Other consumers and producers are not affected. The
    /// same holds for [`recv`](Self::recv), [`recv_blocking`](Self::recv_blocking),
    /// [`poll_recv`](Self::poll_recv) and the `Stream` implementation.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::TryRecvError;
    ///
    /// let stream = timecast::AsyncStream::with_capacity(1);
    /// let mut consumer = stream.subscribe();
    /// assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
    /// stream.try_put(5)?;
    /// assert_eq!(consumer.try_recv(), Ok(5));
    /// # Ok::<_, timecast::TryPutError<i32>>(())
    /// ```
    #[inline(always)]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match self.shared.try_take(&mut self.cursor) {
            Took::Value(value) => Ok(value),
            Took::Empty => Err(TryRecvError::Empty),
            Took::Closed => Err(TryRecvError::Closed),
        }
    }

    /// Receives the next value; `None` once the stream is closed and this
    /// consumer has received everything.
    ///
    /// # Panics
    ///
    /// If `T::clone` panics, as [`try_recv`](Self::try_recv) says.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it completes loses no value;
    /// the next call receives it.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let stream = timecast::AsyncStream::with_capacity(1);
    /// let mut consumer = stream.subscribe();
    /// stream.put(1).await?;
    /// drop(stream);
    /// assert_eq!(consumer.recv().await, Some(1));
    /// assert_eq!(consumer.recv().await, None);
    /// # Ok::<_, timecast::Closed<i32>>(()) }).unwrap();
    /// ```
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv { consumer: self }
    }

    /// Receives the next value, blocking the current thread until one is
    /// waiting; `None` once the stream is closed and drained.
    ///
    /// # Blocking
    ///
    /// Parks the calling thread while nothing is waiting, after looking
    /// again for a moment (a few microseconds of spinning, then a few
    /// yields): a value from another thread often arrives that soon. Use it
    /// from plain threads, not from inside an async task, where
    /// [`recv`](Self::recv) lets other tasks run.
    ///
    /// # Examples
    ///
    /// ```
    /// let stream = timecast::AsyncStream::with_capacity(2);
    /// let mut consumer = stream.subscribe();
    /// std::thread::spawn(move || {
    ///     stream.put_blocking(1).unwrap();
    ///     stream.put_blocking(2).unwrap();
    /// });
    /// assert_eq!(consumer.recv_blocking(), Some(1));
    /// assert_eq!(consumer.recv_blocking(), Some(2));
    /// assert_eq!(consumer.recv_blocking(), None);
    /// ```
    pub fn recv_blocking(&mut self) -> Option<T> {
        // A value waiting, or arriving within a moment, is taken as
        // `recv`'s first poll would take it, without a waker to block on
        // (whose wake-up would send the producer to the lock).
        let (shared, cursor) = (&self.shared, &mut self.cursor);
        let took = crate::sync::spin_until(|| match shared.try_take(cursor) {
            Took::Empty => None,
            took => Some(took),
        });
        match took {
            Some(Took::Value(value)) => Some(value),
            // Closed, and every value taken: the end, as `recv` ends.
            Some(_) => {
                self.terminated = true;
                None
            }
            None => crate::sync::block_on(self.recv()),
        }
    }

    /// Polls for the next value: `Ready(Some(v))`, `Ready(None)` once the
    /// stream is closed and drained, or `Pending` after registering `cx`'s
    /// waker to be woken when a value arrives or the stream closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll};
    /// use futures::task::noop_waker;
    ///
    /// let stream = timecast::AsyncStream::with_capacity(1);
    /// let mut consumer = stream.subscribe();
    /// let waker = noop_waker();
    /// let mut cx = Context::from_waker(&waker);
    /// assert_eq!(consumer.poll_recv(&mut cx), Poll::Pending);
    /// stream.try_put(3)?;
    /// assert_eq!(consumer.poll_recv(&mut cx), Poll::Ready(Some(3)));
    /// # Ok::<_, timecast::TryPutError<i32>>(())
    /// ```
    #[inline(always)]
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // Values are taken (and cloned, and dropped) without the lock.
        // (Not through `try_recv`: see `Took`.) Only the inlined take
        // returns a value, never the call that registers the waker, so the
        // value reaches the caller in registers. (When it could also come
        // back through memory, from that call, the compiler stored a
        // `String`'s words in pieces that a wider load then read back: a
        // store-to-load forwarding stall on every receive.)
        loop {
            match self.shared.try_take(&mut self.cursor) {
                Took::Value(value) => return Poll::Ready(Some(value)),
                Took::Closed => return self.terminate(),
                Took::Empty => {
                    if self.poll_wait(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// [`poll_recv`](Self::poll_recv) once nothing was waiting: registers
    /// the waker, unless something arrived (or the stream closed)
    /// meanwhile: then `Ready`, and the caller takes it.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // About to wait: the waker is most likely not registered (a wake-up
        // takes it out), so clone it now, unlocked: cloning a waker runs the
        // executor's code, which must not run under the lock.
        let mut fresh = Some(cx.waker().clone());
        loop {
            // Register under the lock, then look again: a producer pushes
            // (and closing closes) under the same lock, so it either sees
            // this waker or was seen here. What it put is taken after
            // unlocking.
            let state = self.shared.lock();
            if self.shared.has_next(&state, self.cursor.pos) {
                drop(state);
                return Poll::Ready(());
            }
            if self.shared.wait_in(
                state,
                |state| &mut state.recv_waiters,
                &mut self.key,
                cx.waker(),
                &mut fresh,
            ) {
                return Poll::Pending;
            }
        }
    }

    fn terminate(&mut self) -> Poll<Option<T>> {
        self.terminated = true;
        Poll::Ready(None)
    }
}

impl<T: Clone> Stream for Consumer<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

impl<T: Clone> FusedStream for Consumer<T> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<T> Clone for Consumer<T> {
    /// Returns a consumer at the same position: it receives the values this
    /// one has yet to receive, and every value put from now on.
    fn clone(&self) -> Self {
        let mut state = self.shared.lock();
        self.shared.subscribe_at(&mut state, self.cursor.pos);
        drop(state);
        Self::new(self.shared.clone(), self.cursor)
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let old_waker = state.recv_waiters.remove(&mut self.key);
        let freed = self.shared.unsubscribe(&mut state, self.cursor.pos);
        // Producers may wait for room, for a value to be taken, or (at zero
        // consumers) for a consumer; any of these may have changed.
        self.shared.release(state, Wake::PRODUCERS);
        drop((old_waker, freed));
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("position", &self.cursor.pos)
            .field("terminated", &self.terminated)
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Consumer::recv`]: resolves to the next value,
/// or `None` once the stream is closed and this consumer has received
/// everything.
///
/// # Cancel safety
///
/// Cancel safe: dropping a `Recv` before it completes loses no value; the
/// next receive gets it.
///
/// # Panics
///
/// If `T::clone` panics, as [`Consumer::try_recv`] says.
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use futures::task::noop_waker;
///
/// let stream = timecast::AsyncStream::with_capacity(1);
/// let mut consumer = stream.subscribe();
/// let waker = noop_waker();
/// let mut cx = Context::from_waker(&waker);
/// let mut recv = consumer.recv();
/// assert_eq!(Pin::new(&mut recv).poll(&mut cx), Poll::Pending);
/// stream.try_put(4)?;
/// assert_eq!(Pin::new(&mut recv).poll(&mut cx), Poll::Ready(Some(4)));
/// # Ok::<_, timecast::TryPutError<i32>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T> {
    consumer: &'a mut Consumer<T>,
}

impl<T: Clone> Future for Recv<'_, T> {
    type Output = Option<T>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.consumer.poll_recv(cx)
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}
