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
/// dropped while the pipeline goes on. A handler that must stop the
/// pipeline with its error is bound with [`try_handle`] instead (see
/// [`TryHandlerOutput`]).
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

/// What a fallible handler returns (one bound with [`try_handle`]):
/// `Result<R, E>`, where `R` is an iterable of outputs or `()` for none,
/// or a future of such a `Result` (an async handler). `Ok` holds the outputs; `Err` stops the pipeline, and
/// [`Handle::run`] returns it as [`HandleError::Handler`].
///
/// The marker `M` ([`marker`](super::marker)) tells the cases apart; it is
/// inferred.
///
/// # Examples
///
/// ```
/// use timecast::sink::{marker, TryHandlerOutput};
///
/// let ok = futures::executor::block_on(TryHandlerOutput::<marker::Iter>::try_into_outputs(Ok::<_, ()>([1, 2])));
/// assert_eq!(ok.map(|outputs| outputs.collect::<Vec<_>>()), Ok(vec![1, 2]));
/// let failed = futures::executor::block_on(TryHandlerOutput::<marker::Unit>::try_into_outputs(Err::<(), _>("bad")));
/// assert!(matches!(failed, Err("bad")));
/// ```
pub trait TryHandlerOutput<M> {
    /// One output.
    type Item;
    /// The outputs.
    type Iter: Iterator<Item = Self::Item>;
    /// The handler's error.
    type Error;
    /// Resolves to the outputs, or to the handler's error.
    fn try_into_outputs(self) -> impl Future<Output = Result<Self::Iter, Self::Error>>;
}

impl<I: IntoIterator, E> TryHandlerOutput<marker::Iter> for Result<I, E> {
    type Item = I::Item;
    type Iter = I::IntoIter;
    type Error = E;
    fn try_into_outputs(self) -> impl Future<Output = Result<I::IntoIter, E>> {
        ready(self.map(IntoIterator::into_iter))
    }
}

impl<E> TryHandlerOutput<marker::Unit> for Result<(), E> {
    type Item = Infallible;
    type Iter = std::iter::Empty<Infallible>;
    type Error = E;
    fn try_into_outputs(self) -> impl Future<Output = Result<Self::Iter, E>> {
        ready(self.map(|()| std::iter::empty()))
    }
}

impl<F, I, E> TryHandlerOutput<marker::AsyncIter> for F
where
    F: Future<Output = Result<I, E>>,
    I: IntoIterator,
{
    type Item = I::Item;
    type Iter = I::IntoIter;
    type Error = E;
    async fn try_into_outputs(self) -> Result<I::IntoIter, E> {
        self.await.map(IntoIterator::into_iter)
    }
}

impl<F, E> TryHandlerOutput<marker::AsyncUnit> for F
where
    F: Future<Output = Result<(), E>>,
{
    type Item = Infallible;
    type Iter = std::iter::Empty<Infallible>;
    type Error = E;
    async fn try_into_outputs(self) -> Result<Self::Iter, E> {
        self.await.map(|()| std::iter::empty())
    }
}

/// The handler of a [`Handle`]: a closure bound by [`handle`], or a
/// fallible one bound by [`try_handle`] (wrapped in [`Fallible`]). It
/// tells [`Handle::run`] what the pipeline's error is: the sinks' own
/// error for a handler that cannot fail, a [`HandleError`] of both for one
/// that can.
///
/// Generic code over a [`Handle`] names it in its bounds (`F:
/// Handler<S::Item, M>`), and `F::Item` for the outputs. It is sealed:
/// timecast implements it for those two kinds, and its methods are
/// [`Handle::run`]'s own.
///
/// # Examples
///
/// ```
/// use futures::Stream;
/// use timecast::sink::{Handle, Handler, Sink};
///
/// /// Runs any pipeline, plain or fallible, and says how it ended.
/// async fn run_and_tell<S, F, M, K>(pipeline: Handle<S, F, M, K>) -> bool
/// where
///     S: Stream,
///     F: Handler<S::Item, M>,
///     K: Sink<F::Item>,
/// {
///     pipeline.run().await.is_ok()
/// }
///
/// let plain = timecast::sink::handle(futures::stream::iter([1]), Some);
/// assert!(futures::executor::block_on(run_and_tell(plain)));
/// let failing = timecast::sink::try_handle(futures::stream::iter([1]), |_: i32| Err::<(), _>("no"));
/// assert!(!futures::executor::block_on(run_and_tell(failing)));
/// ```
pub trait Handler<In, M>: sealed::Sealed<In, M> {
    /// One output.
    type Item;
    /// The outputs of one input.
    type Outputs: Iterator<Item = Self::Item>;
    /// What the handler returns, once awaited: the outputs, or for a
    /// fallible handler a `Result` of them.
    #[doc(hidden)]
    type Returned;
    /// The pipeline's error, given the sinks' error `SinkError`.
    type RunError<SinkError>;
    /// Calls the handler on one input.
    #[doc(hidden)]
    fn call(&mut self, input: In) -> impl Future<Output = Self::Returned>;
    /// The outputs the handler returned, or the pipeline's error if it
    /// failed.
    #[doc(hidden)]
    fn outputs<SinkError>(
        returned: Self::Returned,
    ) -> Result<Self::Outputs, Self::RunError<SinkError>>;
    /// The pipeline's error for a sink's error.
    #[doc(hidden)]
    fn sink_error<SinkError>(error: SinkError) -> Self::RunError<SinkError>;
}

mod sealed {
    use super::{Fallible, HandlerOutput, TryHandlerOutput};

    /// Keeps [`Handler`](super::Handler) to timecast's two kinds of handler.
    pub trait Sealed<In, M> {}

    impl<F, In, R, M> Sealed<In, M> for F
    where
        F: FnMut(In) -> R,
        R: HandlerOutput<M>,
    {
    }

    impl<F, In, R, M> Sealed<In, M> for Fallible<F>
    where
        F: FnMut(In) -> R,
        R: TryHandlerOutput<M>,
    {
    }
}

impl<F, In, R, M> Handler<In, M> for F
where
    F: FnMut(In) -> R,
    R: HandlerOutput<M>,
{
    type Item = R::Item;
    type Outputs = R::Iter;
    type Returned = R::Iter;
    type RunError<SinkError> = SinkError;
    fn call(&mut self, input: In) -> impl Future<Output = R::Iter> {
        self(input).into_outputs()
    }
    fn outputs<SinkError>(returned: R::Iter) -> Result<R::Iter, SinkError> {
        Ok(returned)
    }
    fn sink_error<SinkError>(error: SinkError) -> SinkError {
        error
    }
}

/// A fallible handler, as [`try_handle`] binds it: its `Err` stops the
/// pipeline.
///
/// # Examples
///
/// ```
/// use timecast::sink::{Fallible, Handle};
///
/// let parse = |s: &str| s.parse::<u32>().map(Some);
/// let _pipeline: Handle<_, Fallible<_>, _> = timecast::sink::try_handle(futures::stream::iter(["1"]), parse);
/// ```
#[derive(Clone, Debug)]
pub struct Fallible<F>(F);

impl<F, In, R, M> Handler<In, M> for Fallible<F>
where
    F: FnMut(In) -> R,
    R: TryHandlerOutput<M>,
{
    type Item = R::Item;
    type Outputs = R::Iter;
    type Returned = Result<R::Iter, R::Error>;
    type RunError<SinkError> = HandleError<R::Error, SinkError>;
    fn call(&mut self, input: In) -> impl Future<Output = Self::Returned> {
        (self.0)(input).try_into_outputs()
    }
    fn outputs<SinkError>(
        returned: Self::Returned,
    ) -> Result<R::Iter, HandleError<R::Error, SinkError>> {
        returned.map_err(HandleError::Handler)
    }
    fn sink_error<SinkError>(error: SinkError) -> HandleError<R::Error, SinkError> {
        HandleError::Sink(error)
    }
}

/// Why a pipeline of [`try_handle`] stopped: its handler's error, or the
/// error of the sink that failed.
///
/// Its `Display` says which, followed by the error's own text; it is an
/// [`Error`](std::error::Error) whenever both errors display (a `String`
/// or `&str` handler error too), with no [`source`](std::error::Error::source):
/// the text is already in its own. Match on it for the error itself.
///
/// # Examples
///
/// ```
/// use timecast::sink::{try_handle, HandleError};
///
/// let source = futures::stream::iter(["1", "x"]);
/// let mut parsed = Vec::new();
/// let pipeline = try_handle(source, |s: &str| s.parse::<u32>().map(Some)).sink(|n| parsed.push(n));
/// let error = futures::executor::block_on(pipeline.run()).unwrap_err();
/// assert!(matches!(error, HandleError::Handler(_)));
/// assert_eq!(error.to_string(), "the handler failed: invalid digit found in string");
/// assert_eq!(parsed, [1]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleError<E, S> {
    /// The handler returned this error.
    Handler(E),
    /// A sink failed with this error ([`Closed`](crate::Closed) with the
    /// output a closed topic refused, a store table's error, …).
    Sink(S),
}

impl<E: fmt::Display, S: fmt::Display> fmt::Display for HandleError<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handler(e) => write!(f, "the handler failed: {e}"),
            Self::Sink(e) => write!(f, "a sink failed: {e}"),
        }
    }
}

impl<E, S> std::error::Error for HandleError<E, S>
where
    E: fmt::Debug + fmt::Display,
    S: fmt::Debug + fmt::Display,
{
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

/// Binds a fallible `handler` to `source`: as [`handle`], except that the
/// handler returns a `Result` (or a future of one, for an async handler),
/// and its `Err` stops the pipeline. [`run`](Handle::run) then returns
/// [`HandleError::Handler`] with it, after every output of the items
/// before reached the sinks; the failing item's outputs are none, and the
/// source is not polled again. A sink's error stops it as well, as
/// [`HandleError::Sink`].
///
/// The sinks see a stop as they see any end: a topic the pipeline owned
/// closes once the pipeline is dropped, as after the source's end. Tell
/// the two apart by `run`'s result. In a [`Flow`](crate::flow::Flow), a
/// pipeline's error is what its supervisor acts on: a failing handler is
/// reported with its error's text, and the pipeline restarted as its
/// [`Restart`](crate::flow::Restart) policy says.
///
/// `Ok` holds the outputs, as a handler of [`handle`] returns them: an
/// iterable, or `()` for none (see [`TryHandlerOutput`]). So a closure
/// returning `Result<Vec<T>, E>` puts out each `T` here, while
/// under `handle` the same closure puts out each `Vec<T>` (the `Ok` of an
/// iterable `Result`) and drops its errors. A closure whose body returns
/// `Ok(())` may need its error type spelled (`Ok::<(), E>(())`).
///
/// # Examples
///
/// Parsing stops at the first line that is not a number:
///
/// ```
/// use timecast::sink::{try_handle, HandleError};
///
/// let lines = futures::stream::iter(["1", "2", "three", "4"]);
/// let mut total = 0;
/// let pipeline = try_handle(lines, |line: &str| line.parse::<u32>().map(Some))
///     .sink(|n| total += n);
/// let stopped = futures::executor::block_on(pipeline.run());
/// assert!(matches!(stopped, Err(HandleError::Handler(_))));
/// assert_eq!(total, 3);
/// ```
///
/// An async handler, and one that has no outputs:
///
/// ```
/// use timecast::sink::try_handle;
///
/// let checked = try_handle(futures::stream::iter([1, 2]), |x: u32| async move {
///     if x > 0 { Ok(vec![x; 2]) } else { Err("zero") }
/// });
/// let mut outputs = Vec::new();
/// futures::executor::block_on(checked.sink(|x| outputs.push(x)).run())?;
/// assert_eq!(outputs, [1, 1, 2, 2]);
///
/// let mut seen = 0;
/// let count = try_handle(futures::stream::iter([1, 2]), |_: u32| {
///     seen += 1;
///     Ok::<(), &str>(())
/// });
/// futures::executor::block_on(count.run())?;
/// assert_eq!(seen, 2);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn try_handle<S, F, R, M>(source: S, handler: F) -> Handle<S, Fallible<F>, M>
where
    S: Stream,
    F: FnMut(S::Item) -> R,
    R: TryHandlerOutput<M>,
{
    Handle {
        source,
        handler: Fallible(handler),
        sinks: Discard,
        _marker: PhantomData,
    }
}

/// A source, a handler and its sinks, built by [`handle`] or
/// [`try_handle`]. `K` is the sink
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

impl<S, F, M> Handle<S, F, M, Discard>
where
    S: Stream,
    F: Handler<S::Item, M>,
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
        G: FnMut(F::Item) -> Q,
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
        K: Sink<F::Item>,
    {
        Handle {
            source: self.source,
            handler: self.handler,
            sinks: Sinks(sink),
            _marker: PhantomData,
        }
    }
}

impl<S, F, M, K> Handle<S, F, M, Sinks<K>>
where
    S: Stream,
    F: Handler<S::Item, M>,
    F::Item: Clone,
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
        G: FnMut(F::Item) -> Q,
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
        K2: Sink<F::Item>,
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
    /// pipeline stops there. A pipeline of [`try_handle`] stops at its
    /// handler's error too, and returns either in a [`HandleError`].
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
    pub fn run(self) -> impl Future<Output = Result<(), F::RunError<K::Error>>>
    where
        S: Stream,
        F: Handler<S::Item, M>,
        K: Sink<F::Item>,
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
                for output in F::outputs(handler.call(item).await)? {
                    sinks.send(output).await.map_err(F::sink_error)?;
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
