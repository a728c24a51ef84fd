//! Layer 1, the channel: [`AsyncStream`], a lossless multi-producer
//! broadcast with all-consumers-ready backpressure.
//!
//! - Every [`Consumer`] receives every value put after it subscribed, in put
//!   order; none is lost or duplicated. (The first consumer after the last
//!   one left also receives what that one left untaken: see "Where a value
//!   goes" below.)
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
//! - [`AsyncStream::put_all`] puts the values of an iterator a batch at a
//!   time: one lock and one wake-up for as many values as there is room
//!   for.
//!
//! # Where a value goes
//!
//! A value leaves the stream only by being taken by consumers, or by being
//! handed back to its producer in an error ([`Closed`], [`TryPutError`]),
//! with two exceptions, both the user's choice: a put future dropped before
//! it completes drops its value, and a value buffered for consumers that all
//! leave while consumers subscribed after it remain is dropped. In detail:
//!
//! - A value is for the consumers subscribed when it is put (and their
//!   clones); each receives it unless it leaves first. A consumer
//!   subscribed later does not receive it: every consumer sees one
//!   sequence, in put order.
//! - A put with no consumer waits for the first one, or fails with the
//!   value if the stream closes.
//! - A rendezvous put whose consumers all leave before any of them
//!   received the value does not complete: it takes the value back and
//!   offers it again, to the consumers subscribed then or to the next one,
//!   or hands it back as [`Closed`] if the stream closes first.
//! - When the last consumer leaves, the values no consumer received
//!   (buffered values, or a rendezvous `try_put`'s), with every value put
//!   after the first of them, stay in the stream: the next consumer to
//!   subscribe receives them first, even after a close. Until then puts
//!   wait, as with no consumer. They are dropped with the stream if no
//!   consumer comes.
//! - When a consumer leaves while others remain, a value only it had yet to
//!   take was put for nobody there is (they subscribed after it), and is
//!   dropped.
//!
//! # Panics in `Clone` and `Drop`
//!
//! If `T::clone` panics while a consumer receives, the panic reaches the
//! caller and the consumer stays at that value: its next receive clones it
//! again, and dropping the consumer releases it. Producers and the other
//! consumers go on; every value is dropped exactly once, whatever panics.
//!
//! # How it works
//!
//! Values live in a ring of slots, each counting the consumers yet to take
//! its value. Consumers take values without locking: every consumer but the
//! last clones the value, the last moves it out and frees the slot. A
//! put takes no lock either in the common case (a buffered stream, open,
//! with room and consumers, none of them waiting): it claims the next
//! sequence number with one compare-and-swap. Otherwise producers, and
//! whatever changes who takes part (subscribing, dropping a consumer,
//! closing), go through one mutex, under which waiters register their
//! wakers; taking it waits for a put in flight to finish. No waker is
//! cloned, woken or dropped, no value cloned or dropped, and no other user
//! code run while the mutex is held.
//!
//! The ring starts small and doubles, up to the capacity, when more values
//! are buffered at once than it holds: memory follows what is buffered,
//! not the capacity, and once the ring has grown to what the stream needs,
//! putting and receiving allocate nothing.
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
pub use sender::{AsyncStream, Put, PutAll, PutSink};
