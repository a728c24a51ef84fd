//! aiopype's example under test: the `yahoo_apple` flow against its own
//! quote server on a loopback port, through a real HTTP/1.1 exchange.
//!
//! The loop follows the wall clock here (real sockets), so the run is
//! bounded by the server's script, not by time: the server asks the flow
//! to shut down at its first request past the script, when every scripted
//! reply has been consumed. Timeouts are generous (5 s on loopback), so
//! nothing depends on the machine's speed.

#[path = "../examples/yahoo_common/mod.rs"]
mod yahoo_common;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use timecast::flow::{FlowHandle, PipelineState};
use timecast::{EventLoop, FlowReport, PipelineError};
use yahoo_common::{extract_price, http_get_blocking, yahoo_flow, QuoteServer, Reply, Settings};

fn csv_path(test: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("timecast-{test}-{}.csv", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Runs the flow against a server following `script`; returns the report,
/// every error received on `errors()`, the CSV, and the requests served.
fn run(test: &str, script: Vec<Reply>) -> (FlowReport, Vec<PipelineError>, String, usize) {
    let csv = csv_path(test);
    let (tx, rx) = mpsc::channel::<FlowHandle>();
    let server = QuoteServer::start(script, move || {
        if let Ok(handle) = rx.recv() {
            handle.shutdown();
        }
    })
    .unwrap();
    let flow = yahoo_flow(Settings {
        url: server.url("AAPL"),
        csv: csv.clone(),
        every: Duration::from_millis(20),
        error_threshold: 1,
        timeout: Duration::from_secs(5),
        backoff: (Duration::from_millis(30), Duration::from_millis(100)),
    });
    let handle = flow.handle();
    let mut errors = handle.errors();
    tx.send(handle).unwrap();
    let report = EventLoop::new().block_on(flow.run());
    let received = std::iter::from_fn(|| errors.try_recv().ok()).collect();
    let rows = std::fs::read_to_string(&csv).unwrap();
    let _ = std::fs::remove_file(&csv);
    (report, received, rows, server.served())
}

fn prices(csv: &str) -> Vec<String> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("time;price"));
    let rows: Vec<(String, String)> = lines
        .map(|l| {
            let (t, p) = l.split_once(';').unwrap();
            (t.to_owned(), p.to_owned())
        })
        .collect();
    // Stamped with the loop's clock, in order.
    let times: Vec<_> = rows.iter().map(|(t, _)| t.clone()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    assert!(csv.lines().filter(|l| *l == "time;price").count() == 1);
    rows.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn the_processor_extracts_the_price() {
    let body =
        r#"{"list":{"resources":[{"resource":{"fields":{"price":"189.25","symbol":"AAPL"}}}]}}"#;
    assert_eq!(extract_price(body), Ok(189.25));
    assert!(extract_price("<html>")
        .unwrap_err()
        .starts_with("no price in the quote"));
}

#[test]
fn the_client_speaks_http_to_the_server() {
    let server = QuoteServer::start(vec![Reply::Quote(1.5), Reply::Status(404)], || {}).unwrap();
    let url = server.url("AAPL");
    let body = http_get_blocking(&url, Duration::from_secs(5)).unwrap();
    assert_eq!(extract_price(&body), Ok(1.5));
    let err = http_get_blocking(&url, Duration::from_secs(5)).unwrap_err();
    assert!(err.ends_with("HTTP status 404"), "{err}");
    assert_eq!(server.served(), 2);
}

#[test]
fn a_bounded_run_writes_every_quote_to_the_csv() {
    let quotes = [189.1, 189.2, 189.35, 188.9, 190.0, 190.05];
    let (report, errors, csv, served) =
        run("bounded", quotes.iter().map(|&p| Reply::Quote(p)).collect());
    assert_eq!(
        prices(&csv),
        ["189.10", "189.20", "189.35", "188.90", "190.00", "190.05"]
    );
    assert!(report.shut_down && report.is_ok(), "{report:?}");
    assert!(errors.is_empty(), "{errors:?}");
    let p = report.pipeline("yahoo_apple").unwrap();
    assert_eq!((p.state, p.restarts, p.items), (PipelineState::Done, 0, 6));
    // The six quotes and the request that ended the script.
    assert_eq!(served, 7);
}

#[test]
fn a_failing_server_is_reported_and_the_pipeline_restarted() {
    use Reply::*;
    let script = vec![
        Quote(189.1),
        Status(500),
        Status(500),
        Status(502),
        Quote(189.2),
        Garbage,
        Quote(189.3),
        Status(500),
        Quote(189.4),
    ];
    let (report, errors, csv, served) = run("failing", script);
    // Every quote reached the CSV, across the restart.
    assert_eq!(prices(&csv), ["189.10", "189.20", "189.30", "189.40"]);
    assert_eq!(served, 10);
    assert!(report.shut_down);
    let p = report.pipeline("yahoo_apple").unwrap();
    assert_eq!((p.state, p.restarts, p.items), (PipelineState::Done, 1, 5));
    // Threshold 1: the second and third failures in a row are reported
    // (the first, and the lone 500 after the restart, are not); the
    // malformed quote fails the pipeline, which is restarted.
    assert_eq!(errors, report.errors);
    let summary: Vec<_> = errors
        .iter()
        .map(|e| (e.pipeline.as_str(), e.restarts, e.fatal))
        .collect();
    assert_eq!(
        summary,
        [
            ("yahoo_apple", 0, false),
            ("yahoo_apple", 0, false),
            ("yahoo_apple", 0, false)
        ]
    );
    assert!(
        errors[0].error.starts_with("2 requests in a row failed"),
        "{}",
        errors[0].error
    );
    assert!(
        errors[0].error.ends_with("HTTP status 500"),
        "{}",
        errors[0].error
    );
    assert!(
        errors[1].error.starts_with("3 requests in a row failed"),
        "{}",
        errors[1].error
    );
    assert!(
        errors[1].error.ends_with("HTTP status 502"),
        "{}",
        errors[1].error
    );
    assert_eq!(
        errors[2].error,
        "no price in the quote: <html>maintenance</html>"
    );
    assert!(errors[0].at < errors[1].at && errors[1].at < errors[2].at);
}
