//! The Slipstream cookbook's "Aggregations": a sliding window that moves
//! with each event, plus tumbling and session windows, over the cookbook's
//! emoji with event times in seconds.
//!
//! The messages go to a topic (an `AsyncStream`) that three handlers
//! subscribe to: a shared source. Each handler sees every message; the
//! rendezvous topic paces the source to the slowest handler.
//!
//! Run with `cargo run --example slipstream_windows`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use timecast::ops::{StreamOps, Window};
use timecast::{sink::handle, timer, AsyncStream, EventLoop, Timestamp};

/// `messages()`: the emoji and their event times, one every 100 ms of the
/// loop's clock.
fn messages() -> impl Stream<Item = (Timestamp, &'static str)> + Unpin {
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
        .map(|((emoji, secs), _tick)| (Timestamp::from_unix_millis((secs * 1000.0) as i64), emoji))
}

/// A time in seconds as Python prints a float: `0.0`, `3.5`.
fn secs(t: Timestamp) -> String {
    format!("{:?}", t.unix_nanos() as f64 / 1e9)
}

/// `dict(Counter(emoji for emoji, _ in events))`, keys in first-seen order.
fn counter(window: &Window<&str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for emoji in window.values() {
        match counts.iter_mut().find(|(e, _)| e == emoji) {
            Some((_, n)) => *n += 1,
            None => counts.push((emoji, 1)),
        }
    }
    let entries: Vec<String> = counts.iter().map(|(e, n)| format!("'{e}': {n}")).collect();
    format!("{{{}}}", entries.join(", "))
}

/// What the example prints: the cookbook's eight sliding lines, then the
/// tumbling and session windows.
pub(crate) fn lines() -> Vec<String> {
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let topic = AsyncStream::new();
    let (sliding, tumbling, sessions) = (
        Rc::new(RefCell::new(Vec::new())),
        Rc::new(RefCell::new(Vec::new())),
        Rc::new(RefCell::new(Vec::new())),
    );

    let out = sliding.clone();
    let windows = topic.subscribe().sliding(Duration::from_secs(3));
    let handler = |w: Window<&str>| {
        Some(format!(
            "Sliding window ending at {}: {}",
            secs(w.end),
            counter(&w)
        ))
    };
    el.spawn(
        handle(windows, handler)
            .sink(move |l| out.borrow_mut().push(l))
            .run(),
    );

    let out = tumbling.clone();
    let windows = topic.subscribe().tumbling(Duration::from_secs(3));
    let handler = |w: Window<&str>| {
        Some(format!(
            "Tumbling window [{}, {}): {}",
            secs(w.start),
            secs(w.end),
            counter(&w)
        ))
    };
    el.spawn(
        handle(windows, handler)
            .sink(move |l| out.borrow_mut().push(l))
            .run(),
    );

    let out = sessions.clone();
    let windows = topic.subscribe().session(Duration::from_millis(1500));
    let handler = |w: Window<&str>| {
        Some(format!(
            "Session window [{}, {}): {}",
            secs(w.start),
            secs(w.end),
            counter(&w)
        ))
    };
    el.spawn(
        handle(windows, handler)
            .sink(move |l| out.borrow_mut().push(l))
            .run(),
    );

    // The source, published to the topic; the topic closes when it ends.
    el.spawn(handle(messages(), Some).sink_to(topic).run());
    el.run().expect("no task panics");

    let mut lines = sliding.take();
    lines.extend(tumbling.take());
    lines.extend(sessions.take());
    lines
}

fn main() {
    for line in lines() {
        println!("{line}");
    }
}
