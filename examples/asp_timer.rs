//! ASP's "Executing arbitrary coroutines", with its periodic timer: an async
//! callback, `say_hello`, runs every second from three seconds ago to two
//! seconds from now. It logs, sleeps a second, and logs again.
//!
//! The timer is a live source like any other:
//! `process_stream(say_hello).live(timer(period).starting_at(t0).until(t1))`.
//! Ticks fall at exactly `t0 + k·period` (no drift), up to and including
//! `t1`; the ticks already past are replayed at once, the others come in
//! real time. The callback's sleep ends exactly on the next tick: that tick
//! is handled right after it, at the same time. Takes two seconds.
//!
//! ```text
//! $ cargo run --release --example asp_timer
//! 04:49:44.717167 04:49:42.717148 04:49:42.717148 sleeping for 1 second
//! 04:49:44.717185 04:49:43.717148 04:49:43.717148 hello
//! 04:49:44.717188 04:49:43.717148 04:49:43.717148 sleeping for 1 second
//! 04:49:44.717191 04:49:44.717148 04:49:44.717148 hello
//! 04:49:44.717195 04:49:44.717148 04:49:44.717148 sleeping for 1 second
//! 04:49:45.717248 04:49:45.717148 04:49:45.717148 hello
//! 04:49:45.717280 04:49:45.717148 04:49:45.717148 sleeping for 1 second
//! 04:49:46.717303 04:49:46.717148 04:49:46.717148 hello
//! 04:49:46.717352 04:49:46.717148 04:49:46.717148 sleeping for 1 second
//! 04:49:47.717239 04:49:47.717148 04:49:47.717148 hello
//! ```

#[path = "asp_common/mod.rs"]
pub(crate) mod common;

use std::time::Duration;

use common::Log;
use futures::StreamExt;
use timecast::{now, process_stream, sleep, timer, EventLoop, TaskError, Timestamp};

/// Spawns `say_hello` on `el`, every second after `start` up to `end`.
pub(crate) fn say_hello_every_second(el: &EventLoop, log: &Log, start: Timestamp, end: Timestamp) {
    let log = log.clone();
    // ASP's `say_hello`; the tick is the event time.
    let say_hello = move |_tick: Timestamp, (): ()| {
        let log = log.clone();
        async move {
            log.log(now(), "sleeping for 1 second");
            sleep(Duration::from_secs(1)).await;
            log.log(now(), "hello");
        }
    };
    let ticks = timer(Duration::from_secs(1)).starting_at(start).until(end);
    el.spawn(process_stream(say_hello).live(ticks.map(|tick| (tick, ()))));
}

fn main() -> Result<(), TaskError> {
    let wall = Timestamp::now();
    let start = wall - Duration::from_secs(3);
    let el = EventLoop::starting_at(start);
    say_hello_every_second(&el, &Log::printing(), start, wall + Duration::from_secs(2));
    el.run()
}
