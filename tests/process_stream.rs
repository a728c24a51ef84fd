//! Sources: `process_stream` over a past and a live stream, and their
//! merge in time order, held to the rules of `timecast::time` (6 and 7
//! especially).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{stream, StreamExt};
use timecast::{
    is_live, lateness, now, process_stream, sleep, sleep_until, AsyncStream, EventLoop, LatePolicy,
    Timestamp,
};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// A loop in simulated mode with its clock at the Unix epoch.
fn sim() -> EventLoop {
    EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated()
}

type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::default()
}

// Rule 6: per stream, callbacks are serial; streams run concurrently.

#[test]
fn rule6_callbacks_of_a_stream_are_serial_and_streams_concurrent() {
    let el = sim();
    let events = log::<(String, i64)>();
    let in_flight = Rc::new(Cell::new(0));
    let (ev, busy) = (events.clone(), in_flight.clone());
    // Events a second apart, each callback sleeping five.
    el.spawn(
        process_stream(move |_: Timestamp, i: u32| {
            let (ev, busy) = (ev.clone(), busy.clone());
            async move {
                busy.set(busy.get() + 1);
                assert_eq!(busy.get(), 1, "one callback of the stream at a time");
                ev.borrow_mut()
                    .push((format!("slow {i} start"), now().unix_secs()));
                sleep(secs(5)).await;
                ev.borrow_mut()
                    .push((format!("slow {i} end"), now().unix_secs()));
                busy.set(busy.get() - 1);
            }
        })
        .past((0..3).map(|i| (t(i64::from(i)), i))),
    );
    // Another stream's events run while the slow callbacks sleep.
    let ev = events.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, ()| {
            ev.borrow_mut().push(("fast".to_owned(), ts.unix_secs()));
        })
        .past([3, 7, 12].map(|s| (t(s), ()))),
    );
    el.run().unwrap();
    let events: Vec<_> = events
        .borrow()
        .iter()
        .map(|(what, at)| format!("{at} {what}"))
        .collect();
    assert_eq!(
        events,
        [
            "0 slow 0 start",
            "3 fast",
            "5 slow 0 end",
            "5 slow 1 start", // Event at 1 s, dispatched when the callback of 0 s ends.
            "7 fast",
            "10 slow 1 end",
            "10 slow 2 start",
            "12 fast",
            "15 slow 2 end",
        ]
    );
}

// Rule 7: past then live.

#[test]
fn rule7_on_live_start_runs_once_per_stream_when_its_past_is_exhausted() {
    let el = sim();
    let events = log::<String>();
    for (name, past, live) in [("a", vec![1, 2], vec![5, 6]), ("b", vec![1, 3, 4], vec![7])] {
        let (ev, marker) = (events.clone(), events.clone());
        el.spawn(
            process_stream(move |ts: Timestamp, ()| {
                ev.borrow_mut().push(format!("{name} {}", ts.unix_secs()));
            })
            .past(past.into_iter().map(|s| (t(s), ())))
            .live(stream::iter(live).map(|s| (t(s), ())))
            .on_live_start(move || marker.borrow_mut().push(format!("{name} live"))),
        );
    }
    el.run().unwrap();
    assert_eq!(
        *events.borrow(),
        ["a 1", "b 1", "a 2", "a live", "b 3", "b 4", "b live", "a 5", "a 6", "b 7"]
    );
}

#[test]
fn rule7_on_live_start_without_a_past_runs_before_the_first_live_event() {
    let el = sim();
    let events = log::<String>();
    let (ev, marker) = (events.clone(), events.clone());
    el.block_on(
        process_stream(move |ts: Timestamp, ()| ev.borrow_mut().push(ts.to_string()))
            .live(stream::iter([(t(1), ())]))
            .on_live_start(move || marker.borrow_mut().push("live".to_owned())),
    );
    assert_eq!(*events.borrow(), ["live", "1970-01-01T00:00:01Z"]);
}

#[test]
fn rule7_the_loop_goes_live_once_after_every_past() {
    // Real time; the pasts are in 2020, so replayed at once. The live
    // events come from a thread that starts when the loop reports it is
    // live, so the order below does not depend on timing.
    let el = EventLoop::new();
    let events = log::<String>();
    let feed = AsyncStream::with_capacity(4);
    let live = feed.subscribe();
    let (go, started) = std::sync::mpsc::channel();
    let producer = std::thread::spawn(move || {
        started.recv().unwrap();
        for i in 0..3 {
            feed.put_blocking((Timestamp::now(), i)).unwrap();
        }
    });
    let y2020 = Timestamp::from_ymd_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let ev = events.clone();
    el.spawn(
        process_stream(move |_: Timestamp, i: i32| {
            ev.borrow_mut().push(format!("a {i} live={}", is_live()));
        })
        .past((0..3).map(move |i| (y2020 + secs(i as u64), -i - 1)))
        .live(live),
    );
    let ev = events.clone();
    el.spawn(
        process_stream(move |_: Timestamp, i: i32| {
            ev.borrow_mut().push(format!("b {i} live={}", is_live()));
        })
        .past((0..2).map(move |i| (y2020 + secs(10 + i as u64), i))),
    );
    let ev = events.clone();
    el.on_live(move || {
        ev.borrow_mut().push("on_live".to_owned());
        go.send(()).unwrap();
    });
    let ev = events.clone();
    el.on_live(move || ev.borrow_mut().push("on_live, second callback".to_owned()));
    assert!(!el.is_live());
    el.run().unwrap();
    producer.join().unwrap();
    assert!(el.is_live());
    assert_eq!(
        *events.borrow(),
        [
            "a -1 live=false",
            "a -2 live=false",
            "a -3 live=false",
            "b 0 live=false",
            "b 1 live=false",
            "on_live",
            "on_live, second callback",
            "a 0 live=true",
            "a 1 live=true",
            "a 2 live=true",
        ]
    );
    // Registered once live: runs at once.
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    el.on_live(move || r.set(true));
    assert!(ran.get());
}

/// Stream "clock" dispatches an event at 10 s; then stream "late" receives
/// a live event stamped 5 s, and one on time at 12 s.
fn late_scenario(
    el: &EventLoop,
    seen: &Log<(&'static str, Timestamp, Timestamp, Option<Duration>)>,
    policy: LatePolicy<&'static str>,
) {
    el.spawn(process_stream(|_: Timestamp, ()| {}).past([(t(10), ())]));
    let live = stream::once(async {
        sleep_until(t(10)).await; // A timer: runs after the event at 10 s.
        (t(5), "late")
    })
    .chain(stream::iter([(t(12), "on time")]));
    let seen = seen.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, v: &'static str| {
            let seen = seen.clone();
            async move {
                let late = lateness();
                sleep(secs(1)).await;
                assert_eq!(lateness(), late, "kept for the whole callback");
                seen.borrow_mut().push((v, ts, now() - secs(1), late));
            }
        })
        .live(live)
        .on_late(policy),
    );
}

#[test]
fn rule7_late_live_events_are_delivered_flagged_and_counted_by_default() {
    let el = sim();
    let seen = log();
    late_scenario(&el, &seen, LatePolicy::Deliver);
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            // Delivered with its own time, at once (the clock stays at 10 s).
            ("late", t(5), t(10), Some(secs(5))),
            ("on time", t(12), t(12), None),
        ]
    );
    assert_eq!(el.late_events(), 1);
}

#[test]
fn rule7_late_live_events_can_be_dropped() {
    let el = sim();
    let seen = log();
    late_scenario(&el, &seen, LatePolicy::Drop);
    el.run().unwrap();
    assert_eq!(*seen.borrow(), [("on time", t(12), t(12), None)]);
    assert_eq!(el.late_events(), 1, "counted all the same");
}

#[test]
fn rule7_late_live_events_can_be_diverted() {
    let el = sim();
    let seen = log();
    let diverted = log();
    let d = diverted.clone();
    let policy = LatePolicy::divert(move |ts, v| d.borrow_mut().push((v, ts, now())));
    late_scenario(&el, &seen, policy);
    el.run().unwrap();
    assert_eq!(*seen.borrow(), [("on time", t(12), t(12), None)]);
    assert_eq!(*diverted.borrow(), [("late", t(5), t(10))]);
    assert_eq!(el.late_events(), 1);
}

// Rule 1 across live sources.

#[test]
fn live_sources_merge_in_time_order() {
    let el = sim();
    let events = log::<String>();
    for (name, times) in [("a", vec![1, 3, 5]), ("b", vec![2, 3, 4])] {
        let ev = events.clone();
        el.spawn(
            process_stream(move |ts: Timestamp, ()| {
                assert_eq!(now(), ts);
                ev.borrow_mut().push(format!("{name} {}", ts.unix_secs()));
            })
            .live(stream::iter(times).map(|s| (t(s), ()))),
        );
    }
    el.run().unwrap();
    assert_eq!(*events.borrow(), ["a 1", "b 2", "a 3", "b 3", "b 4", "a 5"]);
}

// Memory: O(streams + timers), not O(events).

/// Wraps `iter`, counting the items pulled from it.
fn counted<I: Iterator>(iter: I, pulled: &Rc<Cell<usize>>) -> impl Iterator<Item = I::Item> {
    let pulled = pulled.clone();
    iter.inspect(move |_| pulled.set(pulled.get() + 1))
}

#[test]
fn pasts_are_pulled_lazily_one_event_ahead_at_most() {
    let el = sim();
    let max_ahead = Rc::new(Cell::new(0));
    let total = Rc::new(Cell::new(0));
    for (offset, async_handler) in [(0, false), (1, true)] {
        let pulled = Rc::new(Cell::new(0));
        let handled = Rc::new(Cell::new(0));
        let past = counted((0..1000).map(move |i| (t(2 * i + offset), ())), &pulled);
        let (ahead, total) = (max_ahead.clone(), total.clone());
        el.spawn(
            process_stream(move |_: Timestamp, ()| {
                handled.set(handled.get() + 1);
                total.set(total.get() + 1);
                // The event being handled was pulled; the next one not yet.
                ahead.set(ahead.get().max(pulled.get() - handled.get() + 1));
                let wait = async_handler.then(|| sleep(Duration::from_millis(500)));
                async move {
                    if let Some(wait) = wait {
                        wait.await;
                    }
                }
            })
            .past(past),
        );
    }
    el.run().unwrap();
    assert_eq!(total.get(), 2000);
    assert_eq!(
        max_ahead.get(),
        1,
        "at most the event being handled is pulled"
    );
}

#[test]
fn an_endless_past_is_fine() {
    let el = sim();
    let pulled = Rc::new(Cell::new(0));
    el.spawn(
        process_stream(|_: Timestamp, _: u64| {})
            .past(counted((0..).map(|i| (t(i as i64), i)), &pulled)),
    );
    el.block_on(async { sleep_until(t(1_000)).await });
    assert!(pulled.get() <= 1_002, "pulled {}", pulled.get());
}

// Live sources from other threads.

#[test]
fn a_live_source_fed_from_another_thread_delivers_everything_in_order() {
    for capacity in [0, 16] {
        let el = EventLoop::new();
        let feed = AsyncStream::with_capacity(capacity);
        let live = feed.subscribe();
        let producer = std::thread::spawn(move || {
            for i in 0..1000 {
                feed.put_blocking((Timestamp::now(), i)).unwrap();
            }
        });
        let got = log::<u32>();
        let g = got.clone();
        el.spawn(process_stream(move |_: Timestamp, i: u32| g.borrow_mut().push(i)).live(live));
        el.run().unwrap();
        producer.join().unwrap();
        assert_eq!(*got.borrow(), (0..1000).collect::<Vec<_>>());
    }
}

// The future itself.

#[test]
fn process_stream_can_be_awaited_in_a_task() {
    let el = sim();
    let sum = Rc::new(Cell::new(0));
    let s = sum.clone();
    let at = el.block_on(async move {
        process_stream(move |_: Timestamp, v: i64| s.set(s.get() + v))
            .past((1..=4).map(|i| (t(i), i)))
            .await;
        now()
    });
    assert_eq!(sum.get(), 10);
    assert_eq!(at, t(4));
}

#[test]
fn dropping_a_process_stream_cancels_its_source() {
    let el = sim();
    let handled = Rc::new(Cell::new(0));
    let h = handled.clone();
    el.spawn(async move {
        let stream = pin!(process_stream(move |_: Timestamp, ()| h.set(h.get() + 1))
            .past((0..100).map(|i| (t(i), ()))));
        let timeout = pin!(sleep(Duration::from_millis(10_500)));
        let _ = futures::future::select(stream, timeout).await;
    });
    el.run().unwrap();
    assert_eq!(handled.get(), 11, "events at 0..=10 s");
    assert_eq!(el.now(), Timestamp::from_unix_millis(10_500));
}

// Panics and stuck sources.

/// Polls `fut` once with a waker that does nothing: `None` if pending (a
/// simulated loop that would wait forever shows as `None`, not a hang).
fn poll_once<F: Future>(fut: Pin<&mut F>) -> Option<F::Output> {
    match fut.poll(&mut Context::from_waker(&futures::task::noop_waker())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// Regression: the error named the stream's internal task (`task #1`), not
/// the one the user spawned; and running the loop again hung, as the
/// user's task awaited the internal one, whose handle never resolved.
#[test]
fn a_panicking_handler_names_the_users_task_and_its_handle_resolves() {
    let el = sim();
    let stream = el.spawn(
        process_stream(|_: Timestamp, v: u32| {
            if v == 2 {
                panic!("bad value {v}");
            }
        })
        .past([(t(1), 1), (t(2), 2), (t(3), 3)]),
    );
    let err = el.run().unwrap_err();
    assert!(err.is_panic());
    assert!(
        err.task()
            .starts_with("task #0 (spawned at tests/process_stream.rs:"),
        "{}",
        err.task()
    );
    assert_eq!(err.message(), "bad value 2");

    // Run again: a task awaiting the stream's handle ends with the panic,
    // and the panic is not reported a second time.
    let waiter = el.spawn(stream);
    assert_eq!(poll_once(pin!(el.run_async())), Some(Ok(())));
    let join = poll_once(pin!(waiter)).unwrap().unwrap().unwrap_err();
    assert!(join.is_panic());
    assert_eq!(join.task(), err.task());
    assert_eq!(join.panic_message(), Some("bad value 2"));
    assert_eq!(el.now(), t(2));
}

#[test]
fn a_panicking_handler_of_a_named_stream_awaited_by_a_later_run() {
    let el = sim();
    let stream = el.spawn_named(
        "feed",
        process_stream(|_: Timestamp, ()| -> () { panic!("no") }).past([(t(1), ())]),
    );
    assert_eq!(
        el.run().unwrap_err().to_string(),
        "task `feed` panicked: no"
    );
    let outcome = el.block_on(stream);
    assert_eq!(outcome.unwrap_err().to_string(), "task `feed` panicked: no");
}

/// Regression: a panic in `on_live_start` was named after the stream's
/// internal task.
#[test]
fn a_panicking_on_live_start_is_a_task_error_of_the_users_task() {
    let el = sim();
    let stream = el.spawn_named(
        "feed",
        process_stream(|_: Timestamp, _: u8| {})
            .past([(t(1), 1)])
            .on_live_start(|| panic!("cannot go live")),
    );
    let err = el.run().unwrap_err();
    assert_eq!(err.to_string(), "task `feed` panicked: cannot go live");
    assert_eq!(el.now(), t(1));
    assert!(el.block_on(stream).unwrap_err().is_panic());

    let el = sim();
    el.spawn(process_stream(|_: Timestamp, _: u8| {}).on_live_start(|| panic!("at once")));
    let err = el.run().unwrap_err();
    assert!(
        err.task()
            .starts_with("task #0 (spawned at tests/process_stream.rs:"),
        "{}",
        err.task()
    );
    assert_eq!(err.message(), "at once");
}

#[test]
fn a_stream_whose_live_source_can_never_yield_is_stuck_under_the_users_name() {
    let el = sim();
    let got = log::<u8>();
    let g = got.clone();
    el.spawn_named(
        "feed",
        process_stream(move |_: Timestamp, v: u8| g.borrow_mut().push(v))
            .past([(t(1), 1)])
            .live(stream::pending()),
    );
    let err = poll_once(pin!(el.run_async())).unwrap().unwrap_err();
    assert!(err.is_stuck());
    assert_eq!(
        err.tasks(),
        ["feed"],
        "the stream and its source task: one name"
    );
    assert_eq!(*got.borrow(), [1]);
}

// A plain handler's past is replayed in a loop with no await while nothing
// else can come first: everything that could come first must still do so.

/// A task that waits until `flag` is set, through its waker (held in
/// `waker`), then logs `name` at the time it runs.
fn wait_for_flag(
    flag: &Rc<Cell<bool>>,
    waker: &Rc<RefCell<Option<std::task::Waker>>>,
    seen: &Log<(String, i64)>,
    name: &'static str,
) -> impl Future<Output = ()> + 'static {
    let (flag, waker, seen) = (flag.clone(), waker.clone(), seen.clone());
    async move {
        std::future::poll_fn(|cx| {
            if flag.get() {
                Poll::Ready(())
            } else {
                *waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        seen.borrow_mut().push((name.to_owned(), now().unix_secs()));
    }
}

#[test]
fn timers_due_between_past_events_fire_between_them() {
    let el = sim();
    let seen = log::<(String, i64)>();
    let s = seen.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, i: i64| {
            assert_eq!(now(), ts);
            s.borrow_mut()
                .push((format!("event {i}"), now().unix_secs()));
            if i == 2 {
                // Due at 3.5 s: between the events at 3 and 4.
                let s = s.clone();
                timecast::call_later(Duration::from_millis(1500), move || {
                    s.borrow_mut().push(("later".into(), now().unix_secs()));
                });
            }
        })
        .past((0..8).map(|i| (t(i), i))),
    );
    let s = seen.clone();
    el.spawn(async move {
        // Due at 5 s: after the event at 5 (data first at equal times).
        sleep_until(t(5)).await;
        s.borrow_mut().push(("timer".into(), now().unix_secs()));
    });
    el.run().unwrap();
    let order: Vec<_> = seen.borrow().iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        order,
        [
            "event 0", "event 1", "event 2", "event 3", "later", "event 4", "event 5", "timer",
            "event 6", "event 7"
        ]
    );
    let times: Vec<_> = seen.borrow().iter().map(|&(_, s)| s).collect();
    assert_eq!(times, [0, 1, 2, 3, 3, 4, 5, 5, 6, 7]);
    assert_eq!((el.events_dispatched(), el.timers_fired()), (8, 2));
}

#[test]
fn streams_with_equal_timestamps_keep_their_registration_order() {
    let el = sim();
    let seen = log::<String>();
    for (name, times) in [("a", vec![1, 2, 3, 3, 3, 4, 5]), ("b", vec![3, 3, 5])] {
        let s = seen.clone();
        let past = times.into_iter().map(move |secs| (t(secs), secs));
        el.spawn(
            process_stream(move |_: Timestamp, v: i64| s.borrow_mut().push(format!("{name}{v}")))
                .past(past),
        );
    }
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["a1", "a2", "a3", "a3", "a3", "b3", "b3", "a4", "a5", "b5"]
    );
}

#[test]
fn tasks_spawned_or_woken_by_a_handler_run_before_the_next_event() {
    let el = sim();
    let seen = log::<(String, i64)>();
    let flag = Rc::new(Cell::new(false));
    let waker = Rc::new(RefCell::new(None::<std::task::Waker>));
    el.spawn(wait_for_flag(&flag, &waker, &seen, "woken"));
    let s = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, i: i64| {
            s.borrow_mut()
                .push((format!("event {i}"), now().unix_secs()));
            if i == 2 {
                let s = s.clone();
                timecast::spawn(async move {
                    s.borrow_mut().push(("spawned".into(), now().unix_secs()));
                });
            }
            if i == 4 {
                flag.set(true);
                waker.borrow_mut().take().expect("the task waits").wake();
            }
        })
        .past((0..6).map(|i| (t(i), i))),
    );
    el.run().unwrap();
    let seen = seen.borrow();
    let order: Vec<_> = seen.iter().map(|(n, s)| format!("{n}@{s}")).collect();
    assert_eq!(
        order,
        [
            "event 0@0",
            "event 1@1",
            "event 2@2",
            "spawned@2",
            "event 3@3",
            "event 4@4",
            "woken@4",
            "event 5@5"
        ]
    );
}

#[test]
fn a_run_ends_when_its_task_finishes_in_the_middle_of_a_replay() {
    let el = sim();
    let seen = log::<(String, i64)>();
    let flag = Rc::new(Cell::new(false));
    let waker = Rc::new(RefCell::new(None::<std::task::Waker>));
    let (f, w) = (flag.clone(), waker.clone());
    el.spawn(
        process_stream(move |_: Timestamp, i: i64| {
            if i == 4 {
                f.set(true);
                w.borrow_mut().take().expect("block_on waits").wake();
            }
        })
        .past((0..1000).map(|i| (t(i), i))),
    );
    el.block_on(wait_for_flag(&flag, &waker, &seen, "done"));
    // The run ended once `block_on`'s task did, before the next event.
    assert_eq!(el.events_dispatched(), 5);
    assert_eq!(*seen.borrow(), [("done".to_owned(), 4)]);
    el.run().unwrap();
    assert_eq!(el.events_dispatched(), 1000);
}

#[test]
fn a_past_out_of_order_never_moves_the_clock_back() {
    let el = sim();
    let seen = log::<(i64, i64)>();
    let s = seen.clone();
    let past = [1, 3, 2, 4, 4].into_iter().map(|secs| (t(secs), secs));
    el.spawn(
        process_stream(move |_: Timestamp, v: i64| s.borrow_mut().push((v, now().unix_secs())))
            .past(past),
    );
    el.run().unwrap();
    assert_eq!(*seen.borrow(), [(1, 1), (3, 3), (2, 3), (4, 4), (4, 4)]);
}

#[test]
fn a_real_time_replay_of_the_past_keeps_the_order_of_events_and_timers() {
    // Every key is long before the wall clock: due at once.
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH);
    let seen = log::<String>();
    for stream in 0..2 {
        let s = seen.clone();
        let past = (0..4).map(move |i| (t(2 * i + stream), 2 * i + stream));
        el.spawn(
            process_stream(move |ts: Timestamp, v: i64| {
                assert_eq!(now(), ts);
                s.borrow_mut().push(format!("{v}"));
            })
            .past(past),
        );
    }
    let s = seen.clone();
    el.spawn(async move {
        sleep(Duration::from_millis(4500)).await;
        s.borrow_mut().push("timer".into());
    });
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["0", "1", "2", "3", "4", "timer", "5", "6", "7"]
    );
}

/// A handler that aborts its own stream (through the handle of the task
/// the user spawned) gets no later event: dispatching one inline, in the
/// poll that aborted the task, is not what the round trip through the
/// loop would do (the task is cancelled when it returns `Pending`).
#[test]
fn a_stream_aborted_by_its_handler_handles_no_later_event() {
    for plain in [true, false] {
        let el = sim();
        let handled = log::<i64>();
        let handle = Rc::new(RefCell::new(None::<timecast::JoinHandle<()>>));
        let (h, seen) = (handle.clone(), handled.clone());
        let on_event = move |i: i64| {
            seen.borrow_mut().push(i);
            if i == 2 {
                h.borrow().as_ref().expect("spawned").abort();
            }
        };
        let past = (0..10).map(|i| (t(i), i));
        let task = if plain {
            el.spawn(process_stream(move |_: Timestamp, i: i64| on_event(i)).past(past))
        } else {
            el.spawn(
                process_stream(move |_: Timestamp, i: i64| {
                    on_event(i);
                    async {}
                })
                .past(past),
            )
        };
        *handle.borrow_mut() = Some(task);
        el.run().unwrap();
        assert_eq!(*handled.borrow(), [0, 1, 2], "plain handler: {plain}");
        assert_eq!(el.events_dispatched(), 3, "plain handler: {plain}");
        let task = handle.borrow_mut().take().expect("kept");
        assert!(task.is_finished());
    }
}

// Replay in a plain loop (the inline window): whatever may come first
// closes it.
#[test]
fn a_stream_spawned_by_a_handler_with_earlier_and_equal_events_comes_first_at_its_turn() {
    let el = sim();
    let seen = log::<String>();
    let s = seen.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, v: i64| {
            assert_eq!(now(), ts);
            s.borrow_mut().push(format!("a{v}@{}", now().unix_secs()));
            if v == 3 {
                let s2 = s.clone();
                timecast::spawn(
                    process_stream(move |_: Timestamp, v: i64| {
                        s2.borrow_mut().push(format!("b{v}@{}", now().unix_secs()))
                    })
                    .past([(t(2), 2), (t(3), 3), (t(5), 5), (t(6), 6)]),
                );
            }
        })
        .past((0..8).map(|i| (t(i), i))),
    );
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            "a0@0", "a1@1", "a2@2", "a3@3", "b2@3", "b3@3", "a4@4", "a5@5", "b5@5", "a6@6", "b6@6",
            "a7@7"
        ]
    );
}

#[test]
fn a_past_iterator_that_panics_mid_replay_is_the_users_task_error_and_timers_run_on() {
    let el = sim();
    let seen = log::<String>();
    let s = seen.clone();
    el.spawn_named(
        "src",
        process_stream(move |_: Timestamp, v: i64| s.borrow_mut().push(format!("a{v}"))).past(
            (0..8).map(|i| {
                assert!(i != 5, "iter boom");
                (t(i), i)
            }),
        ),
    );
    let s = seen.clone();
    el.spawn(async move {
        sleep_until(t(6)).await;
        s.borrow_mut().push(format!("timer@{}", now().unix_secs()));
    });
    let err = el.run().unwrap_err();
    assert_eq!((err.task(), err.message()), ("src", "iter boom"));
    assert_eq!(el.now(), t(4));
    el.run().unwrap();
    assert_eq!(*seen.borrow(), ["a0", "a1", "a2", "a3", "a4", "timer@6"]);
    assert!(el.is_live());
}

#[test]
fn a_task_woken_from_a_nested_loop_in_a_handler_runs_before_the_next_event() {
    let el = sim();
    let seen = log::<String>();
    let feed = AsyncStream::<i64>::with_capacity(8);
    let mut rx = feed.subscribe();
    let s = seen.clone();
    el.spawn(async move {
        while let Some(v) = rx.next().await {
            s.borrow_mut().push(format!("got{v}@{}", now().unix_secs()));
        }
    });
    let s = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, v: i64| {
            s.borrow_mut().push(format!("a{v}"));
            if v == 2 {
                let inner = EventLoop::starting_at(t(100)).simulated();
                let f = feed.clone();
                inner.block_on(async move {
                    sleep(secs(1)).await;
                    f.try_put(v).unwrap();
                });
                assert_eq!(now(), t(2));
            }
            if v == 5 {
                feed.close();
            }
        })
        .past((0..6).map(|i| (t(i), i))),
    );
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["a0", "a1", "a2", "got2@2", "a3", "a4", "a5"]
    );
}

#[test]
fn a_flow_shutdown_from_a_handler_stops_the_past_after_that_event() {
    use timecast::flow::Flow;
    let seen = log::<i64>();
    let out = seen.clone();
    let flow = Flow::new();
    let handle = flow.handle();
    let flow = flow.pipeline_with_context("replay", move |ctx| {
        let out = out.clone();
        let handle = handle.clone();
        async move {
            let past = (0..100).map(|s| (t(s), s));
            process_stream(move |_: Timestamp, v: i64| {
                out.borrow_mut().push(v);
                if v == 3 {
                    handle.shutdown();
                }
            })
            .past(ctx.past(past))
            .await;
            Ok::<_, String>(())
        }
    });
    let h2 = flow.handle();
    let el = sim();
    let report = el.block_on(flow.run());
    assert!(report.shut_down);
    assert_eq!(*seen.borrow(), [0, 1, 2, 3]);
    assert_eq!(el.events_dispatched(), 4);
    let st = h2.status();
    assert_eq!(st.pipeline("replay").unwrap().items, 4);
}

#[test]
fn a_handler_panic_mid_replay_leaves_the_other_streams_in_order() {
    let el = sim();
    let seen = log::<String>();
    let s = seen.clone();
    el.spawn_named(
        "a",
        process_stream(move |_: Timestamp, v: i64| {
            s.borrow_mut().push(format!("a{v}"));
            assert!(v != 4, "boom");
        })
        .past((0..8).map(|i| (t(2 * i), i))),
    );
    let s = seen.clone();
    el.spawn_named(
        "b",
        process_stream(move |ts: Timestamp, v: i64| {
            assert_eq!(now(), ts);
            s.borrow_mut().push(format!("b{v}"))
        })
        .past((0..8).map(|i| (t(2 * i + 1), i)))
        .live(stream::iter([(t(20), 20), (t(22), 22)])),
    );
    let err = el.run().unwrap_err();
    assert_eq!((err.task(), err.message()), ("a", "boom"));
    assert_eq!(el.now(), t(8));
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            "a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4", "b5", "b6", "b7", "b20",
            "b22"
        ]
    );
    assert_eq!((el.events_dispatched(), el.late_events()), (15, 0));
}

#[test]
fn live_events_of_one_stream_interleave_with_the_past_of_another() {
    let el = sim();
    let seen = log::<String>();
    let s = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, v: i64| s.borrow_mut().push(format!("a{v}")))
            .past((0..10).map(|i| (t(i), i))),
    );
    let s = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, v: i64| s.borrow_mut().push(format!("b{v}")))
            .live(stream::iter([(t(3), 3), (t(7), 7)])),
    );
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["a0", "a1", "a2", "a3", "b3", "a4", "a5", "a6", "a7", "b7", "a8", "a9"]
    );
    assert_eq!(el.late_events(), 0);
}

// Interleaved plain pasts: the loop drives each stream's replay itself,
// with no poll of its task between events. Everything a poll would do
// still happens: an abort, a panic, a drop.

/// Two plain streams whose events alternate (`a` at even, `b` at odd
/// seconds), each pushing `a{i}` / `b{i}`; `on_a` runs after each of
/// `a`'s events.
fn alternating(
    el: &EventLoop,
    seen: &Log<String>,
    on_a: impl Fn(i64) + 'static,
) -> (timecast::JoinHandle<()>, timecast::JoinHandle<()>) {
    let s = seen.clone();
    let a = el.spawn_named(
        "a",
        process_stream(move |_: Timestamp, i: i64| {
            s.borrow_mut().push(format!("a{i}"));
            on_a(i);
        })
        .past((0..5).map(|i| (t(2 * i), i))),
    );
    let s = seen.clone();
    let b = el.spawn_named(
        "b",
        process_stream(move |ts: Timestamp, i: i64| {
            assert_eq!(now(), ts);
            s.borrow_mut().push(format!("b{i}"));
        })
        .past((0..5).map(|i| (t(2 * i + 1), i))),
    );
    (a, b)
}

#[test]
fn interleaved_pasts_take_turns_exactly_in_time_order() {
    let el = sim();
    let seen = log::<String>();
    let (a, b) = alternating(&el, &seen, |_| {});
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4"]
    );
    assert!(a.is_finished() && b.is_finished());
    assert_eq!(el.events_dispatched(), 10);
}

#[test]
fn an_interleaved_stream_aborted_by_its_handler_handles_no_later_event() {
    let el = sim();
    let seen = log::<String>();
    let handle = Rc::new(RefCell::new(None::<timecast::JoinHandle<()>>));
    let h = handle.clone();
    let (a, _b) = alternating(&el, &seen, move |i| {
        if i == 2 {
            h.borrow().as_ref().expect("spawned").abort();
        }
    });
    *handle.borrow_mut() = Some(a);
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["a0", "b0", "a1", "b1", "a2", "b2", "b3", "b4"]
    );
    assert_eq!(el.events_dispatched(), 8);
    let a = handle.borrow_mut().take().expect("kept");
    assert!(a.is_finished());
}

#[test]
fn an_interleaved_handler_panic_is_its_users_task_error_and_its_handle_resolves() {
    let el = sim();
    let seen = log::<String>();
    let (a, b) = alternating(&el, &seen, |i| assert!(i != 3, "a{i} is bad"));
    let err = el.run().unwrap_err();
    assert_eq!((err.task(), err.message()), ("a", "a3 is bad"));
    assert_eq!(el.now(), t(6), "reported at once, at a3's time");
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3", "b4"]
    );
    let a = poll_once(pin!(a)).expect("resolved").unwrap_err();
    assert!(a.is_panic());
    assert_eq!(a.panic_message(), Some("a3 is bad"));
    assert!(poll_once(pin!(b)).expect("resolved").is_ok());
}

#[test]
fn an_interleaved_past_that_runs_out_goes_live_in_the_same_turn() {
    let el = sim();
    let seen = log::<String>();
    let s = seen.clone();
    let s2 = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, i: i64| s.borrow_mut().push(format!("a{i}")))
            .past((0..3).map(|i| (t(2 * i), i)))
            .on_live_start(move || s2.borrow_mut().push("a live".into())),
    );
    let s = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, i: i64| s.borrow_mut().push(format!("b{i}")))
            .past((0..3).map(|i| (t(2 * i + 1), i))),
    );
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["a0", "b0", "a1", "b1", "a2", "a live", "b2"]
    );
}

/// A stream that aborts itself on its last past event goes no further:
/// its `on_live_start` does not run, whatever its handler (plain or async)
/// and whether its task or the loop drives that event.
#[test]
fn a_stream_aborted_on_its_last_past_event_does_not_go_live() {
    for (plain, interleaved) in [(true, false), (true, true), (false, false)] {
        let el = sim();
        let seen = log::<String>();
        let handle = Rc::new(RefCell::new(None::<timecast::JoinHandle<()>>));
        let (h, s, s2) = (handle.clone(), seen.clone(), seen.clone());
        let on_event = move |i: i64| {
            s.borrow_mut().push(format!("a{i}"));
            if i == 2 {
                h.borrow().as_ref().expect("spawned").abort();
            }
        };
        let past = (0..3).map(|i| (t(2 * i), i));
        let on_live = move || s2.borrow_mut().push("a live".into());
        let task = if plain {
            el.spawn(
                process_stream(move |_: Timestamp, i: i64| on_event(i))
                    .past(past)
                    .on_live_start(on_live),
            )
        } else {
            el.spawn(
                process_stream(move |_: Timestamp, i: i64| {
                    on_event(i);
                    async {}
                })
                .past(past)
                .on_live_start(on_live),
            )
        };
        *handle.borrow_mut() = Some(task);
        if interleaved {
            el.spawn(
                process_stream(|_: Timestamp, _: i64| {}).past((0..3).map(|i| (t(2 * i + 1), i))),
            );
        }
        el.run().unwrap();
        let case = format!("plain: {plain}, interleaved: {interleaved}");
        assert_eq!(*seen.borrow(), ["a0", "a1", "a2"], "{case}");
    }
}

/// A stream whose `ProcessStream` its task drops (here when another
/// stream's handler says so) while its replay waits for its turn handles
/// no later event; the others go on in order.
#[test]
fn an_interleaved_stream_dropped_by_its_task_between_events_handles_no_later_event() {
    let el = sim();
    let seen = log::<String>();
    let stop = Rc::new(Cell::new(false));
    let waker = Rc::new(RefCell::new(None::<std::task::Waker>));
    let s = seen.clone();
    let (st, w) = (stop.clone(), waker.clone());
    el.spawn(async move {
        let stream =
            process_stream(move |_: Timestamp, i: i64| s.borrow_mut().push(format!("a{i}")))
                .past((0..5).map(|i| (t(2 * i), i)));
        let stopped = std::future::poll_fn(|cx| {
            if st.get() {
                return Poll::Ready(());
            }
            *w.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        });
        futures::pin_mut!(stream, stopped);
        futures::future::select(stream, stopped).await;
    });
    let s = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, i: i64| {
            s.borrow_mut().push(format!("b{i}"));
            if i == 1 {
                stop.set(true);
                waker.borrow_mut().take().expect("waits").wake();
            }
        })
        .past((0..5).map(|i| (t(2 * i + 1), i))),
    );
    el.run().unwrap();
    assert_eq!(*seen.borrow(), ["a0", "b0", "a1", "b1", "b2", "b3", "b4"]);
    assert_eq!(el.events_dispatched(), 7);
}

/// A past iterator that panics when the loop drives its replay (its
/// stream interleaved with another) is the user's task error, reported
/// at once; the other stream goes on when the loop runs again.
#[test]
fn an_interleaved_past_iterator_that_panics_is_the_users_task_error() {
    let el = sim();
    let seen = log::<String>();
    let s = seen.clone();
    let a = el.spawn_named(
        "a",
        process_stream(move |_: Timestamp, i: i64| s.borrow_mut().push(format!("a{i}"))).past(
            (0..5).map(|i| {
                assert!(i != 3, "a's past breaks");
                (t(2 * i), i)
            }),
        ),
    );
    let s = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, i: i64| s.borrow_mut().push(format!("b{i}")))
            .past((0..5).map(|i| (t(2 * i + 1), i))),
    );
    let err = el.run().unwrap_err();
    assert_eq!((err.task(), err.message()), ("a", "a's past breaks"));
    assert_eq!(el.now(), t(4), "pulled after a2, at its time");
    el.run().unwrap();
    assert_eq!(
        *seen.borrow(),
        ["a0", "b0", "a1", "b1", "a2", "b2", "b3", "b4"]
    );
    let a = poll_once(pin!(a)).expect("resolved").unwrap_err();
    assert_eq!(a.panic_message(), Some("a's past breaks"));
}

/// A handler that aborts another stream whose replay waits in the queue
/// (at the same time as a timer) drops that replay: the stream handles no
/// later event, and the timer still comes after the data at its time.
#[test]
fn a_handler_aborting_another_interleaved_stream_drops_its_waiting_replay() {
    let el = sim();
    let seen = log::<String>();
    let held = Rc::new(());
    let (s, h) = (seen.clone(), held.clone());
    let a = el.spawn(
        process_stream(move |_: Timestamp, i: i64| {
            let _ = &h;
            s.borrow_mut().push(format!("a{i}"));
        })
        .past((0..5).map(|i| (t(2 * i), i))),
    );
    let s = seen.clone();
    el.spawn(async move {
        sleep_until(t(4)).await;
        s.borrow_mut().push("timer@4".into());
    });
    let s = seen.clone();
    el.spawn(
        process_stream(move |_: Timestamp, i: i64| {
            s.borrow_mut().push(format!("b{i}"));
            if i == 1 {
                a.abort();
            }
        })
        .past((0..3).map(|i| (t(2 * i + 1), i))),
    );
    el.run().unwrap();
    assert_eq!(*seen.borrow(), ["a0", "b0", "a1", "b1", "timer@4", "b2"]);
    assert_eq!(Rc::strong_count(&held), 1, "a's handler is dropped");
}

/// A task woken from another thread in the middle of a run of past events
/// runs before any event the past yields once the wake-up is visible to the
/// loop's thread is dispatched: the run ends at once, not when the past
/// does.
#[test]
fn a_wake_up_from_another_thread_ends_a_run_of_past_events_at_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};

    let el = sim();
    let waker = Arc::new(Mutex::new(None::<std::task::Waker>));
    let woken = Arc::new(AtomicBool::new(false));
    let (go, wait_for_go) = mpsc::channel::<()>();
    let thread = {
        let (waker, woken) = (waker.clone(), woken.clone());
        std::thread::spawn(move || {
            wait_for_go.recv().expect("the handler says when");
            waker.lock().unwrap().take().expect("the task waits").wake();
            woken.store(true, Ordering::Release);
        })
    };
    let ran = Rc::new(Cell::new(false));
    let mut polled = false;
    let (w, r) = (waker.clone(), ran.clone());
    el.spawn(std::future::poll_fn(move |cx| {
        if polled {
            r.set(true);
            return Poll::Ready(());
        }
        polled = true;
        *w.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }));
    // Events after the one that sends `go`, each marked with whether the
    // past saw the wake-up done when it yielded it; the past ends once the
    // task ran (or, were the wake-up lost, a million events after it).
    let (r, mut after) = (ran.clone(), 0u64);
    let past = (0..).map_while(move |i: i64| {
        let seen = woken.load(Ordering::Acquire);
        after += u64::from(seen);
        (!r.get() && after <= 1_000_000).then(|| (Timestamp::from_unix_nanos(i), seen))
    });
    let stale = Rc::new(Cell::new(0u64));
    let (s, r, mut go) = (stale.clone(), ran.clone(), Some(go));
    el.spawn(
        process_stream(move |time: Timestamp, seen: bool| {
            if let Some(go) = go.take_if(|_| time.unix_nanos() == 1_000) {
                go.send(()).expect("the thread waits");
            }
            // (One yielded before the task ran may come after it.)
            s.set(s.get() + u64::from(seen && !r.get()));
        })
        .past(past),
    );
    el.run().unwrap();
    thread.join().unwrap();
    assert!(ran.get(), "the woken task ran");
    assert_eq!(
        stale.get(),
        0,
        "events yielded after the wake-up was visible were dispatched before the woken task"
    );
}

// Key order with runs of events dispatched inline, against wake-ups,
// spawns, timers and the ends of the time line.

fn ns(n: i64) -> Timestamp {
    Timestamp::from_unix_nanos(n)
}

/// A dispatch as logged by the tests below: (time in ns, class, rank,
/// seq), class 0 for a source's event and 1 for a timer.
type K = (i64, u8, u64, u64);

fn check_increasing(log: &[K]) {
    for w in log.windows(2) {
        assert!(
            w[0] < w[1],
            "out of order: {:?} then {:?}\n{log:?}",
            w[0],
            w[1]
        );
    }
}

/// A xorshift generator: the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Events at the first and last representable times, and timers at the
/// last, are dispatched in key order: the window of a run of events holds
/// at the ends of the time line.
#[test]
fn events_and_timers_at_the_extreme_times_are_dispatched_in_key_order() {
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let log: Rc<RefCell<Vec<K>>> = Rc::default();
    let pasts: Vec<Vec<i64>> = vec![
        vec![
            i64::MIN,
            i64::MIN,
            i64::MIN + 1,
            0,
            i64::MAX - 1,
            i64::MAX,
            i64::MAX,
        ],
        vec![i64::MIN, i64::MAX - 1, i64::MAX],
        vec![i64::MAX, i64::MAX],
    ];
    for (rank, past) in pasts.into_iter().enumerate() {
        let l = log.clone();
        let seq = Cell::new(0u64);
        el.spawn(
            process_stream(move |t: Timestamp, ()| {
                seq.set(seq.get() + 1);
                l.borrow_mut()
                    .push((t.unix_nanos(), 0, rank as u64, seq.get()));
            })
            .past(past.into_iter().map(|t| (ns(t), ()))),
        );
    }
    let l = log.clone();
    el.spawn(async move {
        for (i, t) in [i64::MAX - 1, i64::MAX].into_iter().enumerate() {
            let l = l.clone();
            timecast::call_at(ns(t), move || l.borrow_mut().push((t, 1, 0, i as u64)));
        }
    });
    el.run().unwrap();
    let log = log.borrow();
    assert_eq!(log.len(), 14, "{log:?}");
    check_increasing(&log);
}

/// Random merges of up to five pasts whose handlers wake parked tasks,
/// spawn tasks and set timers: every event comes in key order, at its own
/// time, after every task its predecessors woke or spawned has run.
#[test]
fn random_merges_keep_key_order_with_wake_ups_spawns_and_timers() {
    for seed in 1..200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let el = EventLoop::starting_at(ns(0)).simulated();
        let log: Rc<RefCell<Vec<K>>> = Rc::default();
        let nsrc = 1 + rng.below(5);
        let parked: Rc<RefCell<Vec<std::task::Waker>>> = Rc::default();
        let owed = Rc::new(Cell::new(0u32));
        // A few tasks that park and log when woken.
        for _ in 0..3 {
            let p = parked.clone();
            let o = owed.clone();
            el.spawn(async move {
                loop {
                    let mut first = true;
                    std::future::poll_fn(|cx| {
                        if first {
                            first = false;
                            p.borrow_mut().push(cx.waker().clone());
                            Poll::Pending
                        } else {
                            Poll::Ready(())
                        }
                    })
                    .await;
                    o.set(o.get() - 1);
                }
            });
        }
        for rank in 0..nsrc {
            let n = rng.below(60);
            let mut t = rng.below(5) as i64;
            let past: Vec<i64> = (0..n)
                .map(|_| {
                    t += rng.below(3) as i64;
                    t
                })
                .collect();
            let l = log.clone();
            let p = parked.clone();
            let o = owed.clone();
            let seq = Cell::new(0u64);
            let mut r = Rng(rng.next() | 1);
            el.spawn(
                process_stream(move |t: Timestamp, ()| {
                    seq.set(seq.get() + 1);
                    assert_eq!(now(), t);
                    assert_eq!(
                        o.get(),
                        0,
                        "a woken or spawned task had not run before this event"
                    );
                    l.borrow_mut().push((t.unix_nanos(), 0, rank, seq.get()));
                    match r.below(10) {
                        0 => {
                            let w = p.borrow_mut().pop();
                            if let Some(w) = w {
                                o.set(o.get() + 1);
                                w.wake();
                            }
                        }
                        1 => {
                            let l = l.clone();
                            let at = t.unix_nanos() + r.below(4) as i64;
                            // A timer's rank and seq are not known here.
                            timecast::call_at(ns(at), move || {
                                l.borrow_mut().push((at, 1, u64::MAX, u64::MAX));
                            });
                        }
                        2 => {
                            o.set(o.get() + 1);
                            let o = o.clone();
                            timecast::spawn(async move { o.set(o.get() - 1) });
                        }
                        _ => {}
                    }
                })
                .past(past.into_iter().map(|t| (ns(t), ()))),
            );
        }
        // Until only the parked tasks are left.
        el.block_on(async { timecast::sleep(Duration::from_secs(1)).await });
        let log = log.borrow();
        // Events in key order; a timer after every event of its time.
        for w in log.windows(2) {
            let (a, b) = (w[0], w[1]);
            let ok = if a.1 == 1 && b.1 == 1 {
                a.0 <= b.0
            } else {
                a < b || (a.1 == 1 && b.1 == 1)
            };
            assert!(ok, "seed {seed}: {a:?} then {b:?}\n{log:?}");
        }
    }
}

// `try_process_stream`: a handler that can fail.

/// A plain handler's error ends the stream at the failing event: nothing
/// after it is pulled or handled, and the future resolves to the error at
/// the failing event's time.
#[test]
fn a_failing_plain_handler_stops_its_past_at_the_failing_event() {
    use timecast::source::try_process_stream;

    let pulled = Rc::new(Cell::new(0));
    let p = pulled.clone();
    let past = (1..=1_000).map(move |i| {
        p.set(p.get() + 1);
        (t(i), i)
    });
    let handled = log();
    let h = handled.clone();
    let el = sim();
    let outcome = el.block_on(async move {
        let outcome = try_process_stream(move |ts: Timestamp, v: i64| {
            assert_eq!(now(), ts);
            if v == 10 {
                return Err(format!("bad value {v}"));
            }
            h.borrow_mut().push(v);
            Ok(())
        })
        .past(past)
        .await;
        (outcome, now())
    });
    assert_eq!(outcome, (Err("bad value 10".to_string()), t(10)));
    assert_eq!(*handled.borrow(), (1..10).collect::<Vec<_>>());
    assert_eq!(
        pulled.get(),
        10,
        "nothing is pulled after the failing event"
    );
}

/// An async handler fails after awaiting: the error is returned at its
/// virtual time, and the live stream is dropped unread.
#[test]
fn a_failing_async_handler_drops_the_live_stream() {
    use timecast::source::try_process_stream;

    let feed = AsyncStream::with_capacity(4);
    let live = feed.subscribe();
    let producer = feed.clone();
    let handled = log();
    let h = handled.clone();
    let el = sim();
    el.spawn(async move {
        for i in 1..=10 {
            sleep(secs(1)).await;
            producer.put((now(), i)).await.unwrap();
        }
    });
    let outcome = el.block_on(async move {
        let outcome = try_process_stream(move |_ts: Timestamp, v: u32| {
            let h = h.clone();
            async move {
                sleep(Duration::from_millis(500)).await;
                if v == 3 {
                    return Err(v);
                }
                h.borrow_mut().push(v);
                Ok(())
            }
        })
        .live(live)
        .await;
        (outcome, now())
    });
    assert_eq!(outcome, (Err(3), t(3) + Duration::from_millis(500)));
    assert_eq!(*handled.borrow(), [1, 2]);
    assert_eq!(feed.consumer_count(), 0);
}

/// After a live event fails the handler, the stream takes nothing more:
/// late events already waiting are neither diverted nor counted.
#[test]
fn a_failing_live_event_leaves_the_late_events_after_it_untouched() {
    use timecast::source::try_process_stream;

    let diverted = log();
    let d = diverted.clone();
    let el = sim();
    let live = stream::iter([(t(20), 0), (t(5), 1), (t(6), 2), (t(7), 3)]);
    let outcome = el.block_on(
        try_process_stream(|_ts: Timestamp, v: i32| if v == 0 { Err("first") } else { Ok(()) })
            .live(live)
            .on_late(LatePolicy::divert(move |ts, v| {
                d.borrow_mut().push((ts, v))
            })),
    );
    assert_eq!(outcome, Err("first"));
    assert!(diverted.borrow().is_empty());
    assert_eq!(el.late_events(), 0);
}

/// A stream that fails does not stop the others: they are merged in time
/// as before, and end on their own.
#[test]
fn a_failing_stream_leaves_the_other_streams_running() {
    use timecast::source::try_process_stream;

    let order = log();
    let el = sim();
    let (a, b) = (order.clone(), order.clone());
    let failing = el.spawn(
        try_process_stream(move |ts: Timestamp, v: &'static str| {
            a.borrow_mut().push((ts, v));
            if ts == t(3) {
                Err("failed at 3")
            } else {
                Ok(())
            }
        })
        .past((1..=5).map(|i| (t(i), "a"))),
    );
    let other = el.spawn(
        try_process_stream(move |ts: Timestamp, v: &'static str| {
            b.borrow_mut().push((ts, v));
            Ok::<_, &str>(())
        })
        .past((1..=5).map(|i| (t(i) + Duration::from_millis(1), "b"))),
    );
    el.run().unwrap();
    assert_eq!(el.block_on(failing).unwrap(), Err("failed at 3"));
    assert_eq!(el.block_on(other).unwrap(), Ok(()));
    let ms = |s: i64| t(s) + Duration::from_millis(1);
    assert_eq!(
        *order.borrow(),
        [
            (t(1), "a"),
            (ms(1), "b"),
            (t(2), "a"),
            (ms(2), "b"),
            (t(3), "a"),
            (ms(3), "b"),
            (ms(4), "b"),
            (ms(5), "b"),
        ]
    );
}

/// Every event handled: `Ok(())`, through the past and the live stream,
/// with `on_live_start` between them.
#[test]
fn a_fallible_handler_that_never_fails_ends_with_ok() {
    use timecast::source::try_process_stream;

    let handled = log();
    let h = handled.clone();
    let went_live = Rc::new(Cell::new(false));
    let (w, live) = (went_live.clone(), went_live.clone());
    let outcome = sim().block_on(
        try_process_stream(move |ts: Timestamp, v: u8| {
            h.borrow_mut().push((ts, v, live.get()));
            Ok::<_, String>(())
        })
        .past([(t(1), 1), (t(2), 2)])
        .live(stream::iter([(t(3), 3)]))
        .on_live_start(move || w.set(true)),
    );
    assert_eq!(outcome, Ok(()));
    assert!(went_live.get());
    assert_eq!(
        *handled.borrow(),
        [(t(1), 1, false), (t(2), 2, false), (t(3), 3, true)]
    );
}
