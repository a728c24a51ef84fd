//! The Slipstream cookbook's "Aggregations", as the cookbook writes it: the
//! sliding window's events kept in a store table under `sliding_events`,
//! read, trimmed to the window and written back for each event.
//! (`examples/slipstream_windows.rs` does the same with the `sliding`
//! combinator, which needs no store.)
//!
//! Run with `cargo run --example slipstream_store_windows`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use timecast::store::{Store, StoreError, Table};
use timecast::{sink::handle, timer, EventLoop, Timestamp};

/// `messages()`: the emoji and their event times in seconds, one every
/// 100 ms of the loop's clock.
fn messages() -> impl Stream<Item = (String, f64)> + Unpin {
    let events = [
        ("🏆", 0.0),
        ("📞", 0.5),
        ("🐟", 1.0),
        ("👌", 2.0),
        ("🏆", 3.5),
        ("📞", 4.0),
        ("🐟", 5.0),
        ("👌", 5.5),
    ];
    stream::iter(events)
        .zip(timer(Duration::from_millis(100)))
        .map(|((emoji, ts), _tick)| (emoji.to_string(), ts))
}

const WINDOW_SIZE_SECONDS: f64 = 3.0;

/// `sliding_handler`: the window's events live in `cache`.
fn sliding_handler(
    cache: &Table<String, Vec<(String, f64)>>,
    event: (String, f64),
) -> Result<String, StoreError> {
    let key = "sliding_events".to_string();
    let event_time = event.1;
    let mut events = cache.get(&key)?.unwrap_or_default();
    events.push(event);
    // Keep events within WINDOW_SIZE_SECONDS of the current event_time.
    events.retain(|(_, t)| event_time - t <= WINDOW_SIZE_SECONDS);
    cache.put(&key, &events)?;
    // `dict(Counter(...))`: keys in first-seen order.
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (emoji, _) in &events {
        match counts.iter_mut().find(|(e, _)| e == emoji) {
            Some((_, n)) => *n += 1,
            None => counts.push((emoji, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(e, n)| format!("'{e}': {n}")).collect();
    Ok(format!(
        "Sliding window ending at {event_time:?}: {{{}}}",
        counts.join(", ")
    ))
}

/// What the example prints: the cookbook's eight lines.
pub(crate) fn lines() -> Result<Vec<String>, StoreError> {
    let store = Store::temporary()?;
    let cache = store.table::<String, Vec<(String, f64)>>("emoji")?;
    let printed = Rc::new(RefCell::new(Vec::new()));
    let print = printed.clone();
    let pipeline = handle(messages(), move |event| {
        Some(sliding_handler(&cache, event))
    })
    .sink(move |line| print.borrow_mut().push(line));
    EventLoop::starting_at(Timestamp::UNIX_EPOCH)
        .simulated()
        .block_on(pipeline.run())
        .expect("the printing sink never closes");
    printed.take().into_iter().collect()
}

fn main() -> Result<(), StoreError> {
    for line in lines()? {
        println!("{line}");
    }
    Ok(())
}
