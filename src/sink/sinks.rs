//! The [`Sink`] trait and the sinks: closures, topics, fan-out, discard.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::marker::PhantomData;

use crate::channel::{AsyncStream, Closed, PutSink};

/// Where a pipeline's outputs go: a closure, an [`AsyncStream`] used as an
/// in-process topic, a [`FanOut`] to several sinks, or your own.
///
/// [`send`](Sink::send) delivers one value; the pipeline awaits it before
/// it sends the next, so a slow sink holds the pipeline back
/// (backpressure).
///
/// # Examples
///
/// A sink of your own, collecting into a `Vec`:
///
/// ```
/// use std::future::Future;
/// use timecast::{sink::{handle, Sink}, Closed};
///
/// struct Collect(Vec<u32>);
///
/// impl Sink<u32> for Collect {
///     type Error = Closed<u32>;
///     fn send(&mut self, item: u32) -> impl Future<Output = Result<(), Closed<u32>>> {
///         self.0.push(item);
///         std::future::ready(Ok(()))
///     }
/// }
///
/// let mut out = Collect(Vec::new());
/// let source = futures::stream::iter(1..=3);
/// futures::executor::block_on(handle(source, |x| Some(x * 10)).sink_to(&mut out).run())?;
/// assert_eq!(out.0, [10, 20, 30]);
/// # Ok::<_, Closed<u32>>(())
/// ```
pub trait Sink<O> {
    /// Why a send failed: [`Closed`] with the item for a topic, a closure
    /// or [`Discard`]; the sink's own error for others (a store table's
    /// `StoreError`). To follow other sinks in a [`FanOut`], it must
    /// absorb theirs: see [`CombineErrors`].
    type Error;

    /// Delivers `item`.
    ///
    /// # Errors
    ///
    /// [`Sink::Error`]: for a topic, [`Closed`] with the item if it no
    /// longer takes values. The pipeline then stops.
    ///
    /// # Cancel safety
    ///
    /// Up to the sink; for a topic, see
    /// [`AsyncStream::put`](crate::AsyncStream::put).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{sink::Sink, AsyncStream, Closed};
    ///
    /// let mut topic = AsyncStream::with_capacity(1);
    /// let mut consumer = topic.subscribe();
    /// futures::executor::block_on(topic.send("hello"))?;
    /// assert_eq!(consumer.try_recv(), Ok("hello"));
    /// topic.close();
    /// assert_eq!(futures::executor::block_on(topic.send("bye")), Err(Closed("bye")));
    /// # Ok::<_, Closed<&str>>(())
    /// ```
    fn send(&mut self, item: O) -> impl Future<Output = Result<(), Self::Error>>;
}

/// How the errors of two sinks in a [`FanOut`] join into one: the error of
/// the fan-out, and so of [`Handle::run`](super::Handle::run).
///
/// [`Closed`] joins any error that can absorb it (`From<Closed<T>>`): two
/// closures or topics give `Closed<T>`; a closure or topic then a sink with
/// a richer error (a store table) gives that error. A sink error type that
/// comes first implements `CombineErrors` for the errors that may follow it.
///
/// # Examples
///
/// ```
/// use timecast::{sink::CombineErrors, Closed};
///
/// #[derive(Debug)]
/// struct Mine;
/// impl<T> From<Closed<T>> for Mine {
///     fn from(_: Closed<T>) -> Self { Mine }
/// }
/// // `Mine` first, then a closure or topic:
/// impl<T> CombineErrors<Closed<T>> for Mine {
///     type Joined = Mine;
///     fn first(self) -> Mine { self }
///     fn second(_: Closed<T>) -> Mine { Mine }
/// }
/// // a closure first, then `Mine`: `Closed<T>: CombineErrors<Mine>` holds.
/// let joined: Mine = <Closed<u8> as CombineErrors<Mine>>::first(Closed(1));
/// # let _ = joined;
/// ```
pub trait CombineErrors<Second> {
    /// The joined error.
    type Joined;
    /// Converts the first sink's error.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{sink::CombineErrors, Closed};
    /// assert_eq!(<Closed<u8> as CombineErrors<Closed<u8>>>::first(Closed(1)), Closed(1));
    /// ```
    fn first(self) -> Self::Joined;
    /// Converts the second sink's error.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{sink::CombineErrors, Closed};
    /// assert_eq!(<Closed<u8> as CombineErrors<Closed<u8>>>::second(Closed(2)), Closed(2));
    /// ```
    fn second(second: Second) -> Self::Joined;
}

impl<T, E: From<Closed<T>>> CombineErrors<E> for Closed<T> {
    type Joined = E;
    fn first(self) -> E {
        E::from(self)
    }
    fn second(second: E) -> E {
        second
    }
}

/// An [`AsyncStream`] is a topic: sending puts the value, waiting for room
/// (the slowest consumer sets the pace), and fails once the stream is
/// closed.
impl<O> Sink<O> for AsyncStream<O> {
    type Error = Closed<O>;
    fn send(&mut self, item: O) -> impl Future<Output = Result<(), Closed<O>>> {
        self.put(item)
    }
}

/// A [`PutSink`] (the `futures::Sink` of [`AsyncStream::sink`]) is a topic
/// too, so `sink_to(topic.sink())` works as `sink_to(topic)` does: sending
/// waits for room, then puts, and fails with the item once the stream is
/// closed. A send dropped before it completes (a pipeline's `run` dropped)
/// leaves nothing in the sink, also borrowed (`sink_to(&mut sink)`): as
/// dropping a [`Put`](crate::channel::Put) does, it delivers its value to no one, unless some
/// consumer of a rendezvous stream already received it. (`futures`'
/// `SinkExt::send` differs: see [`PutSink`]'s cancel safety.)
///
/// ```
/// use timecast::{sink::handle, AsyncStream, Closed};
///
/// let topic = AsyncStream::with_capacity(4);
/// let mut consumer = topic.subscribe();
/// let pipeline = handle(futures::stream::iter(1..=3), |x: u32| Some(x * 10));
/// futures::executor::block_on(pipeline.sink_to(topic.sink()).run())?;
/// assert_eq!([consumer.try_recv(), consumer.try_recv(), consumer.try_recv()], [Ok(10), Ok(20), Ok(30)]);
/// # Ok::<_, Closed<u32>>(())
/// ```
impl<O> Sink<O> for PutSink<O> {
    type Error = Closed<O>;
    fn send(&mut self, item: O) -> impl Future<Output = Result<(), Closed<O>>> {
        self.send_whole(item)
    }
}

impl<O, K: Sink<O> + ?Sized> Sink<O> for &mut K {
    type Error = K::Error;
    fn send(&mut self, item: O) -> impl Future<Output = Result<(), K::Error>> {
        (**self).send(item)
    }
}

/// The sink that drops every value: where a pipeline's outputs go when it
/// has no sink.
///
/// # Examples
///
/// ```
/// use timecast::sink::{handle, Discard};
///
/// let source = futures::stream::iter(0..3);
/// futures::executor::block_on(handle(source, Some).sink_to(Discard).run())?;
/// # Ok::<_, timecast::Closed<i32>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Discard;

impl<O> Sink<O> for Discard {
    type Error = Closed<O>;
    fn send(&mut self, _item: O) -> impl Future<Output = Result<(), Closed<O>>> {
        ready(Ok(()))
    }
}

/// Markers telling apart the kinds of closures a pipeline takes; they never
/// need naming.
///
/// # Examples
///
/// ```
/// use timecast::sink::{marker, HandlerOutput};
/// fn outputs_of<R: HandlerOutput<marker::Unit>>(_: R) {}
/// outputs_of(());
/// ```
pub mod marker {
    /// A sink closure returning `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{marker, SinkReturn};
    /// fn plain<R: SinkReturn<marker::Plain>>(_: impl FnMut(u8) -> R) {}
    /// plain(|x| println!("{x}"));
    /// ```
    #[derive(Debug)]
    pub struct Plain;
    /// A sink closure returning a future of `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{marker, SinkReturn};
    /// fn asynchronous<R: SinkReturn<marker::Async>>(_: impl FnMut(u8) -> R) {}
    /// asynchronous(|x| async move { println!("{x}") });
    /// ```
    #[derive(Debug)]
    pub struct Async;
    /// A handler returning an iterable (`Option`, `Vec`, array, …), or a
    /// fallible one returning a `Result` of one.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{marker, HandlerOutput};
    /// fn outputs<R: HandlerOutput<marker::Iter>>(_: R) {}
    /// outputs(Some(1));
    /// outputs(vec!['a', 'b']);
    /// ```
    #[derive(Debug)]
    pub struct Iter;
    /// A handler returning `()`, or a fallible one returning `Result<(),
    /// E>`: no output.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{marker, HandlerOutput};
    /// fn no_output<R: HandlerOutput<marker::Unit>>(_: R) {}
    /// no_output(());
    /// ```
    #[derive(Debug)]
    pub struct Unit;
    /// A handler returning a future of an iterable, or a fallible one
    /// returning a future of a `Result` of one.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{marker, HandlerOutput};
    /// fn outputs_later<R: HandlerOutput<marker::AsyncIter>>(_: R) {}
    /// outputs_later(async { [1, 2] });
    /// ```
    #[derive(Debug)]
    pub struct AsyncIter;
    /// A handler returning a future of `()`, or a fallible one returning a
    /// future of `Result<(), E>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{marker, HandlerOutput};
    /// fn nothing_later<R: HandlerOutput<marker::AsyncUnit>>(_: R) {}
    /// nothing_later(async {});
    /// ```
    #[derive(Debug)]
    pub struct AsyncUnit;
}

/// What a sink closure returns: `()`, or a future of `()` that the pipeline
/// awaits (an async sink). The marker `M` ([`marker`]) tells the two apart;
/// it is inferred.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
/// use timecast::{sink::handle, EventLoop, Timestamp};
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let out = log.clone();
/// let pipeline = handle(futures::stream::iter([1, 2]), Some).sink(move |x| {
///     let out = out.clone();
///     async move {
///         timecast::sleep(Duration::from_secs(1)).await; // a slow sink
///         out.borrow_mut().push((timecast::now().unix_secs(), x));
///     }
/// });
/// EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated().block_on(pipeline.run())?;
/// assert_eq!(*log.borrow(), [(1, 1), (2, 2)]);
/// # Ok::<_, timecast::Closed<i32>>(())
/// ```
pub trait SinkReturn<M> {
    /// What the pipeline awaits.
    type Future: Future<Output = ()>;
    /// Converts.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::sink::{marker, SinkReturn};
    /// futures::executor::block_on(SinkReturn::<marker::Plain>::into_future(()));
    /// ```
    fn into_future(self) -> Self::Future;
}

impl SinkReturn<marker::Plain> for () {
    type Future = Ready<()>;
    fn into_future(self) -> Ready<()> {
        ready(())
    }
}

impl<F: Future<Output = ()>> SinkReturn<marker::Async> for F {
    type Future = F;
    fn into_future(self) -> F {
        self
    }
}

/// A closure as a [`Sink`]: `FnMut(O)` or `FnMut(O) -> impl Future<Output =
/// ()>`. Built by [`from_fn`], or by [`Handle::sink`](super::Handle::sink).
///
/// # Examples
///
/// ```
/// use timecast::sink::{fan_out, from_fn, handle};
///
/// let (mut a, mut b) = (Vec::new(), Vec::new());
/// let both = fan_out(from_fn(|x| a.push(x)), from_fn(|x| b.push(x)));
/// let source = futures::stream::iter(["x", "y"]);
/// futures::executor::block_on(handle(source, Some).sink_to(both).run())?;
/// assert_eq!((a, b), (vec!["x", "y"], vec!["x", "y"]));
/// # Ok::<_, timecast::Closed<&str>>(())
/// ```
pub struct FnSink<F, M> {
    f: F,
    _marker: PhantomData<fn() -> M>,
}

/// Wraps a closure `FnMut(O)` or `FnMut(O) -> impl Future<Output = ()>` as
/// a [`Sink`], to combine it with others (see [`fan_out`]).
///
/// # Examples
///
/// ```
/// use timecast::sink::{from_fn, handle};
///
/// let mut total = 0;
/// let source = futures::stream::iter([1, 2, 3]);
/// futures::executor::block_on(handle(source, Some).sink_to(from_fn(|x| total += x)).run())?;
/// assert_eq!(total, 6);
/// # Ok::<_, timecast::Closed<i32>>(())
/// ```
pub fn from_fn<O, F, R, M>(f: F) -> FnSink<F, M>
where
    F: FnMut(O) -> R,
    R: SinkReturn<M>,
{
    FnSink {
        f,
        _marker: PhantomData,
    }
}

impl<O, F, R, M> Sink<O> for FnSink<F, M>
where
    F: FnMut(O) -> R,
    R: SinkReturn<M>,
{
    type Error = Closed<O>;
    fn send(&mut self, item: O) -> impl Future<Output = Result<(), Closed<O>>> {
        let done = (self.f)(item).into_future();
        async move {
            done.await;
            Ok(())
        }
    }
}

impl<F, M> fmt::Debug for FnSink<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSink").finish_non_exhaustive()
    }
}

/// Sends every value to two sinks, `first` then `second`: a clone to the
/// first, the value itself to the second. Nest it for more sinks (as
/// [`Handle::sink`](super::Handle::sink) does).
///
/// The value goes to the second sink once the first has taken it; if
/// either fails, the fan-out fails, with the two sinks' errors joined by
/// [`CombineErrors`].
///
/// # Examples
///
/// ```
/// use timecast::{sink::{fan_out, handle}, AsyncStream};
///
/// let (a, b) = (AsyncStream::with_capacity(4), AsyncStream::with_capacity(4));
/// let (mut ca, mut cb) = (a.subscribe(), b.subscribe());
/// let source = futures::stream::iter([1, 2]);
/// futures::executor::block_on(handle(source, Some).sink_to(fan_out(a, b)).run())?;
/// assert_eq!((ca.try_recv(), cb.try_recv()), (Ok(1), Ok(1)));
/// # Ok::<_, timecast::Closed<i32>>(())
/// ```
pub fn fan_out<A, B>(first: A, second: B) -> FanOut<A, B> {
    FanOut { first, second }
}

/// The sink returned by [`fan_out`].
///
/// # Examples
///
/// ```
/// use timecast::sink::{fan_out, handle, Discard, FanOut};
///
/// let both: FanOut<Discard, Discard> = fan_out(Discard, Discard);
/// futures::executor::block_on(handle(futures::stream::iter([1]), Some).sink_to(both).run())?;
/// # Ok::<_, timecast::Closed<i32>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct FanOut<A, B> {
    first: A,
    second: B,
}

impl<O, A, B> Sink<O> for FanOut<A, B>
where
    O: Clone,
    A: Sink<O>,
    B: Sink<O>,
    A::Error: CombineErrors<B::Error>,
{
    type Error = <A::Error as CombineErrors<B::Error>>::Joined;
    async fn send(&mut self, item: O) -> Result<(), Self::Error> {
        self.first
            .send(item.clone())
            .await
            .map_err(CombineErrors::first)?;
        self.second
            .send(item)
            .await
            .map_err(<A::Error as CombineErrors<B::Error>>::second)
    }
}
