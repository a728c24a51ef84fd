//! `source::cron`: aiopype's CronJob on the loop's clock, in simulated
//! time.
#![cfg(feature = "cron")]

use futures::StreamExt;
use timecast::source::cron;
use timecast::{process_stream, EventLoop, Timestamp};

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
    Timestamp::from_ymd_hms(y, mo, d, h, mi, s).unwrap()
}

#[test]
fn fires_on_the_schedule_in_virtual_time() {
    let el = EventLoop::starting_at(at(2025, 1, 31, 23, 0, 0)).simulated();
    // 12:00 on the 1st and 15th of each month.
    let ticks: Vec<_> = el.block_on(cron("0 12 1,15 * *").unwrap().take(4).collect());
    assert_eq!(
        ticks,
        [
            at(2025, 2, 1, 12, 0, 0),
            at(2025, 2, 15, 12, 0, 0),
            at(2025, 3, 1, 12, 0, 0),
            at(2025, 3, 15, 12, 0, 0)
        ]
    );
    assert_eq!(el.now(), at(2025, 3, 15, 12, 0, 0));
}

#[test]
fn a_tick_at_the_clock_is_not_fired_again_and_until_is_inclusive() {
    let start = at(2025, 1, 1, 0, 0, 0);
    let el = EventLoop::starting_at(start).simulated();
    let ticks: Vec<_> = el.block_on(
        cron("0 * * * *")
            .unwrap()
            .until(at(2025, 1, 1, 3, 0, 0))
            .collect(),
    );
    assert_eq!(
        ticks,
        [1, 2, 3].map(|h| at(2025, 1, 1, h, 0, 0)),
        "strictly after the start, up to and including `until`"
    );
}

#[test]
fn drives_a_process_stream_in_time_order_with_data() {
    let start = at(2025, 1, 1, 0, 0, 0);
    let el = EventLoop::starting_at(start).simulated();
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let (a, b) = (log.clone(), log.clone());
    let trades = (0..4).map(move |i| (start + std::time::Duration::from_secs(1800 * i), i));
    el.spawn(
        process_stream(move |ts: Timestamp, i: u64| a.borrow_mut().push(format!("{ts} trade {i}")))
            .past(trades),
    );
    let hourly = cron("0 * * * *")
        .unwrap()
        .until(at(2025, 1, 1, 1, 0, 0))
        .map(|t| (t, ()));
    el.spawn(
        process_stream(move |ts: Timestamp, ()| b.borrow_mut().push(format!("{ts} cron")))
            .live(hourly),
    );
    el.run().unwrap();
    assert_eq!(
        *log.borrow(),
        [
            "2025-01-01T00:00:00Z trade 0",
            "2025-01-01T00:30:00Z trade 1",
            "2025-01-01T01:00:00Z trade 2",
            "2025-01-01T01:00:00Z cron",
            "2025-01-01T01:30:00Z trade 3",
        ]
    );
}

#[test]
fn a_bad_pattern_says_what_is_wrong() {
    let err = cron("every day").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("invalid cron pattern `every day`: "),
        "{text}"
    );
    assert!(text.ends_with("expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first"), "{text}");
}
