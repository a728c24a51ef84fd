//! Layer 5, sinks: where the results of a pipeline go.
//!
//! A pipeline is Slipstream's `@handle`: one source, a chain of
//! [`StreamOps`](crate::ops::StreamOps) combinators, a handler, and sinks.
//!
//! ```text
//! source ─ combinators ─▶ handler(item) -> zero, one or many outputs ─▶ sink, sink, …
//! ```
//!
//! - [`handle(source, handler)`](handle) binds them. The handler returns its
//!   outputs: an `Option`, a `Vec`, an array, any iterable, `()` for none, or
//!   a future of those ([`HandlerOutput`]).
//! - [`try_handle(source, handler)`](try_handle) binds a fallible handler:
//!   it returns a `Result` of those (or a future of one), and its `Err`
//!   stops the pipeline, which returns it in a [`HandleError`]
//!   ([`TryHandlerOutput`]).
//! - [`Handle::sink`] adds a closure sink, `FnMut(O)` or async;
//!   [`Handle::sink_to`] adds any [`Sink`]: an
//!   [`AsyncStream`](crate::AsyncStream) used as an in-process topic, a
//!   [`FanOut`], [`Discard`], or your own. Several sinks all receive every
//!   output, in the order they were added (outputs must then be `Clone`).
//! - [`Handle::run`] is the future that drives it all, on an
//!   [`EventLoop`](crate::EventLoop) (virtual time) or any executor.
//!
//! Backpressure is end to end: the pipeline awaits each sink before it
//! takes the next item, and a topic's put waits for the topic's slowest
//! consumer. To share a source between handlers, publish it to a topic and
//! let each handler [`subscribe`](crate::AsyncStream::subscribe): every
//! handler sees every item, and a slow handler slows the source for all
//! (the cookbook's "processing delays in one handler may delay consumption
//! for both").
//!
//! # Examples
//!
//! The Slipstream cookbook's sink example: counting emoji into an
//! in-memory cache.
//!
//! ```
//! use std::{cell::RefCell, collections::HashMap, rc::Rc};
//! use timecast::sink::handle;
//!
//! let cache = Rc::new(RefCell::new(HashMap::new()));
//! let messages = futures::stream::iter("🏆📞🐟👌🏆📞🐟👌".chars());
//! let r = cache.clone();
//! let pipeline = handle(messages, move |emoji| {
//!     let count = r.borrow().get(&emoji).map_or(1, |n| n + 1);
//!     Some((emoji, count))
//! })
//! .sink(|(emoji, count)| {
//!     cache.borrow_mut().insert(emoji, count);
//! });
//! futures::executor::block_on(pipeline.run())?;
//! assert_eq!(cache.borrow()[&'🏆'], 2);
//! # Ok::<_, timecast::Closed<(char, i32)>>(())
//! ```

mod handle;
mod sinks;

pub use handle::{
    handle, try_handle, Fallible, Handle, HandleError, Handler, HandlerOutput, Sinks,
    TryHandlerOutput,
};
pub use sinks::{
    fan_out, from_fn, marker, CombineErrors, Discard, FanOut, FnSink, Sink, SinkReturn,
};
