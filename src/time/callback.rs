//! Callbacks that are plain closures or closures returning futures.

use std::future::{ready, Future, Ready};

use super::Timestamp;

/// Markers that tell the two kinds of callback apart: the `M` of
/// [`Callback<M>`](super::Callback) and
/// [`EventHandler<T, M>`](super::EventHandler). The compiler infers them;
/// code that passes callbacks on stays generic over `M`.
///
/// # Examples
///
/// ```
/// use timecast::time::{marker, Callback};
///
/// // Generic over the marker: takes both kinds.
/// fn twice<M>(first: impl Callback<M>, second: impl Callback<M>) {
///     timecast::call_later(std::time::Duration::from_secs(1), first);
///     timecast::call_later(std::time::Duration::from_secs(2), second);
/// }
///
/// // Naming one kind: only plain closures.
/// fn plain(callback: impl Callback<marker::Plain>) {
///     timecast::call_later(std::time::Duration::ZERO, callback);
/// }
///
/// let el = timecast::EventLoop::new().simulated();
/// el.spawn(async {
///     twice(|| println!("one"), || println!("two"));
///     twice(|| async {}, || async {});
///     plain(|| println!("now"));
/// });
/// el.run()?;
/// # Ok::<_, timecast::TaskError>(())
/// ```
pub mod marker {
    /// Marks a closure that returns `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::time::{marker::Plain, Callback};
    ///
    /// fn run_now(callback: impl Callback<Plain>) {
    ///     let _ = callback.call(); // Ran already: the future is ready.
    /// }
    /// run_now(|| println!("ran"));
    /// ```
    #[derive(Debug)]
    pub struct Plain;

    /// Marks a closure that returns a future of `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::time::{marker::Async, Callback};
    ///
    /// fn on_the_loop(callback: impl Callback<Async>) {
    ///     timecast::EventLoop::new().simulated().block_on(callback.call());
    /// }
    /// on_the_loop(|| async { timecast::sleep(std::time::Duration::from_secs(60)).await });
    /// ```
    #[derive(Debug)]
    pub struct Async;
}

/// A callback run once: `FnOnce()` or `FnOnce() -> impl Future<Output = ()>`,
/// as taken by [`call_at`](crate::call_at) and
/// [`call_later`](crate::call_later). Implemented for those closures; `M`
/// is a [`marker`] the compiler infers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::{call_later, now, sleep, time::Callback, EventLoop, Timestamp};
///
/// /// Runs `callback` every `period`, `times` times.
/// fn repeat<M, C: Callback<M> + Clone>(period: Duration, times: u32, callback: C) {
///     for k in 1..=times {
///         call_later(period * k, callback.clone());
///     }
/// }
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// el.spawn(async {
///     repeat(Duration::from_secs(10), 3, || println!("{}", now()));
///     repeat(Duration::from_secs(10), 2, || async { sleep(Duration::from_secs(1)).await });
/// });
/// el.run()?;
/// assert_eq!(el.now(), Timestamp::from_unix_secs(30));
/// # Ok::<_, timecast::TaskError>(())
/// ```
pub trait Callback<M>: 'static {
    /// What the loop awaits after calling it: ready at once for a plain
    /// closure.
    type Future: Future<Output = ()> + 'static;

    /// Calls it; the loop then awaits the returned future.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use timecast::time::Callback;
    ///
    /// let ran = Rc::new(Cell::new(false));
    /// let r = ran.clone();
    /// let future = Callback::call(move || r.set(true));
    /// assert!(ran.get()); // A plain closure runs in `call`.
    /// timecast::EventLoop::new().simulated().block_on(future);
    /// ```
    fn call(self) -> Self::Future;
}

impl<F: FnOnce() + 'static> Callback<marker::Plain> for F {
    type Future = Ready<()>;
    fn call(self) -> Ready<()> {
        self();
        ready(())
    }
}

impl<F, Fut> Callback<marker::Async> for F
where
    F: FnOnce() -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    type Future = Fut;
    fn call(self) -> Fut {
        self()
    }
}

/// A handler of timestamped events: `FnMut(Timestamp, T)` or
/// `FnMut(Timestamp, T) -> impl Future<Output = ()>`, as taken by
/// [`process_stream`](crate::process_stream). The loop awaits the future
/// before it dispatches the stream's next event. Implemented for those
/// closures; `M` is a [`marker`] the compiler infers.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
/// use timecast::{process_stream, sleep, time::EventHandler, EventLoop, Timestamp};
///
/// /// Replays `past` into `handler`, whichever kind it is.
/// fn replay<M: 'static>(handler: impl EventHandler<u32, M>, past: Vec<(Timestamp, u32)>) -> Timestamp {
///     let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
///     el.block_on(process_stream(handler).past(past));
///     el.now()
/// }
///
/// let past = vec![(Timestamp::from_unix_secs(1), 1), (Timestamp::from_unix_secs(2), 2)];
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// replay(move |_ts: Timestamp, v: u32| s.borrow_mut().push(v), past.clone());
/// assert_eq!(*seen.borrow(), [1, 2]);
/// // An async handler: the next event waits until it is done, so the
/// // event at 2 s is handled at 6 s, and its handler ends at 11 s.
/// let end = replay(|_ts: Timestamp, _v: u32| sleep(Duration::from_secs(5)), past);
/// assert_eq!(end, Timestamp::from_unix_secs(11));
/// ```
pub trait EventHandler<T, M>: 'static {
    /// What the loop awaits after calling it: ready at once for a plain
    /// closure.
    type Future: Future<Output = ()> + 'static;

    /// Calls it with an event; the loop then awaits the returned future
    /// before the stream's next event.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use timecast::{time::EventHandler, Timestamp};
    ///
    /// let sum = Rc::new(Cell::new(0));
    /// let s = sum.clone();
    /// let mut add = move |_ts: Timestamp, v: u32| s.set(s.get() + v);
    /// let _ = EventHandler::call(&mut add, Timestamp::UNIX_EPOCH, 2);
    /// let _ = EventHandler::call(&mut add, Timestamp::UNIX_EPOCH, 3);
    /// assert_eq!(sum.get(), 5);
    /// ```
    fn call(&mut self, time: Timestamp, value: T) -> Self::Future;
}

impl<T, F: FnMut(Timestamp, T) + 'static> EventHandler<T, marker::Plain> for F {
    type Future = Ready<()>;
    fn call(&mut self, time: Timestamp, value: T) -> Ready<()> {
        self(time, value);
        ready(())
    }
}

impl<T, F, Fut> EventHandler<T, marker::Async> for F
where
    F: FnMut(Timestamp, T) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    type Future = Fut;
    fn call(&mut self, time: Timestamp, value: T) -> Fut {
        self(time, value)
    }
}
