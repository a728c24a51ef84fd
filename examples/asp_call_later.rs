//! ASP's "Scheduling callbacks": each visitor is announced when they
//! arrive, and greeted a second later by a callback scheduled with
//! [`call_at`](timecast::call_at). Two visitors came a minute ago; three
//! arrive live, one a second.
//!
//! Strict chronology: everything runs in time order, past and live alike.
//! A callback scheduled in the past runs before any later event, and at
//! equal times events run before callbacks (so "John arrived." comes before
//! "Hello Jane.", both at the same second). ASP's own output breaks this
//! order: its "Hello John." from the past runs after the first live event,
//! "Sarah arrived.", and each live "Hello" after the next arrival. Ours
//! greets John before Sarah arrives. (`on_live_start` runs as soon as the
//! stream's past is exhausted: right after John arrived, before the
//! greetings scheduled by the past.) Takes three seconds.
//!
//! ```text
//! $ cargo run --release --example asp_call_later
//! 04:49:37.701256 04:48:37.701193 04:48:37.701193 Jane arrived.
//! 04:49:37.701273 04:48:38.701193 04:48:38.701193 John arrived.
//! ** Running live **
//! 04:49:37.701279 04:48:38.701193 04:48:38.701193 Hello Jane.
//! 04:49:37.701283 04:48:39.701193 04:48:39.701193 Hello John.
//! 04:49:37.701325 04:49:37.701324 04:49:37.701304 Sarah arrived.
//! 04:49:38.701397 04:49:38.701304 04:49:38.701304 Hello Sarah.
//! 04:49:38.701430 04:49:38.701390 04:49:38.701390 Paul arrived.
//! 04:49:39.701480 04:49:39.701390 04:49:39.701390 Hello Paul.
//! 04:49:39.701507 04:49:39.701470 04:49:39.701470 Jane arrived.
//! 04:49:40.701590 04:49:40.701470 04:49:40.701470 Hello again Jane!
//! ```

#[path = "asp_common/mod.rs"]
pub(crate) mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{live_feed, timestamps, Greeter, Log, NAMES};
use futures::Stream;
use timecast::{call_at, process_stream, EventLoop, TaskError, Timestamp};

/// ASP's `greet_later`: announces the visitor, and schedules their greeting
/// a second after they arrived.
fn greet_later(greeter: &Rc<Greeter>, event_time: Timestamp, name: &'static str) {
    greeter.log().log(event_time, format!("{name} arrived."));
    let at = event_time + Duration::from_secs(1);
    let greeter = greeter.clone();
    call_at(at, move || greeter.greet(at, name));
}

/// Spawns the greeter on `el`: the first two visitors came from `start` on,
/// one second apart; `live` brings the next ones.
pub(crate) fn greet_later_past_then_live(
    el: &EventLoop,
    log: &Log,
    start: Timestamp,
    live: impl Stream<Item = (Timestamp, &'static str)> + 'static,
) {
    let greeter = Greeter::new(log.clone());
    let past = timestamps(start, Duration::from_secs(1)).zip(&NAMES[..2]);
    let marker = log.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, name: &'static str| greet_later(&greeter, ts, name))
            .past(past.map(|(ts, name)| (ts, *name)))
            .live(live)
            .on_live_start(move || marker.print("** Running live **")),
    );
}

fn main() -> Result<(), TaskError> {
    let start = Timestamp::now() - Duration::from_secs(60);
    let el = EventLoop::starting_at(start);
    let live = live_feed(&NAMES[2..], Duration::from_secs(1));
    greet_later_past_then_live(&el, &Log::printing(), start, live);
    el.run()
}
