//! timecast: a lossless broadcast channel with backpressure, an event loop
//! whose virtual clock replays history as fast as possible and then follows
//! the wall clock, and the combinators to build stream pipelines on both.
//!
//! # A tour of the layers
//!
//! Each layer uses only the layers before it.
//!
//! 1. [`channel`]: [`AsyncStream`], a multi-producer broadcast in which every
//!    [`Consumer`] receives every value, and producers wait for the slowest
//!    consumer (streamx's all-consumers-ready backpressure).
//! 2. [`time`]: [`Timestamp`] and [`EventLoop`], a single-threaded executor
//!    with a virtual clock: [`now`], [`sleep`], [`sleep_until`],
//!    [`call_at`], [`call_later`], [`spawn`]. Its rules (total order,
//!    strict chronology, past then live) are listed in the module docs.
//! 3. [`source`]: [`process_stream`] binds a handler to a past iterator and
//!    a live stream ([`try_process_stream`] one that can fail); [`timer`]
//!    ticks periodically. All sources of a loop are
//!    merged in time order.
//! 4. [`ops`]: combinators on any stream through one extension trait,
//!    [`StreamOps`]: `pairwise`, `accumulate`, tumbling / hopping / session /
//!    sliding [`Window`]s with watermarks and late-event handling, and an
//!    as-of join that waits for the slower side.
//! 5. [`sink`]: Slipstream-style handlers: [`handle`] a source with a
//!    handler that returns zero, one or many outputs, into closures, an
//!    [`AsyncStream`] used as an in-process topic, or a fan-out.
//!    With the `store` feature (on by default), `store` keeps
//!    Slipstream's `Cache` on disk: typed, ordered tables committed
//!    atomically together, usable as sinks, with a stream of updates.
//!    [`topic::Topic`] is what a pipeline reads from and writes to: the
//!    store's durable log, or with the `kafka` feature a Kafka topic
//!    (`kafka`), so a pipeline moves to a cluster by changing one line.
//! 6. [`flow`]: aiopype's supervised pipelines: a [`Flow`] runs named
//!    pipelines, contains their errors and panics, reports them, restarts
//!    them with capped exponential backoff on the loop's clock within a
//!    [`Restart`] limit, shuts down cooperatively, and shows what is
//!    running ([`FlowHandle::status`]).
//!
//! The channel works under any executor (tokio, smol, `futures`) and from
//! plain threads; the event loop runs on its own thread or inside another
//! runtime.
//!
//! # Example
//!
//! Replay a day of history in virtual time, instantly, with a timer ticking
//! every hour alongside the data, in strict time order:
//!
//! ```
//! use std::{cell::RefCell, rc::Rc, time::Duration};
//! use futures::StreamExt;
//! use timecast::{now, process_stream, timer, EventLoop, Timestamp};
//!
//! let midnight = Timestamp::from_ymd_hms(2025, 1, 1, 0, 0, 0).unwrap();
//! let trades = (0..48).map(move |i| (midnight + Duration::from_secs(1800 * i), i));
//!
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let (on_trade, on_tick) = (log.clone(), log.clone());
//! let el = EventLoop::starting_at(midnight).simulated();
//! el.spawn(process_stream(move |ts: Timestamp, qty: u64| {
//!     on_trade.borrow_mut().push(format!("{ts} trade {qty}"));
//! }).past(trades));
//! el.spawn(async move {
//!     let mut hours = timer(Duration::from_secs(3600)).until(midnight + Duration::from_secs(86_400));
//!     while let Some(tick) = hours.next().await {
//!         on_tick.borrow_mut().push(format!("{} tick", now()));
//!         assert_eq!(now(), tick);
//!     }
//! });
//! el.run()?;
//!
//! let log = log.borrow();
//! assert_eq!(log.len(), 48 + 24);
//! // At equal times, data runs before timers.
//! assert_eq!(log[2], "2025-01-01T01:00:00Z trade 2");
//! assert_eq!(log[3], "2025-01-01T01:00:00Z tick");
//! # Ok::<_, timecast::TaskError>(())
//! ```
//!
//! # Cargo features
//!
//! | feature | what it adds |
//! |---|---|
//! | (none) | everything above; the core depends only on `futures-core`, `futures-util` and `parking_lot` |
//! | `store` (default) | `store`: an embedded, persistent, ordered store in one directory (Slipstream's `Cache`): typed tables committed atomically together, usable as sinks, with a stream of updates; adds `fjall`, `serde`, `serde_json`, `postcard` |
//! | `tracing` | failures of flows and poll sources reported to [`tracing`](https://docs.rs/tracing) |
//! | `cron` | `source::cron`: cron schedules on the loop's clock (parsed by [`croner`](https://docs.rs/croner)) |
//! | `kafka` | `kafka`: Kafka topics as sources and sinks behind the same [`topic::Topic`] trait as the embedded log; implies `store`; adds [`rdkafka`](https://docs.rs/rdkafka) with its bundled librdkafka |
#![doc(test(attr(deny(warnings))))]

mod sync;

pub mod channel;
pub mod time;
pub mod source;
pub mod ops;
pub mod sink;
pub mod topic;
#[cfg(feature = "store")]
pub mod store;
pub mod flow;
#[cfg(feature = "kafka")]
pub mod kafka;

pub use channel::{AsyncStream, Closed, Consumer, TryPutError, TryRecvError};
pub use flow::{Flow, FlowHandle, FlowReport, PipelineError, Restart};
pub use ops::{StreamOps, Window};
pub use sink::handle;
pub use source::{process_stream, timer, try_process_stream, LatePolicy};
pub use time::{
    call_at, call_later, is_live, lateness, now, sleep, sleep_until, spawn, EventLoop, JoinError,
    JoinHandle, TaskError, Timestamp,
};
