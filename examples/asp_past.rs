//! ASP's "Processing past events": a greeter replays five past visits, one
//! second apart from 2025-01-01.
//!
//! The past is replayed at once, yet the loop's clock (`now()`, the second
//! column) moves with the events (the third column): inside a callback,
//! `now()` is the event's time. The first column, the wall clock, barely
//! moves.
//!
//! ```text
//! $ cargo run --release --example asp_past
//! 04:49:32.679406 00:00:00.000000 00:00:00.000000 Hello Jane.
//! 04:49:32.679434 00:00:01.000000 00:00:01.000000 Hello John.
//! 04:49:32.679437 00:00:02.000000 00:00:02.000000 Hello Sarah.
//! 04:49:32.679439 00:00:03.000000 00:00:03.000000 Hello Paul.
//! 04:49:32.679442 00:00:04.000000 00:00:04.000000 Hello again Jane!
//! ```

#[path = "asp_common/mod.rs"]
pub(crate) mod common;

use std::time::Duration;

use common::{timestamps, Greeter, Log, NAMES};
use timecast::{process_stream, EventLoop, TaskError, Timestamp};

/// Spawns the greeter on `el`, fed the visits from `start` on, one second
/// apart.
pub(crate) fn greet_past_visitors(el: &EventLoop, log: &Log, start: Timestamp) {
    let greeter = Greeter::new(log.clone());
    let past = timestamps(start, Duration::from_secs(1)).zip(NAMES);
    el.spawn(
        process_stream(move |ts: Timestamp, name: &'static str| greeter.greet(ts, name)).past(past),
    );
}

fn main() -> Result<(), TaskError> {
    let start = Timestamp::from_ymd_hms(2025, 1, 1, 0, 0, 0).expect("a valid date");
    // ASP's `asp.run(..., start_time)`: the clock starts at `start`.
    let el = EventLoop::starting_at(start);
    greet_past_visitors(&el, &Log::printing(), start);
    el.run()
}
