//! The time layer: `EventLoop`, the virtual clock, timers, sleeps,
//! callbacks and `Timestamp`, held to the rules of `timecast::time`.
//!
//! Timelines are checked exactly in simulated mode. Tests that need the wall
//! clock assert order and lower bounds only, never upper bounds.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use timecast::{
    call_at, call_later, is_live, lateness, now, process_stream, sleep, sleep_until, spawn, timer,
    AsyncStream, EventLoop, Timestamp,
};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// A loop in simulated mode with its clock at the Unix epoch.
fn sim() -> EventLoop {
    EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated()
}

/// What ran, in order: (who, event time, `now()` when it ran).
#[derive(Clone, Debug, Default)]
struct Trace(Rc<RefCell<Vec<(String, Timestamp, Timestamp)>>>);

impl Trace {
    fn push(&self, who: impl Into<String>, event: Timestamp) {
        self.0.borrow_mut().push((who.into(), event, now()));
    }

    fn who(&self) -> Vec<String> {
        self.0.borrow().iter().map(|(w, _, _)| w.clone()).collect()
    }

    fn entries(&self) -> Vec<(String, Timestamp, Timestamp)> {
        self.0.borrow().clone()
    }
}

/// A source named `name` replaying `events` (seconds, value) into `trace`.
fn source(
    trace: &Trace,
    name: &'static str,
    events: Vec<(i64, &'static str)>,
) -> impl Future<Output = ()> {
    let trace = trace.clone();
    process_stream(move |ts: Timestamp, v: &'static str| trace.push(format!("{name} {v}"), ts))
        .past(events.into_iter().map(|(s, v)| (t(s), v)))
}

/// Yields to the loop once: wakes itself and returns `Pending`.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// Panics with `message` (a closure returning `!` could be either kind of
/// callback).
fn fail(message: &str) {
    panic!("{message}");
}

// Rule 1: total order.

#[test]
fn rule1_data_before_timers_sources_by_rank_timers_by_creation() {
    let el = sim();
    let trace = Trace::default();
    // Timers created first, two of them at 5 s, one at 4 s.
    let tr = trace.clone();
    el.spawn(async move {
        for (who, at) in [("timer A", 5), ("timer B", 5), ("timer at 4", 4)] {
            let tr = tr.clone();
            call_at(t(at), move || tr.push(who, t(at)));
        }
    });
    // Then two sources, registered in this order, with events at 5 s.
    el.spawn(source(&trace, "s0", vec![(5, "x"), (5, "y"), (6, "z")]));
    el.spawn(source(&trace, "s1", vec![(5, "w")]));
    el.run().unwrap();
    assert_eq!(
        trace.who(),
        [
            "timer at 4",
            "s0 x",
            "s0 y",
            "s1 w",
            "timer A",
            "timer B",
            "s0 z"
        ]
    );
    for (who, event, now) in trace.entries() {
        assert_eq!(now, event, "{who} ran at its time");
    }
}

#[test]
fn rule1_sources_rank_by_registration_not_by_their_events() {
    let el = sim();
    let trace = Trace::default();
    el.spawn(source(&trace, "late starter", vec![(3, "a"), (3, "b")]));
    el.spawn(source(&trace, "early", vec![(1, "a"), (3, "b")]));
    el.run().unwrap();
    assert_eq!(
        trace.who(),
        ["early a", "late starter a", "late starter b", "early b"]
    );
}

// Rule 2: now() is the key's time, frozen; replay never reads the wall clock.

#[test]
fn rule2_now_is_the_event_time_frozen_during_callbacks() {
    // Real time, but the events are in 2020: all due, replayed at once.
    let start = Timestamp::from_ymd_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let el = EventLoop::starting_at(start);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, (): ()| {
            let before = now();
            std::thread::sleep(ms(2)); // Wall time passes; the clock does not.
            s.borrow_mut().push((ts, before, now()));
        })
        .past((0..3).map(move |i| (start + secs(i), ()))),
    );
    let s = seen.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, (): ()| {
            let s = s.clone();
            async move {
                let before = now();
                for _ in 0..3 {
                    yield_now().await; // Other tasks may run; the clock stays.
                }
                s.borrow_mut().push((ts, before, now()));
            }
        })
        .past((0..3).map(move |i| (start + ms(500 + 1000 * i), ()))),
    );
    el.run().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 6);
    for &(ts, before, after) in seen.iter() {
        assert_eq!(before, ts);
        assert_eq!(after, ts);
    }
    assert_eq!(
        el.now(),
        start + ms(2500),
        "the clock never read the wall clock"
    );
}

// Rule 3: monotonic.

#[test]
fn rule3_the_clock_never_goes_back() {
    let el = sim();
    let trace = Trace::default();
    // A past out of order, and a task sleeping until a time already past.
    el.spawn(source(&trace, "s", vec![(5, "a"), (3, "b"), (7, "c")]));
    let tr = trace.clone();
    el.spawn(async move {
        sleep_until(t(6)).await;
        tr.push("sleeper at 6", t(6));
        sleep_until(t(2)).await;
        tr.push("sleeper at 2", t(2));
    });
    el.run().unwrap();
    let entries = trace.entries();
    let nows: Vec<_> = entries.iter().map(|e| e.2).collect();
    assert!(nows.windows(2).all(|w| w[0] <= w[1]), "{entries:?}");
    assert_eq!(
        trace.who(),
        ["s a", "s b", "sleeper at 6", "sleeper at 2", "s c"]
    );
    assert_eq!(entries[1].2, t(5), "the event at 3 s runs at 5 s");
    assert_eq!(entries[3].2, t(6), "a sleep into the past ends at once");
}

// Rule 4: strict chronology.

#[test]
fn rule4_callbacks_scheduled_in_the_past_run_before_the_next_event() {
    let el = sim();
    let trace = Trace::default();
    let tr = trace.clone();
    el.spawn(
        process_stream(move |ts: Timestamp, v: &'static str| {
            tr.push(v, ts);
            if v == "a" {
                let tr1 = tr.clone();
                call_at(t(2), move || tr1.push("call_at 2 s", t(2)));
                let tr2 = tr.clone();
                call_later(Duration::ZERO, move || tr2.push("call_later 0", now()));
                let tr3 = tr.clone();
                spawn(async move {
                    sleep_until(t(1)).await;
                    tr3.push("sleep_until 1 s", t(1));
                });
            }
        })
        .past([(t(10), "a"), (t(11), "b")]),
    );
    el.run().unwrap();
    // The three keys in the past, by time (1 s, 2 s, 10 s), then "b".
    assert_eq!(
        trace.who(),
        ["a", "sleep_until 1 s", "call_at 2 s", "call_later 0", "b"]
    );
    let nows: Vec<_> = trace.entries().iter().map(|e| e.2).collect();
    assert_eq!(nows, [t(10), t(10), t(10), t(10), t(11)]);
}

// Rule 5: the clock advances only when no task can progress.

#[test]
fn rule5_the_clock_waits_while_any_task_can_progress() {
    let el = sim();
    let trace = Trace::default();
    // Two tasks ping-pong a thousand values at 0 s through rendezvous streams.
    let (ping, pong) = (AsyncStream::<u32>::new(), AsyncStream::<u32>::new());
    let (mut pings, mut pongs) = (ping.subscribe(), pong.subscribe());
    let tr = trace.clone();
    el.spawn(async move {
        while let Some(v) = pings.next().await {
            assert_eq!(now(), t(0));
            pong.put(v + 1).await.unwrap();
        }
        tr.push("ponger done", t(0));
    });
    let tr = trace.clone();
    el.spawn(async move {
        let mut v = 0;
        while v < 1000 {
            ping.put(v).await.unwrap();
            v = pongs.next().await.unwrap();
            yield_now().await;
        }
        ping.close();
        tr.push("pinger done", t(0));
    });
    // A sleeper due 1 ns later runs only after all that.
    let tr = trace.clone();
    el.spawn(async move {
        sleep(Duration::from_nanos(1)).await;
        tr.push("sleeper", Timestamp::from_unix_nanos(1));
    });
    el.run().unwrap();
    assert_eq!(trace.who(), ["pinger done", "ponger done", "sleeper"]);
    assert_eq!(trace.entries()[1].2, t(0));
    assert_eq!(trace.entries()[2].2, Timestamp::from_unix_nanos(1));
}

#[test]
fn rule5_simulated_jumps_real_time_waits() {
    let el = EventLoop::new().simulated();
    let start = el.now();
    el.block_on(async { sleep(secs(86_400 * 365)).await });
    assert_eq!(
        el.now(),
        start + secs(86_400 * 365),
        "a year, without waiting"
    );

    // A real-time loop's clock starts at its creation: time from before it.
    let wall = Instant::now();
    let el = EventLoop::new();
    let start = el.now();
    el.block_on(async { sleep(ms(30)).await });
    assert!(wall.elapsed() >= ms(30));
    assert!(el.now() >= start + ms(30));
}

#[test]
fn rule5_once_caught_up_the_clock_follows_the_wall_clock() {
    let el = EventLoop::new();
    let feed = AsyncStream::with_capacity(1);
    let mut values = feed.subscribe();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(ms(20));
        let sent = Timestamp::now();
        std::thread::sleep(ms(1));
        feed.put_blocking(sent).unwrap();
    });
    let (sent, received) = el.block_on(async move {
        let sent = values.next().await.unwrap();
        (sent, now())
    });
    sender.join().unwrap();
    assert!(
        received >= sent,
        "woken by a live source, the clock caught up"
    );
}

// Rule 8: timers.

#[test]
fn rule8_timer_ticks_at_start_plus_k_periods_up_to_until() {
    let el = sim();
    let ticks = el.block_on(async {
        let mut ticks = Vec::new();
        let mut timer = timer(secs(2)).starting_at(t(10)).until(t(16));
        while let Some(tick) = timer.next().await {
            assert_eq!(now(), tick);
            ticks.push(tick);
        }
        ticks
    });
    assert_eq!(ticks, [t(12), t(14), t(16)], "`until` is inclusive");

    // Without `starting_at`: from the clock at the first poll; an `until`
    // between ticks ends after the last tick before it.
    let ticks: Vec<_> = el.block_on(async {
        sleep_until(t(100)).await;
        timer(secs(3)).until(t(108)).collect().await
    });
    assert_eq!(ticks, [t(103), t(106)]);
}

#[test]
fn rule8_a_start_in_the_past_replays_missed_ticks_in_order() {
    let el = EventLoop::starting_at(t(100)).simulated();
    let seen: Vec<_> = el.block_on(async {
        timer(secs(10))
            .starting_at(t(50))
            .until(t(120))
            .map(|tick| (tick, now()))
            .collect()
            .await
    });
    let expected: Vec<_> = [60, 70, 80, 90, 100, 110, 120]
        .map(|s| (t(s), t(s.max(100))))
        .into();
    assert_eq!(seen, expected);
}

#[test]
fn rule8_timers_never_drift_over_a_million_ticks() {
    let start = Timestamp::from_unix_nanos(7);
    let period = Duration::from_nanos(1_000_003);
    let el = EventLoop::starting_at(start).simulated();
    let count = el.block_on(async move {
        let mut timer = timer(period).starting_at(start);
        let mut k = 0u32;
        // The clock once a slow consumer wakes: ticks before it are late.
        let mut woke = start;
        while let Some(tick) = timer.next().await {
            k += 1;
            assert_eq!(tick, start + period * k);
            assert_eq!(now(), tick.max(woke));
            if k == 1_000_000 {
                break;
            }
            if k.is_multiple_of(100_000) {
                // A slow consumer: the ticks missed meanwhile keep their times.
                sleep(period * 3 + Duration::from_nanos(1)).await;
                woke = now();
            }
        }
        k
    });
    assert_eq!(count, 1_000_000);
    assert_eq!(el.now(), start + period * 1_000_000);
}

#[test]
#[should_panic(expected = "non-zero period")]
fn timer_with_a_zero_period_panics() {
    let _ = timer(Duration::ZERO);
}

// Determinism.

type Part = Pin<Box<dyn Future<Output = ()>>>;

/// Two sources (plain with callbacks, async with sleeps) and a timer, all
/// from `start`: the futures to run, and the trace they write.
fn busy_parts(start: Timestamp) -> (Trace, Vec<Part>) {
    let trace = Trace::default();
    let tr = trace.clone();
    let plain = Box::pin(
        process_stream(move |ts: Timestamp, v: u32| {
            tr.push(format!("plain {v}"), ts);
            if v.is_multiple_of(3) {
                let tr = tr.clone();
                call_later(ms(1500), move || tr.push(format!("later {v}"), now()));
            }
        })
        .past((0..20).map(move |i| (start + ms(700 * u64::from(i)), i))),
    );
    let tr = trace.clone();
    let slow = Box::pin(
        process_stream(move |ts: Timestamp, v: u32| {
            let tr = tr.clone();
            async move {
                tr.push(format!("async {v} start"), ts);
                sleep(ms(1300)).await;
                tr.push(format!("async {v} end"), ts);
            }
        })
        .past((0..10).map(move |i| (start + secs(u64::from(i)), i))),
    );
    let tr = trace.clone();
    let ticker = Box::pin(async move {
        let mut ticks = timer(ms(900)).starting_at(start).until(start + secs(12));
        while let Some(tick) = ticks.next().await {
            tr.push("tick", tick);
        }
    });
    (trace, vec![plain, slow, ticker])
}

/// [`busy_parts`], each spawned as a task of `el`.
fn busy_scenario(el: &EventLoop, start: Timestamp) -> Trace {
    let (trace, parts) = busy_parts(start);
    for part in parts {
        el.spawn(part);
    }
    trace
}

#[test]
fn determinism_same_past_same_trace_every_run_at_any_speed() {
    let start = Timestamp::from_ymd_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let run = |el: EventLoop| {
        let trace = busy_scenario(&el, start);
        el.run().unwrap();
        trace.entries()
    };
    let reference = run(EventLoop::starting_at(start).simulated());
    assert_eq!(reference.len(), 20 + 7 + 20 + 13);
    assert_eq!(run(EventLoop::starting_at(start).simulated()), reference);
    // In real time: 2020 is all past, so due at once.
    assert_eq!(run(EventLoop::starting_at(start)), reference);
    // Paced replays: the loop waits for the pace, yet sees the same times.
    assert_eq!(run(EventLoop::starting_at(start).speed(1e9)), reference);
    assert_eq!(run(EventLoop::starting_at(start).speed(1e6)), reference);
    // Regression: pacing scaled durations by the speed with `mul_f64`,
    // which panics on overflow; the largest speed is "as fast as possible".
    let fastest = EventLoop::starting_at(start).speed(EventLoop::MAX_SPEED);
    assert_eq!(run(fastest), reference);

    // The same parts joined in one task instead of spawned: same order.
    let el = EventLoop::starting_at(start).simulated();
    let (trace, parts) = busy_parts(start);
    el.block_on(futures::future::join_all(parts));
    el.run().unwrap(); // The callbacks still pending when the join is done.
    assert_eq!(trace.entries(), reference);
}

#[test]
fn speed_paces_the_replay() {
    // 40 ms of history at 2x takes at least 20 ms of wall time.
    let start = Timestamp::from_ymd_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let el = EventLoop::starting_at(start).speed(2.0);
    let wall = Instant::now();
    el.block_on(async { sleep(ms(40)).await });
    assert!(wall.elapsed() >= ms(20));
    assert_eq!(el.now(), start + ms(40));
}

/// Regression: `speed` took any positive finite factor, so
/// `f64::MIN_POSITIVE` turned a second of the past into centuries of
/// waiting. Factors outside `MIN_SPEED..=MAX_SPEED` are rejected like zero
/// and NaN.
#[test]
fn speed_rejects_factors_that_cannot_be_meant() {
    let subnormal = f64::MIN_POSITIVE / 2.0;
    let bad = [
        0.0,
        -0.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        subnormal,
        EventLoop::MIN_SPEED / 2.0,
        EventLoop::MAX_SPEED * 2.0,
        1e300,
    ];
    for speed in bad {
        let panic = std::panic::catch_unwind(|| EventLoop::new().speed(speed))
            .expect_err(&format!("speed({speed}) accepted"));
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.starts_with("EventLoop::speed takes a factor from 0.001 to 1000000000"),
            "{message}"
        );
    }
    for speed in [EventLoop::MIN_SPEED, 0.5, 1.0, EventLoop::MAX_SPEED] {
        let _ = EventLoop::new().speed(speed);
    }
}

// Running inside other runtimes.

#[test]
fn run_async_inside_a_tokio_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let wall = Instant::now();
    let el = EventLoop::new();
    let start = el.now();
    el.spawn(async { sleep(ms(50)).await });
    rt.block_on(el.run_async()).unwrap();
    assert!(wall.elapsed() >= ms(50));
    assert!(el.now() >= start + ms(50));
}

#[test]
fn run_async_inside_a_tokio_local_set_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let wall = Instant::now();
    let el = EventLoop::new();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    el.spawn(async move {
        sleep(ms(50)).await;
        d.set(true);
    });
    local.block_on(&rt, async {
        // A tokio timer runs alongside the loop.
        let (ran, ()) = tokio::join!(el.run_async(), tokio::time::sleep(ms(10)));
        ran.unwrap();
    });
    assert!(done.get());
    assert!(wall.elapsed() >= ms(50));
}

#[test]
fn run_async_inside_futures_block_on() {
    let el = EventLoop::new();
    let start = el.now();
    let handle = el.spawn(async {
        sleep(ms(30)).await;
        now()
    });
    futures::executor::block_on(el.run_async()).unwrap();
    assert!(handle.is_finished());
    assert!(el.now() >= start + ms(30));
}

// Waiting costs no CPU.

/// A waker that counts its wake-ups and unparks the thread that made it.
struct CountingWaker {
    wakes: AtomicUsize,
    woken: AtomicBool,
    thread: std::thread::Thread,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs `fut` on this thread; returns its output, how many times it was
/// polled, and how many times its waker was woken.
fn block_on_counting<F: Future>(fut: F) -> (F::Output, usize, usize) {
    let counter = Arc::new(CountingWaker {
        wakes: AtomicUsize::new(0),
        woken: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return (out, polls, counter.wakes.load(Ordering::SeqCst));
        }
        while !counter.woken.swap(false, Ordering::SeqCst) {
            std::thread::park();
        }
    }
}

/// A live stream with one value, ready 200 ms after its first poll (set by
/// a thread); counts its polls.
struct SlowStream {
    polls: Rc<Cell<usize>>,
    ready: Arc<AtomicBool>,
    started: bool,
    done: bool,
}

impl futures::Stream for SlowStream {
    type Item = (Timestamp, u32);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.polls.set(self.polls.get() + 1);
        if self.done {
            return Poll::Ready(None);
        }
        if self.ready.load(Ordering::SeqCst) {
            self.done = true;
            return Poll::Ready(Some((Timestamp::now(), 1)));
        }
        if !self.started {
            self.started = true;
            let (ready, waker) = (self.ready.clone(), cx.waker().clone());
            std::thread::spawn(move || {
                std::thread::sleep(ms(200));
                ready.store(true, Ordering::SeqCst);
                waker.wake();
            });
        }
        Poll::Pending
    }
}

#[test]
fn a_waiting_loop_does_not_busy_poll() {
    let polls = Rc::new(Cell::new(0));
    let stream = SlowStream {
        polls: polls.clone(),
        ready: Arc::default(),
        started: false,
        done: false,
    };
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let el = EventLoop::new();
    el.spawn(process_stream(move |_: Timestamp, v: u32| g.set(v)).live(stream));
    let wall = Instant::now();
    el.run().unwrap();
    assert!(wall.elapsed() >= ms(200));
    assert_eq!(got.get(), 1);
    assert!(polls.get() < 10, "polled {} times", polls.get());

    // The same, awaited as a future: the outer executor is not woken in vain.
    let polls = Rc::new(Cell::new(0));
    let stream = SlowStream {
        polls: polls.clone(),
        ready: Arc::default(),
        started: false,
        done: false,
    };
    let el = EventLoop::new();
    el.spawn(process_stream(|_: Timestamp, _: u32| {}).live(stream));
    let (ran, outer_polls, _) = block_on_counting(el.run_async());
    ran.unwrap();
    assert!(polls.get() < 10, "polled {} times", polls.get());
    assert!(outer_polls < 10, "the loop was polled {outer_polls} times");
}

#[test]
fn wake_ups_inside_a_running_loop_do_not_wake_the_outer_executor() {
    // Once the loop has waited (here for a real 5 ms sleep), its tasks' own
    // wake-ups must not go on waking the executor awaiting it.
    let el = EventLoop::new();
    el.spawn(async {
        sleep(ms(5)).await;
        for _ in 0..10_000 {
            yield_now().await;
        }
        sleep(ms(5)).await;
    });
    let (ran, polls, wakes) = block_on_counting(el.run_async());
    ran.unwrap();
    assert!(wakes < 10, "the outer waker was woken {wakes} times");
    assert!(polls < 10, "the loop was polled {polls} times");
}

// Errors.

#[test]
fn a_panicking_task_ends_run_with_an_error_naming_it() {
    let el = sim();
    el.spawn_named("parser", async {
        sleep(secs(1)).await;
        panic!("bad input {}", 42);
    });
    let err = el.run().unwrap_err();
    assert_eq!(err.task(), "parser");
    assert_eq!(err.message(), "bad input 42");
    assert_eq!(err.to_string(), "task `parser` panicked: bad input 42");
    assert_eq!(el.now(), t(1));

    let el = sim();
    el.spawn(async { panic!("unnamed") });
    let err = el.run().unwrap_err();
    assert!(err.task().starts_with("task #"), "{}", err.task());
}

#[test]
fn a_panicking_callback_is_a_task_error_of_the_stream_task() {
    let el = sim();
    el.spawn_named(
        "greeter",
        process_stream(|_: Timestamp, name: &'static str| {
            if name == "Paul" {
                panic!("cannot greet {name}");
            }
        })
        .past([(t(1), "Jane"), (t(2), "Paul")]),
    );
    let err = el.run().unwrap_err();
    assert_eq!(err.task(), "greeter");
    assert_eq!(err.message(), "cannot greet Paul");

    let el = sim();
    el.spawn(async {
        call_later(secs(3), || fail("timer fired"));
    });
    let err = el.run().unwrap_err();
    assert_eq!(err.message(), "timer fired");
    assert_eq!(el.now(), t(3));
}

#[test]
fn after_a_task_error_the_other_tasks_can_run_on() {
    let el = sim();
    let other = el.spawn(async {
        sleep(secs(5)).await;
        "finished"
    });
    el.spawn(async {
        sleep(secs(1)).await;
        panic!("boom");
    });
    assert!(el.run().is_err());
    assert!(!other.is_finished());
    el.run().unwrap();
    assert_eq!(el.block_on(other).unwrap(), "finished");
    assert_eq!(el.now(), t(5));
}

#[test]
#[should_panic(expected = "task `worker` panicked: boom")]
fn block_on_panics_with_the_task_error() {
    let el = sim();
    el.spawn_named("worker", async {
        sleep(secs(1)).await;
        panic!("boom");
    });
    el.block_on(async { sleep(secs(2)).await });
}

#[test]
fn try_block_on_returns_the_task_error() {
    let el = sim();
    let err = el
        .try_block_on(async {
            sleep(secs(1)).await;
            panic!("oops");
        })
        .unwrap_err();
    assert_eq!(err.task(), "block_on");
    assert_eq!(err.message(), "oops");
}

/// Polls `fut` once with a waker that does nothing: `None` if pending.
/// In simulated mode a run does all it can in one poll, so a loop that
/// would wait forever shows here as `None`, not as a hung test.
fn poll_once<F: Future>(fut: Pin<&mut F>) -> Option<F::Output> {
    match fut.poll(&mut Context::from_waker(&futures::task::noop_waker())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// Regression: a panicked task's handle never resolved, so running the
/// loop again hung whenever anything awaited it.
#[test]
fn a_panicked_tasks_handle_resolves_to_the_panic_on_the_next_run() {
    let el = sim();
    let parser = el.spawn_named("parser", async {
        sleep(secs(1)).await;
        panic!("bad input {}", 42);
    });
    let err = el.run().unwrap_err();
    assert_eq!(err.to_string(), "task `parser` panicked: bad input 42");
    assert!(parser.is_finished());

    let waiter = el.spawn(parser);
    assert_eq!(poll_once(pin!(el.run_async())), Some(Ok(())));
    let err = poll_once(pin!(waiter)).unwrap().unwrap().unwrap_err();
    assert!(err.is_panic() && !err.is_cancelled());
    assert_eq!(err.task(), "parser");
    assert_eq!(err.panic_message(), Some("bad input 42"));
    assert_eq!(err.to_string(), "task `parser` panicked: bad input 42");
    let payload = err.into_panic();
    assert!(payload.is::<String>() || payload.is::<&str>());
}

/// A task awaiting the handle before the panic is woken by it.
#[test]
fn a_task_awaiting_a_handle_is_woken_by_its_panic() {
    let el = sim();
    let failing = el.spawn(async {
        sleep(secs(2)).await;
        std::panic::panic_any(7_u32);
    });
    let waiter = el.spawn(async move { failing.await.unwrap_err() });
    let err = el.run().unwrap_err();
    assert_eq!(err.message(), "non-string panic payload");
    assert!(
        err.task().starts_with("task #0 (spawned at tests/time.rs:"),
        "{}",
        err.task()
    );
    assert_eq!(poll_once(pin!(el.run_async())), Some(Ok(())));
    let join = poll_once(pin!(waiter)).unwrap().unwrap();
    assert_eq!(join.task(), err.task());
    assert_eq!(join.into_panic().downcast_ref::<u32>(), Some(&7));
}

#[test]
fn an_aborted_task_is_dropped_and_its_handle_says_cancelled() {
    struct DropFlag(Rc<Cell<bool>>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let el = sim();
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let out = el.block_on(async move {
        let ticker = spawn(async move {
            let _flag = flag;
            loop {
                sleep(secs(1)).await;
            }
        });
        sleep(secs(3)).await;
        assert!(!ticker.is_finished());
        ticker.abort();
        assert!(ticker.is_finished());
        ticker.abort(); // No-op once finished.
        (now(), ticker.await)
    });
    assert!(dropped.get());
    assert_eq!(out.0, t(3));
    let err = out.1.unwrap_err();
    assert!(err.is_cancelled() && !err.is_panic());
    assert!(
        err.task().starts_with("task #1 (spawned at tests/time.rs:"),
        "{}",
        err
    );
    assert!(err.to_string().ends_with(")` was cancelled"), "{err}");
    assert!(err.panic_message().is_none());
    assert!(err.try_into_panic().is_err());

    // Aborting a finished task changes nothing.
    let el = sim();
    let done = el.spawn(async { 5 });
    el.run().unwrap();
    done.abort();
    assert_eq!(poll_once(pin!(done)).unwrap().unwrap(), 5);
}

#[test]
fn a_task_that_aborts_itself_ends_when_its_poll_returns() {
    let el = sim();
    let reached = Rc::new(Cell::new(false));
    let r = reached.clone();
    let slot: Rc<RefCell<Option<timecast::JoinHandle<()>>>> = Rc::default();
    let own = slot.clone();
    let task = el.spawn(async move {
        own.borrow().as_ref().unwrap().abort();
        sleep(secs(1)).await;
        r.set(true);
    });
    // The handle the task aborts itself through.
    *slot.borrow_mut() = Some(task);
    el.run().unwrap();
    assert!(!reached.get());
    let task = slot.borrow_mut().take().unwrap();
    assert!(poll_once(pin!(task)).unwrap().unwrap_err().is_cancelled());
    assert_eq!(el.now(), t(0));
}

/// A task aborted from outside any loop is dropped as its loop's: its
/// destructor may read the loop's clock.
#[test]
fn a_task_aborted_from_outside_its_loop_is_dropped_inside_it() {
    struct NowOnDrop(Rc<Cell<Option<Timestamp>>>);
    impl Drop for NowOnDrop {
        fn drop(&mut self) {
            self.0.set(Some(now()));
        }
    }
    let seen = Rc::new(Cell::new(None));
    let guard = NowOnDrop(seen.clone());
    let el = sim();
    let task = el.spawn(async move {
        let _guard = guard;
        sleep(secs(3600)).await;
    });
    el.block_on(async { sleep(secs(2)).await });
    task.abort();
    assert_eq!(seen.get(), Some(t(2)));
    el.run().unwrap();
    assert_eq!(el.now(), t(2), "the aborted task's sleep is gone");
}

#[test]
fn dropping_a_loop_cancels_the_handles_of_its_tasks() {
    let el = sim();
    let pending = el.spawn_named("forever", std::future::pending::<()>());
    drop(el);
    assert!(pending.is_finished());
    let err = poll_once(pin!(pending)).unwrap().unwrap_err();
    assert_eq!(err.to_string(), "task `forever` was cancelled");
}

/// Regression: a loop dropped with two tasks whose `Drop` panics aborted
/// the process (a panic while unwinding from the first).
#[test]
fn dropping_a_loop_drops_every_task_even_if_one_panics_in_drop() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("bomb");
        }
    }
    let dropped = Rc::new(Cell::new(0));
    struct Count(Rc<Cell<usize>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let el = sim();
    for _ in 0..2 {
        let bomb = Bomb;
        let count = Count(dropped.clone());
        el.spawn(async move {
            let _count = count;
            let _bomb = bomb;
            std::future::pending::<()>().await;
        });
    }
    el.try_block_on(async { sleep(secs(1)).await }).unwrap();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(el))).unwrap_err();
    assert_eq!(*panic.downcast_ref::<&str>().unwrap(), "bomb");
    assert_eq!(dropped.get(), 2);
}

/// A task that aborts itself is dropped when its poll returns: a panic in
/// that drop is the task's error, not a panic out of `run`.
#[test]
fn a_task_aborted_while_polled_that_panics_when_dropped_is_a_task_error() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("bomb");
        }
    }
    let el = sim();
    let slot: Rc<RefCell<Option<timecast::JoinHandle<()>>>> = Rc::default();
    let own = slot.clone();
    let task = el.spawn_named("bomb", async move {
        let _bomb = Bomb;
        own.borrow().as_ref().unwrap().abort();
        std::future::pending::<()>().await;
    });
    *slot.borrow_mut() = Some(task);
    let err = el.run().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.task(), "bomb");
    assert_eq!(err.message(), "(while dropped) bomb");
    let task = slot.borrow_mut().take().unwrap();
    assert!(poll_once(pin!(task)).unwrap().unwrap_err().is_cancelled());
}

/// Arguments at the ends of time saturate; nothing panics or hangs.
#[test]
fn delays_and_starts_at_the_ends_of_time_saturate() {
    let el = sim();
    let fired = Rc::new(Cell::new(None));
    let f = fired.clone();
    el.spawn(async move {
        call_later(Duration::MAX, move || f.set(Some(now())));
    });
    el.run().unwrap();
    assert_eq!(fired.get(), Some(Timestamp::MAX));

    let el = EventLoop::starting_at(Timestamp::MAX).simulated();
    let at = el.block_on(async {
        sleep(secs(1)).await;
        let ticks: Vec<_> = timer(secs(1)).collect().await;
        assert!(ticks.is_empty(), "no tick after Timestamp::MAX");
        now()
    });
    assert_eq!(at, Timestamp::MAX);

    let el = EventLoop::starting_at(Timestamp::MIN).simulated();
    let ticks: Vec<_> = el.block_on(timer(secs(1)).take(2).collect());
    assert_eq!(ticks, [Timestamp::MIN + secs(1), Timestamp::MIN + secs(2)]);
}

// Stuck tasks.

/// Regression: a simulated loop with a task that nothing can wake hung
/// forever.
#[test]
fn a_simulated_loop_whose_tasks_nothing_can_wake_reports_them_stuck() {
    let el = sim();
    el.spawn_named("idle", std::future::pending::<()>());
    el.spawn(async { sleep(secs(5)).await });
    el.spawn(std::future::pending::<()>());
    let err = poll_once(pin!(el.run_async())).unwrap().unwrap_err();
    assert!(err.is_stuck() && !err.is_panic());
    assert_eq!(el.now(), t(5), "everything that could run ran");
    assert_eq!(err.tasks().len(), 2);
    assert_eq!(err.task(), "idle");
    assert!(
        err.tasks()[1].starts_with("task #2 (spawned at tests/time.rs:"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("tasks `idle`, `task #2 (spawned at tests/time.rs:"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("are stuck: the simulated loop has no timer pending"),
        "{err}"
    );

    // The same, blocking; and a task awaiting a stuck task's handle is stuck too.
    let el = sim();
    let idle = el.spawn_named("idle", std::future::pending::<()>());
    el.spawn_named("waiter", idle);
    let err = el.run().unwrap_err();
    assert_eq!(err.tasks(), ["idle", "waiter"]);

    // `block_on`'s future is a task like the others.
    let err = sim()
        .try_block_on(std::future::pending::<()>())
        .unwrap_err();
    assert_eq!(
        err.to_string().split(':').next(),
        Some("task `block_on` is stuck")
    );
}

/// A waker held outside the loop (here by another thread) may still wake
/// its task: a simulated loop waits for it, and is not stuck.
#[test]
fn a_simulated_loop_waits_for_a_waker_held_by_another_thread() {
    struct External(Arc<std::sync::Mutex<(bool, Option<Waker>)>>);
    impl Future for External {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut state = self.0.lock().unwrap();
            if state.0 {
                return Poll::Ready(());
            }
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    let shared = Arc::new(std::sync::Mutex::new((false, None::<Waker>)));
    let el = sim();
    let task = el.spawn(External(shared.clone()));
    let counter = Arc::new(CountingWaker {
        wakes: AtomicUsize::new(0),
        woken: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let outer = Waker::from(counter.clone());
    let mut run = pin!(el.run_async());
    assert!(run
        .as_mut()
        .poll(&mut Context::from_waker(&outer))
        .is_pending());
    // The loop is idle now; another thread wakes the task.
    std::thread::spawn(move || {
        let waker = {
            let mut state = shared.lock().unwrap();
            state.0 = true;
            state.1.take().unwrap()
        };
        waker.wake();
    })
    .join()
    .unwrap();
    assert_eq!(
        counter.wakes.load(Ordering::SeqCst),
        1,
        "the loop's waker was woken"
    );
    assert!(matches!(
        run.as_mut().poll(&mut Context::from_waker(&outer)),
        Poll::Ready(Ok(()))
    ));
    assert!(task.is_finished());
}

/// A live source fed by another thread in simulated mode: the consumer's
/// waker is held by the stream, so the loop waits for the thread.
#[test]
fn a_simulated_loop_waits_for_a_live_source_fed_by_another_thread() {
    let feed = AsyncStream::with_capacity(4);
    let live = feed.subscribe();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let el = sim();
    el.spawn(process_stream(move |ts: Timestamp, v: u32| g.borrow_mut().push((ts, v))).live(live));
    let mut run = pin!(el.run_async());
    assert!(poll_once(run.as_mut()).is_none(), "waits for the feed");
    std::thread::spawn(move || {
        for i in 1..=3 {
            feed.put_blocking((t(i), i as u32)).unwrap();
        }
    })
    .join()
    .unwrap();
    let (ran, _, _) = block_on_counting(run);
    ran.unwrap();
    assert_eq!(*got.borrow(), [(t(1), 1), (t(2), 2), (t(3), 3)]);
}

/// Following the wall clock, a loop with nothing pending waits for a
/// wake-up, as any executor does: it reports nothing stuck.
#[test]
fn a_wall_clock_loop_with_nothing_pending_waits() {
    let el = EventLoop::new();
    el.spawn(std::future::pending::<()>());
    assert!(poll_once(pin!(el.run_async())).is_none());
}

#[test]
#[should_panic(expected = "outside an EventLoop")]
fn now_outside_a_loop_panics() {
    let _ = now();
}

#[test]
#[should_panic(expected = "timecast::sleep() called outside an EventLoop")]
fn sleep_outside_a_loop_panics() {
    drop(sleep(secs(1)));
}

#[test]
#[should_panic(expected = "outside an EventLoop")]
fn call_later_outside_a_loop_panics() {
    call_later(secs(1), || {});
}

#[test]
#[should_panic(expected = "outside an EventLoop")]
fn spawn_outside_a_loop_panics() {
    spawn(async {});
}

#[test]
fn lateness_and_is_live_outside_a_loop() {
    assert_eq!(lateness(), None);
    assert!(!is_live());
}

#[test]
#[should_panic(expected = "EventLoop run from inside one of its own tasks")]
fn running_a_loop_from_its_own_task_panics() {
    let el = Rc::new(sim());
    let inner = el.clone();
    el.block_on(async move { inner.run() }).unwrap();
}

// Tasks, handles, callbacks and sleeps.

#[test]
fn join_handles_and_tasks_spawned_by_tasks() {
    let el = sim();
    let out = el.block_on(async {
        let outer = spawn(async {
            let inner = spawn(async {
                sleep(secs(2)).await;
                now()
            });
            sleep(secs(1)).await;
            (now(), inner.await.unwrap())
        });
        let (a, b) = outer.await.unwrap();
        (a, b, now())
    });
    assert_eq!(out, (t(1), t(2), t(2)));

    // A detached task (its handle dropped) runs on; `run` waits for it.
    let el = sim();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    drop(el.spawn(async move {
        sleep(secs(9)).await;
        r.set(true);
    }));
    el.run().unwrap();
    assert!(ran.get());
    assert_eq!(el.now(), t(9));
}

#[test]
fn call_later_and_call_at_with_plain_and_async_closures() {
    let el = sim();
    let trace = Trace::default();
    let tr = trace.clone();
    el.spawn(async move {
        sleep(secs(1)).await;
        let a = tr.clone();
        call_later(secs(2), move || a.push("plain", t(3)));
        let b = tr.clone();
        let handle = call_later(secs(1), move || async move {
            b.push("async start", t(2));
            sleep(secs(5)).await;
            b.push("async end", t(7));
        });
        let c = tr.clone();
        call_at(t(4), move || c.push("call_at", t(4)));
        handle.await.unwrap();
        tr.push("awaited the async callback", t(7));
    });
    el.run().unwrap();
    assert_eq!(
        trace.who(),
        [
            "async start",
            "plain",
            "call_at",
            "async end",
            "awaited the async callback"
        ]
    );
    for (who, event, now) in trace.entries() {
        assert_eq!(now, event, "{who}");
    }
}

#[test]
fn sleep_until_the_past_completes_at_once_without_moving_the_clock_back() {
    let el = EventLoop::starting_at(t(100)).simulated();
    let at = el.block_on(async {
        sleep_until(t(1)).await;
        sleep(Duration::ZERO).await;
        now()
    });
    assert_eq!(at, t(100));
}

#[test]
fn dropping_a_sleep_cancels_it() {
    let el = sim();
    el.spawn(async {
        let long = pin!(sleep(secs(3600)));
        let short = pin!(sleep(secs(1)));
        let _ = futures::future::select(long, short).await;
        // The hour-long sleep is dropped here, before it is due.
    });
    el.run().unwrap();
    assert_eq!(
        el.now(),
        t(1),
        "the loop did not wait for the dropped sleep"
    );

    // A sleep created but never polled is nothing to wait for either.
    let el = sim();
    el.spawn(async { drop(sleep(secs(3600))) });
    el.run().unwrap();
    assert_eq!(el.now(), t(0));
}

#[test]
fn sleep_reports_its_deadline() {
    let el = EventLoop::starting_at(t(10)).simulated();
    let deadlines =
        el.block_on(async { (sleep(secs(5)).deadline(), sleep_until(t(3)).deadline()) });
    assert_eq!(deadlines, (t(15), t(3)));
}

// Bugs found while writing these tests.

/// Regression: a source's inline dispatch of its next event ran ahead of
/// a sibling future in the same task, which had not registered its own
/// earlier events yet.
#[test]
fn two_streams_joined_in_one_task_keep_the_total_order() {
    let el = sim();
    let trace = Trace::default();
    let a = source(&trace, "a", vec![(1, "1"), (3, "3"), (5, "5")]);
    let b = source(&trace, "b", vec![(0, "0"), (2, "2"), (4, "4")]);
    el.block_on(async move {
        futures::join!(a, b);
    });
    assert_eq!(trace.who(), ["b 0", "a 1", "b 2", "a 3", "b 4", "a 5"]);
    for (who, event, now) in trace.entries() {
        assert_eq!(now, event, "{who}");
    }
}

/// Regression: `block_on` looped forever when its future spawned a task
/// that sleeps in a loop, and then finished.
#[test]
fn block_on_returns_when_its_future_is_done_even_with_a_ticker_left() {
    let el = sim();
    let ticks = Rc::new(Cell::new(0));
    let tk = ticks.clone();
    el.block_on(async move {
        spawn(async move {
            loop {
                sleep(secs(1)).await;
                tk.set(tk.get() + 1);
            }
        });
    });
    assert_eq!(ticks.get(), 0);
    let tk = ticks.clone();
    el.block_on(async move {
        spawn(async move {
            loop {
                sleep(secs(1)).await;
                tk.set(tk.get() + 1);
            }
        });
        sleep(ms(3500)).await;
    });
    assert_eq!(ticks.get(), 6, "both tickers ran three times");
    assert_eq!(el.now(), t(3) + ms(500));
}

/// Regression: tasks hold the loop's core (through their sleeps), which
/// holds the tasks: dropping a loop with pending tasks leaked both.
#[test]
fn dropping_the_loop_drops_its_pending_tasks() {
    struct DropFlag(Rc<Cell<bool>>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let el = sim();
    el.spawn(async move {
        let _flag = flag;
        sleep(secs(3600)).await;
    });
    el.spawn(async { sleep(secs(1)).await });
    el.block_on(async { sleep(secs(1)).await });
    assert!(!dropped.get());
    drop(el);
    assert!(dropped.get(), "the pending task was dropped with the loop");
}

/// Regression: after an `on_live` callback panicked, the loop believed it
/// was still running and refused to run again. And the panic escaped `run`
/// instead of being its `TaskError`.
#[test]
fn a_loop_runs_again_after_an_on_live_callback_panicked() {
    let el = sim();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    el.on_live(|| panic!("live!"));
    el.on_live(move || r.set(true));
    let err = el.run().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.message(), "live!");
    assert!(
        err.task()
            .starts_with("on_live callback (registered at tests/time.rs:"),
        "{}",
        err.task()
    );
    // The callbacks after it run at the next run.
    assert!(!ran.get());
    el.spawn(async { sleep(secs(1)).await });
    el.run().unwrap();
    assert!(ran.get());
    assert_eq!(el.now(), t(1));
}

// Timestamp.

#[test]
fn timestamp_displays_rfc3339_in_utc() {
    assert_eq!(Timestamp::UNIX_EPOCH.to_string(), "1970-01-01T00:00:00Z");
    let t = Timestamp::from_ymd_hms(2025, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(t.to_string(), "2025-01-01T00:00:00Z");
    assert_eq!((t + ms(1500)).to_string(), "2025-01-01T00:00:01.500Z");
    assert_eq!(
        (t + Duration::from_micros(7)).to_string(),
        "2025-01-01T00:00:00.000007Z"
    );
    assert_eq!(
        (t + Duration::from_nanos(1)).to_string(),
        "2025-01-01T00:00:00.000000001Z"
    );
    assert_eq!(format!("{t:?}"), "2025-01-01T00:00:00Z");
    assert_eq!(
        Timestamp::from_unix_millis(-1).to_string(),
        "1969-12-31T23:59:59.999Z"
    );
}

#[test]
fn timestamp_from_ymd_hms_validates_the_calendar() {
    let leap = Timestamp::from_ymd_hms(2024, 2, 29, 23, 59, 59).unwrap();
    assert_eq!(leap.to_string(), "2024-02-29T23:59:59Z");
    assert_eq!(leap.unix_secs(), 1_709_251_199);
    assert_eq!(Timestamp::from_ymd_hms(2023, 2, 29, 0, 0, 0), None);
    assert_eq!(Timestamp::from_ymd_hms(2023, 13, 1, 0, 0, 0), None);
    assert_eq!(Timestamp::from_ymd_hms(2023, 1, 0, 0, 0, 0), None);
    assert_eq!(Timestamp::from_ymd_hms(2023, 1, 1, 0, 60, 0), None);
    assert_eq!(
        Timestamp::from_ymd_hms(1969, 12, 31, 23, 59, 59),
        Some(t(-1))
    );
}

#[test]
fn timestamp_arithmetic() {
    let a = t(10);
    assert_eq!(a + ms(1500), Timestamp::from_unix_millis(11_500));
    assert_eq!(a - secs(20), t(-10));
    assert_eq!(t(13) - a, secs(3));
    assert_eq!(a - t(13), Duration::ZERO, "saturates at zero");
    assert_eq!(t(13).checked_duration_since(a), Some(secs(3)));
    assert_eq!(a.checked_duration_since(t(13)), None);
    let mut b = a;
    b += secs(5);
    b -= ms(500);
    assert_eq!(b, Timestamp::from_unix_millis(14_500));
    assert_eq!(Timestamp::MAX.checked_add(Duration::from_nanos(1)), None);
    assert_eq!(Timestamp::MAX.saturating_add(secs(1)), Timestamp::MAX);
    assert_eq!(Timestamp::MIN.saturating_sub(secs(1)), Timestamp::MIN);
    assert_eq!(Timestamp::from_unix_nanos(1_999_999_999).unix_secs(), 1);
    assert_eq!(Timestamp::from_unix_nanos(-1).unix_secs(), -1);
    assert_eq!(Timestamp::from_unix_nanos(1_500_000).unix_millis(), 1);
}

#[test]
#[should_panic(expected = "overflow")]
fn timestamp_addition_past_the_range_panics() {
    let _ = Timestamp::MAX + Duration::from_nanos(1);
}

#[test]
fn timestamp_converts_from_and_to_system_time() {
    let now = SystemTime::now();
    let ts = Timestamp::from(now);
    let nanos = now.duration_since(UNIX_EPOCH).unwrap().as_nanos();
    assert_eq!(i128::from(ts.unix_nanos()), nanos as i128);
    assert_eq!(SystemTime::from(ts), now);
    let before = UNIX_EPOCH - secs(90);
    assert_eq!(Timestamp::from(before), t(-90));
    assert!(Timestamp::now() >= ts);
}

#[test]
fn timestamps_are_ordered_and_hashable() {
    let mut times = vec![t(3), t(-1), Timestamp::MAX, t(0), Timestamp::MIN, t(3)];
    times.sort();
    assert_eq!(
        times,
        [Timestamp::MIN, t(-1), t(0), t(3), t(3), Timestamp::MAX]
    );
    assert!(Timestamp::from_unix_nanos(1) > Timestamp::UNIX_EPOCH);
    let set: HashSet<Timestamp> = times.into_iter().collect();
    assert_eq!(set.len(), 5);
    assert!(set.contains(&t(3)));
    assert_eq!(Timestamp::default(), Timestamp::UNIX_EPOCH);
}

/// Errors cross threads (a supervisor may report them anywhere, or box
/// them as `dyn Error + Send + Sync`); handles stay `Unpin` (they are `Rc`
/// based, so `!Send`, like the loop's tasks).
#[test]
fn task_errors_are_send_sync_unpin_and_handles_unpin() {
    fn assert_all<T: Send + Sync + Unpin + std::error::Error + 'static>() {}
    fn assert_unpin<T: Unpin>() {}
    assert_all::<timecast::TaskError>();
    assert_all::<timecast::JoinError>();
    assert_unpin::<timecast::JoinHandle<std::cell::Cell<u8>>>();
    assert_unpin::<timecast::time::RunFuture<'static>>();
    assert_unpin::<timecast::time::Sleep>();
    assert_unpin::<timecast::source::Timer>();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(
        sim()
            .try_block_on(std::future::pending::<()>())
            .unwrap_err(),
    );
    assert!(boxed.to_string().contains("stuck"));
}

/// Two timers ticking at the same instants fire in the order they were
/// polled for each tick: here the order their tasks were spawned in.
#[test]
fn timers_due_together_fire_in_the_order_they_were_polled() {
    for first in ["a", "b"] {
        let el = sim();
        let order = Rc::new(RefCell::new(Vec::new()));
        let names = if first == "a" { ["a", "b"] } else { ["b", "a"] };
        for name in names {
            let order = order.clone();
            el.spawn(async move {
                let mut ticks = timer(secs(1)).until(t(2));
                while let Some(t) = ticks.next().await {
                    order.borrow_mut().push(format!("{name}@{}", t.unix_secs()));
                }
            });
        }
        el.run().unwrap();
        let [x, y] = names;
        assert_eq!(
            *order.borrow(),
            [
                format!("{x}@1"),
                format!("{y}@1"),
                format!("{x}@2"),
                format!("{y}@2")
            ]
        );
    }
}
