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
//! # How it works
//!
//! Values live in a ring of `max(capacity, 1)` slots, each counting the
//! consumers yet to take its value. Consumers take values without locking:
//! every consumer but the last clones the value, the last moves it out and
//! frees the slot. Producers, and whatever changes who takes part
//! (subscribing, dropping a consumer, closing), go through one mutex, under
//! which waiters register their wakers. No waker is woken, no value dropped
//! and no user code run (`Clone` included) while the mutex is held.
//!
//! Because consumers on different threads may clone the same value at
//! once, handles are `Send` and `Sync` when `T: Send + Sync`, as with
//! tokio's broadcast channel.

mod error;
mod receiver;
mod sender;
mod shared;

pub use error::{Closed, TryPutError, TryRecvError};
pub use receiver::{Consumer, Recv};
pub use sender::{AsyncStream, Put, PutSink};
