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
    // which panics on overflow; a huge speed is just "as fast as possible".
    assert_eq!(run(EventLoop::starting_at(start).speed(1e300)), reference);

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

#[test]
#[should_panic(expected = "positive finite")]
fn speed_zero_panics() {
    let _ = EventLoop::new().speed(0.0);
}

#[test]
#[should_panic(expected = "positive finite")]
fn speed_nan_panics() {
    let _ = EventLoop::new().speed(f64::NAN);
}

#[test]
#[should_panic(expected = "positive finite")]
fn speed_negative_panics() {
    let _ = EventLoop::new().speed(-1.0);
}

#[test]
#[should_panic(expected = "positive finite")]
fn speed_infinite_panics() {
    let _ = EventLoop::new().speed(f64::INFINITY);
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
    assert_eq!(el.block_on(other), "finished");
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
            (now(), inner.await)
        });
        let (a, b) = outer.await;
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
        handle.await;
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
/// was still running and refused to run again.
#[test]
fn a_loop_runs_again_after_an_on_live_callback_panicked() {
    let el = sim();
    el.on_live(|| panic!("live!"));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| el.run()));
    assert!(panicked.is_err());
    el.spawn(async { sleep(secs(1)).await });
    el.run().unwrap();
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
