//! Layer 1, the channel: [`AsyncStream`], a lossless multi-producer
//! broadcast with all-consumers-ready backpressure.
//!
//! - Every [`Consumer`] receives every value put after it subscribed, in put
//!   order; none is lost or duplicated.
//! - Backpressure is global: a producer waits for the slowest consumer.
//!   [`AsyncStream::new`] is a rendezvous (a put returns once every consumer
//!   has taken the value); [`AsyncStream::with_capacity`] lets producers run
//!   `n` values ahead.
//! - A put with no consumer waits for the first one. A dropped consumer
//!   stops holding producers back at once.
//! - [`AsyncStream::close`], or dropping every producer handle, ends the
//!   stream; consumers first receive what was already put.
//! - The triads `try_put` / `put` / `put_blocking` and `try_recv` / `recv` /
//!   `recv_blocking` work under any executor and from plain threads.
//!
//! One mutex guards the state. No waker is woken and no value dropped while
//! it is held; the one piece of user code that runs under it is the value's
//! `Clone`, which therefore must not use the same stream.

mod error;
mod receiver;
mod sender;
mod shared;

pub use error::{Closed, TryPutError, TryRecvError};
pub use receiver::{Consumer, Recv};
pub use sender::{AsyncStream, Put, PutSink};
