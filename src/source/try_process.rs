//! [`try_process_stream`]: [`process_stream`] with a handler that can fail.

use std::cell::RefCell;
use std::fmt;
use std::future::{ready, Future, Ready};
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::process::{process_stream, Live, Past, ProcessStream, Source};
use crate::time::marker::{Async, Plain};
use crate::time::{EventHandler, Timestamp};
use crate::LatePolicy;

/// Binds a handler that can fail to a past iterator and a live stream:
/// [`process_stream`] whose handler returns a `Result`, and whose future
/// resolves to the first `Err`.
///
/// The handler is `FnMut(Timestamp, T) -> Result<(), E>`, or returns a
/// future of one. Its first `Err` stops the source: nothing after the
/// failing event is pulled from the past or taken from the live stream
/// (an exactly-once reader's checkpoint never commits the failing record,
/// so a restart reads it again), the live stream is dropped, and
/// `on_live_start` does not run if the past was not done; the future
/// resolves to `Err(e)`. A source that runs out with every event handled
/// resolves to `Ok(())`.
///
/// Everything else is [`process_stream`]'s: the builder methods, the
/// virtual clock, the replay that calls a plain handler with no poll in
/// between, panics and cancellation. It is what a [`Flow`](crate::flow::Flow)
/// pipeline returns: the supervisor reports the error and restarts the
/// pipeline.
///
/// # Examples
///
/// A reading out of range stops the stream at its time:
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use timecast::{now, source::try_process_stream, EventLoop, Timestamp};
///
/// let past = [(1, 20.5), (2, 21.0), (3, -999.0), (4, 22.0)]
///     .map(|(s, v)| (Timestamp::from_unix_secs(s), v));
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let check = move |_ts: Timestamp, celsius: f64| {
///     if celsius < -273.15 {
///         return Err(format!("{celsius} °C at {}: below absolute zero", now()));
///     }
///     s.borrow_mut().push(celsius);
///     Ok(())
/// };
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let outcome = el.block_on(try_process_stream(check).past(past));
/// assert_eq!(outcome, Err("-999 °C at 1970-01-01T00:00:03Z: below absolute zero".to_string()));
/// assert_eq!(*seen.borrow(), [20.5, 21.0]); // nothing after the error
/// ```
pub fn try_process_stream<T, E, M, H>(handler: H) -> TryProcessStream<T, E, M, H>
where
    H: TryEventHandler<T, E, M>,
    E: 'static,
{
    let failure = Rc::new(Failure {
        error: RefCell::new(None),
    });
    TryProcessStream {
        inner: process_stream(Checked {
            handler,
            failure: failure.clone(),
        }),
        failure,
    }
}

/// A handler [`try_process_stream`] accepts: `FnMut(Timestamp, T) ->
/// Result<(), E>`, or `FnMut(Timestamp, T) -> impl Future<Output =
/// Result<(), E>>`. The marker `M` ([`marker`](crate::time::marker)) tells
/// them apart; it is inferred.
///
/// It is sealed: timecast implements it for those two kinds of closure,
/// and its methods are [`try_process_stream`]'s own.
///
/// # Examples
///
/// ```
/// use timecast::{source::{try_process_stream, TryEventHandler}, EventLoop, Timestamp};
///
/// /// Runs any fallible handler over a past.
/// fn replay<E: 'static, M: 'static>(
///     handler: impl TryEventHandler<u32, E, M>,
///     past: Vec<(Timestamp, u32)>,
/// ) -> Result<(), E> {
///     EventLoop::starting_at(Timestamp::UNIX_EPOCH)
///         .simulated()
///         .block_on(try_process_stream(handler).past(past))
/// }
///
/// let past = vec![(Timestamp::from_unix_secs(1), 7)];
/// assert_eq!(replay(|_ts: Timestamp, v: u32| if v > 5 { Err(v) } else { Ok(()) }, past.clone()), Err(7));
/// assert_eq!(replay(|_ts: Timestamp, _v: u32| async { Ok::<_, ()>(()) }, past), Ok(()));
/// ```
pub trait TryEventHandler<T, E, M>: sealed::Sealed<T, E, M> + 'static {
    /// The future the source awaits after calling the handler: ready at
    /// once for a plain closure.
    #[doc(hidden)]
    type Checked: Future<Output = ()> + 'static;

    /// Calls the handler, and records its error in `failure`.
    #[doc(hidden)]
    fn call_checked(
        &mut self,
        time: Timestamp,
        value: T,
        failure: &Rc<Failure<E>>,
    ) -> Self::Checked;
}

mod sealed {
    use std::future::Future;

    use crate::time::marker::{Async, Plain};
    use crate::time::Timestamp;

    pub trait Sealed<T, E, M> {}

    impl<T, E, F> Sealed<T, E, Plain> for F where F: FnMut(Timestamp, T) -> Result<(), E> {}

    impl<T, E, F, Fut> Sealed<T, E, Async> for F
    where
        F: FnMut(Timestamp, T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
    }
}

impl<T, E, F> TryEventHandler<T, E, Plain> for F
where
    F: FnMut(Timestamp, T) -> Result<(), E> + 'static,
    E: 'static,
{
    type Checked = Ready<()>;

    #[inline]
    fn call_checked(&mut self, time: Timestamp, value: T, failure: &Rc<Failure<E>>) -> Ready<()> {
        if let Err(error) = self(time, value) {
            failure.fail(error);
        }
        ready(())
    }
}

impl<T, E, F, Fut> TryEventHandler<T, E, Async> for F
where
    F: FnMut(Timestamp, T) -> Fut + 'static,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: 'static,
{
    type Checked = CheckedFuture<Fut, E>;

    fn call_checked(
        &mut self,
        time: Timestamp,
        value: T,
        failure: &Rc<Failure<E>>,
    ) -> CheckedFuture<Fut, E> {
        CheckedFuture {
            future: Box::pin(self(time, value)),
            failure: failure.clone(),
        }
    }
}

/// Where a fallible handler's first error waits for the future that
/// returns it.
#[doc(hidden)]
pub struct Failure<E> {
    error: RefCell<Option<E>>,
}

impl<E> Failure<E> {
    /// Records the handler's first error and stops the source's task: it
    /// is cancelled once it yields, and handles nothing more.
    fn fail(&self, error: E) {
        // The source pulls nothing after the failing event, so this is its
        // first error.
        *self.error.borrow_mut() = Some(error);
        crate::time::try_with_core(|core| {
            if let Some(task) = core.current_task() {
                core.abort(task);
            }
        });
    }
}

/// An async fallible handler's future, its error recorded.
#[doc(hidden)]
pub struct CheckedFuture<Fut, E> {
    future: Pin<Box<Fut>>,
    failure: Rc<Failure<E>>,
}

impl<Fut, E> Future for CheckedFuture<Fut, E>
where
    Fut: Future<Output = Result<(), E>>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let outcome = std::task::ready!(self.future.as_mut().poll(cx));
        if let Err(error) = outcome {
            self.failure.fail(error);
        }
        Poll::Ready(())
    }
}

/// The handler [`process_stream`] runs for [`try_process_stream`].
struct Checked<H, E> {
    handler: H,
    failure: Rc<Failure<E>>,
}

/// [`Checked`]'s marker: the fallible handler's own, wrapped.
struct Fallible<M>(PhantomData<M>);

impl<T, E, M, H> EventHandler<T, Fallible<M>> for Checked<H, E>
where
    H: TryEventHandler<T, E, M>,
    E: 'static,
{
    type Future = H::Checked;

    #[inline]
    fn call(&mut self, time: Timestamp, value: T) -> H::Checked {
        self.handler.call_checked(time, value, &self.failure)
    }
}

/// The builder and future returned by [`try_process_stream`]: a
/// [`ProcessStream`] that resolves to the handler's first error, or to
/// `Ok(())` once every event was handled. Its builder methods are
/// [`ProcessStream`]'s.
///
/// # Panics
///
/// As [`ProcessStream`]: configured after it was first polled, or polled
/// again after it completed.
///
/// # Examples
///
/// A live stream whose third value fails the handler: the stream's
/// consumer is dropped with it.
///
/// ```
/// use timecast::{source::try_process_stream, AsyncStream, EventLoop, Timestamp};
///
/// let feed = AsyncStream::with_capacity(1);
/// let live = feed.subscribe();
/// let producer = feed.clone();
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// el.spawn(async move {
///     for i in 1..=5 {
///         producer.put((Timestamp::from_unix_secs(i), i)).await?;
///     }
///     Ok::<_, timecast::Closed<_>>(())
/// });
/// let handler = |_ts: Timestamp, v: i64| if v == 3 { Err("three") } else { Ok(()) };
/// assert_eq!(el.block_on(try_process_stream(handler).live(live)), Err("three"));
/// assert_eq!(feed.consumer_count(), 0);
/// ```
#[must_use = "futures do nothing unless spawned or awaited"]
pub struct TryProcessStream<T, E, M, H, P = Past<T>, L = Live<T>> {
    inner: ProcessStream<T, Fallible<M>, Checked<H, E>, P, L>,
    failure: Rc<Failure<E>>,
}

impl<T, E, M, H, P, L> TryProcessStream<T, E, M, H, P, L> {
    fn map<P2, L2>(
        self,
        f: impl FnOnce(
            ProcessStream<T, Fallible<M>, Checked<H, E>, P, L>,
        ) -> ProcessStream<T, Fallible<M>, Checked<H, E>, P2, L2>,
    ) -> TryProcessStream<T, E, M, H, P2, L2> {
        TryProcessStream {
            inner: f(self.inner),
            failure: self.failure,
        }
    }

    /// The past, as [`ProcessStream::past`].
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{source::try_process_stream, EventLoop, Timestamp};
    /// let past = (0..3).map(|i| (Timestamp::from_unix_secs(i), i));
    /// let task = try_process_stream(|_ts: Timestamp, v: i64| if v < 2 { Ok(()) } else { Err(v) });
    /// assert_eq!(EventLoop::new().simulated().block_on(task.past(past)), Err(2));
    /// ```
    pub fn past<I>(self, past: I) -> TryProcessStream<T, E, M, H, I::IntoIter, L>
    where
        I: IntoIterator<Item = (Timestamp, T)>,
    {
        self.map(|inner| inner.past(past))
    }

    /// The live stream, as [`ProcessStream::live`].
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream;
    /// use timecast::{source::try_process_stream, EventLoop, Timestamp};
    /// let live = stream::iter([(Timestamp::from_unix_secs(1), 1)]);
    /// let task = try_process_stream(|_ts: Timestamp, _v: i32| Ok::<_, String>(())).live(live);
    /// assert_eq!(EventLoop::new().simulated().block_on(task), Ok(()));
    /// ```
    pub fn live<S>(self, live: S) -> TryProcessStream<T, E, M, H, P, S>
    where
        S: Stream<Item = (Timestamp, T)>,
    {
        self.map(|inner| inner.live(live))
    }

    /// Both parts from a [`Source`], as [`ProcessStream::source`].
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream::{self, Iter};
    /// use timecast::{source::{try_process_stream, Source}, EventLoop, Timestamp};
    ///
    /// struct Numbers;
    /// impl Source for Numbers {
    ///     type Item = u32;
    ///     type Past = std::vec::IntoIter<(Timestamp, u32)>;
    ///     type Live = Iter<std::vec::IntoIter<(Timestamp, u32)>>;
    ///     fn into_parts(self) -> (Self::Past, Self::Live) {
    ///         let t = Timestamp::from_unix_secs;
    ///         (vec![(t(1), 1)].into_iter(), stream::iter(vec![(t(2), 0)]))
    ///     }
    /// }
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let divide = |_ts: Timestamp, v: u32| 12u32.checked_div(v).map(drop).ok_or("division by zero");
    /// assert_eq!(el.block_on(try_process_stream(divide).source(Numbers)), Err("division by zero"));
    /// ```
    pub fn source<S>(self, source: S) -> TryProcessStream<T, E, M, H, S::Past, S::Live>
    where
        S: Source<Item = T>,
    {
        self.map(|inner| inner.source(source))
    }

    /// Runs `callback` once the past is exhausted, before the first live
    /// event, as [`ProcessStream::on_live_start`]. Not if the handler failed
    /// on the past.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use timecast::{source::try_process_stream, EventLoop, Timestamp};
    ///
    /// let live = Rc::new(Cell::new(false));
    /// let l = live.clone();
    /// let task = try_process_stream(|_ts: Timestamp, _v: u8| Err("no"))
    ///     .past([(Timestamp::UNIX_EPOCH, 1)])
    ///     .on_live_start(move || l.set(true));
    /// assert_eq!(EventLoop::new().simulated().block_on(task), Err("no"));
    /// assert!(!live.get());
    /// ```
    pub fn on_live_start(self, callback: impl FnOnce() + 'static) -> Self {
        self.map(|inner| inner.on_live_start(callback))
    }

    /// What to do with late live events, as [`ProcessStream::on_late`].
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{source::try_process_stream, AsyncStream, EventLoop, LatePolicy, Timestamp};
    ///
    /// let feed = AsyncStream::with_capacity(1);
    /// let live = feed.subscribe();
    /// feed.close();
    /// let task = try_process_stream(|_ts: Timestamp, _v: u8| Ok::<_, ()>(()))
    ///     .live(live)
    ///     .on_late(LatePolicy::Drop);
    /// assert_eq!(EventLoop::new().block_on(task), Ok(()));
    /// ```
    pub fn on_late(self, policy: LatePolicy<T>) -> Self {
        self.map(|inner| inner.on_late(policy))
    }
}

impl<T, E, M, H, P, L> Future for TryProcessStream<T, E, M, H, P, L>
where
    T: 'static,
    E: 'static,
    M: 'static,
    H: TryEventHandler<T, E, M>,
    P: Iterator<Item = (Timestamp, T)> + 'static,
    L: Stream<Item = (Timestamp, T)> + 'static,
{
    type Output = Result<(), E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        Poll::Ready(match self.failure.error.borrow_mut().take() {
            Some(error) => Err(error),
            None => Ok(()),
        })
    }
}

impl<T, E, M, H, P, L> fmt::Debug for TryProcessStream<T, E, M, H, P, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryProcessStream")
            .field("inner", &self.inner)
            .field("failed", &self.failure.error.borrow().is_some())
            .finish()
    }
}

impl<E> fmt::Debug for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("failed", &self.error.borrow().is_some())
            .finish_non_exhaustive()
    }
}

impl<Fut, E> fmt::Debug for CheckedFuture<Fut, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedFuture").finish_non_exhaustive()
    }
}
