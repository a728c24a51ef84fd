//! Callbacks that are plain closures or closures returning futures.

use std::future::{ready, Future, Ready};

use super::Timestamp;

/// Markers that tell the two kinds of callback apart; they never need naming.
pub mod marker {
    /// A closure that returns `()`.
    #[derive(Debug)]
    pub struct Plain;
    /// A closure that returns a future of `()`.
    #[derive(Debug)]
    pub struct Async;
}

/// A callback run once: `FnOnce()` or `FnOnce() -> impl Future<Output = ()>`,
/// as taken by [`call_at`](crate::call_at) and
/// [`call_later`](crate::call_later).
pub trait Callback<M>: 'static {
    /// What the loop awaits after calling it.
    type Future: Future<Output = ()> + 'static;
    /// Calls it.
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
/// before it dispatches the stream's next event.
pub trait EventHandler<T, M>: 'static {
    /// What the loop awaits after calling it.
    type Future: Future<Output = ()> + 'static;
    /// Calls it with an event.
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
