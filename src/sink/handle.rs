//! [`handle`]: a source bound to a handler and its sinks.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Future};
use std::marker::PhantomData;
use std::pin::pin;

use futures_core::Stream;
use futures_util::StreamExt;

use super::sinks::{fan_out, from_fn, marker, Discard, FanOut, FnSink, Sink, SinkReturn};

/// What a handler returns: its outputs, zero or more.
///
/// - any iterable: `Option<O>` (zero or one), `Vec<O>`, `[O; N]`, an
///   iterator…
/// - `()`: no output;
/// - a future of either (an `async` handler), awaited before the next
///   input is taken.
///
/// The marker `M` ([`marker`](super::marker)) tells the cases apart; it is
/// inferred.
///
/// A `Result` is an iterable too: `Ok(o)` is one output, and `Err` none,
/// dropped without a word, while the pipeline goes on. A handler does not
/// stop the pipeline: to stop at an error of the source (a reader's
/// `Result` items), end the source there (`StreamExt::take_while`) and
/// keep the error aside to check once `run` returns.
///
/// # Examples
///
/// ```
/// use timecast::sink::handle;
///
/// let mut out = Vec::new();
/// let source = futures::stream::iter(1..=3);
/// let split = handle(source, |x| async move { vec![x; x] }); // an async handler
/// futures::executor::block_on(split.sink(|x| out.push(x)).run())?;
/// assert_eq!(out, [1, 2, 2, 3, 3, 3]);
/// # Ok::<_, timecast::Closed<usize>>(())
/// ```
pub trait HandlerOutput<M> {
    /// One output.
    type Item;
    /// The outputs.
    type Iter: Iterator<Item = Self::Item>;
    /// Resolves to the outputs.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{marker, HandlerOutput};
    ///
    /// let outputs = futures::executor::block_on(HandlerOutput::<marker::Iter>::into_outputs([1, 2]));
    /// assert_eq!(outputs.collect::<Vec<_>>(), [1, 2]);
    /// ```
    fn into_outputs(self) -> impl Future<Output = Self::Iter>;
}

impl<I: IntoIterator> HandlerOutput<marker::Iter> for I {
    type Item = I::Item;
    type Iter = I::IntoIter;
    fn into_outputs(self) -> impl Future<Output = I::IntoIter> {
        ready(self.into_iter())
    }
}

impl HandlerOutput<marker::Unit> for () {
    type Item = Infallible;
    type Iter = std::iter::Empty<Infallible>;
    fn into_outputs(self) -> impl Future<Output = Self::Iter> {
        ready(std::iter::empty())
    }
}

impl<F> HandlerOutput<marker::AsyncIter> for F
where
    F: Future,
    F::Output: IntoIterator,
{
    type Item = <F::Output as IntoIterator>::Item;
    type Iter = <F::Output as IntoIterator>::IntoIter;
    async fn into_outputs(self) -> Self::Iter {
        self.await.into_iter()
    }
}

impl<F: Future<Output = ()>> HandlerOutput<marker::AsyncUnit> for F {
    type Item = Infallible;
    type Iter = std::iter::Empty<Infallible>;
    async fn into_outputs(self) -> Self::Iter {
        self.await;
        std::iter::empty()
    }
}

/// Binds `handler` to `source` (Slipstream's `@handle`): each item of the
/// source goes through the handler, and each of its outputs to the sinks,
/// in order. Add sinks with [`sink`](Handle::sink) (closures) and
/// [`sink_to`](Handle::sink_to) (topics, [`FanOut`], any [`Sink`]); then
/// [`run`](Handle::run) it.
///
/// The source is any [`Stream`], typically a timecast source piped through
/// [`StreamOps`](crate::ops::StreamOps) combinators. The handler is a closure
/// taking one item and returning its outputs: an `Option`, a `Vec`, an
/// array, any iterable, or `()` for none; or a future of those (an async
/// handler). See [`HandlerOutput`].
///
/// # Examples
///
/// The Slipstream cookbook's "pipe" with `[accumulate, pairwise]`:
///
/// ```
/// use futures::stream;
/// use timecast::{ops::StreamOps, sink::handle};
///
/// let mut printed = Vec::new();
/// let pipeline = handle(stream::iter(0..5).accumulate(|a, b| a + b).pairwise(), Some)
///     .sink(|pair| printed.push(format!("{pair:?}")));
/// futures::executor::block_on(pipeline.run())?;
/// assert_eq!(printed, ["(0, 1)", "(1, 3)", "(3, 6)", "(6, 10)"]);
/// # Ok::<_, timecast::Closed<(i32, i32)>>(())
/// ```
pub fn handle<S, F, R, M>(source: S, handler: F) -> Handle<S, F, M>
where
    S: Stream,
    F: FnMut(S::Item) -> R,
    R: HandlerOutput<M>,
{
    Handle {
        source,
        handler,
        sinks: Discard,
        _marker: PhantomData,
    }
}

/// A source, a handler and its sinks, built by [`handle`]. `K` is the sink
/// list: [`Discard`] until the first sink is added, then [`Sinks`].
///
/// # Examples
///
/// ```
/// use timecast::sink::{handle, Handle};
///
/// let mut total = 0;
/// let pipeline: Handle<_, _, _, _> = handle(futures::stream::iter([1, 2, 3]), |x| Some(x * 2)).sink(|x| total += x);
/// futures::executor::block_on(pipeline.run())?;
/// assert_eq!(total, 12);
/// # Ok::<_, timecast::Closed<i32>>(())
/// ```
#[must_use = "a pipeline does nothing until it is run"]
pub struct Handle<S, F, M, K = Discard> {
    source: S,
    handler: F,
    sinks: K,
    _marker: PhantomData<fn() -> M>,
}

/// The sinks of a [`Handle`]: one sink, or a [`FanOut`] of several.
///
/// # Examples
///
/// ```
/// use timecast::sink::{handle, Discard, FanOut, Sinks};
///
/// let h = handle(futures::stream::iter([1]), Some).sink_to(Discard).sink_to(Discard);
/// let _: &Sinks<FanOut<Discard, Discard>> = h.sinks();
/// ```
#[derive(Clone, Debug, Default)]
pub struct Sinks<K>(K);

impl<O, K: Sink<O>> Sink<O> for Sinks<K> {
    type Error = K::Error;
    fn send(&mut self, item: O) -> impl Future<Output = Result<(), K::Error>> {
        self.0.send(item)
    }
}

impl<S, F, R, M> Handle<S, F, M, Discard>
where
    S: Stream,
    F: FnMut(S::Item) -> R,
    R: HandlerOutput<M>,
{
    /// Sends the handler's outputs to a closure: `FnMut(O)`, or `FnMut(O)
    /// -> impl Future<Output = ()>` awaited before the next output.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::handle;
    ///
    /// let mut seen = Vec::new();
    /// let source = futures::stream::iter(["a", "b"]);
    /// let pipeline = handle(source, |s| [s, s]).sink(|s| seen.push(s));
    /// futures::executor::block_on(pipeline.run())?;
    /// assert_eq!(seen, ["a", "a", "b", "b"]);
    /// # Ok::<_, timecast::Closed<&str>>(())
    /// ```
    pub fn sink<G, Q, N>(self, sink: G) -> Handle<S, F, M, Sinks<FnSink<G, N>>>
    where
        G: FnMut(R::Item) -> Q,
        Q: SinkReturn<N>,
    {
        self.sink_to(from_fn(sink))
    }

    /// Sends the handler's outputs to `sink`: an [`AsyncStream`] used as a
    /// topic (puts wait for its slowest consumer), a [`FanOut`], any
    /// [`Sink`].
    ///
    /// [`AsyncStream`]: crate::AsyncStream
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use timecast::{sink::handle, AsyncStream};
    ///
    /// let topic = AsyncStream::with_capacity(8);
    /// let downstream = topic.subscribe();
    /// let source = futures::stream::iter(1..=3);
    /// // The topic closes when the pipeline, its last producer, ends.
    /// futures::executor::block_on(handle(source, |x| Some(x * x)).sink_to(topic).run())?;
    /// assert_eq!(futures::executor::block_on(downstream.collect::<Vec<_>>()), [1, 4, 9]);
    /// # Ok::<_, timecast::Closed<i32>>(())
    /// ```
    pub fn sink_to<K>(self, sink: K) -> Handle<S, F, M, Sinks<K>>
    where
        K: Sink<R::Item>,
    {
        Handle {
            source: self.source,
            handler: self.handler,
            sinks: Sinks(sink),
            _marker: PhantomData,
        }
    }
}

impl<S, F, R, M, K> Handle<S, F, M, Sinks<K>>
where
    S: Stream,
    F: FnMut(S::Item) -> R,
    R: HandlerOutput<M>,
    R::Item: Clone,
{
    /// Adds a closure sink: every output goes to the sinks before, then to
    /// this one (a clone to all but the last).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use timecast::sink::handle;
    ///
    /// let log = RefCell::new(Vec::new());
    /// let source = futures::stream::iter([1, 2]);
    /// let pipeline = handle(source, Some)
    ///     .sink(|x| log.borrow_mut().push(format!("a{x}")))
    ///     .sink(|x| log.borrow_mut().push(format!("b{x}")));
    /// futures::executor::block_on(pipeline.run())?;
    /// assert_eq!(*log.borrow(), ["a1", "b1", "a2", "b2"]);
    /// # Ok::<_, timecast::Closed<i32>>(())
    /// ```
    #[allow(
        clippy::type_complexity,
        reason = "the type spells out the sink list: a fan-out to the sinks before and this closure"
    )]
    pub fn sink<G, Q, N>(self, sink: G) -> Handle<S, F, M, Sinks<FanOut<K, FnSink<G, N>>>>
    where
        G: FnMut(R::Item) -> Q,
        Q: SinkReturn<N>,
    {
        self.sink_to(from_fn(sink))
    }

    /// Adds a sink (a topic, a [`FanOut`], any [`Sink`]): every output goes
    /// to the sinks before, then to this one.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{sink::handle, AsyncStream};
    ///
    /// let topic = AsyncStream::with_capacity(8);
    /// let mut downstream = topic.subscribe();
    /// let mut printed = Vec::new();
    /// let source = futures::stream::iter(["🌞", "🌧"]);
    /// let pipeline = handle(source, Some).sink(|w| printed.push(w)).sink_to(topic);
    /// futures::executor::block_on(pipeline.run())?;
    /// assert_eq!(printed, ["🌞", "🌧"]);
    /// assert_eq!(downstream.try_recv(), Ok("🌞"));
    /// # Ok::<_, timecast::Closed<&str>>(())
    /// ```
    pub fn sink_to<K2>(self, sink: K2) -> Handle<S, F, M, Sinks<FanOut<K, K2>>>
    where
        K2: Sink<R::Item>,
    {
        Handle {
            source: self.source,
            handler: self.handler,
            sinks: Sinks(fan_out(self.sinks.0, sink)),
            _marker: PhantomData,
        }
    }
}

impl<S, F, M, K> Handle<S, F, M, K> {
    /// The sinks.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{handle, Discard};
    /// let h = handle(futures::stream::iter([1]), Some);
    /// assert_eq!(*h.sinks(), Discard);
    /// ```
    pub fn sinks(&self) -> &K {
        &self.sinks
    }

    /// Runs the pipeline: a future that takes each item of the source,
    /// calls the handler and sends each output to the sinks, one after the
    /// other, until the source ends. Spawn it on an
    /// [`EventLoop`](crate::EventLoop), or await it under any executor.
    ///
    /// Backpressure flows upstream: the source is not polled again before
    /// every output of the previous item was taken by every sink.
    ///
    /// # Errors
    ///
    /// The error of the sink that failed ([`Sink::Error`]; joined by
    /// [`CombineErrors`](super::CombineErrors) for several sinks): [`Closed`](crate::Closed) with
    /// the output a closed topic refused, a store table's error. The
    /// pipeline stops there.
    ///
    /// # Panics
    ///
    /// If the handler or a sink panics.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the pipeline: the item being handled, and
    /// its outputs not yet sent, are dropped. An output being put into a
    /// topic is not delivered (see [`AsyncStream::put`](crate::AsyncStream::put)).
    ///
    /// # Examples
    ///
    /// A shared source: one pipeline publishes to a topic, two handlers
    /// subscribe to it, in virtual time.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// use timecast::{sink::handle, timer, AsyncStream, EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let topic = AsyncStream::new();
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// for name in ["first", "second"] {
    ///     let log = log.clone();
    ///     el.spawn(handle(topic.subscribe(), move |t: Timestamp| {
    ///         log.borrow_mut().push(format!("{name} {}", t.unix_secs()))
    ///     }).run());
    /// }
    /// let ticks = timer(Duration::from_secs(1)).until(Timestamp::from_unix_secs(2));
    /// el.spawn(handle(ticks, Some).sink_to(topic).run());
    /// el.run()?;
    /// assert_eq!(*log.borrow(), ["first 1", "second 1", "first 2", "second 2"]);
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    pub fn run<R>(self) -> impl Future<Output = Result<(), K::Error>>
    where
        S: Stream,
        F: FnMut(S::Item) -> R,
        R: HandlerOutput<M>,
        K: Sink<R::Item>,
    {
        let Self {
            source,
            mut handler,
            mut sinks,
            ..
        } = self;
        async move {
            let mut source = pin!(source);
            while let Some(item) = source.next().await {
                for output in handler(item).into_outputs().await {
                    sinks.send(output).await?;
                }
            }
            Ok(())
        }
    }
}

impl<S: fmt::Debug, F, M, K: fmt::Debug> fmt::Debug for Handle<S, F, M, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("source", &self.source)
            .field("sinks", &self.sinks)
            .finish_non_exhaustive()
    }
}
