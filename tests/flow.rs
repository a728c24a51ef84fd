//! Flows: supervision, restarts with backoff and limits, containment,
//! shutdown, errors, status and report, all in simulated time.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use timecast::flow::{Flow, FlowHandle, PipelineError, PipelineState, Restart};
use timecast::{now, process_stream, sleep, sleep_until, AsyncStream, EventLoop, Timestamp};

fn secs(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

fn millis(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

fn sim() -> EventLoop {
    EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated()
}

fn at_and_restarts(errors: &[PipelineError]) -> Vec<(Timestamp, u32)> {
    errors.iter().map(|e| (e.at, e.restarts)).collect()
}

#[test]
fn handle_and_errors_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FlowHandle>();
    send_sync::<PipelineError>();
    send_sync::<timecast::flow::FlowStatus>();
    send_sync::<timecast::flow::FlowReport>();
    send_sync::<Restart>();
    fn unpin<T: Unpin>() {}
    unpin::<timecast::flow::Shutdown>();
    unpin::<timecast::flow::UntilShutdown<futures::stream::Pending<()>>>();
}

/// A pipeline that fails 3 s into every run, backoff 1 s doubling to at
/// most 8 s: runs start at 0, 4, 9, 16, 27, 38 and fail at 3, 7, 12, 19,
/// 30, 41; the sixth restart is refused by the limit.
#[test]
fn restart_timeline_of_a_pipeline_failing_3s_into_each_run() {
    let starts = Rc::new(RefCell::new(Vec::new()));
    let log = starts.clone();
    let flow = Flow::new()
        .pipeline("feed", move || {
            log.borrow_mut().push(now());
            async {
                sleep(Duration::from_secs(3)).await;
                Err::<(), _>("connection reset")
            }
        })
        .restart(Restart::always())
        .backoff(Duration::from_secs(1), Duration::from_secs(8))
        .max_restarts(5)
        .within(Duration::from_secs(3600));
    let el = sim();
    let report = el.block_on(flow.run());
    assert_eq!(*starts.borrow(), [0, 4, 9, 16, 27, 38].map(secs));
    let feed = report.pipeline("feed").unwrap();
    assert_eq!(
        at_and_restarts(&feed.errors),
        [(3, 0), (7, 1), (12, 2), (19, 3), (30, 4), (41, 5)].map(|(t, r)| (secs(t), r))
    );
    assert!(feed.errors[..5].iter().all(|e| !e.fatal));
    assert!(feed.errors[5].fatal);
    assert_eq!(feed.state, PipelineState::Failed);
    assert_eq!(feed.restarts, 5);
    assert_eq!(el.now(), secs(41));
}

/// A pipeline that fails at t = 3 s and then at once after each rebuild:
/// restarts at 4, 6, 10, 18, 26, 34 (delays 1, 2, 4, 8, 8, 8 s).
#[test]
fn restart_timeline_of_a_pipeline_failing_at_3s_then_at_once() {
    let starts = Rc::new(RefCell::new(Vec::new()));
    let log = starts.clone();
    let flow = Flow::new()
        .pipeline_with_context("feed", move |ctx| {
            log.borrow_mut().push(now());
            async move {
                if ctx.restarts() == 0 {
                    sleep_until(secs(3)).await;
                }
                if ctx.restarts() == 6 {
                    return Ok(());
                }
                Err("bad gateway")
            }
        })
        .restart(Restart::on_failure().backoff(Duration::from_secs(1), Duration::from_secs(8)));
    let el = sim();
    let report = el.block_on(flow.run());
    assert_eq!(*starts.borrow(), [0, 4, 6, 10, 18, 26, 34].map(secs));
    let feed = report.pipeline("feed").unwrap();
    assert_eq!(
        at_and_restarts(&feed.errors),
        [(3, 0), (4, 1), (6, 2), (10, 3), (18, 4), (26, 5)].map(|(t, r)| (secs(t), r))
    );
    assert_eq!((feed.state, feed.restarts), (PipelineState::Done, 6));
    assert_eq!(el.now(), secs(34));
}

#[test]
fn backoff_resets_after_a_run_as_long_as_the_cap() {
    // Runs last 0 s, 0 s, then 10 s (past the 4 s cap), then 0 s: the
    // delay after the long run is back to 1 s.
    let starts = Rc::new(RefCell::new(Vec::new()));
    let log = starts.clone();
    let flow = Flow::new()
        .pipeline_with_context("p", move |ctx| {
            log.borrow_mut().push(now());
            async move {
                match ctx.restarts() {
                    2 => sleep(Duration::from_secs(10)).await,
                    4 => return Ok(()),
                    _ => {}
                }
                Err("boom")
            }
        })
        .restart(Restart::on_failure().backoff(Duration::from_secs(1), Duration::from_secs(4)));
    sim().block_on(flow.run());
    // 0 fail → +1 → 1 fail → +2 → 3 run 10 s → 13 fail → +1 → 14 fail → +2 → 16
    assert_eq!(*starts.borrow(), [0, 1, 3, 14, 16].map(secs));
}

/// The backoff doubles for every consecutive restart until it reaches its
/// cap, past 32 steps too (a factor beyond `u32`).
#[test]
fn backoff_keeps_doubling_past_32_consecutive_restarts_up_to_the_cap() {
    let p = Restart::always().backoff(Duration::from_nanos(1), Duration::from_secs(3600));
    assert_eq!(p.delay(31), Duration::from_nanos(1 << 31));
    // 2^40 ns (about 18 minutes) is below the 1 h cap.
    assert_eq!(p.delay(40), Duration::from_nanos(1 << 40));
    assert!(
        p.delay(33) > p.delay(32),
        "the backoff keeps growing until the cap"
    );
    assert_eq!(p.delay(60), Duration::from_secs(3600));
    assert_eq!(p.delay(200), Duration::from_secs(3600));
    assert_eq!(p.delay(u32::MAX), Duration::from_secs(3600));
    // Past `u64` nanoseconds: 1 ms · 2^70 = 2^70 / 1000 s.
    let p = Restart::always().backoff(Duration::from_millis(1), Duration::MAX);
    assert_eq!(
        p.delay(70),
        Duration::new(((1u128 << 70) / 1000) as u64, 424_000_000)
    );
    assert_eq!(p.delay(100), Duration::MAX);
}

#[test]
fn restart_limit_counts_restarts_within_the_period() {
    // At most 2 restarts within 10 s, failing at once, backoff 1 s: fails
    // at 0, 1, 2; the third failure (2 restarts at 0 and 1 within 10 s)
    // is final.
    let flow = Flow::new()
        .pipeline("tight", || async { Err::<(), _>("down") })
        .restart(
            Restart::always()
                .backoff(Duration::from_secs(1), Duration::from_secs(1))
                .max_restarts(2)
                .within(Duration::from_secs(10)),
        )
        // At most 1 restart within 10 s, failures 11 s apart: never more than one
        // restart within 10 s, so it runs until it succeeds.
        .pipeline_with_context("spaced", |ctx| async move {
            if ctx.restarts() == 5 {
                Ok(())
            } else {
                Err("down")
            }
        })
        .restart(
            Restart::on_failure()
                .backoff(Duration::from_secs(11), Duration::from_secs(11))
                .max_restarts(1)
                .within(Duration::from_secs(10)),
        );
    let report = sim().block_on(flow.run());
    let tight = report.pipeline("tight").unwrap();
    assert_eq!(tight.state, PipelineState::Failed);
    assert_eq!(
        at_and_restarts(&tight.errors),
        [(0, 0), (1, 1), (2, 2)].map(|(t, r)| (secs(t), r))
    );
    // The final failure says why it is final; the others are the error.
    let texts: Vec<_> = tight.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(
        texts,
        [
            "down",
            "down",
            "down; not restarted: its restart limit of 2 restarts within 10s is reached"
        ]
    );
    let spaced = report.pipeline("spaced").unwrap();
    assert_eq!((spaced.state, spaced.restarts), (PipelineState::Done, 5));
    assert_eq!(report.failed().collect::<Vec<_>>(), ["tight"]);
}

/// The texts count one restart in the singular.
#[test]
fn a_limit_of_one_restart_says_so() {
    let flow = Flow::new()
        .pipeline("once", || async { Err::<(), _>("down") })
        .restart(Restart::always().max_restarts(1));
    let handle = flow.handle();
    let report = sim().block_on(flow.run());
    let last = report.pipeline("once").unwrap().errors.last().unwrap();
    assert_eq!(
        last.to_string(),
        "pipeline `once` failed at 1970-01-01T00:00:01Z after 1 restart: down; not restarted: \
         its restart limit of 1 restart is reached"
    );
    let status = handle.status().to_string();
    assert!(
        status.contains("once: failed, 0 items, 1 restart"),
        "{status}"
    );
}

/// `max_restarts(2).within(ZERO)` with a zero backoff: every end is at
/// the same instant of the loop's clock, and the restarts decided at that
/// instant count, so the third end is final (a zero period does not
/// disable the limit). The escape hatch bounds a run that ignores it.
#[test]
fn a_zero_period_limits_the_restarts_at_one_instant() {
    let builds = Rc::new(Cell::new(0u32));
    let b = builds.clone();
    let flow = Flow::new()
        .pipeline("p", move || {
            b.set(b.get() + 1);
            let n = b.get();
            async move {
                if n > 1000 {
                    return Ok(()); // escape hatch: the limit did not stop it
                }
                Err::<(), _>("down")
            }
        })
        .restart(
            Restart::on_failure()
                .backoff(Duration::ZERO, Duration::ZERO)
                .max_restarts(2)
                .within(Duration::ZERO),
        );
    let el = sim();
    let report = el.block_on(flow.run());
    assert_eq!(builds.get(), 3, "2 restarts allowed");
    let p = &report.pipelines[0];
    assert_eq!((p.state, p.restarts), (PipelineState::Failed, 2));
    assert!(p.errors[2].fatal && !p.errors[1].fatal);
    assert_eq!(el.now(), secs(0));
}

#[test]
fn never_and_on_failure_and_always_after_a_normal_end() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let flow = Flow::new()
        .pipeline("never", || async { Err::<(), _>("x") })
        .restart(Restart::never())
        .pipeline("on_failure", || async { Ok::<_, String>(()) })
        .restart(Restart::on_failure())
        // `always` rebuilds a pipeline that ended normally, until the
        // limit (3 restarts) stops it.
        .pipeline("always", move || {
            r.set(r.get() + 1);
            async { Ok::<_, String>(()) }
        })
        .restart(Restart::always().max_restarts(3));
    let report = sim().block_on(flow.run());
    assert_eq!(
        report.pipeline("never").unwrap().state,
        PipelineState::Failed
    );
    assert_eq!(report.pipeline("never").unwrap().restarts, 0);
    assert_eq!(
        report.pipeline("on_failure").unwrap().state,
        PipelineState::Done
    );
    let always = report.pipeline("always").unwrap();
    assert_eq!(
        (always.state, always.restarts, runs.get()),
        (PipelineState::Failed, 3, 4)
    );
    assert!(
        always.errors[0]
            .error
            .contains("restart limit of 3 restarts"),
        "{:?}",
        always.errors
    );
}

/// Three replays; the second panics at its fifth event on its first run
/// (inside the `process_stream` handler, a task spawned on its behalf).
/// The two others keep their exact outputs; the second is rebuilt after
/// 1 s and replays in full.
#[test]
fn a_panic_in_one_of_three_pipelines_leaves_the_others_exact() {
    type Out = Rc<RefCell<Vec<(Timestamp, i64)>>>;
    let outs: Vec<Out> = (0..3).map(|_| Out::default()).collect();
    let mut flow = Flow::new();
    for (i, out) in outs.iter().enumerate() {
        let out = out.clone();
        flow = flow
            .pipeline_with_context(&format!("p{i}"), move |ctx| {
                let out = out.clone();
                let first_run = ctx.restarts() == 0;
                async move {
                    let past = (0..10).map(move |k| (secs(k), k * 10 + i as i64));
                    process_stream(move |ts: Timestamp, v: i64| {
                        if i == 1 && first_run && v == 41 {
                            panic!("bad record {v}");
                        }
                        out.borrow_mut().push((ts, v));
                    })
                    .past(ctx.past(past))
                    .await;
                    Ok::<_, String>(())
                }
            })
            .restart(Restart::on_failure().backoff(Duration::from_secs(1), Duration::from_secs(1)));
    }
    let el = sim();
    let report = el.block_on(flow.run());
    let expected = |i: i64| (0..10).map(|k| (secs(k), k * 10 + i)).collect::<Vec<_>>();
    assert_eq!(*outs[0].borrow(), expected(0));
    assert_eq!(*outs[2].borrow(), expected(2));
    // p1: 4 events, then the full replay after its restart.
    let mut p1 = expected(1)[..4].to_vec();
    p1.extend(expected(1));
    assert_eq!(*outs[1].borrow(), p1);
    assert_eq!(report.errors.len(), 1);
    let e = &report.errors[0];
    assert_eq!(
        (e.pipeline.as_str(), e.error.as_str()),
        ("p1", "bad record 41")
    );
    assert!(e.panicked && !e.fatal);
    assert_eq!((e.at, e.restarts), (secs(4), 0));
    assert!(report.is_ok());
    assert_eq!(report.pipeline("p1").unwrap().restarts, 1);
}

#[test]
fn a_panic_in_the_pipeline_future_itself_is_contained() {
    let other = Rc::new(Cell::new(0));
    let o = other.clone();
    let flow = Flow::new()
        .pipeline("panics", || async {
            sleep(Duration::from_secs(1)).await;
            let v: Vec<u8> = Vec::new();
            let _ = v[3];
            Ok::<_, String>(())
        })
        .restart(Restart::never())
        .pipeline("counts", move || {
            let o = o.clone();
            async move {
                for _ in 0..5 {
                    sleep(Duration::from_secs(1)).await;
                    o.set(o.get() + 1);
                }
                Ok::<_, String>(())
            }
        })
        .restart(Restart::never());
    let el = sim();
    let report = el.block_on(flow.run());
    assert_eq!(other.get(), 5);
    assert!(report.errors[0].panicked);
    assert!(report.errors[0].error.contains("index out of bounds"));
    assert_eq!(report.errors[0].at, secs(1));
    // The loop keeps running other tasks afterwards.
    el.spawn(async {});
    el.run().unwrap();
}

type Committed = Rc<Cell<Option<i64>>>;

/// A replay that commits its position after each event, so that a rebuilt
/// pipeline (or a new flow) resumes after it.
fn resumable_flow(committed: Committed, out: Rc<RefCell<Vec<i64>>>) -> Flow {
    Flow::new()
        .pipeline_with_context("replay", move |ctx| {
            let (committed, out) = (committed.clone(), out.clone());
            async move {
                let from = committed.get().map_or(0, |k| k + 1);
                let past = (from..1_000).map(|k| (millis(k * 100), k));
                process_stream(move |_ts: Timestamp, k: i64| {
                    let (committed, out) = (committed.clone(), out.clone());
                    async move {
                        sleep(Duration::from_millis(250)).await; // work in flight
                        out.borrow_mut().push(k);
                        committed.set(Some(k));
                    }
                })
                .past(ctx.past(past))
                .await;
                Ok::<_, String>(())
            }
        })
        .restart(Restart::on_failure())
}

#[test]
fn shutdown_mid_replay_finishes_the_item_in_flight_and_resumes_with_nothing_lost() {
    let committed = Committed::default();
    let out = Rc::new(RefCell::new(Vec::new()));
    let flow = resumable_flow(committed.clone(), out.clone());
    let handle = flow.handle();
    let el = sim();
    // Event k is handled from max(k·100 ms, end of k−1) for 250 ms: events
    // 0..=3 end at 250, 500, 750, 1000 ms; event 4 starts at 1 s. The
    // shutdown at 1.1 s lets event 4 finish (1.25 s) and takes no more.
    let stopper = handle.clone();
    el.spawn(async move {
        sleep_until(millis(1_100)).await;
        stopper.shutdown();
    });
    let report = el.block_on(flow.run());
    assert!(report.shut_down);
    assert_eq!(*out.borrow(), [0, 1, 2, 3, 4]);
    assert_eq!(committed.get(), Some(4));
    assert_eq!(el.now(), millis(1_250));
    let replay = report.pipeline("replay").unwrap();
    assert_eq!((replay.state, replay.restarts), (PipelineState::Done, 0));
    let status = handle.status();
    assert!(status.shutting_down);
    assert!(!status.pipelines[0].live);

    // Restarted (a new flow, as after a process restart): resumes after
    // the committed event, nothing lost, nothing twice.
    let flow = resumable_flow(committed.clone(), out.clone());
    let report = el.block_on(flow.run());
    assert!(report.is_ok());
    assert_eq!(*out.borrow(), (0..1_000).collect::<Vec<_>>());
}

#[test]
fn shutdown_ends_a_backoff_at_once_and_restarts_nothing() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let flow = Flow::new()
        .pipeline("failing", move || {
            r.set(r.get() + 1);
            async { Err::<(), _>("refused") }
        })
        .restart(Restart::always().backoff(Duration::from_secs(60), Duration::from_secs(60)));
    let handle = flow.handle();
    let el = sim();
    el.spawn(async move {
        sleep(Duration::from_secs(5)).await;
        handle.shutdown();
    });
    let report = el.block_on(flow.run());
    assert_eq!(runs.get(), 1);
    assert_eq!(el.now(), secs(5));
    assert_eq!(report.pipelines[0].state, PipelineState::Done);
    assert!(report.shut_down);
}

/// `fatal` is the decision when the failure happened: a failure that starts
/// a backoff is not fatal, in the errors stream as in the report, even when
/// a shutdown then cancels the restart; the pipeline's final state, `Done`,
/// tells that it was not restarted.
#[test]
fn a_failure_whose_restart_a_shutdown_cancels_stays_not_fatal_and_ends_done() {
    let flow = Flow::new()
        .pipeline("feed", || async {
            sleep(Duration::from_secs(1)).await;
            Err::<(), _>("connection refused")
        })
        .restart(Restart::on_failure().backoff(Duration::from_secs(10), Duration::from_secs(10)));
    let handle = flow.handle();
    let mut errors = handle.errors();
    let el = sim();
    el.spawn(async move {
        sleep(Duration::from_secs(5)).await;
        handle.shutdown();
    });
    let report = el.block_on(flow.run());
    assert_eq!(el.now(), secs(5));
    let feed = report.pipeline("feed").unwrap();
    assert_eq!(
        (feed.state, feed.restarts, feed.errors.len()),
        (PipelineState::Done, 0, 1)
    );
    assert!(!feed.errors[0].fatal, "{:?}", feed.errors[0]);
    assert_eq!(errors.try_recv().ok().as_ref(), Some(&feed.errors[0]));
}

#[test]
fn a_pipeline_ignoring_shutdown_is_aborted_after_the_grace_period() {
    let dropped = Rc::new(Cell::new(false));
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let d = dropped.clone();
    let flow = Flow::new()
        .pipeline("stubborn", move || {
            let flag = Flag(d.clone());
            async move {
                let _flag = flag;
                std::future::pending::<Result<(), String>>().await
            }
        })
        .pipeline_with_context("polite", |ctx| async move {
            ctx.shutdown().await;
            Ok::<_, String>(())
        })
        .shutdown_grace(Duration::from_secs(2));
    let handle = flow.handle();
    let el = sim();
    el.spawn(async move {
        sleep(Duration::from_secs(1)).await;
        handle.shutdown();
    });
    let report = el.block_on(flow.run());
    assert!(dropped.get());
    assert_eq!(el.now(), secs(3));
    let stubborn = report.pipeline("stubborn").unwrap();
    assert_eq!(stubborn.state, PipelineState::Failed);
    assert!(stubborn.errors[0]
        .error
        .contains("shutdown grace period of 2s"));
    assert_eq!(
        report.pipeline("polite").unwrap().state,
        PipelineState::Done
    );
}

/// A subscriber of the errors stream that lags (1024 failures buffered; it
/// starts reading at 100 s) makes the supervisor wait for it only until the
/// shutdown: the shutdown at 1 s is seen, the grace period runs from it,
/// and the failures that do not fit are dropped from the stream but kept
/// in the report. (The pipeline sleeps a zero duration after each report,
/// which lets the supervisor publish each in turn.)
#[test]
fn a_lagging_errors_subscriber_holds_up_neither_shutdown_nor_its_grace_period() {
    let flow = Flow::new()
        .pipeline_with_context("noisy", |ctx| async move {
            for i in 0..1100 {
                ctx.report(format!("skipped record {i}"));
                sleep(Duration::ZERO).await;
            }
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        })
        .shutdown_grace(Duration::from_secs(5));
    let handle = flow.handle();
    let mut errors = handle.errors();
    let received = Rc::new(RefCell::new(Vec::new()));
    let r = received.clone();
    let el = sim();
    el.spawn(async move {
        sleep(Duration::from_secs(100)).await;
        while let Some(e) = errors.next().await {
            r.borrow_mut().push(e);
        }
    });
    el.spawn(async move {
        sleep(Duration::from_secs(1)).await;
        handle.shutdown();
    });
    let report = el.block_on(flow.run());
    assert_eq!(
        el.now(),
        secs(6),
        "the grace period ran from the shutdown at 1 s"
    );
    let noisy = &report.pipelines[0];
    assert_eq!(noisy.state, PipelineState::Failed);
    // Every report, then the abort: all counted, the latest 1,000 kept.
    assert_eq!(noisy.error_count, 1101);
    assert_eq!(noisy.errors.len(), 1000);
    assert_eq!(noisy.errors[0].error, "skipped record 101");
    assert!(noisy.errors[999].error.contains("shutdown grace period"));
    // The stream kept what fitted, in order, then ended.
    el.run().unwrap();
    let received = received.borrow();
    assert_eq!(received.len(), 1024);
    assert!((0..1024).all(|i| received[i].error == format!("skipped record {i}")));
    assert_eq!(received[101..], noisy.errors[..923]);
}

#[test]
fn shutdown_from_another_thread_wakes_the_flow() {
    let flow = Flow::new().pipeline_with_context("server", |ctx| async move {
        ctx.shutdown().await;
        Ok::<_, String>(())
    });
    let handle = flow.handle();
    let el = EventLoop::new();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        handle.shutdown();
    });
    let report = el.block_on(flow.run());
    t.join().unwrap();
    assert!(report.shut_down && report.is_ok());
}

#[test]
fn errors_stream_carries_every_failure_in_order_then_ends() {
    let flow = Flow::new()
        .pipeline_with_context("a", |ctx| async move {
            sleep(Duration::from_secs(1)).await;
            ctx.report("skipped a bad line");
            sleep(Duration::from_secs(1)).await;
            if ctx.restarts() == 0 {
                Err("disk full".to_owned())
            } else {
                Ok(())
            }
        })
        .restart(Restart::on_failure().backoff(Duration::from_secs(1), Duration::from_secs(1)))
        .pipeline("b", || async {
            sleep(Duration::from_millis(1_500)).await;
            if true {
                panic!("b broke");
            }
            Ok::<_, String>(())
        })
        .restart(Restart::never());
    let handle = flow.handle();
    let mut errors = handle.errors();
    let el = sim();
    let report = el.block_on(flow.run());
    let received: Vec<PipelineError> = el.block_on(async move {
        let mut v = Vec::new();
        while let Some(e) = errors.next().await {
            v.push(e);
        }
        v
    });
    assert_eq!(received, report.errors);
    let summary: Vec<_> = received
        .iter()
        .map(|e| {
            (
                e.pipeline.as_str(),
                e.error.as_str(),
                e.restarts,
                e.at,
                e.panicked,
                e.fatal,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", "skipped a bad line", 0, secs(1), false, false),
            ("b", "b broke", 0, millis(1_500), true, true),
            ("a", "disk full", 0, secs(2), false, false),
            ("a", "skipped a bad line", 1, secs(4), false, false),
        ]
    );
    assert_eq!(
        received[1].to_string(),
        "pipeline `b` panicked at 1970-01-01T00:00:01.500Z after 0 restarts: b broke"
    );
    // A subscriber after the run sees the stream ended.
    let mut late = handle.errors();
    assert!(late.try_recv().is_err());
    assert!(late.is_closed());
}

#[test]
fn status_follows_the_pipelines_through_their_states() {
    let flow = Flow::new()
        .pipeline_with_context("p", |ctx| async move {
            ctx.add_items(10);
            sleep(Duration::from_secs(2)).await;
            if ctx.restarts() == 0 {
                Err("oops")
            } else {
                Ok(())
            }
        })
        .restart(Restart::on_failure().backoff(Duration::from_secs(3), Duration::from_secs(3)));
    let handle = flow.handle();
    let el = sim();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let h = handle.clone();
    el.spawn(async move {
        for t in [1, 3, 6] {
            sleep_until(secs(t)).await;
            let status = h.status();
            let p = &status.pipelines[0];
            s.borrow_mut().push((
                t,
                p.state,
                p.restarts,
                p.items,
                p.last_error.clone().map(|e| e.error),
            ));
        }
    });
    el.block_on(flow.run());
    let status = handle.status();
    let p = &status.pipelines[0];
    seen.borrow_mut().push((
        7,
        p.state,
        p.restarts,
        p.items,
        p.last_error.clone().map(|e| e.error),
    ));
    let oops = Some("oops".to_owned());
    assert_eq!(
        *seen.borrow(),
        [
            (1, PipelineState::Running, 0, 10, None),
            (3, PipelineState::Restarting, 0, 10, oops.clone()),
            (6, PipelineState::Running, 1, 20, oops.clone()),
            (7, PipelineState::Done, 1, 20, oops),
        ]
    );
}

#[test]
fn status_reports_replay_progress_and_lag_once_live() {
    let flow = Flow::new().pipeline_with_context("replay", |ctx| async move {
        ctx.past_end(secs(99));
        let past = (0..100).map(|k| (secs(k), k));
        let live = futures::stream::iter([(secs(150), 150)]);
        process_stream(|_ts: Timestamp, _k: i64| {})
            .past(ctx.past(past))
            .live(ctx.live(live))
            .await;
        Ok::<_, String>(())
    });
    let handle = flow.handle();
    let el = sim();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s, h) = (seen.clone(), handle.clone());
    el.spawn(async move {
        sleep_until(Timestamp::from_unix_millis(49_500)).await;
        let status = h.status();
        let p = &status.pipelines[0];
        s.borrow_mut()
            .push((p.progress(), p.live, p.past_len, p.lag_at(secs(1_000))));
    });
    el.block_on(flow.run());
    // At 49.5 s, events 0..=49 are handled and event 50 is pulled (one
    // ahead): reached 50 s of 0..99 s.
    let (progress, live, len, lag) = seen.borrow()[0];
    assert!(
        (progress.unwrap() - 50.0 / 99.0).abs() < 1e-9,
        "{progress:?}"
    );
    assert_eq!((live, len, lag), (false, Some(100), None));
    let status = handle.status();
    let p = &status.pipelines[0];
    assert_eq!((p.items, p.replayed, p.live), (101, 100, true));
    assert_eq!(p.reached, Some(secs(150)));
    assert_eq!(p.progress(), Some(1.0));
    assert_eq!(p.lag_at(secs(160)), Some(Duration::from_secs(10)));
    assert!(status
        .to_string()
        .starts_with("replay: done, 101 items, 0 restarts"));
}

/// aiopype's SyncProtocol is a rendezvous between stages, its
/// AsyncProtocol a queue: both keep every message, in order, under a
/// flow.
#[test]
fn rendezvous_and_buffered_stages_keep_every_message() {
    for capacity in [0, 4] {
        let out = Rc::new(RefCell::new(Vec::new()));
        let topic: AsyncStream<(Timestamp, i64)> = if capacity == 0 {
            AsyncStream::new()
        } else {
            AsyncStream::with_capacity(capacity)
        };
        let consumer = Rc::new(RefCell::new(Some(topic.subscribe())));
        let o = out.clone();
        let flow = Flow::new()
            .pipeline("source", move || {
                let topic = topic.clone();
                async move {
                    let past = (0..200).map(|k| (millis(k), k));
                    let t = topic.clone();
                    process_stream(move |ts: Timestamp, k: i64| {
                        let t = t.clone();
                        async move {
                            t.put((ts, k)).await.expect("the processor is subscribed");
                        }
                    })
                    .past(past)
                    .await;
                    topic.close();
                    Ok::<_, String>(())
                }
            })
            .restart(Restart::never())
            .pipeline("processor", move || {
                let o = o.clone();
                let consumer = consumer.borrow_mut().take();
                async move {
                    let mut consumer = consumer.ok_or("the processor runs once")?;
                    while let Some((ts, k)) = consumer.next().await {
                        // A slow processor: the source waits, nothing drops.
                        sleep(Duration::from_millis(3)).await;
                        o.borrow_mut().push((ts, k * 2));
                    }
                    Ok::<_, &str>(())
                }
            })
            .restart(Restart::never());
        let report = sim().block_on(flow.run());
        assert!(report.is_ok(), "{:?}", report.errors);
        let expected: Vec<_> = (0..200).map(|k| (millis(k), k * 2)).collect();
        assert_eq!(*out.borrow(), expected, "capacity {capacity}");
    }
}

#[test]
fn the_loop_counts_events_dispatched_and_timers_fired() {
    let el = sim();
    el.spawn(process_stream(|_ts: Timestamp, _v: i64| {}).past((1..=3).map(|s| (secs(s), s))));
    el.spawn(async {
        sleep(Duration::from_secs(2)).await;
        sleep(Duration::from_secs(2)).await;
    });
    el.run().unwrap();
    assert_eq!(
        (el.events_dispatched(), el.timers_fired(), el.late_events()),
        (3, 2, 0)
    );
}

#[test]
fn shutdown_before_the_run_starts_no_pipeline() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let flow = Flow::new().pipeline("p", move || {
        r.set(r.get() + 1);
        async { Ok::<_, String>(()) }
    });
    flow.handle().shutdown();
    let report = sim().block_on(flow.run());
    assert_eq!(runs.get(), 0);
    assert!(report.shut_down);
    assert_eq!(report.pipelines[0].state, PipelineState::Done);
}

/// With no handle, nothing can shut the flow down: a pipeline that nothing
/// can wake is reported stuck, by name, as any task is.
#[test]
fn without_a_handle_a_stuck_pipeline_is_reported() {
    let flow = Flow::new()
        .pipeline_with_context("waits-forever", |ctx| async move {
            ctx.report("about to wait");
            let _ = futures::future::join(ctx.shutdown(), std::future::pending::<()>()).await;
            Ok::<_, String>(())
        })
        .pipeline("done", || async { Ok::<_, String>(()) });
    let el = sim();
    let err = el.try_block_on(flow.run()).unwrap_err();
    assert!(err.is_stuck());
    assert_eq!(err.tasks(), ["block_on", "waits-forever"]);
}

#[test]
fn a_panicking_factory_fails_that_build_only() {
    let flow = Flow::new()
        .pipeline_with_context("config", |ctx| {
            if ctx.restarts() == 0 {
                panic!("missing setting `url`");
            }
            async { Ok::<_, String>(()) }
        })
        .restart(Restart::on_failure());
    let el = sim();
    let report = el.block_on(flow.run());
    let config = report.pipeline("config").unwrap();
    assert_eq!((config.state, config.restarts), (PipelineState::Done, 1));
    let e = &config.errors[0];
    assert!(e.panicked && !e.fatal);
    assert_eq!(
        (e.error.as_str(), e.at),
        ("missing setting `url`", Timestamp::UNIX_EPOCH)
    );
}

/// A replay whose state and outputs live in a store: shut down mid-replay,
/// the flow commits the store before `run` returns; reopened (as after a
/// process restart), the pipeline resumes after the last committed event,
/// and the output table holds every event exactly once.
#[cfg(feature = "store")]
#[test]
fn shutdown_mid_replay_with_a_store_commits_and_resumes_with_nothing_lost(
) -> Result<(), timecast::store::StoreError> {
    use timecast::store::{CommitPolicy, Store};

    fn store_flow(store: &Store) -> Result<Flow, timecast::store::StoreError> {
        let out = store.table::<i64, i64>("out")?;
        let position = store.table::<String, i64>("position")?;
        Ok(Flow::new()
            .pipeline_with_context("replay", move |ctx| {
                let (out, position) = (out.clone(), position.clone());
                async move {
                    let from = position.get(&"replay".to_string())?.map_or(0, |k| k + 1);
                    let past = (from..1_000).map(|k| (millis(k * 100), k));
                    process_stream(move |_ts: Timestamp, k: i64| {
                        let (out, position) = (out.clone(), position.clone());
                        async move {
                            sleep(Duration::from_millis(250)).await; // work in flight
                            out.put(&k, &(k * k)).unwrap();
                            position.put(&"replay".to_string(), &k).unwrap();
                        }
                    })
                    .past(ctx.past(past))
                    .await;
                    Ok::<_, timecast::store::StoreError>(())
                }
            })
            .store(store))
    }

    let dir = std::env::temp_dir().join(format!("timecast-flow-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = Store::open(&dir)?;
        store.set_commit_policy(CommitPolicy::manual());
        let flow = store_flow(&store)?;
        let stopper = flow.handle();
        let el = sim();
        el.spawn(async move {
            sleep_until(millis(1_100)).await;
            stopper.shutdown();
        });
        let report = el.block_on(flow.run());
        assert!(report.shut_down && report.is_ok(), "{report:?}");
        // The flow committed what the pipeline wrote, in one commit.
        assert_eq!((store.pending(), store.commits()), (0, 1));
        assert_eq!(store.table::<i64, i64>("out")?.len()?, 5);
    }
    // A new process: reopen, resume, finish.
    let store = Store::open(&dir)?;
    store.set_commit_policy(CommitPolicy::manual());
    let report = sim().block_on(store_flow(&store)?.run());
    assert!(report.is_ok());
    assert_eq!(store.pending(), 0);
    let out: Vec<(i64, i64)> = store
        .table::<i64, i64>("out")?
        .range(..)?
        .collect::<Result<_, _>>()?;
    assert_eq!(out, (0..1_000).map(|k| (k, k * k)).collect::<Vec<_>>());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A report wakes the run through the waker it was polled with: polled by
/// a combinator with a waker of its own (here `FuturesUnordered`), the run
/// publishes the report at once, not at the next unrelated event.
#[test]
fn a_report_reaches_the_errors_stream_at_once_when_run_is_polled_by_a_combinator() {
    use futures::stream::FuturesUnordered;

    let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
        ctx.report("hello");
        sleep(Duration::from_secs(100)).await;
        Ok::<_, String>(())
    });
    let handle = flow.handle();
    let mut errors = handle.errors();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    let el = sim();
    el.spawn(async move {
        let e = errors.next().await;
        g.set(e.map(|e| (e.error, now())));
    });
    let report = el.block_on(async move {
        let mut set = FuturesUnordered::new();
        set.push(flow.run());
        set.next().await
    });
    drop(handle);
    assert!(report.is_some_and(|r| r.is_ok()));
    assert_eq!(
        got.take(),
        Some(("hello".to_owned(), Timestamp::UNIX_EPOCH))
    );
    assert_eq!(el.now(), secs(100));
}

/// Runs `flow` on a simulated loop on a thread of its own, with its last
/// handle dropped at 1 s: `Ok(Some(is_stuck))` if the run ended with an
/// error at 1 s, `Ok(None)` if it returned a report, `Err` if it did not
/// end in 20 s of wall-clock time (it hangs: the simulated run itself takes
/// microseconds).
fn run_dropping_the_last_handle_at_1s(
    make: impl FnOnce() -> Flow + Send + 'static,
) -> Result<Option<bool>, &'static str> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let flow = make();
        let handle = flow.handle();
        let el = sim();
        el.spawn(async move {
            sleep(Duration::from_secs(1)).await;
            drop(handle);
        });
        let r = el.try_block_on(flow.run());
        let _ = tx.send((r.err().map(|e| e.is_stuck()), el.now()));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok((stuck, at)) => {
            assert_eq!(at, secs(1));
            Ok(stuck)
        }
        Err(_) => Err("the simulated loop hangs instead of reporting the stuck pipeline"),
    }
}

/// With no handle left, nothing can shut the flow down: once the last
/// handle is dropped mid-run, the supervisor holds no waker, and a
/// pipeline that nothing can wake is reported stuck.
#[test]
fn dropping_the_last_handle_mid_run_lets_a_stuck_pipeline_be_reported() {
    let stuck = run_dropping_the_last_handle_at_1s(|| {
        Flow::new().pipeline("forever", || async {
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        })
    });
    assert_eq!(stuck, Ok(Some(true)));
}

/// Dropping the last handle also releases the wakers of the pipelines
/// waiting for the shutdown signal (`shutdown()`, `until_shutdown`).
#[test]
fn dropping_the_last_handle_mid_run_releases_the_shutdown_waiters() {
    let stuck = run_dropping_the_last_handle_at_1s(|| {
        Flow::new()
            .pipeline_with_context("signal", |ctx| async move {
                ctx.shutdown().await;
                Ok::<_, String>(())
            })
            .pipeline_with_context("stream", |ctx| async move {
                let mut s = ctx.until_shutdown(futures::stream::pending::<()>());
                s.next().await;
                Ok::<_, String>(())
            })
    });
    assert_eq!(stuck, Ok(Some(true)));
}

/// A pipeline's panic is contained even when it comes from the pipeline's
/// future being dropped by the abort after the shutdown grace period: it
/// is that pipeline's failure in the report, and the run ends normally.
#[test]
fn a_panic_while_a_pipeline_is_aborted_after_the_grace_period_is_its_failure() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom while dropped");
        }
    }
    let flow = Flow::new()
        .pipeline("stubborn", || async {
            let _bomb = Bomb;
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        })
        .pipeline_with_context("polite", |ctx| async move {
            ctx.shutdown().await;
            Ok::<_, String>(())
        })
        .shutdown_grace(Duration::from_secs(1));
    let handle = flow.handle();
    let el = sim();
    el.spawn(async move {
        sleep(Duration::from_secs(5)).await;
        handle.shutdown();
    });
    let report = el
        .try_block_on(flow.run())
        .expect("the run ends with a report, the panic contained");
    assert!(report.shut_down);
    assert_eq!(el.now(), secs(6));
    let stubborn = report.pipeline("stubborn").unwrap();
    assert_eq!(stubborn.state, PipelineState::Failed);
    let e = &stubborn.errors[..];
    assert_eq!(e.len(), 1);
    assert!(e[0].panicked && e[0].fatal);
    assert!(
        e[0].error.contains("shutdown grace period of 1s"),
        "{}",
        e[0].error
    );
    assert!(e[0].error.contains("boom while dropped"), "{}", e[0].error);
    assert_eq!(
        report.pipeline("polite").unwrap().state,
        PipelineState::Done
    );
}

/// Dropping a run aborts its pipelines: a panic while one of them is
/// dropped is contained too, and the other pipelines are still aborted.
#[test]
fn a_panic_while_a_dropped_run_aborts_its_pipelines_is_contained() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom while dropped");
        }
    }
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let flow = Flow::new()
        .pipeline("bomb", || async {
            let _bomb = Bomb;
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        })
        .pipeline("flag", move || {
            let flag = Flag(d.clone());
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
                Ok::<_, String>(())
            }
        });
    let el = sim();
    let r = el.try_block_on(async move {
        let run = std::pin::pin!(flow.run());
        let timeout = std::pin::pin!(sleep(Duration::from_secs(1)));
        matches!(
            futures::future::select(run, timeout).await,
            futures::future::Either::Right(_)
        )
    });
    assert_eq!(r.ok(), Some(true));
    assert!(dropped.get());
    assert_eq!(el.now(), secs(1));
}

/// Before its run starts, a flow's pipelines are `NotStarted`, and stay so
/// if the run is dropped unpolled; its first poll starts them.
#[test]
fn pipelines_are_not_started_until_the_run_is_first_polled() {
    let flow = Flow::new()
        .pipeline("a", std::future::pending::<Result<(), String>>)
        .pipeline("b", std::future::pending::<Result<(), String>>);
    let handle = flow.handle();
    let states =
        |h: &FlowHandle| -> Vec<_> { h.status().pipelines.iter().map(|p| p.state).collect() };
    use PipelineState::{NotStarted, Running};
    assert_eq!(states(&handle), [NotStarted, NotStarted]);
    assert_eq!(NotStarted.to_string(), "not started");
    assert!(!NotStarted.is_finished());
    drop(flow.run());
    assert_eq!(states(&handle), [NotStarted, NotStarted]);

    let flow = Flow::new().pipeline("a", std::future::pending::<Result<(), String>>);
    let handle = flow.handle();
    let el = sim();
    let h = handle.clone();
    let seen = el.block_on(async move {
        let run = Box::pin(flow.run());
        let timeout = Box::pin(sleep(Duration::from_secs(1)));
        match futures::future::select(run, timeout).await {
            futures::future::Either::Left(_) => panic!("the run cannot end"),
            futures::future::Either::Right((_, _run)) => states(&h),
        }
    });
    assert_eq!(seen, [Running]);
}

/// Once its run is dropped, a flow's pipelines are aborted: the status no
/// longer says `Running` or `Restarting`, but `Failed`, with a last error
/// saying why (and the panic of a future that panicked when dropped).
#[test]
fn status_after_a_dropped_run_reports_its_unfinished_pipelines_failed() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom while dropped");
        }
    }
    let flow = Flow::new()
        .pipeline("forever", std::future::pending::<Result<(), String>>)
        .pipeline("flaky", || async { Err::<(), _>("refused") })
        .restart(Restart::on_failure().backoff(Duration::from_secs(60), Duration::from_secs(60)))
        .pipeline("bomb", || async {
            let _bomb = Bomb;
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        })
        .pipeline("quick", || async { Ok::<_, String>(()) });
    let handle = flow.handle();
    let el = sim();
    let h = handle.clone();
    let r = el.try_block_on(async move {
        let run = Box::pin(flow.run());
        let timeout = Box::pin(sleep(Duration::from_secs(1)));
        match futures::future::select(run, timeout).await {
            futures::future::Either::Left(_) => panic!("the run cannot end"),
            futures::future::Either::Right(((), run)) => {
                let status = h.status();
                let states: Vec<_> = status.pipelines.iter().map(|p| p.state).collect();
                drop(run);
                states
            }
        }
    });
    use PipelineState::{Done, Failed, Restarting, Running};
    assert_eq!(r.ok(), Some(vec![Running, Restarting, Running, Done]));
    let status = handle.status();
    let summary: Vec<_> = status
        .pipelines
        .iter()
        .filter(|p| p.name != "quick")
        .map(|p| {
            let e = p.last_error.as_ref().unwrap();
            (p.name.as_str(), p.state, e.at, e.fatal, e.panicked)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("forever", Failed, secs(1), true, false),
            ("flaky", Failed, secs(1), true, false),
            ("bomb", Failed, secs(1), true, true),
        ],
        "{status:?}"
    );
    for p in &status.pipelines[..3] {
        let error = &p.last_error.as_ref().unwrap().error;
        assert!(error.contains("run was dropped"), "{error}");
    }
    assert!(status.pipelines[2]
        .last_error
        .as_ref()
        .unwrap()
        .error
        .ends_with("boom while dropped"));
    let quick = &status.pipelines[3];
    assert_eq!((quick.state, quick.last_error.as_ref()), (Done, None));
}

/// A pipeline of `try_handle` whose handler fails is supervised as any
/// failing pipeline: reported with the handler's error, rebuilt after the
/// backoff, and its second run (the bad input fixed) ends normally.
#[test]
fn a_failing_handler_fails_its_pipeline_which_is_restarted() {
    use timecast::sink::try_handle;

    let runs = Rc::new(Cell::new(0));
    let sum = Rc::new(Cell::new(0));
    let (r, s) = (runs.clone(), sum.clone());
    let flow = Flow::new()
        .pipeline("parse", move || {
            r.set(r.get() + 1);
            let lines = if r.get() == 1 {
                ["1", "2", "x", "4"]
            } else {
                ["1", "2", "3", "4"]
            };
            let s = s.clone();
            let ticks = timecast::timer(Duration::from_secs(1)).zip(futures::stream::iter(lines));
            try_handle(ticks, |(_, line): (Timestamp, &str)| {
                line.parse::<u32>().map(Some)
            })
            .sink(move |n| s.set(s.get() + n))
            .run()
        })
        .restart(Restart::on_failure())
        .backoff(Duration::from_secs(2), Duration::from_secs(8));
    let el = sim();
    let report = el.block_on(flow.run());
    let parse = report.pipeline("parse").unwrap();
    assert_eq!(runs.get(), 2);
    assert_eq!(parse.errors.len(), 1);
    assert_eq!(
        parse.errors[0].error,
        "the handler failed: invalid digit found in string"
    );
    assert_eq!(parse.errors[0].at, secs(3));
    assert_eq!(parse.state, PipelineState::Done);
    assert_eq!(sum.get(), 1 + 2 + 1 + 2 + 3 + 4);
    assert_eq!(el.now(), secs(3 + 2 + 4));
}

/// A flow left running keeps the latest `ERROR_HISTORY` errors, per
/// pipeline and in all, and counts every one: a pipeline failing 1,000
/// times and reporting 1,001 times, beside a quiet one that reports 100.
#[test]
fn reports_keep_the_latest_errors_and_count_them_all() {
    use timecast::flow::FlowReport;

    let n = FlowReport::ERROR_HISTORY;
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let flow = Flow::new()
        .pipeline_with_context("flapping", move |ctx| {
            r.set(r.get() + 1);
            let run = r.get();
            async move {
                ctx.report(format!("report {run}"));
                sleep(Duration::from_secs(1)).await;
                if run <= n {
                    Err(format!("failure {run}"))
                } else {
                    Ok(())
                }
            }
        })
        .restart(Restart::on_failure())
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .pipeline_with_context("quiet", |ctx| async move {
            for i in 1..=100 {
                sleep(Duration::from_millis(1500)).await;
                ctx.report(format!("quiet {i}"));
            }
            Ok::<_, String>(())
        })
        .restart(Restart::never());
    let el = sim();
    let report = el.block_on(flow.run());
    let flapping = report.pipeline("flapping").unwrap();
    assert_eq!(flapping.state, PipelineState::Done);
    assert_eq!(runs.get(), n + 1);
    // Reports and failures alternate: report 1, failure 1, …, report n,
    // failure n, report n + 1; the last n of them are kept.
    assert_eq!(flapping.error_count, 2 * n as u64 + 1);
    assert_eq!(flapping.errors.len(), n);
    let texts: Vec<&str> = flapping.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(texts[0], format!("failure {}", n / 2 + 1));
    assert_eq!(texts[n - 1], format!("report {}", n + 1));
    let quiet = report.pipeline("quiet").unwrap();
    assert_eq!((quiet.error_count, quiet.errors.len()), (100, 100));
    assert_eq!(quiet.errors[99].error, "quiet 100");
    assert_eq!(report.error_count, 2 * n as u64 + 1 + 100);
    assert_eq!(report.errors.len(), n);
    let last = report.errors.last().unwrap();
    assert_eq!(last.error, format!("report {}", n + 1));
    assert!(report.errors.windows(2).all(|w| w[0].at <= w[1].at));
}

/// A subscriber of the errors stream that never reads, then is dropped
/// while the supervisor waits for it: the supervisor goes on (the failure
/// it was putting is for no one), restarts resume and the run ends.
#[test]
fn dropping_a_lagging_errors_subscriber_releases_the_supervisor() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let flow = Flow::new()
        .pipeline_with_context("noisy", move |ctx| {
            r.set(r.get() + 1);
            let run = r.get();
            async move {
                for i in 0..1100 {
                    ctx.report(format!("skipped record {i}"));
                    sleep(Duration::from_millis(1)).await;
                }
                if run == 1 {
                    Err("lost the connection".to_string())
                } else {
                    Ok(())
                }
            }
        })
        .restart(Restart::on_failure())
        .backoff(Duration::from_secs(1), Duration::from_secs(1));
    let errors = flow.handle().errors();
    let el = sim();
    el.spawn(async move {
        sleep(Duration::from_secs(5)).await;
        drop(errors);
    });
    // Without a deadline, a supervisor stuck on its put would hang the test.
    let report = el
        .block_on(async move {
            let run = std::pin::pin!(flow.run());
            let deadline = std::pin::pin!(sleep(Duration::from_secs(3600)));
            match futures::future::select(run, deadline).await {
                futures::future::Either::Left((report, _)) => Some(report),
                futures::future::Either::Right(_) => None,
            }
        })
        .expect("the run ends: nothing waits for the dropped subscriber");
    let noisy = report.pipeline("noisy").unwrap();
    assert_eq!(runs.get(), 2);
    assert_eq!(noisy.state, PipelineState::Done);
    assert_eq!(noisy.error_count, 2201);
    // The failure at 1.1 s was published once the subscriber left at 5 s.
    assert_eq!(el.now(), millis(5000 + 1000 + 1100));
}

/// While the supervisor waits for a subscriber that lags, the errors
/// reported meanwhile wait in a queue that keeps the latest
/// `ERROR_HISTORY`: 3,000 reports, one a millisecond, against a
/// subscriber that reads from 100 s on. It receives the 1,024 that fit
/// its buffer, the one the supervisor was putting, then the latest 1,000;
/// the 975 between were dropped, and the report counts them.
#[test]
fn reports_waiting_for_a_lagging_subscriber_keep_the_latest() {
    use timecast::flow::FlowReport;

    let flow = Flow::new().pipeline_with_context("noisy", |ctx| async move {
        for i in 0..3000 {
            ctx.report(format!("{i}"));
            sleep(Duration::from_millis(1)).await;
        }
        Ok::<_, String>(())
    });
    let mut errors = flow.handle().errors();
    let received = Rc::new(RefCell::new(Vec::new()));
    let r = received.clone();
    let el = sim();
    el.spawn(async move {
        sleep(Duration::from_secs(100)).await;
        while let Some(e) = errors.next().await {
            r.borrow_mut().push(e.error.parse::<u32>().unwrap());
        }
    });
    let report = el.block_on(flow.run());
    el.run().unwrap();
    let expected: Vec<u32> = (0..1025).chain(2000..3000).collect();
    assert_eq!(*received.borrow(), expected);
    let noisy = report.pipeline("noisy").unwrap();
    assert_eq!(noisy.error_count, 3000);
    assert_eq!(report.error_count, 3000);
    assert_eq!(noisy.errors.len(), FlowReport::ERROR_HISTORY);
    assert_eq!(noisy.errors[0].error, "2000");
}

/// A burst of reports from one pipeline, with no await between them,
/// neither pushes another pipeline's errors out of the report nor loses
/// any for a subscriber that reads them all as they come.
#[test]
fn a_burst_of_reports_loses_nothing_for_a_reader_nor_another_pipelines_errors() {
    use timecast::flow::FlowReport;

    let n = FlowReport::ERROR_HISTORY;
    let flow = Flow::new()
        .pipeline_with_context("quiet", |ctx| async move {
            ctx.report("the one quiet error");
            Ok::<_, String>(())
        })
        .pipeline_with_context("burst", move |ctx| async move {
            for i in 0..3 * n {
                ctx.report(format!("{i}"));
            }
            Ok::<_, String>(())
        });
    let mut errors = flow.handle().errors();
    let received = Rc::new(RefCell::new(Vec::new()));
    let r = received.clone();
    let el = sim();
    el.spawn(async move {
        while let Some(e) = errors.next().await {
            r.borrow_mut().push(e.error);
        }
    });
    let report = el.block_on(flow.run());
    el.run().unwrap();
    let quiet = report.pipeline("quiet").unwrap();
    assert_eq!((quiet.error_count, quiet.errors.len()), (1, 1));
    assert_eq!(quiet.errors[0].error, "the one quiet error");
    let burst = report.pipeline("burst").unwrap();
    assert_eq!(burst.error_count, 3 * n as u64);
    assert_eq!(burst.errors[0].error, format!("{}", 2 * n));
    assert_eq!(report.error_count, 3 * n as u64 + 1);
    let received = received.borrow();
    assert_eq!(received.len(), 3 * n + 1, "every report reached the reader");
    let burst_received: Vec<String> = received
        .iter()
        .filter(|e| !e.contains("quiet"))
        .cloned()
        .collect();
    assert_eq!(
        burst_received,
        (0..3 * n).map(|i| format!("{i}")).collect::<Vec<_>>()
    );
}

/// A pipeline of `try_process_stream` whose handler fails is reported
/// with its error at the failing event's time and restarted; the second
/// run replays the fixed past to its end.
#[test]
fn a_failing_event_handler_fails_its_pipeline_which_is_restarted() {
    use timecast::source::try_process_stream;

    let runs = Rc::new(Cell::new(0));
    let sum = Rc::new(Cell::new(0));
    let (r, s) = (runs.clone(), sum.clone());
    let flow = Flow::new()
        .pipeline("replay", move || {
            r.set(r.get() + 1);
            let bad = r.get() == 1;
            let s = s.clone();
            // Each run replays the same seconds of the past, from where the
            // clock is: 1 s, 2 s, 3 s after it.
            let start = now();
            let past = (1..=3).map(move |i| (start + Duration::from_secs(i), i));
            try_process_stream(move |_ts: Timestamp, v: u64| {
                if bad && v == 2 {
                    return Err(format!(
                        "event {v} at {:?}",
                        now().duration_since(Timestamp::UNIX_EPOCH)
                    ));
                }
                s.set(s.get() + v);
                Ok(())
            })
            .past(past)
        })
        .restart(Restart::on_failure())
        .backoff(Duration::from_secs(2), Duration::from_secs(8));
    let el = sim();
    let report = el.block_on(flow.run());
    let replay = report.pipeline("replay").unwrap();
    assert_eq!(runs.get(), 2);
    assert_eq!(replay.errors.len(), 1);
    assert_eq!(replay.errors[0].error, "event 2 at 2s");
    assert_eq!(replay.errors[0].at, secs(2));
    assert_eq!(replay.state, PipelineState::Done);
    assert_eq!(sum.get(), 1 + 1 + 2 + 3);
    assert_eq!(el.now(), secs(2 + 2 + 3));
}
