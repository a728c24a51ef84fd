//! `source::cron`: aiopype's CronJob on the loop's clock, in simulated
//! time.
#![cfg(feature = "cron")]

use futures::StreamExt;
use timecast::source::cron;
use timecast::{now, process_stream, EventLoop, Timestamp};

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
    Timestamp::from_ymd_hms(y, mo, d, h, mi, s).unwrap()
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

/// The ticks of `spec` from a simulated clock at `start`, at most `n`.
fn ticks(spec: &str, start: Timestamp, n: usize) -> Vec<Timestamp> {
    let el = EventLoop::starting_at(start).simulated();
    el.block_on(cron(spec).unwrap().take(n).collect())
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
    let fields = "a pattern has 5 fields (minute hour day-of-month month day-of-week), or 6 \
                  with seconds first";
    for (spec, reason) in [
        ("every day", format!("it has 2 fields; {fields}")),
        ("0 0 0 1 1 * 2030", format!("it has 7 fields; {fields}")),
        ("61 * * * *", "minute 61 is outside 0-59".into()),
        ("0 0 * * 8", "day-of-week 8 is outside 0-7".into()),
        ("0 0 32 * *", "day-of-month 32 is outside 1-31".into()),
        ("0 0 * 1-13 *", "month 13 is outside 1-12".into()),
        ("60 0 0 * * *", "second 60 is outside 0-59".into()),
        // An empty entry would match nothing (the parser lets it through).
        (
            ", * * * *",
            "the minute field `,` has an empty entry".into(),
        ),
        (
            "0 , * * * *",
            "the minute field `,` has an empty entry".into(),
        ),
        (
            "0 0 * * 1,",
            "the day-of-week field `1,` has an empty entry".into(),
        ),
        (
            "0 0 * * +",
            "the day-of-week field `+` has an empty entry".into(),
        ),
        // A date no month has would end the stream at once.
        (
            "0 0 30 2 *",
            "it never fires (a date that does not exist?)".into(),
        ),
        (
            "0 0 31 2,4,6 *",
            "it never fires (a date that does not exist?)".into(),
        ),
    ] {
        let err = cron(spec).expect_err(spec);
        assert_eq!(
            err.to_string(),
            format!("invalid cron pattern `{spec}`: {reason}")
        );
    }
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    for spec in [
        "",
        " ",
        ",",
        "every day",
        "5-1 * * * *",
        "*/0 * * * *",
        "99999999999999999999 * * * *",
        "65536 * * * *",
        "-1 * * * *",
        "1- * * * *",
        "1-60 * * * *",
        "0/5 * * * *",
        "é * * * *",
        "* * * * 😀",
        "0 0 * * 1#6",
        "0 0 * * 1#",
        "0 0 W * *",
        "0 0 1-L * *",
        "@reboot",
        "+ * * * *",
        "* * * * * * * *",
        "0 0 * * 8",
        "0 0 32 * *",
        "0 0 * 13 *",
        "0 24 * * *",
    ] {
        let got = std::panic::catch_unwind(|| cron(spec));
        let got = got.unwrap_or_else(|_| panic!("`{spec}` panicked"));
        let err = got.expect_err(spec);
        assert!(
            err.to_string()
                .starts_with(&format!("invalid cron pattern `{spec}`: ")),
            "{err}"
        );
    }
}

#[test]
fn next_ticks_at_the_edges_of_the_calendar() {
    let day = |y, mo, d| at(y, mo, d, 0, 0, 0);
    let ms = Timestamp::from_unix_millis;
    let cases: [(&str, Timestamp, Vec<Timestamp>); 13] = [
        // Feb 29: leap years only, 2100 is not one.
        (
            "0 0 29 2 *",
            day(2025, 1, 1),
            vec![day(2028, 2, 29), day(2032, 2, 29)],
        ),
        (
            "0 12 29 2 *",
            at(2096, 2, 29, 12, 0, 0),
            vec![at(2104, 2, 29, 12, 0, 0)],
        ),
        // L: last day of February, leap or not.
        (
            "0 0 L 2 *",
            day(2023, 1, 1),
            vec![day(2023, 2, 28), day(2024, 2, 29), day(2025, 2, 28)],
        ),
        // The 31st skips short months; end of year rolls over.
        (
            "0 0 31 * *",
            day(2025, 1, 31),
            vec![day(2025, 3, 31), day(2025, 5, 31)],
        ),
        (
            "59 23 31 12 *",
            at(2025, 12, 31, 23, 59, 0),
            vec![at(2026, 12, 31, 23, 59, 0)],
        ),
        // Day of month and day of week both restricted: either (croner's
        // and Vixie cron's rule); `+` makes it both.
        (
            "0 0 13 * FRI",
            day(2025, 1, 1),
            vec![day(2025, 1, 3), day(2025, 1, 10), day(2025, 1, 13)],
        ),
        (
            "0 0 13 * +FRI",
            day(2025, 1, 1),
            vec![day(2025, 6, 13), day(2026, 2, 13)],
        ),
        ("0 0 29 2 +MON", day(2025, 1, 1), vec![day(2044, 2, 29)]),
        ("0 0 * * 7", day(2025, 1, 1), vec![day(2025, 1, 5)]),
        // A clock between seconds: strictly after it.
        ("*/15 * * * * *", ms(14_500), vec![t(15), t(30)]),
        ("*/15 * * * * *", ms(15_500), vec![t(30)]),
        ("*/15 * * * * *", ms(-500), vec![t(0)]),
        ("*/15 * * * * *", ms(0), vec![t(15)]),
    ];
    for (spec, start, expected) in cases {
        assert_eq!(
            ticks(spec, start, expected.len()),
            expected,
            "{spec} from {start}"
        );
    }
}

#[test]
fn near_the_limits_of_the_clock_it_ends_without_panicking() {
    // The last midnight before Timestamp::MAX (2262-04-11T23:47:16Z).
    assert_eq!(
        ticks("0 0 * * *", at(2262, 4, 9, 0, 0, 0), 5),
        [at(2262, 4, 10, 0, 0, 0), at(2262, 4, 11, 0, 0, 0)]
    );
    assert_eq!(ticks("* * * * * *", Timestamp::MAX, 1), []);
    assert_eq!(
        ticks("0 0 * * *", Timestamp::MIN, 1),
        [at(1677, 9, 22, 0, 0, 0)]
    );
}

#[test]
fn missed_ticks_replay_then_it_runs_on_in_virtual_time() {
    // The clock is at 03:30; the schedule starts at midnight: the missed
    // ticks come at once (with the clock at 03:30), then the next ones
    // when the clock reaches them.
    let el = EventLoop::starting_at(at(2025, 1, 1, 3, 30, 0)).simulated();
    let seen: Vec<_> = el.block_on(
        cron("0 * * * *")
            .unwrap()
            .starting_at(at(2025, 1, 1, 0, 0, 0))
            .until(at(2025, 1, 1, 6, 0, 0))
            .map(|tick| (tick, now()))
            .collect(),
    );
    let expected: Vec<_> = (1..=6)
        .map(|h| {
            let tick = at(2025, 1, 1, h, 0, 0);
            (tick, tick.max(at(2025, 1, 1, 3, 30, 0)))
        })
        .collect();
    assert_eq!(seen, expected);
    // `until` before the first tick: nothing, and fused.
    let el = EventLoop::starting_at(at(2025, 1, 1, 0, 0, 0)).simulated();
    let mut c = cron("0 0 * * *").unwrap().until(at(2025, 1, 1, 12, 0, 0));
    let (first, fused) = el.block_on(async move {
        let first = c.next().await;
        (first, futures::stream::FusedStream::is_terminated(&c))
    });
    assert_eq!((first, fused), (None, true));
}

/// Valid patterns of every kind croner takes (names, L, W, #, ?, ranges
/// with steps, nicknames, 6 fields, `+`) are still accepted.
#[test]
fn valid_patterns_of_every_form_are_accepted() {
    let mut refused = Vec::new();
    for spec in [
        "0 0 L * *",
        "0 0 LW * *",
        "0 0 15W * *",
        "0 0 * * 5L",
        "0 0 * * FRI#2",
        "0 0 * * 5#5",
        "0 0 ? * MON-FRI",
        "0 0 1 * ?",
        "0 0-23/2 * * *",
        "5-55/10 * * * *",
        "0 0 1 JAN-DEC/3 *",
        "0 0 * * SUN-SAT",
        "0 0 * * FRI-SUN",
        "0 0 * * 0-7/2",
        "0 0 * * 7",
        "@daily",
        "@hourly",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "*/15 * * * * *",
        "0 0 0 1 1 *",
        "0 0 13 * +FRI",
        "0 0 29 2 +MON",
        "  0 0 * * *  ",
        "0 0 * * mon,wed,fri",
        "0 0 1,15 * *",
        "0 0 L 2 *",
        "0 0 * * 1#1,5L",
        "0 0 29 2 *",
        "0 0 31 12 *",
    ] {
        if let Err(e) = cron(spec) {
            refused.push(format!("{spec}: {e}"));
        }
    }
    assert!(refused.is_empty(), "valid patterns refused: {refused:#?}");
}

/// Rarely firing but valid patterns are not taken for never firing.
#[test]
fn rarely_firing_patterns_are_not_taken_for_never_firing() {
    let mut refused = Vec::new();
    for spec in [
        "0 0 31 * +5#5",
        "0 0 29 2 +1#5",
        "0 0 L 2 +SUN",
        "0 0 29 2 +SUN#5",
        "0 0 1 1 +MON",
        "59 59 23 31 12 +SAT",
    ] {
        if let Err(e) = cron(spec) {
            refused.push(format!("{spec}: {e}"));
        }
    }
    assert!(refused.is_empty(), "valid patterns refused: {refused:#?}");
}
