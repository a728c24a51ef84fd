//! ASP's "Traveling through time": the greeter first replays two visits
//! from a minute ago, then greets the live ones; `on_live_start` marks the
//! switch.
//!
//! The clock starts a minute ago, jumps from one past event to the next,
//! then catches up with the wall clock: from the first live event on, the
//! three columns (wall clock, loop clock, event time) agree. Takes a second.
//!
//! ```text
//! $ cargo run --release --example asp_time_travel
//! 04:49:36.693675 04:48:36.693513 04:48:36.693513 Hello Jane.
//! 04:49:36.693700 04:48:37.693513 04:48:37.693513 Hello John.
//! ** Running live **
//! 04:49:36.693706 04:49:36.693632 04:49:36.693632 Hello again Jane!
//! 04:49:37.693804 04:49:37.693796 04:49:37.693715 Hello again John!
//! ```

#[path = "asp_common/mod.rs"]
pub(crate) mod common;

use std::time::Duration;

use common::{live_feed, timestamps, Greeter, Log, NAMES};
use futures::Stream;
use timecast::{process_stream, EventLoop, TaskError, Timestamp};

/// Spawns the greeter on `el`: the first two visitors came from `start` on,
/// one second apart; `live` brings the next ones.
pub(crate) fn greet_past_then_live(
    el: &EventLoop,
    log: &Log,
    start: Timestamp,
    live: impl Stream<Item = (Timestamp, &'static str)> + 'static,
) {
    let greeter = Greeter::new(log.clone());
    let past = timestamps(start, Duration::from_secs(1)).zip(&NAMES[..2]);
    let marker = log.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, name: &'static str| greeter.greet(ts, name))
            .past(past.map(|(ts, name)| (ts, *name)))
            .live(live)
            .on_live_start(move || marker.print("** Running live **")),
    );
}

fn main() -> Result<(), TaskError> {
    let start = Timestamp::now() - Duration::from_secs(60);
    let el = EventLoop::starting_at(start);
    let live = live_feed(&NAMES[..2], Duration::from_secs(1));
    greet_past_then_live(&el, &Log::printing(), start, live);
    el.run()
}
