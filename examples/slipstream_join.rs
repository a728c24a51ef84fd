//! The Slipstream cookbook's "Joins": the weather at the time of each
//! activity, a temporal (as-of) join.
//!
//! The cookbook caches the weather and warns: "This approach works when the
//! weather updates are guaranteed to be received in time. If the weather
//! stream goes down, the activity stream will be enriched with stale data."
//! [`as_of_join`](timecast::ops::StreamOps::as_of_join) waits for the
//! weather stream's progress instead, so the second run below, where the
//! weather arrives five seconds late each time, prints the same lines:
//! no stale enrichment, no correction needed.
//!
//! Run with `cargo run --example slipstream_join`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use timecast::{ops::StreamOps, sink::handle, timer, EventLoop, Timestamp};

fn at(hour: u32, min: u32) -> Timestamp {
    Timestamp::from_ymd_hms(2023, 1, 1, hour, min, 0).expect("a valid date")
}

/// `async_iterable(it)`: one message every `period` of the loop's clock.
fn async_iterable<T>(messages: Vec<T>, period: Duration) -> impl Stream<Item = T> + Unpin {
    stream::iter(messages)
        .zip(timer(period))
        .map(|(msg, _tick)| msg)
}

/// Runs the join with a message every 10 ms on the activity stream and
/// every `weather_period` on the weather stream.
pub(crate) fn lines_with(weather_period: Duration) -> Vec<String> {
    let weather_messages = vec![
        (at(10, 0), "🌞"),
        (at(11, 0), "⛅"),
        (at(12, 0), "🌦️"),
        (at(13, 0), "🌧"),
    ];
    let activity_messages = vec![
        (at(10, 30), "swimming"),     // 🌞
        (at(11, 30), "walking home"), // ⛅
        (at(12, 30), "shopping"),     // 🌦️
        (at(13, 10), "lunch"),        // 🌧
    ];
    let weather = async_iterable(weather_messages, weather_period);
    let activity = async_iterable(activity_messages, Duration::from_millis(10));

    let handler = |(_ts, a, w): (Timestamp, &str, Option<&str>)| {
        Some(match w {
            Some(w) => format!("The weather during {a} was {w}"),
            None => format!("('{a}', '?')"),
        })
    };
    let printed = Rc::new(RefCell::new(Vec::new()));
    let print = printed.clone();
    let el = EventLoop::starting_at(at(14, 0)).simulated();
    el.spawn(
        handle(activity.as_of_join(weather), handler)
            .sink(move |line| print.borrow_mut().push(line))
            .run(),
    );
    el.run().expect("no task panics");
    printed.take()
}

/// What the example prints: the cookbook's four lines.
pub(crate) fn lines() -> Vec<String> {
    lines_with(Duration::from_millis(10))
}

fn main() {
    for line in lines() {
        println!("{line}");
    }
    println!();
    println!("With the weather stream 5 s late on every message:");
    for line in lines_with(Duration::from_secs(5)) {
        println!("{line}");
    }
}
