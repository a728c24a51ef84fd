//! Layer 6, flows: named pipelines under a supervisor that contains their
//! failures, reports them and rebuilds the pipelines (aiopype's `Flow` and
//! `Manager`, with Erlang/OTP's restart intensity).
//!
//! A [`Flow`] holds pipelines, each a name and a *factory* that builds the
//! pipeline's future: a source, processors and outputs, typically a
//! [`process_stream`](crate::process_stream) or a
//! [`handle`](crate::sink::handle) chain (whose handlers can fail the
//! pipeline with [`try_process_stream`](crate::try_process_stream) and
//! [`try_handle`](crate::sink::try_handle)). [`Flow::run`] starts every
//! pipeline as a task of the [`EventLoop`](crate::EventLoop) it runs on and
//! watches them, as tokio's `JoinSet` hands back each task's outcome:
//!
//! - A pipeline that returns `Err(e)` or panics is **contained**: the run,
//!   the loop and the other pipelines go on. The failure is reported with
//!   the pipeline's name, the error's text, the restart count and the time
//!   ([`PipelineError`]) on [`FlowHandle::errors`], to `tracing` (feature
//!   `tracing`), and in the [`FlowReport`] that `run` returns (the latest
//!   [`FlowReport::ERROR_HISTORY`], so that a flow left running holds no
//!   more, and their count). Tasks that
//!   a [`process_stream`](crate::process_stream) spawns on the pipeline's
//!   behalf are contained with it; tasks the pipeline spawns itself with
//!   [`spawn`](crate::spawn) are not (await their handles).
//! - The pipeline is then rebuilt from its factory per its [`Restart`]
//!   policy, after a capped exponential backoff on the loop's clock (so a
//!   test of ten restarts runs instantly in
//!   [`simulated`](crate::EventLoop::simulated) time); past its restart
//!   limit it is reported [`Failed`](PipelineState::Failed) and the flow
//!   goes on with the others.
//! - [`FlowHandle::shutdown`] stops the flow cooperatively (see
//!   [`PipelineContext`]): sources stop taking input, the items in flight
//!   finish, nothing is restarted, and `run` returns its report once every
//!   pipeline has returned.
//! - [`FlowHandle::status`] reads, from any thread, each pipeline's
//!   state, restarts, last error, items processed, replay progress and
//!   lag behind the wall clock.
//!
//! Supervision costs nothing per item: a pipeline runs as a task of its own
//! and the supervisor wakes only when a pipeline ends, a backoff expires,
//! an error is reported or shutdown is asked; the counters a pipeline bumps
//! are plain relaxed stores.
//!
//! # aiopype's message handlers
//!
//! aiopype's `SyncProtocol` handles a message to the end of the pipeline
//! before the source goes on: in timecast, a pipeline whose stages are one
//! handler chain, or stages joined by a rendezvous
//! [`AsyncStream::new`](crate::AsyncStream::new), whose `put` returns once
//! every consumer has taken the value. Its `AsyncProtocol` decouples the
//! processors through a queue: stages joined by
//! [`AsyncStream::with_capacity(n)`](crate::AsyncStream::with_capacity),
//! where a source runs up to `n` messages ahead of the slowest processor.
//! Both keep every message: a full queue makes the producer wait, it never
//! drops (aiopype's queue is unbounded instead).
//!
//! # Examples
//!
//! Three restarts of a pipeline whose source fails, then it gives up; the
//! other pipeline is unaffected:
//!
//! ```
//! use std::time::Duration;
//! use timecast::flow::{Flow, PipelineState, Restart};
//! use timecast::{sleep, EventLoop, Timestamp};
//!
//! let flow = Flow::new()
//!     .pipeline("flaky", || async {
//!         sleep(Duration::from_secs(1)).await;
//!         Err::<(), _>("upstream closed the connection")
//!     })
//!     .restart(Restart::on_failure().max_restarts(3))
//!     .pipeline("steady", || async {
//!         sleep(Duration::from_secs(60)).await;
//!         Ok::<_, String>(())
//!     })
//!     .restart(Restart::on_failure());
//! let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
//! let report = el.block_on(flow.run());
//! let flaky = report.pipeline("flaky").unwrap();
//! assert_eq!((flaky.state, flaky.restarts, flaky.errors.len()), (PipelineState::Failed, 3, 4));
//! assert_eq!(report.pipeline("steady").unwrap().state, PipelineState::Done);
//! assert_eq!(el.now(), Timestamp::from_unix_secs(60));
//! ```

mod restart;
mod status;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;

use crate::channel::{AsyncStream, Consumer, TryPutError};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::time::{spawn_as, with_core, Core, JoinError, JoinHandle, Sleep, TaskId, Timestamp};

pub use restart::Restart;
pub use status::{
    FlowReport, FlowStatus, PipelineError, PipelineReport, PipelineState, PipelineStatus,
};

use restart::{Backoff, Decision};
use status::Counters;

/// How many failures [`FlowHandle::errors`] buffers for its slowest
/// subscriber before the supervisor waits for it (until a shutdown, after
/// which what does not fit is dropped from the stream).
const ERRORS_CAPACITY: usize = 1024;

type PipelineFuture = Pin<Box<dyn Future<Output = Result<(), String>>>>;
type Factory = Box<dyn FnMut(PipelineContext) -> PipelineFuture>;

/// One pipeline as configured.
struct Spec {
    name: Rc<str>,
    factory: Factory,
    policy: Restart,
}

/// A set of named pipelines under a supervisor: aiopype's `Flow`.
///
/// Build it with [`pipeline`](Self::pipeline) (or
/// [`pipeline_with_context`](Self::pipeline_with_context)) and, after each,
/// its [`restart`](Self::restart) policy; take a [`handle`](Self::handle)
/// to watch and stop it; then [`run`](Self::run) it on an
/// [`EventLoop`](crate::EventLoop). See the [module docs](self) for the
/// rules.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
/// use timecast::flow::{Flow, Restart};
/// use timecast::{process_stream, EventLoop, Timestamp};
///
/// let out = Rc::new(RefCell::new(Vec::new()));
/// let sink = out.clone();
/// let flow = Flow::new()
///     .pipeline("squares", move || {
///         let sink = sink.clone();
///         async move {
///             let past = (1..=3).map(|s| (Timestamp::from_unix_secs(s), s));
///             process_stream(move |_ts: Timestamp, v: i64| sink.borrow_mut().push(v * v))
///                 .past(past)
///                 .await;
///             Ok::<_, String>(())
///         }
///     })
///     .restart(Restart::on_failure().backoff(Duration::from_secs(1), Duration::from_secs(30)));
/// let report = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated().block_on(flow.run());
/// assert!(report.is_ok());
/// assert_eq!(*out.borrow(), [1, 4, 9]);
/// ```
pub struct Flow {
    specs: Vec<Spec>,
    default: Restart,
    grace: Option<Duration>,
    shared: Arc<Shared>,
    /// Taken by `run`, which closes it when it ends.
    errors: Option<AsyncStream<PipelineError>>,
    /// Committed by `run` when it ends, after the last item in flight.
    #[cfg(feature = "store")]
    stores: Vec<crate::store::Store>,
}

impl Default for Flow {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.specs.iter().map(|s| &*s.name).collect();
        f.debug_struct("Flow")
            .field("pipelines", &names)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Drop for Flow {
    /// A flow dropped without running ends its errors stream.
    fn drop(&mut self) {
        if let Some(errors) = &self.errors {
            errors.close();
        }
    }
}

impl Flow {
    /// An empty flow. Pipelines default to [`Restart::on_failure`] (a
    /// pipeline that returns `Ok` is done; aiopype's managers default to
    /// `run_always`, here [`Restart::always`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let report = timecast::EventLoop::new().simulated().block_on(timecast::flow::Flow::new().run());
    /// assert!(report.pipelines.is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            specs: Vec::new(),
            default: Restart::on_failure(),
            grace: None,
            shared: Arc::new(Shared {
                shutdown: AtomicBool::new(false),
                handles: AtomicUsize::new(0),
                state: Mutex::new(SharedState::default()),
            }),
            errors: Some(AsyncStream::with_capacity(ERRORS_CAPACITY)),
            #[cfg(feature = "store")]
            stores: Vec::new(),
        }
    }

    /// Adds a pipeline named `name`, built by `factory` when the flow runs and rebuilt by
    /// it on each restart: aiopype's `Manager`. The factory returns the
    /// pipeline's future; its `Err` is reported by its `Display` text.
    ///
    /// # Panics
    ///
    /// If a pipeline of this flow is already named `name`: failures and
    /// statuses name pipelines, so names must be unique.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    ///
    /// let flow = Flow::new().pipeline("quotes", || async { Ok::<_, std::io::Error>(()) });
    /// assert!(flow.handle().status().pipeline("quotes").is_some());
    /// ```
    #[track_caller]
    pub fn pipeline<F, Fut, E>(self, name: &str, mut factory: F) -> Self
    where
        F: FnMut() -> Fut + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display + 'static,
    {
        self.pipeline_with_context(name, move |_ctx| factory())
    }

    /// Adds a pipeline whose factory receives a [`PipelineContext`]: its
    /// shutdown signal, its counters (items, replay progress) and a way to
    /// report errors without ending.
    ///
    /// # Panics
    ///
    /// If a pipeline of this flow is already named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// use timecast::EventLoop;
    ///
    /// let flow = Flow::new().pipeline_with_context("counter", |ctx| async move {
    ///     ctx.add_items(2);
    ///     Ok::<_, String>(())
    /// });
    /// let report = EventLoop::new().simulated().block_on(flow.run());
    /// assert_eq!(report.pipelines[0].items, 2);
    /// ```
    #[track_caller]
    pub fn pipeline_with_context<F, Fut, E>(mut self, name: &str, mut factory: F) -> Self
    where
        F: FnMut(PipelineContext) -> Fut + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display + 'static,
    {
        assert!(
            self.specs.iter().all(|s| &*s.name != name),
            "Flow::pipeline: a pipeline named `{name}` was already added; give each pipeline \
             its own name"
        );
        let factory: Factory = Box::new(move |ctx| {
            let fut = factory(ctx);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        self.shared.state.lock().pipelines.push(Entry {
            name: name.to_owned(),
            state: PipelineState::NotStarted,
            restarts: 0,
            last_error: None,
            counters: Arc::new(Counters::new()),
            errors: ErrorHistory::default(),
        });
        self.specs.push(Spec {
            name: name.into(),
            factory,
            policy: self.default.clone(),
        });
        self
    }

    /// The policy of the pipeline added last; called before any pipeline,
    /// the policy of the pipelines added after.
    fn policy_mut(&mut self) -> &mut Restart {
        match self.specs.last_mut() {
            Some(spec) => &mut spec.policy,
            None => &mut self.default,
        }
    }

    /// Sets the restart policy of the pipeline added last (called before
    /// any pipeline: the default of those added after).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::{Flow, Restart};
    ///
    /// let flow = Flow::new()
    ///     .restart(Restart::never()) // default for both below
    ///     .pipeline("a", || async { Ok::<_, String>(()) })
    ///     .pipeline("b", || async { Ok::<_, String>(()) })
    ///     .restart(Restart::on_failure()); // b only
    /// # drop(flow);
    /// ```
    pub fn restart(mut self, policy: Restart) -> Self {
        *self.policy_mut() = policy;
        self
    }

    /// Sets the backoff of the pipeline added last (see
    /// [`Restart::backoff`]; before any pipeline: the default).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Flow;
    ///
    /// let flow = Flow::new()
    ///     .pipeline("a", || async { Ok::<_, String>(()) })
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(5));
    /// # drop(flow);
    /// ```
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        let policy = self.policy_mut();
        *policy = policy.clone().backoff(min, max);
        self
    }

    /// Sets the restart limit of the pipeline added last (see
    /// [`Restart::max_restarts`]; before any pipeline: the default).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Flow;
    ///
    /// let flow = Flow::new()
    ///     .pipeline("a", || async { Ok::<_, String>(()) })
    ///     .max_restarts(5)
    ///     .within(Duration::from_secs(60));
    /// # drop(flow);
    /// ```
    pub fn max_restarts(mut self, n: u32) -> Self {
        let policy = self.policy_mut();
        *policy = policy.clone().max_restarts(n);
        self
    }

    /// Sets the period of the restart limit of the pipeline added last
    /// (see [`Restart::within`]; before any pipeline: the default).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Flow;
    ///
    /// let flow = Flow::new()
    ///     .pipeline("a", || async { Ok::<_, String>(()) })
    ///     .max_restarts(10)
    ///     .within(Duration::from_secs(3600));
    /// # drop(flow);
    /// ```
    pub fn within(mut self, period: Duration) -> Self {
        let policy = self.policy_mut();
        *policy = policy.clone().within(period);
        self
    }

    /// After [`shutdown`](FlowHandle::shutdown), waits at most `grace` of
    /// the loop's time for the pipelines to return, then aborts those
    /// still running (their futures are dropped where they are) and
    /// reports them [`Failed`](PipelineState::Failed) (a future that
    /// panics when dropped is contained too: the panic is in that
    /// pipeline's error, marked [`panicked`](PipelineError::panicked)).
    /// Without it, `run` waits for every pipeline however long it takes.
    ///
    /// The grace period starts when the shutdown is asked, even while a
    /// subscriber of [`errors`](FlowHandle::errors) lags: from the
    /// shutdown on, the supervisor no longer waits for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::{Flow, PipelineState};
    /// use timecast::{spawn, EventLoop, Timestamp};
    ///
    /// // A pipeline that ignores the shutdown signal.
    /// let flow = Flow::new()
    ///     .pipeline("stubborn", || std::future::pending::<Result<(), String>>())
    ///     .shutdown_grace(Duration::from_secs(5));
    /// let handle = flow.handle();
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let report = el.block_on(async move {
    ///     spawn(async move { handle.shutdown() });
    ///     flow.run().await
    /// });
    /// assert_eq!(report.pipelines[0].state, PipelineState::Failed);
    /// assert_eq!(el.now(), Timestamp::from_unix_secs(5));
    /// ```
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// A handle to watch and stop the flow, from this thread or any other.
    ///
    /// # Examples
    ///
    /// ```
    /// let flow = timecast::flow::Flow::new();
    /// let handle = flow.handle();
    /// std::thread::spawn(move || handle.shutdown()).join().unwrap();
    /// ```
    pub fn handle(&self) -> FlowHandle {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        FlowHandle {
            shared: self.shared.clone(),
            errors: self
                .errors
                .clone()
                .expect("a flow's errors stream is there until it runs"),
        }
    }

    /// Runs every pipeline until each is done for good, or until
    /// [`shutdown`](FlowHandle::shutdown) and every pipeline has returned;
    /// returns the [`FlowReport`]. Await it on an
    /// [`EventLoop`](crate::EventLoop): `el.block_on(flow.run())`, or
    /// spawn it.
    ///
    /// While a [`FlowHandle`] exists, a
    /// [simulated](crate::EventLoop::simulated) loop does not report the
    /// flow's tasks stuck: the handle may still shut it down. With no
    /// handle (none taken, or the last one dropped during the run),
    /// pipelines that nothing can wake are reported stuck as any task is
    /// (see [`EventLoop::run`](crate::EventLoop::run)).
    ///
    /// # Panics
    ///
    /// Polled outside an [`EventLoop`](crate::EventLoop). (A panic of a
    /// factory, or of the future it built, is contained: it fails that
    /// build of the pipeline.)
    ///
    /// # Cancel safety
    ///
    /// Dropping the future aborts the pipelines still running (their
    /// futures are dropped where they are) and ends the errors stream.
    /// [`FlowHandle::status`] then reports every pipeline that had not
    /// ended for good (running, or waiting out its backoff)
    /// [`Failed`](PipelineState::Failed), with a last error saying that
    /// its run was dropped. (A run dropped before its first poll started
    /// nothing: the pipelines stay
    /// [`NotStarted`](PipelineState::NotStarted).)
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::{Flow, Restart};
    /// use timecast::EventLoop;
    ///
    /// let flow = Flow::new()
    ///     .pipeline("panics", || async {
    ///         if true { panic!("index out of bounds") }
    ///         Ok::<_, String>(())
    ///     })
    ///     .restart(Restart::never());
    /// let report = EventLoop::new().simulated().block_on(flow.run());
    /// assert!(report.errors[0].panicked);
    /// assert_eq!(report.errors[0].error, "index out of bounds");
    /// ```
    pub async fn run(self) -> FlowReport {
        #[cfg(feature = "store")]
        let (this, stores) = {
            let mut this = self;
            let stores = std::mem::take(&mut this.stores);
            (this, stores)
        };
        #[cfg(not(feature = "store"))]
        let this = self;
        let mut supervisor = Supervisor::new(this);
        supervisor.start_all();
        #[allow(unused_mut, reason = "the store feature commits into the report")]
        let mut report = loop {
            let event = poll_fn(|cx| supervisor.poll_event(cx)).await;
            if supervisor.handle(event).await {
                break supervisor.finish();
            }
        };
        #[cfg(feature = "store")]
        for store in stores {
            if let Err(e) = store.sync_async().await {
                report.commit_errors.push(e.to_string());
            }
        }
        report
    }

    /// Commits `store` when the flow ends, by [`shutdown`](FlowHandle::shutdown)
    /// or because every pipeline is done for good: once the pipelines'
    /// items in flight have finished, `run` commits and syncs it (so what
    /// they wrote survives a power loss too) before it returns. A commit
    /// that fails is in [`FlowReport::commit_errors`]. Several stores may
    /// be attached; each is committed on its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{flow::Flow, store::{CommitPolicy, Store}, EventLoop};
    ///
    /// let store = Store::temporary()?;
    /// store.set_commit_policy(CommitPolicy::manual());
    /// let counts = store.table::<String, u64>("counts")?;
    /// let flow = Flow::new()
    ///     .pipeline("count", move || {
    ///         let counts = counts.clone();
    ///         async move { counts.put(&"apples".to_string(), &3) }
    ///     })
    ///     .store(&store);
    /// let report = EventLoop::new().simulated().block_on(flow.run());
    /// assert!(report.is_ok() && report.commit_errors.is_empty());
    /// assert_eq!((store.pending(), store.commits()), (0, 1));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    #[cfg(feature = "store")]
    pub fn store(mut self, store: &crate::store::Store) -> Self {
        self.stores.push(store.clone());
        self
    }
}

/// The state a flow shares with its handles and contexts.
struct Shared {
    /// Set once, by [`FlowHandle::shutdown`]: read without the lock.
    shutdown: AtomicBool,
    /// Live [`FlowHandle`]s. With none, nothing can ever ask for a
    /// shutdown, so no waker waits for one: a simulated loop can then
    /// report the flow's tasks stuck.
    handles: AtomicUsize,
    state: Mutex<SharedState>,
}

#[derive(Default)]
struct SharedState {
    /// The supervisor's waker, while `run` is pending and a handle may
    /// ask for a shutdown.
    supervisor: Option<Waker>,
    /// Wakers of [`Shutdown`] futures and streams stopping on shutdown,
    /// by slot; `free` lists the empty slots.
    waiters: Vec<Option<Waker>>,
    free: Vec<usize>,
    pipelines: Vec<Entry>,
    /// Errors reported by pipelines, not yet published to the errors
    /// stream (see [`queue_report`](Self::queue_report)).
    reports: VecDeque<PipelineError>,
    /// The supervisor waits for a lagging subscriber of the errors stream.
    publish_waits: bool,
    /// Every pipeline's latest errors, and how many there were.
    all_errors: ErrorHistory,
}

impl SharedState {
    /// Records an error of pipeline `index`: its last (for the status),
    /// and in the report's histories.
    fn record(&mut self, index: usize, error: &PipelineError) {
        let entry = &mut self.pipelines[index];
        entry.last_error = Some(error.clone());
        entry.errors.push(error.clone());
        self.all_errors.push(error.clone());
    }

    /// Queues a report for the errors stream. While the supervisor waits
    /// for a lagging subscriber, a report that finds
    /// [`FlowReport::ERROR_HISTORY`] or more waiting drops the oldest (it is
    /// recorded): the queue does not grow while the supervisor waits, and
    /// a burst reported while it did not wait is not cut.
    fn queue_report(&mut self, error: PipelineError) {
        if self.publish_waits && self.reports.len() >= FlowReport::ERROR_HISTORY {
            self.reports.pop_front();
        }
        self.reports.push_back(error);
    }
}

/// One pipeline as the status sees it.
struct Entry {
    name: String,
    state: PipelineState,
    restarts: u32,
    last_error: Option<PipelineError>,
    counters: Arc<Counters>,
    /// Its latest errors, and how many there were.
    errors: ErrorHistory,
}

impl Shared {
    /// (Inline: [`Past`] asks once per event.)
    #[inline]
    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Whether a shutdown may still be asked for: a handle exists.
    fn may_shut_down(&self) -> bool {
        self.handles.load(Ordering::Acquire) > 0
    }

    fn shutdown(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.state.lock();
            if self.shutdown.swap(true, Ordering::AcqRel) {
                return;
            }
            let mut wakers: Vec<Waker> =
                state.waiters.iter_mut().filter_map(Option::take).collect();
            wakers.extend(state.supervisor.clone());
            wakers
        };
        // Woken with no lock held.
        for waker in wakers {
            waker.wake();
        }
    }

    /// The last handle is gone: no shutdown can come any more. Wakes the
    /// supervisor and the waiters for the signal, so that they poll again
    /// and, seeing no handle, hold no waker (see [`Flow::run`] on stuck
    /// pipelines).
    fn unwatched(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.state.lock();
            let mut wakers: Vec<Waker> =
                state.waiters.iter_mut().filter_map(Option::take).collect();
            wakers.extend(state.supervisor.take());
            wakers
        };
        // Woken, then dropped, with no lock held.
        for waker in wakers {
            waker.wake();
        }
    }

    /// Registers `waker` in `slot` (allocated if `None`) for the shutdown
    /// signal, unless it is set or can no longer come. The handle count is
    /// read under the lock, which the last handle's drop takes after its
    /// decrement: a waker registered here is either taken by that drop or
    /// not registered at all.
    fn register(&self, slot: &mut Option<usize>, waker: &Waker) -> Watch {
        let old = {
            let mut state = self.state.lock();
            if self.is_shutdown() {
                return Watch::Signalled;
            }
            if !self.may_shut_down() {
                return Watch::Unwatched;
            }
            let index = *slot.get_or_insert_with(|| match state.free.pop() {
                Some(i) => i,
                None => {
                    state.waiters.push(None);
                    state.waiters.len() - 1
                }
            });
            state.waiters[index].replace(waker.clone())
        };
        drop(old);
        Watch::Registered
    }

    fn unregister(&self, slot: Option<usize>) {
        let Some(index) = slot else { return };
        let old = {
            let mut state = self.state.lock();
            state.free.push(index);
            state.waiters[index].take()
        };
        drop(old);
    }
}

/// What [`Shared::register`] did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// The shutdown signal is set.
    Signalled,
    /// The waker waits for the signal.
    Registered,
    /// No handle is left: no signal can come, no waker is held.
    Unwatched,
}

/// A handle to a running [`Flow`]: stop it, subscribe to its failures, read
/// its status. `Clone`, `Send` and `Sync`: a Ctrl-C handler or a status
/// thread can hold one.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::flow::Flow;
/// use timecast::{process_stream, sleep, EventLoop, Timestamp};
///
/// let flow = Flow::new().pipeline_with_context("ticks", |ctx| async move {
///     let past = (1..).map(|s| (Timestamp::from_unix_secs(s), s));
///     process_stream(|_ts: Timestamp, _s: i64| {}).past(ctx.past(past)).await;
///     Ok::<_, String>(())
/// });
/// let handle = flow.handle();
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let stopper = handle.clone();
/// el.spawn(async move {
///     sleep(Duration::from_millis(10_500)).await;
///     stopper.shutdown();
/// });
/// let report = el.block_on(flow.run());
/// assert!(report.shut_down);
/// // Event 11 was pulled at 10 s, before the signal: it is handled at 11 s.
/// assert_eq!(report.pipelines[0].items, 11);
/// assert_eq!(el.now(), Timestamp::from_unix_secs(11));
/// ```
pub struct FlowHandle {
    shared: Arc<Shared>,
    errors: AsyncStream<PipelineError>,
}

impl Clone for FlowHandle {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: self.shared.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl Drop for FlowHandle {
    /// The last handle's drop releases every waker waiting for a shutdown,
    /// which can no longer come.
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.unwatched();
        }
    }
}

impl fmt::Debug for FlowHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowHandle")
            .field("shutting_down", &self.shared.is_shutdown())
            .finish_non_exhaustive()
    }
}

impl FlowHandle {
    /// Asks the flow to stop: the [shutdown signal](PipelineContext::shutdown)
    /// of every pipeline fires, sources stop taking input, no pipeline is
    /// restarted (one waiting out its backoff is done at once), and
    /// [`Flow::run`] returns once every pipeline has returned (or the
    /// [grace period](Flow::shutdown_grace) is over). Idempotent; callable
    /// from any thread, before or during the run (before: `run` starts no
    /// pipeline and returns at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Flow;
    /// use timecast::{sleep, EventLoop, Timestamp};
    ///
    /// let flow = Flow::new().pipeline_with_context("server", |ctx| async move {
    ///     ctx.shutdown().await; // serve until asked to stop
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// el.spawn(async move {
    ///     sleep(Duration::from_secs(60)).await;
    ///     handle.shutdown();
    /// });
    /// let report = el.block_on(flow.run());
    /// assert!(report.shut_down && report.is_ok());
    /// assert_eq!(el.now(), Timestamp::from_unix_secs(60));
    /// ```
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = timecast::flow::Flow::new().handle();
    /// handle.shutdown();
    /// assert!(handle.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.shared.is_shutdown()
    }

    /// A broadcast stream of every failure from now on: errors and panics
    /// of the pipelines, and errors they
    /// [report](PipelineContext::report). It ends when `run` returns.
    ///
    /// Lossless until a shutdown, as every [`AsyncStream`]: it buffers
    /// 1024 failures for its slowest subscriber, then the supervisor waits
    /// for it (restarts and the failures that follow are then delayed,
    /// pipelines run on). Of the errors that pipelines
    /// [report](PipelineContext::report) while it waits, the latest
    /// [`FlowReport::ERROR_HISTORY`] wait their turn and older ones are
    /// dropped from the stream (the report has them, as it has every error:
    /// counted, and the latest kept), so that a flow left running with a
    /// subscriber that stopped reading does not grow. Drop a subscriber you
    /// stop reading: with no subscriber left, the supervisor goes on at
    /// once.
    ///
    /// Once [`shutdown`](Self::shutdown) is asked, the supervisor no longer
    /// waits: a failure that does not fit the buffer of a lagging
    /// subscriber is dropped from the stream (the [`FlowReport`] records
    /// it, and the status its pipeline's last one), so that the shutdown
    /// and its [grace period](Flow::shutdown_grace) are not held up.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::{Flow, Restart};
    /// use timecast::EventLoop;
    ///
    /// let flow = Flow::new()
    ///     .pipeline("bad", || async { Err::<(), _>("no route to host") })
    ///     .restart(Restart::never());
    /// let mut errors = flow.handle().errors();
    /// EventLoop::new().simulated().block_on(flow.run());
    /// assert_eq!(errors.try_recv()?.error, "no route to host");
    /// assert!(errors.try_recv().is_err()); // ended
    /// # Ok::<_, timecast::TryRecvError>(())
    /// ```
    pub fn errors(&self) -> Consumer<PipelineError> {
        self.errors.subscribe()
    }

    /// A snapshot of every pipeline: state, restarts, last error, items
    /// processed, replay progress (see [`PipelineStatus`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::{Flow, PipelineState};
    ///
    /// let flow = Flow::new().pipeline("a", || async { Ok::<_, String>(()) });
    /// let status = flow.handle().status();
    /// assert_eq!(status.pipeline("a").unwrap().state, PipelineState::NotStarted);
    /// ```
    pub fn status(&self) -> FlowStatus {
        let state = self.shared.state.lock();
        FlowStatus {
            pipelines: state
                .pipelines
                .iter()
                .map(|e| {
                    PipelineStatus::new(
                        e.name.clone(),
                        e.state,
                        e.restarts,
                        e.last_error.clone(),
                        &e.counters,
                    )
                })
                .collect(),
            shutting_down: self.shared.is_shutdown(),
        }
    }
}

/// What a pipeline's factory receives from
/// [`Flow::pipeline_with_context`]: the pipeline's name, the flow's
/// shutdown signal, the pipeline's counters, and a way to report errors.
/// `Clone`; not `Send` (a pipeline runs on its loop's thread).
///
/// # Stopping cooperatively
///
/// On [`FlowHandle::shutdown`], a pipeline is asked, never forced, to
/// stop: wrap its inputs so that they end at the signal, and it returns
/// once the items in flight are through.
///
/// - [`past(iter)`](Self::past): a past for
///   [`process_stream`](crate::process_stream) that ends at the signal
///   (and counts the replay's progress). A `process_stream` pulls its next
///   event once the previous handler finished, then waits for the event's
///   time: no event is cut short, an event pulled before the signal is
///   handled, and none after.
/// - [`live(stream)`](Self::live) and
///   [`until_shutdown(stream)`](Self::until_shutdown): streams that end at
///   the signal, checked before each item.
/// - [`shutdown()`](Self::shutdown): a future to `select` on, and
///   [`is_shutdown()`](Self::is_shutdown).
///
/// A pipeline that ignores the signal runs on; `run` waits for it, up to
/// the [grace period](Flow::shutdown_grace) if one is set, after which it
/// is aborted (its future dropped where it is) and reported failed.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
/// use timecast::flow::Flow;
/// use timecast::{process_stream, sleep, EventLoop, Timestamp};
///
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let out = seen.clone();
/// let flow = Flow::new().pipeline_with_context("replay", move |ctx| {
///     let out = out.clone();
///     async move {
///         let past = (0..100).map(|s| (Timestamp::from_unix_secs(s), s));
///         process_stream(move |_ts: Timestamp, v: i64| {
///             let out = out.clone();
///             async move {
///                 sleep(Duration::from_millis(500)).await; // in flight across the signal
///                 out.borrow_mut().push(v);
///             }
///         })
///         .past(ctx.past(past))
///         .await;
///         Ok::<_, String>(())
///     }
/// });
/// let handle = flow.handle();
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// el.spawn(async move {
///     timecast::sleep_until(Timestamp::from_unix_millis(3_200)).await;
///     handle.shutdown();
/// });
/// el.block_on(flow.run());
/// assert_eq!(*seen.borrow(), [0, 1, 2, 3]); // event 3 was in flight: it finished
/// ```
#[derive(Clone)]
pub struct PipelineContext {
    inner: Rc<ContextInner>,
}

struct ContextInner {
    name: Rc<str>,
    index: usize,
    restarts: u32,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    /// Whom a report wakes: the supervisor.
    supervisor: Rc<RefCell<Wake>>,
}

impl fmt::Debug for PipelineContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineContext")
            .field("name", &self.inner.name)
            .field("restarts", &self.inner.restarts)
            .finish_non_exhaustive()
    }
}

impl PipelineContext {
    /// The pipeline's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// let flow = Flow::new().pipeline_with_context("quotes", |ctx| async move {
    ///     assert_eq!(ctx.name(), "quotes");
    ///     Ok::<_, String>(())
    /// });
    /// assert!(timecast::EventLoop::new().simulated().block_on(flow.run()).is_ok());
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many times the pipeline was restarted before this build: 0 for
    /// the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::{Flow, Restart};
    /// let flow = Flow::new()
    ///     .pipeline_with_context("retry", |ctx| async move {
    ///         if ctx.restarts() < 2 { Err("not yet") } else { Ok(()) }
    ///     })
    ///     .restart(Restart::on_failure());
    /// let report = timecast::EventLoop::new().simulated().block_on(flow.run());
    /// assert_eq!(report.pipelines[0].restarts, 2);
    /// ```
    pub fn restarts(&self) -> u32 {
        self.inner.restarts
    }

    /// Whether the flow is shutting down.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Flow;
    /// use timecast::{sleep, EventLoop};
    ///
    /// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
    ///     assert!(!ctx.is_shutdown());
    ///     sleep(Duration::from_secs(2)).await;
    ///     assert!(ctx.is_shutdown());
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// let el = EventLoop::new().simulated();
    /// el.spawn(async move {
    ///     sleep(Duration::from_secs(1)).await;
    ///     handle.shutdown();
    /// });
    /// assert!(el.block_on(flow.run()).is_ok());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.inner.shared.is_shutdown()
    }

    /// A future that completes when the flow is asked to shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::future::{select, Either};
    /// use std::time::Duration;
    /// use timecast::flow::Flow;
    /// use timecast::{sleep, EventLoop};
    ///
    /// let flow = Flow::new().pipeline_with_context("worker", |ctx| async move {
    ///     loop {
    ///         match select(ctx.shutdown(), sleep(Duration::from_secs(1))).await {
    ///             Either::Left(_) => return Ok::<_, String>(()),
    ///             Either::Right(_) => ctx.add_items(1),
    ///         }
    ///     }
    /// });
    /// let handle = flow.handle();
    /// let el = EventLoop::new().simulated();
    /// el.spawn(async move {
    ///     sleep(Duration::from_millis(3_500)).await;
    ///     handle.shutdown();
    /// });
    /// assert_eq!(el.block_on(flow.run()).pipelines[0].items, 3);
    /// ```
    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            shared: self.inner.shared.clone(),
            slot: None,
            done: false,
        }
    }

    /// Wraps `stream` so that it ends at the shutdown signal: checked
    /// before each item (one atomic load), and while it waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use timecast::flow::Flow;
    /// use timecast::{sleep, timer, EventLoop, Timestamp};
    ///
    /// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
    ///     let ticks = ctx.until_shutdown(timer(Duration::from_secs(1)));
    ///     assert_eq!(ticks.count().await, 3); // at 1, 2 and 3 s
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// el.spawn(async move {
    ///     sleep(Duration::from_millis(3_500)).await;
    ///     handle.shutdown();
    /// });
    /// assert!(el.block_on(flow.run()).is_ok());
    /// assert_eq!(el.now(), Timestamp::from_unix_millis(3_500));
    /// ```
    pub fn until_shutdown<S: Stream>(&self, stream: S) -> UntilShutdown<S> {
        UntilShutdown {
            stream: Box::pin(stream),
            shutdown: self.shutdown(),
            registered: None,
        }
    }

    /// Wraps a past (an iterator of `(Timestamp, T)` for
    /// [`process_stream`](crate::process_stream)`.past`) so that it ends
    /// at the shutdown signal, and counts its events: items processed, the
    /// event time reached and, when its `size_hint` is exact, the replay's
    /// progress. The pipeline is live once the past is exhausted.
    ///
    /// Events are counted when pulled: a `process_stream` pulls one event
    /// ahead of its handler. The status follows the latest past of a
    /// build: give a pipeline one past.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// use timecast::{process_stream, EventLoop, Timestamp};
    ///
    /// let flow = Flow::new().pipeline_with_context("replay", |ctx| async move {
    ///     let past = (0..5).map(|s| (Timestamp::from_unix_secs(s), ()));
    ///     process_stream(|_ts: Timestamp, ()| {}).past(ctx.past(past)).await;
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// EventLoop::new().simulated().block_on(flow.run());
    /// let status = handle.status();
    /// let replay = status.pipeline("replay").unwrap();
    /// assert_eq!((replay.items, replay.live), (5, true));
    /// assert_eq!(replay.reached, Some(Timestamp::from_unix_secs(4)));
    /// ```
    pub fn past<I, T>(&self, past: I) -> Past<I::IntoIter>
    where
        I: IntoIterator<Item = (Timestamp, T)>,
    {
        let iter = past.into_iter();
        let len = match iter.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(lower as u64),
            _ => None,
        };
        self.inner.counters.start_past(len);
        Past {
            iter,
            shared: self.inner.shared.clone(),
            counters: self.inner.counters.clone(),
            count: 0,
            done: false,
            _local: PhantomData,
        }
    }

    /// Declares the time of the last event of the past, so that the
    /// status reports the replay's progress by event time.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// use timecast::{process_stream, EventLoop, Timestamp};
    ///
    /// let flow = Flow::new().pipeline_with_context("replay", |ctx| async move {
    ///     ctx.past_end(Timestamp::from_unix_secs(100));
    ///     let past = (0..=100).step_by(10).map(|s| (Timestamp::from_unix_secs(s), ()));
    ///     process_stream(|_ts: Timestamp, ()| {}).past(ctx.past(past)).await;
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// EventLoop::new().simulated().block_on(flow.run());
    /// assert_eq!(handle.status().pipelines[0].past_end, Some(Timestamp::from_unix_secs(100)));
    /// ```
    pub fn past_end(&self, end: Timestamp) {
        self.inner.counters.set_past_end(end);
    }

    /// Wraps a live stream of `(Timestamp, T)` so that it ends at the
    /// shutdown signal and counts its events (items, event time reached).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// use timecast::{process_stream, EventLoop, Timestamp};
    ///
    /// let flow = Flow::new().pipeline_with_context("live", |ctx| async move {
    ///     let live = futures::stream::iter([(Timestamp::from_unix_secs(1), 'a')]);
    ///     process_stream(|_ts: Timestamp, _c: char| {}).live(ctx.live(live)).await;
    ///     Ok::<_, String>(())
    /// });
    /// let report = EventLoop::new().simulated().block_on(flow.run());
    /// assert_eq!(report.pipelines[0].items, 1);
    /// ```
    pub fn live<S, T>(&self, stream: S) -> Live<S>
    where
        S: Stream<Item = (Timestamp, T)>,
    {
        Live {
            inner: self.until_shutdown(stream),
            counters: self.inner.counters.clone(),
            _local: PhantomData,
        }
    }

    /// Counts `n` items processed. As cheap as a `Cell` update.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
    ///     for _ in 0..3 { ctx.add_items(1) }
    ///     Ok::<_, String>(())
    /// });
    /// let report = timecast::EventLoop::new().simulated().block_on(flow.run());
    /// assert_eq!(report.pipelines[0].items, 3);
    /// ```
    #[inline]
    pub fn add_items(&self, n: u64) {
        self.inner.counters.add_items(n);
    }

    /// Records the event time reached, for the status's progress and lag.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// use timecast::{EventLoop, Timestamp};
    ///
    /// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
    ///     ctx.reached(Timestamp::from_unix_secs(7));
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// EventLoop::new().simulated().block_on(flow.run());
    /// assert_eq!(handle.status().pipelines[0].reached, Some(Timestamp::from_unix_secs(7)));
    /// ```
    #[inline]
    pub fn reached(&self, ts: Timestamp) {
        self.inner.counters.reach(ts);
    }

    /// Marks the pipeline live (its past is replayed), for a pipeline that
    /// does not use [`past`](Self::past): typically from
    /// [`on_live_start`](crate::source::ProcessStream::on_live_start).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
    ///     ctx.set_live();
    ///     Ok::<_, String>(())
    /// });
    /// let handle = flow.handle();
    /// timecast::EventLoop::new().simulated().block_on(flow.run());
    /// assert!(handle.status().pipelines[0].live);
    /// ```
    pub fn set_live(&self) {
        self.inner.counters.set_live();
    }

    /// Reports an error the pipeline survives (a failed request of a
    /// [`poll`](crate::source::poll) source, a malformed message skipped):
    /// it goes to [`FlowHandle::errors`], `tracing` and the report like a
    /// failure, with [`fatal`](PipelineError::fatal) `false`, and the
    /// pipeline runs on.
    ///
    /// # Panics
    ///
    /// Outside the [`EventLoop`](crate::EventLoop) (the error is stamped
    /// with the loop's clock).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Flow;
    /// use timecast::EventLoop;
    ///
    /// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
    ///     ctx.report("skipped a malformed quote");
    ///     Ok::<_, String>(())
    /// });
    /// let report = EventLoop::new().simulated().block_on(flow.run());
    /// assert!(report.is_ok());
    /// assert_eq!(report.errors[0].error, "skipped a malformed quote");
    /// assert!(!report.errors[0].fatal);
    /// ```
    pub fn report(&self, error: impl fmt::Display) {
        let at = crate::time::now();
        let inner = &*self.inner;
        {
            let mut state = inner.shared.state.lock();
            let entry = &mut state.pipelines[inner.index];
            let error = PipelineError {
                pipeline: entry.name.clone(),
                error: error.to_string(),
                restarts: entry.restarts,
                at,
                panicked: false,
                fatal: false,
            };
            state.record(inner.index, &error);
            state.queue_report(error);
        };
        // Woken with no borrow held.
        let wake = inner.supervisor.borrow().clone();
        wake.wake();
    }
}

/// The future returned by [`PipelineContext::shutdown`]: completes when
/// the flow is asked to shut down.
///
/// # Cancel safety
///
/// Dropping it loses nothing; the signal stays set for later futures.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::flow::{Flow, Shutdown};
/// use timecast::{now, sleep, EventLoop, Timestamp};
///
/// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
///     let signal: Shutdown = ctx.shutdown();
///     signal.await;
///     assert_eq!(now(), Timestamp::from_unix_secs(5));
///     Ok::<_, String>(())
/// });
/// let handle = flow.handle();
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// el.spawn(async move {
///     sleep(Duration::from_secs(5)).await;
///     handle.shutdown();
/// });
/// assert!(el.block_on(flow.run()).is_ok());
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Shutdown {
    shared: Arc<Shared>,
    slot: Option<usize>,
    done: bool,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("signalled", &self.shared.is_shutdown())
            .finish()
    }
}

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.watch(cx) {
            Watch::Signalled => Poll::Ready(()),
            Watch::Registered | Watch::Unwatched => Poll::Pending,
        }
    }
}

impl Shutdown {
    /// Polls the signal: with no handle left, no shutdown can come, and no
    /// waker is held, so that a simulated loop can tell a pipeline waiting
    /// only for it is stuck.
    fn watch(&mut self, cx: &Context<'_>) -> Watch {
        if self.done || self.shared.is_shutdown() {
            self.done = true;
            return Watch::Signalled;
        }
        let watch = self.shared.register(&mut self.slot, cx.waker());
        self.done = watch == Watch::Signalled;
        watch
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.shared.unregister(self.slot.take());
    }
}

/// The stream returned by [`PipelineContext::until_shutdown`]: the items
/// of the inner stream until the shutdown signal.
///
/// # Cancel safety
///
/// As the inner stream's `next`.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use timecast::flow::{Flow, UntilShutdown};
///
/// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
///     let s: UntilShutdown<_> = ctx.until_shutdown(futures::stream::iter([1, 2]));
///     assert_eq!(s.collect::<Vec<_>>().await, [1, 2]);
///     Ok::<_, String>(())
/// });
/// timecast::EventLoop::new().simulated().block_on(flow.run());
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct UntilShutdown<S> {
    /// Boxed once, so that any stream can be wrapped and the wrapper stays
    /// `Unpin`.
    stream: Pin<Box<S>>,
    shutdown: Shutdown,
    /// The waker registered with the signal, to skip the lock when it is
    /// the same.
    registered: Option<Waker>,
}

impl<S> fmt::Debug for UntilShutdown<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntilShutdown")
            .field("signalled", &self.shutdown.shared.is_shutdown())
            .finish_non_exhaustive()
    }
}

impl<S: Stream> Stream for UntilShutdown<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        if this.shutdown.done || this.shutdown.shared.is_shutdown() {
            this.shutdown.done = true;
            return Poll::Ready(None);
        }
        match this.stream.as_mut().poll_next(cx) {
            Poll::Ready(item) => Poll::Ready(item),
            Poll::Pending => {
                // The last handle's drop takes and wakes the registered
                // waker: polled again then, this registers nothing.
                if this.shutdown.shared.may_shut_down()
                    && this
                        .registered
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    return Poll::Pending;
                }
                match this.shutdown.watch(cx) {
                    Watch::Signalled => return Poll::Ready(None),
                    Watch::Registered => this.registered = Some(cx.waker().clone()),
                    Watch::Unwatched => this.registered = None,
                }
                Poll::Pending
            }
        }
    }
}

/// The iterator returned by [`PipelineContext::past`]: the past's events
/// until the shutdown signal, counted.
///
/// # Examples
///
/// ```
/// use timecast::flow::{Flow, Past};
/// use timecast::Timestamp;
///
/// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
///     let past: Past<_> = ctx.past([(Timestamp::UNIX_EPOCH, 1)]);
///     assert_eq!(past.count(), 1);
///     Ok::<_, String>(())
/// });
/// timecast::EventLoop::new().simulated().block_on(flow.run());
/// ```
pub struct Past<I> {
    iter: I,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    /// Events pulled so far, published by a store each.
    count: u64,
    done: bool,
    /// Counters are bumped by their pipeline's thread only.
    _local: PhantomData<Rc<()>>,
}

impl<I> fmt::Debug for Past<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Past")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<I, T> Iterator for Past<I>
where
    I: Iterator<Item = (Timestamp, T)>,
{
    type Item = (Timestamp, T);

    #[inline]
    fn next(&mut self) -> Option<(Timestamp, T)> {
        if self.done {
            return None;
        }
        if self.shared.is_shutdown() {
            self.done = true;
            return None;
        }
        match self.iter.next() {
            Some((ts, value)) => {
                if self.count == 0 {
                    self.counters.first(ts);
                }
                self.count += 1;
                self.counters.replayed(self.count, ts);
                Some((ts, value))
            }
            None => {
                self.done = true;
                self.counters.set_live();
                None
            }
        }
    }
}

/// The stream returned by [`PipelineContext::live`]: the live events until
/// the shutdown signal, counted.
///
/// # Cancel safety
///
/// As the inner stream's `next`.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use timecast::flow::{Flow, Live};
/// use timecast::Timestamp;
///
/// let flow = Flow::new().pipeline_with_context("p", |ctx| async move {
///     let live: Live<_> = ctx.live(futures::stream::iter([(Timestamp::UNIX_EPOCH, 1)]));
///     assert_eq!(live.count().await, 1);
///     Ok::<_, String>(())
/// });
/// timecast::EventLoop::new().simulated().block_on(flow.run());
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Live<S> {
    inner: UntilShutdown<S>,
    counters: Arc<Counters>,
    /// Counters are bumped by their pipeline's thread only.
    _local: PhantomData<Rc<()>>,
}

impl<S> fmt::Debug for Live<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl<S, T> Stream for Live<S>
where
    S: Stream<Item = (Timestamp, T)>,
{
    type Item = (Timestamp, T);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<(Timestamp, T)>> {
        let this = &mut *self;
        let next = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(Some((ts, _))) = &next {
            this.counters.add_items(1);
            this.counters.reach(*ts);
        }
        next
    }
}

/// Where a supervised pipeline stands, inside the supervisor.
enum Phase {
    Running(JoinHandle<Result<(), String>>),
    Backoff(Sleep),
    Finished,
}

struct Slot {
    spec: Spec,
    phase: Phase,
    backoff: Backoff,
    restarts: u32,
    started: Timestamp,
    counters: Arc<Counters>,
    /// Aborted at the end of the shutdown grace period.
    aborted: bool,
}

/// What woke the supervisor.
enum Event {
    Shutdown,
    Report(PipelineError),
    Ended(usize, Result<Result<(), String>, JoinError>),
    Restart(usize),
    GraceOver,
    AllDone,
}

/// How the supervisor is woken from its loop's thread (by a report): the
/// waker `run` was last polled with.
#[derive(Clone)]
enum Wake {
    /// Not polled yet, or the run is over.
    Nobody,
    /// Polled with the own waker of a task of its loop: woken by task id,
    /// so that it holds no waker (see `EventLoop::run` on stuck tasks).
    Task(Weak<Core>, TaskId),
    /// Polled by a combinator with a waker of its own (`FuturesUnordered`,
    /// a custom executor): woken through that waker, which alone leads
    /// back to `run`.
    Waker(Waker),
}

impl Wake {
    /// Where `cx` wakes the future polled with it, the task being polled
    /// on `core` if it is that task's own waker.
    fn of(core: &Rc<Core>, cx: &Context<'_>) -> Self {
        match core.current_task() {
            Some(id) if core.is_task_waker(id.index(), cx.waker()) => {
                Self::Task(Rc::downgrade(core), id)
            }
            _ => Self::Waker(cx.waker().clone()),
        }
    }

    /// Whether `self` already wakes what `cx` would.
    fn is(&self, core: &Core, cx: &Context<'_>) -> bool {
        match self {
            Self::Nobody => false,
            Self::Task(_, id) => {
                core.current_task() == Some(*id) && core.is_task_waker(id.index(), cx.waker())
            }
            Self::Waker(w) => w.will_wake(cx.waker()),
        }
    }

    fn wake(self) {
        match self {
            Self::Nobody => {}
            Self::Task(core, id) => {
                if let Some(core) = core.upgrade() {
                    core.wake_task(id);
                }
            }
            Self::Waker(w) => w.wake(),
        }
    }
}

/// The state of [`Flow::run`].
struct Supervisor {
    core: Rc<Core>,
    /// Whom a pipeline's report wakes: the run's last poll.
    wake: Rc<RefCell<Wake>>,
    shared: Arc<Shared>,
    errors: AsyncStream<PipelineError>,
    slots: Vec<Slot>,
    grace: Option<Duration>,
    grace_timer: Option<Sleep>,
    grace_over: bool,
    shut_down: bool,
}

/// The latest [`FlowReport::ERROR_HISTORY`] errors, and how many there
/// were in all.
#[derive(Default)]
struct ErrorHistory {
    latest: VecDeque<PipelineError>,
    count: u64,
}

impl ErrorHistory {
    fn push(&mut self, error: PipelineError) {
        if self.latest.len() == FlowReport::ERROR_HISTORY {
            self.latest.pop_front();
        }
        self.latest.push_back(error);
        self.count += 1;
    }

    /// The errors kept, and the count.
    fn take(&mut self) -> (Vec<PipelineError>, u64) {
        (std::mem::take(&mut self.latest).into(), self.count)
    }
}

impl Supervisor {
    fn new(mut flow: Flow) -> Self {
        let core = with_core("Flow::run", Rc::clone);
        let specs = std::mem::take(&mut flow.specs);
        let counters: Vec<Arc<Counters>> = flow
            .shared
            .state
            .lock()
            .pipelines
            .iter()
            .map(|e| e.counters.clone())
            .collect();
        let slots = specs
            .into_iter()
            .zip(counters)
            .map(|(spec, counters)| Slot {
                backoff: Backoff::new(spec.policy.clone()),
                spec,
                phase: Phase::Finished,
                restarts: 0,
                started: Timestamp::MIN,
                counters,
                aborted: false,
            })
            .collect();
        Self {
            core,
            wake: Rc::new(RefCell::new(Wake::Nobody)),
            shared: flow.shared.clone(),
            errors: flow.errors.take().expect("a flow runs once"),
            slots,
            grace: flow.grace,
            grace_timer: None,
            grace_over: false,
            shut_down: false,
        }
    }

    fn now(&self) -> Timestamp {
        self.core.clock.get()
    }

    fn set_state(&self, index: usize, state: PipelineState) {
        let mut shared = self.shared.state.lock();
        let entry = &mut shared.pipelines[index];
        entry.state = state;
        entry.restarts = self.slots[index].restarts;
    }

    /// Builds pipeline `index` from its factory and spawns it.
    fn start(&mut self, index: usize) {
        let now = self.now();
        let slot = &mut self.slots[index];
        let ctx = PipelineContext {
            inner: Rc::new(ContextInner {
                name: slot.spec.name.clone(),
                index,
                restarts: slot.restarts,
                shared: self.shared.clone(),
                counters: slot.counters.clone(),
                supervisor: self.wake.clone(),
            }),
        };
        // A factory that panics fails this build of the pipeline like a
        // panic of the pipeline itself: its task resumes the panic.
        let future = match catch_unwind(AssertUnwindSafe(|| (slot.spec.factory)(ctx))) {
            Ok(future) => future,
            Err(payload) => Box::pin(async move { resume_unwind(payload) }),
        };
        let label = self
            .core
            .supervised_label(slot.spec.name.clone(), Location::caller());
        slot.phase = Phase::Running(spawn_as(&self.core, label, future));
        slot.started = now;
        self.set_state(index, PipelineState::Running);
    }

    fn start_all(&mut self) {
        for index in 0..self.slots.len() {
            if self.shared.is_shutdown() {
                self.set_state(index, PipelineState::Done);
            } else {
                self.start(index);
            }
        }
    }

    /// Stores `cx`'s waker for [`Shared::shutdown`] to wake, while a
    /// handle may still ask for a shutdown; returns the waker it replaces,
    /// to be dropped once the lock is released.
    fn watch_shutdown(&self, state: &mut SharedState, cx: &Context<'_>) -> Option<Waker> {
        // Read under the lock, as in `Shared::register`: the last
        // handle's drop takes the waker stored here.
        let may_shut_down = self.shared.may_shut_down();
        match &state.supervisor {
            _ if !may_shut_down => state.supervisor.take(),
            Some(w) if w.will_wake(cx.waker()) => None,
            _ => state.supervisor.replace(cx.waker().clone()),
        }
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if !self.wake.borrow().is(&self.core, cx) {
            let wake = Wake::of(&self.core, cx);
            // The replaced waker is dropped with no borrow held.
            let old = self.wake.replace(wake);
            drop(old);
        }
        let (old, report) = {
            let mut state = self.shared.state.lock();
            let old = self.watch_shutdown(&mut state, cx);
            (old, state.reports.pop_front())
        };
        drop(old);
        if !self.shut_down && self.shared.is_shutdown() {
            if let Some(report) = report {
                self.shared.state.lock().reports.push_front(report);
            }
            return Poll::Ready(Event::Shutdown);
        }
        if let Some(report) = report {
            return Poll::Ready(Event::Report(report));
        }
        for (index, slot) in self.slots.iter_mut().enumerate() {
            match &mut slot.phase {
                Phase::Running(handle) => {
                    if let Poll::Ready(outcome) = Pin::new(handle).poll(cx) {
                        slot.phase = Phase::Finished;
                        return Poll::Ready(Event::Ended(index, outcome));
                    }
                }
                Phase::Backoff(sleep) => {
                    if Pin::new(sleep).poll(cx).is_ready() {
                        slot.phase = Phase::Finished;
                        return Poll::Ready(Event::Restart(index));
                    }
                }
                Phase::Finished => {}
            }
        }
        if let Some(timer) = &mut self.grace_timer {
            if Pin::new(timer).poll(cx).is_ready() {
                self.grace_timer = None;
                return Poll::Ready(Event::GraceOver);
            }
        }
        if self
            .slots
            .iter()
            .all(|s| matches!(s.phase, Phase::Finished))
        {
            return Poll::Ready(Event::AllDone);
        }
        Poll::Pending
    }

    /// Handles `event`; `true` when the run is over.
    async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Shutdown => {
                self.shut_down = true;
                for index in 0..self.slots.len() {
                    if matches!(self.slots[index].phase, Phase::Backoff(_)) {
                        self.slots[index].phase = Phase::Finished;
                        self.set_state(index, PipelineState::Done);
                    }
                }
                if let Some(grace) = self.grace {
                    self.grace_timer = Some(crate::time::sleep(grace));
                }
            }
            Event::Report(error) => self.publish(error).await,
            Event::Ended(index, outcome) => self.ended(index, outcome).await,
            // A shutdown asked (from another thread) after `poll_event`
            // checked for it: the backoff ends as the shutdown ends it,
            // and the factory is not called.
            Event::Restart(index) if self.shared.is_shutdown() => {
                self.set_state(index, PipelineState::Done);
            }
            Event::Restart(index) => {
                self.slots[index].restarts = self.slots[index].restarts.saturating_add(1);
                self.start(index);
            }
            Event::GraceOver => {
                self.grace_over = true;
                for slot in &mut self.slots {
                    if let Phase::Running(handle) = &slot.phase {
                        slot.aborted = true;
                        // A panic while its future is dropped is not
                        // raised here: the handle resolves to it.
                        handle.abort();
                    }
                }
            }
            Event::AllDone => return true,
        }
        false
    }

    async fn ended(&mut self, index: usize, outcome: Result<Result<(), String>, JoinError>) {
        let now = self.now();
        let grace_abort = || {
            format!(
                "did not stop within the shutdown grace period of {:?}: aborted",
                self.grace.unwrap_or_default()
            )
        };
        let aborted = self.slots[index].aborted;
        let (mut error, panicked) = match outcome {
            Ok(Ok(())) => (None, false),
            Ok(Err(e)) => (Some(e), false),
            Err(e) if e.is_panic() => {
                let message = e.panic_message().unwrap_or("panicked");
                let error = if aborted {
                    format!("{}; {message}", grace_abort())
                } else {
                    message.to_owned()
                };
                (Some(error), true)
            }
            Err(_) if self.grace_over => (Some(grace_abort()), false),
            Err(_) => (Some("cancelled".to_owned()), false),
        };
        let slot = &mut self.slots[index];
        let decision = if self.shut_down {
            if error.is_some() {
                Decision::GiveUp
            } else {
                Decision::Stop
            }
        } else {
            slot.backoff.decide(error.is_none(), slot.started, now)
        };
        // Given up under a policy that restarts after this end: the limit
        // was reached, which the error says.
        if decision == Decision::GiveUp
            && !self.shut_down
            && slot.spec.policy.restarts_after(error.is_none())
        {
            let policy = &slot.spec.policy;
            let n = policy.limit().unwrap_or_default();
            let n = status::restarts(n);
            let limit = match policy.period() {
                Some(period) => format!("its restart limit of {n} within {period:?}"),
                None => format!("its restart limit of {n}"),
            };
            error = Some(match error {
                None => format!("ended, and {limit} is reached"),
                Some(e) => format!("{e}; not restarted: {limit} is reached"),
            });
        }
        let state = match decision {
            Decision::Restart(delay) => {
                slot.phase = Phase::Backoff(crate::time::sleep(delay));
                PipelineState::Restarting
            }
            Decision::Stop => PipelineState::Done,
            Decision::GiveUp => PipelineState::Failed,
        };
        if let Some(error) = error {
            let error = PipelineError {
                pipeline: slot.spec.name.to_string(),
                error,
                restarts: slot.restarts,
                at: now,
                panicked,
                fatal: state != PipelineState::Restarting,
            };
            self.shared.state.lock().record(index, &error);
            self.set_state(index, state);
            self.publish(error).await;
        } else {
            self.set_state(index, state);
        }
    }

    /// Sends `error` (recorded) to the errors stream and `tracing`.
    async fn publish(&mut self, error: PipelineError) {
        #[cfg(feature = "tracing")]
        {
            if error.fatal {
                tracing::error!(
                    pipeline = %error.pipeline,
                    restarts = error.restarts,
                    at = %error.at,
                    panicked = error.panicked,
                    "pipeline failed for good: {}",
                    error.error
                );
            } else {
                tracing::warn!(
                    pipeline = %error.pipeline,
                    restarts = error.restarts,
                    at = %error.at,
                    panicked = error.panicked,
                    "pipeline failed: {}",
                    error.error
                );
            }
        }
        if self.errors.consumer_count() == 0 {
            return;
        }
        match self.errors.try_put(error) {
            Ok(()) | Err(TryPutError::Closed(_)) => {}
            // Once a shutdown is asked, a failure a lagging subscriber has
            // no room for is dropped from the stream (it is in the report):
            // the supervisor must see the shutdown and its grace period.
            Err(TryPutError::Full(_)) if self.shared.is_shutdown() => {}
            Err(TryPutError::Full(error)) => {
                let this = &*self;
                this.shared.state.lock().publish_waits = true;
                let mut put = pin!(this.errors.put(error));
                poll_fn(|cx| {
                    let old = this.watch_shutdown(&mut this.shared.state.lock(), cx);
                    drop(old);
                    // Checked after the waker is stored: a shutdown asked
                    // from now on wakes it. And once the last subscriber
                    // left, the put would wait for the next one: the failure
                    // is for no one. (A subscriber leaving wakes the put;
                    // one that left before the put registered is seen by
                    // the second look.) Dropping the put withdraws the
                    // value.
                    if this.shared.is_shutdown() || this.errors.consumer_count() == 0 {
                        return Poll::Ready(());
                    }
                    let put = put.as_mut().poll(cx);
                    if put.is_pending() && this.errors.consumer_count() == 0 {
                        return Poll::Ready(());
                    }
                    put.map(|_| ())
                })
                .await;
                this.shared.state.lock().publish_waits = false;
            }
        }
    }

    fn finish(&mut self) -> FlowReport {
        self.errors.close();
        let mut state = self.shared.state.lock();
        let (errors, error_count) = state.all_errors.take();
        FlowReport {
            pipelines: self
                .slots
                .iter()
                .zip(&mut state.pipelines)
                .map(|(slot, entry)| {
                    let (errors, error_count) = entry.errors.take();
                    PipelineReport {
                        name: entry.name.clone(),
                        state: entry.state,
                        restarts: slot.restarts,
                        errors,
                        error_count,
                        items: slot.counters.items(),
                    }
                })
                .collect(),
            errors,
            error_count,
            shut_down: self.shut_down,
            commit_errors: Vec::new(),
        }
    }
}

impl Drop for Supervisor {
    /// A run dropped before it ended aborts its pipelines and ends the
    /// errors stream. A pipeline whose future panics when dropped does not
    /// stop the others from being aborted: the panic is contained (and
    /// logged, with feature `tracing`). Every pipeline not yet ended for
    /// good, running or waiting out its backoff, is then
    /// [`Failed`](PipelineState::Failed) in the status, its last error
    /// saying that its run was dropped.
    fn drop(&mut self) {
        self.errors.close();
        let old = self.shared.state.lock().supervisor.take();
        drop(old);
        let old = self.wake.replace(Wake::Nobody);
        drop(old);
        // Panic messages of the futures dropped by the aborts, by slot.
        let mut panics: Vec<Option<String>> = vec![None; self.slots.len()];
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Phase::Running(handle) = std::mem::replace(&mut slot.phase, Phase::Finished) {
                // With no lock held: a dropped future may take it.
                handle.abort();
                if let Some(Err(e)) = handle.try_take() {
                    if e.is_panic() {
                        let message = e.panic_message().unwrap_or("panicked");
                        #[cfg(feature = "tracing")]
                        tracing::error!(
                            pipeline = %slot.spec.name,
                            "pipeline panicked when its run was dropped: {message}",
                        );
                        panics[index] = Some(message.to_owned());
                    }
                }
            }
        }
        let now = self.now();
        let mut state = self.shared.state.lock();
        for ((slot, entry), panic) in self.slots.iter().zip(&mut state.pipelines).zip(panics) {
            if entry.state.is_finished() {
                continue;
            }
            let aborted = "aborted: the flow's run was dropped before the pipeline ended";
            entry.state = PipelineState::Failed;
            entry.restarts = slot.restarts;
            entry.last_error = Some(PipelineError {
                pipeline: entry.name.clone(),
                error: match &panic {
                    Some(message) => format!("{aborted}; {message}"),
                    None => aborted.to_owned(),
                },
                restarts: slot.restarts,
                at: now,
                panicked: panic.is_some(),
                fatal: true,
            });
        }
    }
}
