//! The examples' stories, checked line by line in virtual time.
//!
//! Each example's core is included from `examples/`; the live feeds, which
//! the examples drive from a thread in real time, are replaced here by
//! feeds on the loop's clock, so every timeline is exact.

// Each example includes `examples/asp_common`, and this file includes each
// example: the module is loaded once per example, on purpose (each example
// keeps its own copy, as it does when built on its own).
#![allow(clippy::duplicate_mod)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::Stream;
use timecast::{sleep_until, EventLoop, Timestamp};

// Each example module's `main` is unused here.
#[allow(dead_code)]
#[path = "../examples/asp_past.rs"]
mod asp_past;

#[allow(dead_code)]
#[path = "../examples/asp_live.rs"]
mod asp_live;

#[allow(dead_code)]
#[path = "../examples/asp_time_travel.rs"]
mod asp_time_travel;

#[allow(dead_code)]
#[path = "../examples/asp_call_later.rs"]
mod asp_call_later;

#[allow(dead_code)]
#[path = "../examples/asp_sleep.rs"]
mod asp_sleep;

#[allow(dead_code)]
#[path = "../examples/asp_timer.rs"]
mod asp_timer;

#[allow(dead_code)]
#[path = "../examples/asp_futures.rs"]
mod asp_futures;

#[allow(dead_code)]
#[path = "../examples/streamx.rs"]
mod streamx;

use asp_past::common::NAMES;

fn t0() -> Timestamp {
    Timestamp::from_ymd_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Seconds from `t0()` to `t`.
fn at(t: Timestamp) -> u64 {
    (t - t0()).as_secs()
}

/// `create_async_generator` on the loop's clock: `names[k]` stamped
/// `start + k·delay`, each put on the stream at its time, whether or not
/// the consumer is ready (as the examples' feeding thread does).
fn feed(
    names: &'static [&'static str],
    start: Timestamp,
    delay: Duration,
) -> impl Stream<Item = (Timestamp, &'static str)> {
    futures::stream::unfold((names.iter(), start), move |(mut names, at)| async move {
        let name = names.next()?;
        sleep_until(at).await;
        Some(((at, *name), (names, at + delay)))
    })
}

/// A log line: (loop clock, event time, message), times in seconds from
/// `t0()`.
fn line(now: u64, event: u64, message: &str) -> (u64, u64, String) {
    (now, event, message.to_owned())
}

/// The lines of an example's log (each example has its own `Log` type), in
/// the form of [`line`].
macro_rules! timeline {
    ($log:expr) => {
        $log.lines()
            .into_iter()
            .map(|l| (at(l.now), at(l.event), l.message))
            .collect::<Vec<_>>()
    };
}

#[test]
fn asp_past_replays_with_now_equal_to_event_time() {
    let expected = [
        line(0, 0, "Hello Jane."),
        line(1, 1, "Hello John."),
        line(2, 2, "Hello Sarah."),
        line(3, 3, "Hello Paul."),
        line(4, 4, "Hello again Jane!"),
    ];
    // Simulated, and in real time as the example runs (2025 is past: no wait).
    for el in [
        EventLoop::starting_at(t0()).simulated(),
        EventLoop::starting_at(t0()),
    ] {
        let log = asp_past::common::Log::quiet();
        asp_past::greet_past_visitors(&el, &log, t0());
        el.run().unwrap();
        assert_eq!(timeline!(log), expected);
    }
}

#[test]
fn asp_live_greets_each_live_event_at_its_time() {
    let el = EventLoop::starting_at(t0()).simulated();
    let log = asp_live::common::Log::quiet();
    asp_live::greet_live_visitors(&el, &log, feed(&NAMES, t0() + secs(10), secs(1)));
    el.run().unwrap();
    assert_eq!(
        timeline!(log),
        [
            line(10, 10, "Hello Jane."),
            line(11, 11, "Hello John."),
            line(12, 12, "Hello Sarah."),
            line(13, 13, "Hello Paul."),
            line(14, 14, "Hello again Jane!"),
        ]
    );
}

#[test]
fn asp_live_with_the_thread_feed_in_real_time() {
    // The example's own feed, from a thread, 2 ms apart: order and clock
    // relations only, never durations.
    let el = EventLoop::new();
    let log = asp_live::common::Log::quiet();
    let live = asp_live::common::live_feed(&NAMES, Duration::from_millis(2));
    asp_live::greet_live_visitors(&el, &log, live);
    el.run().unwrap();
    let lines = log.lines();
    let messages: Vec<_> = lines.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "Hello Jane.",
            "Hello John.",
            "Hello Sarah.",
            "Hello Paul.",
            "Hello again Jane!"
        ]
    );
    for pair in lines.windows(2) {
        assert!(pair[0].event < pair[1].event);
        assert!(pair[0].now <= pair[1].now);
    }
    for l in &lines {
        assert!(
            l.now >= l.event,
            "the clock is at or past a live event's time"
        );
    }
    assert_eq!(el.late_events(), 0);
}

#[test]
fn asp_time_travel_replays_then_goes_live() {
    let el = EventLoop::starting_at(t0()).simulated();
    let log = asp_time_travel::common::Log::quiet();
    let live = feed(&NAMES[..2], t0() + secs(60), secs(1));
    asp_time_travel::greet_past_then_live(&el, &log, t0(), live);
    el.run().unwrap();
    assert_eq!(
        timeline!(log),
        [
            line(0, 0, "Hello Jane."),
            line(1, 1, "Hello John."),
            line(1, 1, "** Running live **"),
            line(60, 60, "Hello again Jane!"),
            line(61, 61, "Hello again John!"),
        ]
    );
}

/// ASP prints, for the same story:
///
/// ```text
/// Jane arrived. / Hello Jane. / John arrived. / ** Running live ** /
/// Sarah arrived. / Hello John. / Paul arrived. / Hello Sarah. /
/// Jane arrived. / Hello Paul. / Hello again Jane!
/// ```
///
/// "Hello John." (due a minute ago) runs after the live "Sarah arrived.",
/// and each live "Hello" after the next arrival. Ours keeps strict
/// chronology (rule 4), and data before timers at equal times (rule 1).
#[test]
fn asp_call_later_keeps_strict_chronology() {
    let el = EventLoop::starting_at(t0()).simulated();
    let log = asp_call_later::common::Log::quiet();
    let live = feed(&NAMES[2..], t0() + secs(60), secs(1));
    asp_call_later::greet_later_past_then_live(&el, &log, t0(), live);
    el.run().unwrap();
    assert_eq!(
        timeline!(log),
        [
            line(0, 0, "Jane arrived."),
            line(1, 1, "John arrived."), // Data before the timer at 1 s.
            line(1, 1, "** Running live **"), // The past is exhausted.
            line(1, 1, "Hello Jane."),
            line(2, 2, "Hello John."), // Before any later event.
            line(60, 60, "Sarah arrived."),
            line(61, 61, "Hello Sarah."),
            line(61, 61, "Paul arrived."),
            line(62, 62, "Hello Paul."),
            line(62, 62, "Jane arrived."),
            line(63, 63, "Hello again Jane!"),
        ]
    );
    assert_eq!(el.late_events(), 0);
}

#[test]
fn asp_sleep_is_serial_per_stream() {
    let el = EventLoop::starting_at(t0()).simulated();
    let log = asp_sleep::common::Log::quiet();
    let live = feed(&NAMES[2..4], t0() + secs(60), secs(1));
    asp_sleep::sleep_and_greet_past_then_live(&el, &log, t0(), live);
    el.run().unwrap();
    assert_eq!(asp_sleep::PAUSE, secs(2));
    assert_eq!(
        timeline!(log),
        [
            line(0, 0, "Jane arrived."),
            line(2, 2, "Hello Jane."),
            // John's event (1 s) waits for Jane's callback to end (2 s).
            line(2, 1, "John arrived."),
            line(4, 3, "Hello John."),
            line(4, 4, "** Running live **"),
            line(60, 60, "Sarah arrived."),
            line(62, 62, "Hello Sarah."),
            // Paul, put at 61 s while Sarah's callback slept, is late.
            line(62, 61, "Paul arrived (late by 1s)."),
            line(64, 63, "Hello Paul."),
        ]
    );
    assert_eq!(el.late_events(), 1);
}

#[test]
fn asp_timer_ticks_and_sleeps_serially() {
    let el = EventLoop::starting_at(t0()).simulated();
    let log = asp_timer::common::Log::quiet();
    asp_timer::say_hello_every_second(&el, &log, t0(), t0() + secs(5));
    el.run().unwrap();
    let mut expected = Vec::new();
    for k in 1..=5 {
        expected.push(line(k, k, "sleeping for 1 second"));
        expected.push(line(k + 1, k + 1, "hello"));
    }
    assert_eq!(timeline!(log), expected);
}

#[test]
fn asp_futures_breakfast_timeline() {
    let seven = Timestamp::from_ymd_hms(2025, 1, 1, 7, 0, 0).unwrap();
    let el = EventLoop::starting_at(seven).simulated();
    let log = asp_futures::Log::default();
    el.block_on(asp_futures::breakfast(log.clone())).unwrap();
    let timeline: Vec<_> = log
        .borrow()
        .iter()
        .map(|(t, what)| format!("{} {what}", &t.to_string()[11..19]))
        .collect();
    assert_eq!(
        timeline,
        [
            "07:00:00 kettle on, toast in",
            "07:02:00 toast ready",
            "07:02:00 butter the toast (a task spawned by the toaster)",
            "07:03:00 water boiled",
            "07:03:00 breakfast has toast and hot water",
            "07:03:30 toast buttered",
            "07:04:00 coffee brewing (an async callback, 4 min after 07:00)",
            "07:08:00 coffee ready",
            "07:10:00 clear the table (a plain callback)",
            "07:10:00 breakfast over: 3 tasks and 2 callbacks, 10 minutes",
        ]
    );
}

#[test]
fn streamx_backpressure_timeline() {
    for el in [
        EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated(),
        EventLoop::new().simulated(),
    ] {
        let lines = Rc::new(RefCell::new(Vec::new()));
        let out = lines.clone();
        streamx::producer_and_consumer(&el, move |line| out.borrow_mut().push(line));
        el.run().unwrap();
        assert_eq!(
            *lines.borrow(),
            [
                "t=0s  producing 0",
                "t=0s  consumed 0",
                "t=1s  producing 1",
                "t=2s  consumed 1",
                "t=3s  producing 2",
                "t=4s  consumed 2",
                "t=5s  producing 3",
                "t=6s  consumed 3",
                "t=7s  producing 4",
                "t=8s  consumed 4",
                "t=9s  producer closed the stream",
                "t=10s consumer finished",
            ]
        );
    }
}
