//! What the ASP examples share, as in ASP's README: the names, the
//! timestamps, the `Greeter`, the `log` that prints the wall clock, the
//! loop's clock and the event time before each message, and
//! `create_async_generator`, the live feed.
//!
//! Not an example itself (Cargo builds `examples/*.rs` and
//! `examples/*/main.rs` only); each `asp_*` example includes it.

// Each example uses a part of this module.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use timecast::{now, AsyncStream, Consumer, Timestamp};

/// The visitors of ASP's examples.
pub(crate) const NAMES: [&str; 5] = ["Jane", "John", "Sarah", "Paul", "Jane"];

/// `start`, `start + delay`, `start + 2·delay`, … (ASP's `timestamps`).
pub(crate) fn timestamps(start: Timestamp, delay: Duration) -> impl Iterator<Item = Timestamp> {
    std::iter::successors(Some(start), move |t| Some(*t + delay))
}

/// ASP's `create_async_generator`: a thread stamps each name with the wall
/// clock and puts it on an [`AsyncStream`], one every `delay`. The consumer
/// is the live source; the stream ends when the thread is done (dropping
/// the last producer handle closes it).
pub(crate) fn live_feed(
    names: &'static [&'static str],
    delay: Duration,
) -> Consumer<(Timestamp, &'static str)> {
    let feed = AsyncStream::with_capacity(names.len());
    let live = feed.subscribe();
    std::thread::spawn(move || {
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(delay);
            }
            if feed.put_blocking((Timestamp::now(), *name)).is_err() {
                return; // The loop is gone.
            }
        }
    });
    live
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// The loop's clock when the line was written (ASP's `asp.now()`).
    pub(crate) now: Timestamp,
    /// The time of the event the line is about.
    pub(crate) event: Timestamp,
    pub(crate) message: String,
}

/// ASP's `log`, shared by the callbacks of an example: prints each line as
/// it is written (unless quiet) and keeps it for the tests.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    lines: Rc<RefCell<Vec<Line>>>,
    quiet: bool,
}

impl Log {
    /// A log that prints each line as it is written.
    pub(crate) fn printing() -> Self {
        Self::default()
    }

    /// A log that only keeps its lines.
    pub(crate) fn quiet() -> Self {
        Self {
            quiet: true,
            ..Self::default()
        }
    }

    /// Writes `message`, about an event at `event`: prints the wall clock,
    /// the loop's clock, the event time and the message.
    pub(crate) fn log(&self, event: Timestamp, message: impl Into<String>) {
        let line = Line {
            now: now(),
            event,
            message: message.into(),
        };
        if !self.quiet {
            let wall = Timestamp::now();
            println!(
                "{} {} {} {}",
                hms(wall),
                hms(line.now),
                hms(event),
                line.message
            );
        }
        self.lines.borrow_mut().push(line);
    }

    /// Writes a bare message, like ASP's `print`.
    pub(crate) fn print(&self, message: &str) {
        if !self.quiet {
            println!("{message}");
        }
        let now = now();
        self.lines.borrow_mut().push(Line {
            now,
            event: now,
            message: message.to_owned(),
        });
    }

    /// Every line written so far.
    pub(crate) fn lines(&self) -> Vec<Line> {
        self.lines.borrow().clone()
    }
}

/// `HH:MM:SS.ffffff`, in UTC (ASP's `format`).
pub(crate) fn hms(t: Timestamp) -> String {
    let micros = t.unix_nanos().rem_euclid(86_400_000_000_000) / 1_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        micros / 3_600_000_000,
        micros / 60_000_000 % 60,
        micros / 1_000_000 % 60,
        micros % 1_000_000
    )
}

/// ASP's `Greeter`: greets a name the first time, and again after that.
#[derive(Debug)]
pub(crate) struct Greeter {
    greeted: RefCell<HashSet<&'static str>>,
    log: Log,
}

impl Greeter {
    pub(crate) fn new(log: Log) -> Rc<Self> {
        Rc::new(Self {
            greeted: RefCell::default(),
            log,
        })
    }

    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    pub(crate) fn greet(&self, event_time: Timestamp, name: &'static str) {
        if self.greeted.borrow_mut().insert(name) {
            self.log.log(event_time, format!("Hello {name}."));
        } else {
            self.log.log(event_time, format!("Hello again {name}!"));
        }
    }
}
