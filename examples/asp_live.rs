//! ASP's "Processing real time events": visitors arrive live, one a second,
//! from another thread through an [`AsyncStream`](timecast::AsyncStream).
//!
//! Live events are dispatched at their own time, and the loop's clock
//! follows the wall clock: the three columns (wall clock, loop clock, event
//! time) agree to within the latency of the hand-over. The loop sleeps
//! between events; it does not poll. Takes four seconds.
//!
//! ```text
//! $ cargo run --release --example asp_live
//! 04:49:32.686117 04:49:32.682062 04:49:32.682062 Hello Jane.
//! 04:49:33.686013 04:49:33.686007 04:49:33.685985 Hello John.
//! 04:49:34.686137 04:49:34.686131 04:49:34.686109 Hello Sarah.
//! 04:49:35.690027 04:49:35.690016 04:49:35.689995 Hello Paul.
//! 04:49:36.690211 04:49:36.690200 04:49:36.690088 Hello again Jane!
//! ```

#[path = "asp_common/mod.rs"]
pub(crate) mod common;

use std::time::Duration;

use common::{live_feed, Greeter, Log, NAMES};
use futures::Stream;
use timecast::{process_stream, EventLoop, TaskError, Timestamp};

/// Spawns the greeter on `el`, fed the `live` visits.
pub(crate) fn greet_live_visitors(
    el: &EventLoop,
    log: &Log,
    live: impl Stream<Item = (Timestamp, &'static str)> + 'static,
) {
    let greeter = Greeter::new(log.clone());
    el.spawn(
        process_stream(move |ts: Timestamp, name: &'static str| greeter.greet(ts, name)).live(live),
    );
}

fn main() -> Result<(), TaskError> {
    // The clock starts at the wall clock's time and follows it.
    let el = EventLoop::new();
    greet_live_visitors(
        &el,
        &Log::printing(),
        live_feed(&NAMES, Duration::from_secs(1)),
    );
    el.run()
}
