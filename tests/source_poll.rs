//! `source::poll`: aiopype's RestSource on the loop's clock, in simulated
//! time.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use timecast::flow::{Flow, PipelineState};
use timecast::source::{poll, PollError};
use timecast::{now, process_stream, sleep, sleep_until, EventLoop, Timestamp};

fn secs(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

fn sim() -> EventLoop {
    EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated()
}

/// What a scripted endpoint does on its n-th request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Val(u32),
    Fail,
    /// Answers after this long.
    Slow(u64, u32),
}

/// A fetch that follows `script` (then answers `Ok(0)`), logging the time
/// of each request.
fn scripted(
    script: Vec<Reply>,
    requests: Rc<RefCell<Vec<Timestamp>>>,
) -> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, String>>>> {
    let mut n = 0;
    move || {
        requests.borrow_mut().push(now());
        let reply = script.get(n).copied().unwrap_or(Reply::Val(0));
        n += 1;
        Box::pin(async move {
            match reply {
                Reply::Val(v) => Ok(v),
                Reply::Fail => Err(format!("request {n} failed")),
                Reply::Slow(s, v) => {
                    sleep(Duration::from_secs(s)).await;
                    Ok(v)
                }
            }
        })
    }
}

#[test]
fn requests_every_interval_without_drift() {
    let requests = Rc::new(RefCell::new(Vec::new()));
    let source = poll(
        Duration::from_secs(30),
        scripted(
            vec![Reply::Val(1), Reply::Val(2), Reply::Val(3)],
            requests.clone(),
        ),
    );
    let got: Vec<_> = sim().block_on(source.take(3).collect());
    assert_eq!(got, [(secs(0), 1), (secs(30), 2), (secs(60), 3)]);
    assert_eq!(*requests.borrow(), [0, 30, 60].map(secs));
}

#[test]
fn a_slow_request_delays_the_next_to_the_following_tick() {
    let requests = Rc::new(RefCell::new(Vec::new()));
    let source = poll(
        Duration::from_secs(30),
        scripted(vec![Reply::Slow(45, 1), Reply::Val(2)], requests.clone()),
    )
    .timeout(Duration::from_secs(50));
    let got: Vec<_> = sim().block_on(source.take(2).collect());
    // Answered at 45 s; the tick at 30 s is skipped, the next is at 60 s.
    assert_eq!(got, [(secs(45), 1), (secs(60), 2)]);
    assert_eq!(*requests.borrow(), [0, 60].map(secs));
}

#[test]
fn a_timed_out_request_is_skipped_and_neither_counts_nor_resets() {
    let requests = Rc::new(RefCell::new(Vec::new()));
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = reported.clone();
    let source = poll(
        Duration::from_secs(10),
        scripted(
            vec![Reply::Fail, Reply::Slow(100, 9), Reply::Fail, Reply::Val(4)],
            requests.clone(),
        ),
    )
    .timeout(Duration::from_secs(5))
    .error_threshold(1)
    .on_error(move |e: PollError<String>| r.borrow_mut().push((e.consecutive, e.at, e.error)));
    let got: Vec<_> = sim().block_on(source.take(1).collect());
    assert_eq!(got, [(secs(30), 4)]);
    assert_eq!(*requests.borrow(), [0, 10, 20, 30].map(secs));
    // The timeout at 15 s neither counted nor reset: the failure at 20 s
    // is the second in a row.
    assert_eq!(
        *reported.borrow(),
        [(2, secs(20), "request 3 failed".to_owned())]
    );
}

#[test]
fn failures_are_reported_past_the_threshold_and_reset_by_a_success() {
    use Reply::*;
    let requests = Rc::new(RefCell::new(Vec::new()));
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = reported.clone();
    let script = vec![Fail, Fail, Fail, Fail, Val(1), Fail, Fail, Fail, Val(2)];
    let source = poll(Duration::from_secs(1), scripted(script, requests))
        .error_threshold(2)
        .on_error(move |e: PollError<String>| r.borrow_mut().push((e.consecutive, e.at)));
    let got: Vec<_> = sim().block_on(source.take(2).collect());
    assert_eq!(got, [(secs(4), 1), (secs(8), 2)]);
    assert_eq!(
        *reported.borrow(),
        [(3, secs(2)), (4, secs(3)), (3, secs(7))]
    );
}

#[test]
fn the_source_never_stops_because_of_failures() {
    let script: Vec<Reply> = std::iter::repeat_n(Reply::Fail, 1_000)
        .chain([Reply::Val(7)])
        .collect();
    let requests = Rc::new(RefCell::new(Vec::new()));
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let source = poll(Duration::from_secs(60), scripted(script, requests.clone()))
        .error_threshold(10)
        .on_error(move |_| c.set(c.get() + 1));
    let el = sim();
    let got = el.block_on(async move {
        let mut source = source;
        let first = source.next().await;
        (first, source.consecutive_failures())
    });
    assert_eq!(got, (Some((secs(60_000), 7)), 0));
    assert_eq!(count.get(), 990);
    assert_eq!(requests.borrow().len(), 1_001);
}

#[test]
#[should_panic(expected = "timecast::source::poll needs a non-zero interval")]
fn a_zero_interval_is_refused() {
    let _ = poll(Duration::ZERO, || async { Ok::<_, String>(()) });
}

/// Under a flow: failures past the threshold reach the flow's errors
/// stream with the pipeline's name and do not restart the pipeline; the
/// shutdown ends the source.
#[test]
fn under_a_flow_failures_are_reported_and_shutdown_stops_polling() {
    use Reply::*;
    let requests = Rc::new(RefCell::new(Vec::new()));
    let prices = Rc::new(RefCell::new(Vec::new()));
    let (req, out) = (requests.clone(), prices.clone());
    let script = vec![Val(100), Fail, Fail, Fail, Val(101), Val(102)];
    let script = RefCell::new(Some(script));
    let flow = Flow::new().pipeline_with_context("quotes", move |ctx| {
        let reporter = ctx.clone();
        let script = script.borrow_mut().take().unwrap_or_default();
        let quotes = poll(Duration::from_secs(30), scripted(script, req.clone()))
            .error_threshold(1)
            .on_error(move |e| reporter.report(e));
        let out = out.clone();
        async move {
            process_stream(move |ts: Timestamp, price: u32| out.borrow_mut().push((ts, price)))
                .live(ctx.live(quotes))
                .await;
            Ok::<_, String>(())
        }
    });
    let handle = flow.handle();
    let mut errors = handle.errors();
    let el = sim();
    let stopper = handle.clone();
    el.spawn(async move {
        sleep_until(secs(160)).await;
        stopper.shutdown();
    });
    let report = el.block_on(flow.run());
    assert_eq!(
        *prices.borrow(),
        [(secs(0), 100), (secs(120), 101), (secs(150), 102)]
    );
    // Requests at 0..=150 s; the one due at 180 s, after the shutdown,
    // was never made.
    assert_eq!(requests.borrow().len(), 6);
    let quotes = report.pipeline("quotes").unwrap();
    assert_eq!(
        (quotes.state, quotes.restarts, quotes.items),
        (PipelineState::Done, 0, 3)
    );
    let received: Vec<_> = std::iter::from_fn(|| errors.try_recv().ok()).collect();
    assert_eq!(received, report.errors);
    let summary: Vec<_> = received
        .iter()
        .map(|e| (e.pipeline.as_str(), e.at, e.fatal))
        .collect();
    assert_eq!(
        summary,
        [("quotes", secs(60), false), ("quotes", secs(90), false)]
    );
    assert_eq!(
        received[0].error,
        "2 requests in a row failed, the latest at 1970-01-01T00:01:00Z: request 3 failed"
    );
}

/// At the end of time the source ends, after its last tick before
/// `Timestamp::MAX`, whether its requests succeed or fail: it neither
/// stamps values at `MAX` forever nor retries at the same instant.
#[test]
fn the_source_ends_at_the_end_of_time() {
    let start = Timestamp::MAX - Duration::from_secs(3);
    let el = EventLoop::starting_at(start).simulated();
    let got = el.block_on(
        poll(Duration::from_secs(1), || async { Ok::<_, String>(()) })
            .map(|(ts, ())| ts)
            .collect::<Vec<_>>(),
    );
    let at = |s: u64| start + Duration::from_secs(s);
    assert_eq!(got, [at(0), at(1), at(2), at(3)]);
    assert_eq!(at(3), Timestamp::MAX);

    let fetches = Rc::new(Cell::new(0));
    let f = fetches.clone();
    let el = EventLoop::starting_at(start).simulated();
    let got = el.block_on(
        poll(Duration::from_secs(1), move || {
            f.set(f.get() + 1);
            async { Err::<(), _>("down") }
        })
        .collect::<Vec<_>>(),
    );
    assert!(got.is_empty());
    assert_eq!(fetches.get(), 4);
}

/// A request that never ends, timed out at the end of time by a timeout of
/// `Duration::MAX`, from the start of time: the source ends, with no
/// overflow of its tick count.
#[test]
fn a_request_timed_out_at_the_end_of_time_ends_the_source() {
    let fetches = Rc::new(Cell::new(0));
    let f = fetches.clone();
    let el = EventLoop::starting_at(Timestamp::MIN).simulated();
    let got = el.block_on(
        poll(Duration::from_nanos(1), move || {
            f.set(f.get() + 1);
            async {
                sleep(Duration::MAX).await;
                Ok::<_, String>(())
            }
        })
        .timeout(Duration::MAX)
        .collect::<Vec<_>>(),
    );
    assert!(got.is_empty());
    assert_eq!(fetches.get(), 1); // at the start of time; no tick is left after it
    assert_eq!(el.now(), Timestamp::MAX);
}
