//! The Slipstream cookbook's "Joins", as the cookbook writes it: one
//! handler fills a weather table keyed by event time, the other probes it
//! with `at_or_before` (Slipstream's `values(backwards=True, from_key=ts)`)
//! for the weather at the time of each activity. (`examples/slipstream_join.rs`
//! does it with the `as_of_join` combinator, which also waits for a late
//! weather stream.)
//!
//! Run with `cargo run --example slipstream_store_join`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use timecast::store::{Store, StoreError};
use timecast::{sink::handle, timer, EventLoop, Timestamp};

fn at(hour: u32, min: u32) -> Timestamp {
    Timestamp::from_ymd_hms(2023, 1, 1, hour, min, 0).expect("a valid date")
}

/// `async_iterable(it)`: one message every 10 ms of the loop's clock.
fn async_iterable<T>(messages: Vec<T>) -> impl Stream<Item = T> + Unpin {
    stream::iter(messages)
        .zip(timer(Duration::from_millis(10)))
        .map(|(msg, _tick)| msg)
}

/// What the example prints: the cookbook's four lines.
pub(crate) fn lines() -> Result<Vec<String>, StoreError> {
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
    let store = Store::temporary()?;
    let weather_cache = store.table::<Timestamp, String>("weather")?;

    let el = EventLoop::starting_at(at(14, 0)).simulated();
    // @handle(async_iterable(weather_messages), sink=[weather_cache])
    let weather_handler = |(ts, w): (Timestamp, &str)| Some((ts, w.to_string()));
    let weather = el.spawn(
        handle(async_iterable(weather_messages), weather_handler)
            .sink_to(weather_cache.clone())
            .run(),
    );
    // @handle(async_iterable(activity_messages), sink=[print])
    let printed = Rc::new(RefCell::new(Vec::new()));
    let print = printed.clone();
    let activity_handler = move |(ts, a): (Timestamp, &str)| {
        Some(match weather_cache.at_or_before(&ts) {
            Ok(Some((_, w))) => format!("The weather during {a} was {w}"),
            Ok(None) => format!("('{a}', '?')"),
            Err(e) => format!("('{a}', error: {e})"),
        })
    };
    el.spawn(
        handle(async_iterable(activity_messages), activity_handler)
            .sink(move |line| print.borrow_mut().push(line))
            .run(),
    );
    el.run().expect("no task panics");
    // The weather pipeline's error, if its table failed.
    el.block_on(weather)
        .expect("the weather pipeline ran to its end")?;
    Ok(printed.take())
}

fn main() -> Result<(), StoreError> {
    for line in lines()? {
        println!("{line}");
    }
    Ok(())
}
