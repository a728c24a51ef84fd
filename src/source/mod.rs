//! Layer 3, sources: timestamped inputs and their merge in time order.
//!
//! A [`process_stream`] binds a handler to a past iterator and a live
//! stream ([`try_process_stream`] a handler that can fail); a [`timer`] ticks periodically; [`poll`] fetches a value every
//! interval, forever (aiopype's `RestSource`); `cron` (feature `cron`)
//! ticks on a cron schedule (aiopype's `CronJob`). Every source's next event waits
//! in the loop's timer queue under its key `(ts, 0, rank, seq)`, so the loop
//! dispatches all of them, and all timers, in one total order: a k-way
//! merge that pulls each past lazily.

#[cfg(feature = "cron")]
mod cron;
mod poll;
mod process;
mod timer;
mod try_process;

#[cfg(feature = "cron")]
pub use cron::{cron, Cron, CronError};
pub use poll::{poll, PollError, PollSource};
pub use process::{process_stream, LatePolicy, ProcessStream, Source};
pub use timer::{timer, Timer};
pub use try_process::{try_process_stream, TryEventHandler, TryProcessStream};
