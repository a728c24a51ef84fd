//! ASP's "Pausing execution": an async callback announces each visitor,
//! [`sleep`](timecast::sleep)s, then greets them. Two visitors came a
//! minute ago; two arrive live, a second apart.
//!
//! The sleep is fast-forwarded over the past and real once live. A stream's
//! callbacks are serial: the next visitor is handled only once the previous
//! callback, sleep included, is done. So Paul, who arrived live a second
//! after Sarah while her callback slept, is handled when it ends, late: the
//! event keeps its own time (the third column) and
//! [`lateness`](timecast::lateness) says by how much. (ASP sleeps 5 s; 2 s
//! keeps this example to four seconds.)
//!
//! ```text
//! $ cargo run --release --example asp_sleep
//! 04:49:40.706931 04:48:40.706846 04:48:40.706846 Jane arrived.
//! 04:49:40.706955 04:48:42.706846 04:48:42.706846 Hello Jane.
//! 04:49:40.706959 04:48:42.706846 04:48:41.706846 John arrived.
//! 04:49:40.706962 04:48:44.706846 04:48:43.706846 Hello John.
//! ** Running live **
//! 04:49:40.710064 04:49:40.710059 04:49:40.710041 Sarah arrived.
//! 04:49:42.710154 04:49:42.710059 04:49:42.710041 Hello Sarah.
//! 04:49:42.710191 04:49:42.710059 04:49:41.714009 Paul arrived (late by 996.050551ms).
//! 04:49:44.714004 04:49:44.710059 04:49:43.714009 Hello Paul.
//! ```

#[path = "asp_common/mod.rs"]
pub(crate) mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{live_feed, timestamps, Greeter, Log, NAMES};
use futures::Stream;
use timecast::{lateness, process_stream, sleep, EventLoop, TaskError, Timestamp};

/// How long the greeter pauses before greeting.
pub(crate) const PAUSE: Duration = Duration::from_secs(2);

/// ASP's `sleep_and_greet`: announces the visitor, sleeps, greets.
async fn sleep_and_greet(greeter: Rc<Greeter>, event_time: Timestamp, name: &'static str) {
    match lateness() {
        None => greeter.log().log(event_time, format!("{name} arrived.")),
        Some(late) => greeter
            .log()
            .log(event_time, format!("{name} arrived (late by {late:?}).")),
    }
    sleep(PAUSE).await;
    greeter.greet(event_time + PAUSE, name);
}

/// Spawns the greeter on `el`: the first two visitors came from `start` on,
/// one second apart; `live` brings the next ones.
pub(crate) fn sleep_and_greet_past_then_live(
    el: &EventLoop,
    log: &Log,
    start: Timestamp,
    live: impl Stream<Item = (Timestamp, &'static str)> + 'static,
) {
    let greeter = Greeter::new(log.clone());
    let past = timestamps(start, Duration::from_secs(1)).zip(&NAMES[..2]);
    let marker = log.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, name: &'static str| {
            sleep_and_greet(greeter.clone(), ts, name)
        })
        .past(past.map(|(ts, name)| (ts, *name)))
        .live(live)
        .on_live_start(move || marker.print("** Running live **")),
    );
}

fn main() -> Result<(), TaskError> {
    let start = Timestamp::now() - Duration::from_secs(60);
    let el = EventLoop::starting_at(start);
    let live = live_feed(&NAMES[2..4], Duration::from_secs(1));
    sleep_and_greet_past_then_live(&el, &Log::printing(), start, live);
    el.run()
}
