//! Under the `tracing` feature, flow and poll failures are reported to
//! `tracing`.
#![cfg(feature = "tracing")]

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timecast::flow::{Flow, Restart};
use timecast::source::poll;
use timecast::{EventLoop, Timestamp};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records each event as `LEVEL field=value ...`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn failures_go_to_tracing() {
    let capture = Capture::default();
    let lines = capture.0.clone();
    tracing::subscriber::with_default(capture, || {
        let flow = Flow::new()
            .pipeline_with_context("quotes", |ctx| {
                let reporter = ctx.clone();
                let mut source = poll(Duration::from_secs(1), || async {
                    Err::<(), _>("connection refused")
                })
                .on_error(move |e| reporter.report(e));
                async move {
                    use futures::StreamExt;
                    let _ = futures::future::select(
                        source.next(),
                        Box::pin(timecast::sleep(Duration::from_millis(1_500))),
                    )
                    .await;
                    Err::<(), _>("gave up")
                }
            })
            .restart(Restart::never());
        EventLoop::starting_at(Timestamp::UNIX_EPOCH)
            .simulated()
            .block_on(flow.run());
    });
    let lines = lines.lock().unwrap();
    let expected = [
        "WARN message=poll source request failed: connection refused consecutive=1 at=1970-01-01T00:00:00Z",
        "WARN message=pipeline failed: 1 requests in a row failed, the latest at 1970-01-01T00:00:00Z: connection refused pipeline=quotes restarts=0 at=1970-01-01T00:00:00Z panicked=false",
        "WARN message=poll source request failed: connection refused consecutive=2 at=1970-01-01T00:00:01Z",
        "WARN message=pipeline failed: 2 requests in a row failed, the latest at 1970-01-01T00:00:01Z: connection refused pipeline=quotes restarts=0 at=1970-01-01T00:00:01Z panicked=false",
        "ERROR message=pipeline failed for good: gave up pipeline=quotes restarts=0 at=1970-01-01T00:00:01.500Z panicked=false",
    ];
    assert_eq!(*lines, expected);
}
