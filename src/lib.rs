//! timecast: broadcast channels with backpressure, an event loop whose clock
//! replays history then follows the wall clock, and stream pipelines.

mod sync;

pub mod time;
pub mod channel;
pub mod source;
pub mod ops;
pub mod sink;

pub use channel::{AsyncStream, Closed, Consumer, TryPutError, TryRecvError};
pub use source::{process_stream, timer, LatePolicy};
pub use time::{
    call_at, call_later, is_live, lateness, now, sleep, sleep_until, spawn, EventLoop, JoinHandle,
    TaskError, Timestamp,
};
