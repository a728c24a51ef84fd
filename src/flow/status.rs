//! What a flow reports: [`PipelineError`]s, the live [`FlowStatus`], and
//! the final [`FlowReport`].

use std::fmt;
use std::time::Duration;

use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::time::Timestamp;

/// `1 restart`, `2 restarts`: a count of restarts in words.
pub(super) fn restarts(n: u32) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} restart{s}")
}

/// A failure of a pipeline: an error it returned, a panic, or an error it
/// reported while running on ([`PipelineContext::report`](super::PipelineContext::report)).
///
/// # Examples
///
/// ```
/// use timecast::flow::{Flow, Restart};
/// use timecast::{EventLoop, Timestamp};
///
/// let flow = Flow::new()
///     .pipeline("feed", || async { Err::<(), _>("connection refused") })
///     .restart(Restart::never());
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let report = el.block_on(flow.run());
/// let error = &report.errors[0];
/// assert_eq!(error.pipeline, "feed");
/// assert_eq!(error.error, "connection refused");
/// assert_eq!((error.restarts, error.at), (0, Timestamp::UNIX_EPOCH));
/// assert!(error.fatal && !error.panicked);
/// assert_eq!(error.to_string(), "pipeline `feed` failed at 1970-01-01T00:00:00Z after 0 restarts: connection refused");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineError {
    /// The pipeline's name.
    pub pipeline: String,
    /// The error's text (its `Display`), or the panic's message. The
    /// failure that reaches the restart limit says so after it
    /// (`"…; not restarted: its restart limit of 3 restarts is reached"`);
    /// a normal end that reaches it reads `"ended, and its restart limit
    /// of 3 restarts is reached"`.
    pub error: String,
    /// How many times the pipeline had been restarted when this happened.
    pub restarts: u32,
    /// When, on the loop's clock.
    pub at: Timestamp,
    /// Whether the pipeline panicked.
    pub panicked: bool,
    /// Whether the supervisor decided, when the failure happened, not to
    /// restart the pipeline after it: its policy forbids it, its restart
    /// limit is reached, or the flow is shutting down. `false` for an
    /// error it [reported](super::PipelineContext::report) while running
    /// on, and for one that starts a backoff before a restart. The
    /// decision is not revised later: a shutdown that cancels that
    /// restart leaves it `false` (the error is already published), and
    /// the pipeline's final state, [`Done`](PipelineState::Done), tells
    /// that it was not restarted.
    pub fatal: bool,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.panicked { "panicked" } else { "failed" };
        write!(
            f,
            "pipeline `{}` {what} at {} after {}: {}",
            self.pipeline,
            self.at,
            restarts(self.restarts),
            self.error
        )
    }
}

impl std::error::Error for PipelineError {}

/// Where a pipeline stands.
///
/// # Examples
///
/// ```
/// use timecast::flow::PipelineState;
/// assert!(PipelineState::Done.is_finished());
/// assert!(!PipelineState::Restarting.is_finished());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PipelineState {
    /// Added to a flow whose [`run`](super::Flow::run) has not started
    /// (or was dropped before its first poll).
    NotStarted,
    /// Built and running.
    Running,
    /// Ended and waiting out its backoff before it is rebuilt.
    Restarting,
    /// Ended for good: returned `Ok` and its policy does not restart it,
    /// or it stopped on shutdown (returned `Ok`, or was waiting out its
    /// backoff: the restart is cancelled).
    Done,
    /// Ended for good with an error or a panic: its policy does not
    /// restart it, or its restart limit was reached, or it failed after
    /// the shutdown, or it was aborted after the shutdown grace period or
    /// because its [`run`](super::Flow::run) was dropped.
    Failed,
}

impl PipelineState {
    /// Whether the pipeline ended for good ([`Done`](Self::Done) or
    /// [`Failed`](Self::Failed)).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(timecast::flow::PipelineState::Failed.is_finished());
    /// ```
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

impl fmt::Display for PipelineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotStarted => "not started",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Done => "done",
            Self::Failed => "failed",
        })
    }
}

/// The counters a pipeline updates as it runs, read by
/// [`FlowHandle::status`](super::FlowHandle::status) from any thread.
///
/// # Invariants
///
/// Only the pipeline's own loop thread writes (the context that holds
/// them is not `Send`), so a counter is bumped with a relaxed load and
/// store, as cheap as a `Cell`; readers see each value whole.
#[derive(Debug)]
pub(crate) struct Counters {
    items: AtomicU64,
    /// Timestamps as `i64` bits; [`NONE`] when unknown.
    first: AtomicU64,
    reached: AtomicU64,
    past_end: AtomicU64,
    /// [`NONE`] when unknown.
    past_len: AtomicU64,
    /// Events of the current past, stored (not bumped) by its iterator.
    replayed: AtomicU64,
    /// Events of the earlier pasts of this pipeline (before restarts).
    replayed_before: AtomicU64,
    live: AtomicBool,
}

const NONE: u64 = u64::MAX;

#[inline]
fn encode(ts: Timestamp) -> u64 {
    // `Timestamp::from_unix_nanos(-1)` would read as unknown: one
    // nanosecond before the epoch is recorded as the epoch's.
    let bits = ts.unix_nanos() as u64;
    if bits == NONE {
        0
    } else {
        bits
    }
}

fn decode(bits: u64) -> Option<Timestamp> {
    (bits != NONE).then(|| Timestamp::from_unix_nanos(bits as i64))
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            items: AtomicU64::new(0),
            first: AtomicU64::new(NONE),
            reached: AtomicU64::new(NONE),
            past_end: AtomicU64::new(NONE),
            past_len: AtomicU64::new(NONE),
            replayed: AtomicU64::new(0),
            replayed_before: AtomicU64::new(0),
            live: AtomicBool::new(false),
        }
    }

    #[inline]
    fn bump(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub(crate) fn add_items(&self, n: u64) {
        Self::bump(&self.items, n);
    }

    #[inline]
    pub(crate) fn reach(&self, ts: Timestamp) {
        let bits = encode(ts);
        if self.first.load(Ordering::Relaxed) == NONE {
            self.first.store(bits, Ordering::Relaxed);
        }
        self.reached.store(bits, Ordering::Relaxed);
    }

    /// The `count`-th event of the current past, at `ts`: two stores.
    #[inline]
    pub(crate) fn replayed(&self, count: u64, ts: Timestamp) {
        self.replayed.store(count, Ordering::Relaxed);
        self.reached.store(encode(ts), Ordering::Relaxed);
    }

    /// The first event of the current past.
    pub(crate) fn first(&self, ts: Timestamp) {
        self.first.store(encode(ts), Ordering::Relaxed);
    }

    pub(crate) fn set_past_end(&self, end: Timestamp) {
        self.past_end.store(encode(end), Ordering::Relaxed);
    }

    /// A new past starts: `len` events if known.
    pub(crate) fn start_past(&self, len: Option<u64>) {
        self.past_len.store(len.unwrap_or(NONE), Ordering::Relaxed);
        let earlier = self.replayed.swap(0, Ordering::Relaxed);
        Self::bump(&self.replayed_before, earlier);
        self.first.store(NONE, Ordering::Relaxed);
        self.live.store(false, Ordering::Relaxed);
    }

    pub(crate) fn set_live(&self) {
        self.live.store(true, Ordering::Relaxed);
    }

    /// Items counted, plus every past event replayed.
    pub(crate) fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
            + self.replayed_before.load(Ordering::Relaxed)
            + self.replayed.load(Ordering::Relaxed)
    }
}

/// A snapshot of one pipeline, from
/// [`FlowHandle::status`](super::FlowHandle::status).
///
/// # Examples
///
/// ```
/// use timecast::flow::{Flow, PipelineState};
/// use timecast::{EventLoop, Timestamp};
///
/// let flow = Flow::new().pipeline_with_context("count", |ctx| async move {
///     ctx.add_items(3);
///     Ok::<_, String>(())
/// });
/// let handle = flow.handle();
/// assert_eq!(handle.status().pipelines[0].state, PipelineState::NotStarted);
/// EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated().block_on(flow.run());
/// let status = &handle.status().pipelines[0];
/// assert_eq!((status.name.as_str(), status.state, status.items), ("count", PipelineState::Done, 3));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PipelineStatus {
    /// The pipeline's name.
    pub name: String,
    /// Where it stands.
    pub state: PipelineState,
    /// How many times it was restarted.
    pub restarts: u32,
    /// Its latest failure.
    pub last_error: Option<PipelineError>,
    /// Items processed, over all its runs: events of its
    /// [`past`](super::PipelineContext::past) and
    /// [`live`](super::PipelineContext::live) sources, plus what it counts
    /// with [`add_items`](super::PipelineContext::add_items).
    pub items: u64,
    /// The time of the first event of the current replay.
    pub first: Option<Timestamp>,
    /// The event time reached: the time of the latest event counted.
    pub reached: Option<Timestamp>,
    /// The time of the last event of the past, when the pipeline declared
    /// it ([`past_end`](super::PipelineContext::past_end)).
    pub past_end: Option<Timestamp>,
    /// The number of events of the past, when its iterator knows it.
    pub past_len: Option<u64>,
    /// Events of the current past replayed so far.
    pub replayed: u64,
    /// Whether its past is exhausted and it runs on live events.
    pub live: bool,
}

impl PipelineStatus {
    pub(crate) fn new(
        name: String,
        state: PipelineState,
        restarts: u32,
        last_error: Option<PipelineError>,
        c: &Counters,
    ) -> Self {
        Self {
            name,
            state,
            restarts,
            last_error,
            items: c.items(),
            first: decode(c.first.load(Ordering::Relaxed)),
            reached: decode(c.reached.load(Ordering::Relaxed)),
            past_end: decode(c.past_end.load(Ordering::Relaxed)),
            past_len: match c.past_len.load(Ordering::Relaxed) {
                NONE => None,
                n => Some(n),
            },
            replayed: c.replayed.load(Ordering::Relaxed),
            live: c.live.load(Ordering::Relaxed),
        }
    }

    /// How much of the past is replayed, from 0.0 to 1.0: by event time
    /// against [`past_end`](Self::past_end) when declared, otherwise by
    /// count against [`past_len`](Self::past_len); 1.0 once live; `None`
    /// when neither end is known.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// use timecast::{process_stream, EventLoop, Timestamp};
    ///
    /// let flow = Flow::new().pipeline_with_context("replay", |ctx| async move {
    ///     let past = (0..10).map(|s| (Timestamp::from_unix_secs(s), s));
    ///     process_stream(|_ts: Timestamp, _v: i64| {}).past(ctx.past(past)).await;
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated().block_on(flow.run());
    /// let status = &handle.status().pipelines[0];
    /// assert_eq!((status.past_len, status.replayed), (Some(10), 10));
    /// assert_eq!(status.progress(), Some(1.0));
    /// ```
    pub fn progress(&self) -> Option<f64> {
        if self.live {
            return Some(1.0);
        }
        if let (Some(first), Some(reached), Some(end)) = (self.first, self.reached, self.past_end) {
            let total = end.unix_nanos() as f64 - first.unix_nanos() as f64;
            let done = reached.unix_nanos() as f64 - first.unix_nanos() as f64;
            return Some(if total <= 0.0 {
                1.0
            } else {
                (done / total).clamp(0.0, 1.0)
            });
        }
        let len = self.past_len?;
        Some(if len == 0 {
            1.0
        } else {
            (self.replayed as f64 / len as f64).min(1.0)
        })
    }

    /// How far the event time reached is behind `wall` (typically
    /// [`Timestamp::now`]), once the pipeline is live; `None` while it
    /// replays or before its first event. Zero if it is ahead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Flow;
    /// use timecast::{process_stream, EventLoop, Timestamp};
    ///
    /// let flow = Flow::new().pipeline_with_context("replay", |ctx| async move {
    ///     let past = [(Timestamp::from_unix_secs(5), ())];
    ///     process_stream(|_ts: Timestamp, ()| {}).past(ctx.past(past)).await;
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated().block_on(flow.run());
    /// let status = &handle.status().pipelines[0];
    /// assert_eq!(status.lag_at(Timestamp::from_unix_secs(7)), Some(Duration::from_secs(2)));
    /// ```
    pub fn lag_at(&self, wall: Timestamp) -> Option<Duration> {
        if !self.live {
            return None;
        }
        Some(
            wall.checked_duration_since(self.reached?)
                .unwrap_or_default(),
        )
    }
}

/// A snapshot of a flow, from
/// [`FlowHandle::status`](super::FlowHandle::status): one
/// [`PipelineStatus`] per pipeline, in the order they were added.
///
/// # Examples
///
/// ```
/// use timecast::flow::Flow;
///
/// let flow = Flow::new().pipeline("a", || async { Ok::<_, String>(()) });
/// let status = flow.handle().status();
/// assert_eq!(status.pipelines.len(), 1);
/// assert!(status.pipeline("a").is_some());
/// assert!(!status.shutting_down);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FlowStatus {
    /// Every pipeline, in the order they were added.
    pub pipelines: Vec<PipelineStatus>,
    /// Whether [`shutdown`](super::FlowHandle::shutdown) was called.
    pub shutting_down: bool,
}

impl FlowStatus {
    /// The pipeline named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let flow = timecast::flow::Flow::new();
    /// assert!(flow.handle().status().pipeline("missing").is_none());
    /// ```
    pub fn pipeline(&self, name: &str) -> Option<&PipelineStatus> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}

impl fmt::Display for FlowStatus {
    /// One line: `name: state, N items, R restarts[, P%][, lag D]` per
    /// pipeline, separated by ` | `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wall = Timestamp::now();
        for (i, p) in self.pipelines.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(
                f,
                "{}: {}, {} items, {}",
                p.name,
                p.state,
                p.items,
                restarts(p.restarts)
            )?;
            if let Some(lag) = p.lag_at(wall) {
                write!(f, ", lag {lag:.1?}")?;
            } else if let Some(progress) = p.progress() {
                write!(f, ", {:.1}%", progress * 100.0)?;
            }
        }
        Ok(())
    }
}

/// How one pipeline ended, in a [`FlowReport`].
///
/// # Examples
///
/// ```
/// use timecast::flow::{Flow, PipelineState};
/// use timecast::EventLoop;
///
/// let flow = Flow::new().pipeline("a", || async { Ok::<_, String>(()) });
/// let report = EventLoop::new().simulated().block_on(flow.run());
/// let a = report.pipeline("a").unwrap();
/// assert_eq!((a.state, a.restarts, a.errors.len()), (PipelineState::Done, 0, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineReport {
    /// The pipeline's name.
    pub name: String,
    /// [`Done`](PipelineState::Done) or [`Failed`](PipelineState::Failed).
    pub state: PipelineState,
    /// How many times it was restarted.
    pub restarts: u32,
    /// Its failures and reports, in order: the latest
    /// [`FlowReport::ERROR_HISTORY`] of them.
    pub errors: Vec<PipelineError>,
    /// How many failures and reports it had in all, those `errors` no
    /// longer holds included.
    pub error_count: u64,
    /// Items processed (see [`PipelineStatus::items`]).
    pub items: u64,
}

/// What [`Flow::run`](super::Flow::run) returns: how every pipeline ended,
/// and the failures in the order they happened (the latest
/// [`ERROR_HISTORY`](Self::ERROR_HISTORY), and how many there were).
///
/// # Examples
///
/// ```
/// use timecast::flow::{Flow, Restart};
/// use timecast::EventLoop;
///
/// let flow = Flow::new()
///     .pipeline("ok", || async { Ok::<_, String>(()) })
///     .restart(Restart::never())
///     .pipeline("bad", || async { Err::<(), _>("no data") })
///     .restart(Restart::never());
/// let report = EventLoop::new().simulated().block_on(flow.run());
/// assert!(!report.is_ok());
/// assert_eq!(report.failed().collect::<Vec<_>>(), ["bad"]);
/// assert_eq!(report.errors.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowReport {
    /// Every pipeline, in the order they were added.
    pub pipelines: Vec<PipelineReport>,
    /// The failures and reports of every pipeline, in the order they
    /// happened: the latest [`ERROR_HISTORY`](Self::ERROR_HISTORY) of them.
    pub errors: Vec<PipelineError>,
    /// How many failures and reports there were in all, those `errors` no
    /// longer holds included.
    pub error_count: u64,
    /// Whether the flow ended by [`shutdown`](super::FlowHandle::shutdown).
    pub shut_down: bool,
    /// The commits of the stores attached with `Flow::store` (feature
    /// `store`) that failed when the flow ended, as text naming the store
    /// and what failed. Empty when every commit succeeded.
    pub commit_errors: Vec<String>,
}

impl FlowReport {
    /// How many errors a report keeps, per pipeline and in all: the latest.
    /// A flow left running keeps no more than these in memory, however
    /// often its pipelines fail or report (a [`poll`](crate::source::poll)
    /// source reports every failed request past its threshold); the
    /// counts (`error_count`) go on.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::{Flow, FlowReport};
    /// use timecast::EventLoop;
    ///
    /// let flow = Flow::new().pipeline_with_context("noisy", |ctx| async move {
    ///     for i in 0..FlowReport::ERROR_HISTORY + 5 {
    ///         ctx.report(format!("report {i}"));
    ///         timecast::sleep(std::time::Duration::from_secs(1)).await;
    ///     }
    ///     Ok::<_, String>(())
    /// });
    /// let report = EventLoop::new().simulated().block_on(flow.run());
    /// let noisy = report.pipeline("noisy").unwrap();
    /// assert_eq!(noisy.errors.len(), FlowReport::ERROR_HISTORY);
    /// assert_eq!(noisy.error_count, FlowReport::ERROR_HISTORY as u64 + 5);
    /// assert_eq!(noisy.errors[0].error, "report 5");
    /// assert_eq!(report.error_count, FlowReport::ERROR_HISTORY as u64 + 5);
    /// ```
    pub const ERROR_HISTORY: usize = 1000;

    /// Whether no pipeline ended [`Failed`](PipelineState::Failed) and
    /// every attached store committed.
    ///
    /// # Examples
    ///
    /// ```
    /// let report = timecast::EventLoop::new().simulated().block_on(timecast::flow::Flow::new().run());
    /// assert!(report.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        self.commit_errors.is_empty()
            && self
                .pipelines
                .iter()
                .all(|p| p.state != PipelineState::Failed)
    }

    /// The names of the pipelines that ended [`Failed`](PipelineState::Failed).
    ///
    /// # Examples
    ///
    /// ```
    /// let report = timecast::EventLoop::new().simulated().block_on(timecast::flow::Flow::new().run());
    /// assert_eq!(report.failed().count(), 0);
    /// ```
    pub fn failed(&self) -> impl Iterator<Item = &str> {
        self.pipelines
            .iter()
            .filter(|p| p.state == PipelineState::Failed)
            .map(|p| p.name.as_str())
    }

    /// The pipeline named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let report = timecast::EventLoop::new().simulated().block_on(timecast::flow::Flow::new().run());
    /// assert!(report.pipeline("missing").is_none());
    /// ```
    pub fn pipeline(&self, name: &str) -> Option<&PipelineReport> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}
