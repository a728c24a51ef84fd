//! timecast: broadcast channels with backpressure, an event loop whose clock
//! replays history then follows the wall clock, and stream pipelines.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod sync;

pub mod channel;

pub use channel::{AsyncStream, Closed, Consumer, TryPutError, TryRecvError};
