//! [`EventLoop`]: a single-threaded executor whose clock replays the past as
//! fast as possible (or at a chosen speed), then follows the wall clock.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::clock::Pace;
use super::join::{spawn_on, JoinError, JoinHandle, Outcome};
use super::timers::{Key, Target, TimerId, TimerQueue};
use super::Timestamp;
use crate::sync::{std_fence, Arc, AtomicBool, AtomicI64, Mutex, Ordering};

/// Why a run of an [`EventLoop`] stopped before its work was done: a task
/// panicked, or (in [`simulated`](EventLoop::simulated) mode) the pending
/// tasks are stuck, with nothing left that could ever wake them.
///
/// Names the task(s) concerned: the name given to
/// [`spawn_named`](EventLoop::spawn_named), or `task #N (spawned at
/// file:line:col)` for an unnamed task. A [`process_stream`](crate::process_stream)
/// is named after the task the user spawned it as.
///
/// # Examples
///
/// ```
/// let el = timecast::EventLoop::new().simulated();
/// el.spawn_named("parser", async { panic!("bad input") });
/// let err = el.run().unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.task(), "parser");
/// assert_eq!(err.message(), "bad input");
/// assert_eq!(err.to_string(), "task `parser` panicked: bad input");
///
/// el.spawn_named("idle", std::future::pending::<()>());
/// let err = el.run().unwrap_err();
/// assert!(err.is_stuck());
/// assert_eq!(err.tasks(), ["idle"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    kind: TaskErrorKind,
    /// The task that panicked, or every stuck task (at least one).
    tasks: Vec<String>,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskErrorKind {
    Panicked,
    Stuck,
}

impl TaskError {
    pub(crate) fn panicked(task: String, message: String) -> Self {
        Self {
            kind: TaskErrorKind::Panicked,
            tasks: vec![task],
            message,
        }
    }

    fn stuck(tasks: Vec<String>) -> Self {
        Self {
            kind: TaskErrorKind::Stuck,
            tasks,
            message: "the simulated loop has no timer pending and no waker of its tasks is \
                      held outside the loop, so nothing can ever wake them: make sure what \
                      they await is fed (a timer, a channel another thread or task puts to), \
                      or abort them"
                .to_owned(),
        }
    }

    /// Whether a task panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// el.spawn(async { panic!("oops") });
    /// assert!(el.run().unwrap_err().is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        self.kind == TaskErrorKind::Panicked
    }

    /// Whether the run stopped because its tasks are stuck: in
    /// [`simulated`](EventLoop::simulated) mode, tasks are pending, no timer
    /// is, and no waker of a task is held outside the loop (see
    /// [`EventLoop::run`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// el.spawn(std::future::pending::<()>());
    /// assert!(el.run().unwrap_err().is_stuck());
    /// ```
    pub fn is_stuck(&self) -> bool {
        self.kind == TaskErrorKind::Stuck
    }

    /// The name of the task that panicked, or of the first stuck task.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// el.spawn(async { panic!("oops") });
    /// let err = el.run().unwrap_err();
    /// assert!(err.task().starts_with("task #0 (spawned at "), "{}", err.task());
    /// ```
    pub fn task(&self) -> &str {
        &self.tasks[0]
    }

    /// The names of every task concerned: the one that panicked, or every
    /// stuck task, in spawn order.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// el.spawn_named("a", std::future::pending::<()>());
    /// el.spawn_named("b", std::future::pending::<()>());
    /// assert_eq!(el.run().unwrap_err().tasks(), ["a", "b"]);
    /// ```
    pub fn tasks(&self) -> &[String] {
        &self.tasks
    }

    /// The panic message, or what being stuck means and what to do.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// el.spawn(async { panic!("bad input {}", 42) });
    /// assert_eq!(el.run().unwrap_err().message(), "bad input 42");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TaskErrorKind::Panicked => {
                write!(f, "task `{}` panicked: {}", self.tasks[0], self.message)
            }
            TaskErrorKind::Stuck => {
                let (noun, verb) = if self.tasks.len() == 1 {
                    ("task", "is")
                } else {
                    ("tasks", "are")
                };
                write!(f, "{noun} ")?;
                for (i, task) in self.tasks.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}`{task}`")?;
                }
                write!(f, " {verb} stuck: {}", self.message)
            }
        }
    }
}

impl std::error::Error for TaskError {}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The name of a task in errors: the name it was given, or its spawn order
/// and place. Shared by the tasks a task spawns on its behalf (a
/// `process_stream`'s source), so that errors name the task the user
/// spawned.
#[derive(Clone, Debug)]
pub(crate) struct Label {
    name: Option<Rc<str>>,
    serial: u64,
    at: &'static Location<'static>,
    /// A supervised task's panic goes to its [`JoinHandle`] only: it does
    /// not stop the run (a flow's pipelines, and the tasks spawned on their
    /// behalf, which share their label).
    supervised: bool,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => f.write_str(name),
            None => write!(f, "task #{} (spawned at {})", self.serial, self.at),
        }
    }
}

/// Wake-ups that reach the loop through [`Waker`]s, possibly from other
/// threads.
struct Remote {
    queue: Mutex<Vec<(usize, u32)>>,
    /// Whether `queue` may be non-empty (checked without locking).
    pending: AtomicBool,
    /// Set while the loop waits: a wake-up must then wake `outer`.
    idle: AtomicBool,
    outer: Mutex<Option<Waker>>,
    /// The inline window by time alone, closed by a wake-up from any thread.
    window: InlineWindow,
}

impl Remote {
    fn push(&self, index: usize, generation: u32) {
        self.queue.lock().push((index, generation));
        self.pending.store(true, Ordering::SeqCst);
        self.window.close_for_wake_up();
        if self.idle.load(Ordering::SeqCst) {
            // Clone, release the lock, then wake: never wake under a lock.
            let outer = self.outer.lock().clone();
            if let Some(waker) = outer {
                waker.wake();
            }
        }
    }
}

/// The window of [`Core::dispatch_fast`] by time alone: every data key whose
/// time is below it is below [`Core::inline_below`] and may be dispatched
/// inline, unless a wake-up is pending, which closes it. A run of events
/// then checks one word per event: no wake-up, nothing queued, still below
/// every pending key.
///
/// The loop's thread opens and closes it; a wake-up, from any thread, closes
/// it after setting `pending`. Opening stores the time and then reads
/// `pending`; a wake-up stores `pending` and then reads the window, closing
/// it if open. All four are sequentially consistent, so one of the two sees
/// the other: either the loop sees the wake-up and closes the window, or
/// the wake-up sees the window open and closes it after the loop opened it.
/// (loom cannot check this: it does not model sequentially consistent
/// loads and stores. The loop's idle handshake with `pending` has the same
/// shape.)
pub(crate) struct InlineWindow(AtomicI64);

impl InlineWindow {
    /// Below every time: nothing is dispatched inline by time alone.
    const CLOSED: i64 = i64::MIN;

    fn new() -> Self {
        Self(AtomicI64::new(Self::CLOSED))
    }

    /// Whether an event at `time` may be dispatched inline: one relaxed
    /// load. (A wake-up from another thread is seen a little later, as it
    /// would be by the loop's own check; from this thread, at once.)
    #[inline(always)]
    pub(crate) fn covers(&self, time: Timestamp) -> bool {
        time.unix_nanos() < self.0.load(Ordering::Relaxed)
    }

    /// Opens the window below `time`, unless a wake-up is pending.
    fn open(&self, time: Timestamp, pending: &AtomicBool) {
        self.0.store(time.unix_nanos(), Ordering::SeqCst);
        if pending.load(Ordering::SeqCst) {
            self.close();
        }
    }

    /// Closes the window (the loop's thread).
    #[inline]
    fn close(&self) {
        self.0.store(Self::CLOSED, Ordering::Relaxed);
    }

    /// Closes the window after a wake-up set `pending` (any thread). Only
    /// the window it saw open: if the loop has since closed and opened it
    /// again, the opening saw `pending` (or the loop took the wake-up
    /// first), and a run that may go on is not slowed down.
    #[inline]
    fn close_for_wake_up(&self) {
        let seen = self.0.load(Ordering::SeqCst);
        if seen != Self::CLOSED {
            let _ =
                self.0
                    .compare_exchange(seen, Self::CLOSED, Ordering::SeqCst, Ordering::Relaxed);
        }
    }
}

/// Identifies a task of a loop: its slot and the slot's generation, so that
/// an id outlives its task harmlessly.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TaskId {
    index: usize,
    generation: u32,
}

impl TaskId {
    pub(crate) fn index(self) -> usize {
        self.index
    }
}

/// The waker of one task: queues the task on the loop.
struct TaskWaker {
    index: usize,
    generation: u32,
    remote: Arc<Remote>,
}

impl Wake for TaskWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.remote.push(self.index, self.generation);
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

struct TaskSlot {
    /// `None` while the task is being polled, and once it is done.
    future: Option<BoxFuture>,
    /// Shared with the poll in progress: an `Rc` clone costs no atomic
    /// operation, unlike a `Waker` clone.
    waker: Rc<Waker>,
    /// The `Arc` inside `waker`: its count tells whether anything outside
    /// the slot holds the task's waker (see `Core::stuck`).
    waker_arc: std::sync::Arc<TaskWaker>,
    /// Where the task's outcome goes if it panics or is cancelled.
    join: Rc<dyn Outcome>,
    label: Label,
    queued: bool,
    /// Aborted while being polled: cancelled once the poll returns.
    aborted: bool,
    /// How late the live event this task is handling was, if it was.
    lateness: Option<Duration>,
}

impl TaskSlot {
    /// Strong counts of `waker_arc` when only the slot holds it: its own
    /// `Arc` and the one inside `waker`.
    const UNSHARED: usize = 2;
}

impl Drop for TaskSlot {
    /// A task dropped before it completed (aborted, or left on a loop that
    /// is dropped) is cancelled: its handle resolves to a
    /// [`JoinError`] saying so. No-op for a completed or panicked task.
    fn drop(&mut self) {
        self.join.cancel(&self.label);
    }
}

#[derive(Default)]
struct Tasks {
    slots: Vec<Option<TaskSlot>>,
    free: Vec<usize>,
    live: usize,
    generations: Vec<u32>,
}

/// State of one loop, shared with the tasks and futures running on it.
pub(crate) struct Core {
    pub(crate) clock: Cell<Timestamp>,
    /// Time of the last dispatched key: a live event before it is late.
    pub(crate) last_dispatch: Cell<Timestamp>,
    /// Every key below it may be dispatched inline by a source's task
    /// without further checks (see [`dispatch_fast`](Self::dispatch_fast)):
    /// set by an inline dispatch, lowered to [`Key::MIN`] by anything that
    /// could make one wrong.
    inline_below: Cell<Key>,
    pace: Pace,
    pub(crate) timers: RefCell<TimerQueue>,
    tasks: RefCell<Tasks>,
    ready: RefCell<VecDeque<usize>>,
    remote: Arc<Remote>,
    /// The task being polled.
    pub(crate) current: Cell<Option<usize>>,
    /// The task being polled has aborted itself: it is cancelled when its
    /// poll returns, so nothing may be dispatched to it inline.
    current_aborted: Cell<bool>,
    next_seq: Cell<u64>,
    next_rank: Cell<u64>,
    next_serial: Cell<u64>,
    /// Sources whose past is not exhausted yet.
    pasts_open: Cell<usize>,
    live: Cell<bool>,
    on_live: RefCell<VecDeque<OnLive>>,
    late_events: Cell<u64>,
    /// Data events dispatched (keys of class data).
    events_dispatched: Cell<u64>,
    /// Timers fired (keys of class timer: sleeps, `call_at`, timers).
    timers_fired: Cell<u64>,
    waited: Cell<bool>,
    running: Cell<bool>,
    /// What ends the current run: this task finishing (`block_on`), or
    /// every task finishing (`None`, `run`).
    until: Cell<Option<TaskId>>,
    /// When the loop must next wake for the wall clock, if it waits.
    deadline: Cell<Option<Instant>>,
    /// The deadline last handed to the timer thread with the current outer
    /// waker, so that a loop woken early does not register it again.
    registered: Cell<Option<Instant>>,
    /// An empty buffer to swap with the remote queue.
    spare: RefCell<Vec<(usize, u32)>>,
    /// Set by [`rethrow`](Self::rethrow): the panic unwinding from the task
    /// being polled was already reported by the task it came from.
    rethrown: Cell<bool>,
}

/// The replay of a source's past, driven by the loop for the source's task
/// (`process_stream` with a plain handler): a fired
/// [`Target::Replay`] calls [`drive`](Self::drive) directly, with no poll
/// of the task and no await in between, and the task waits until the past
/// is exhausted.
pub(crate) trait Replay {
    /// Handles the event whose key the loop has just dispatched (if any),
    /// then every next event that can be dispatched at once
    /// ([`Core::dispatch_fast`], [`Core::dispatch_inline`]). Returns true
    /// once the past is exhausted; false after it queued its next key as a
    /// [`Target::Replay`] for `task`.
    ///
    /// Called only as task `task` being polled (`Core::run_replay`, or the
    /// task's own poll).
    fn drive(self: Rc<Self>, core: &Core, task: usize) -> bool;
}

/// A callback registered with [`EventLoop::on_live`], and where.
type OnLive = (Box<dyn FnOnce()>, &'static Location<'static>);

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Makes `core` the current loop of this thread until dropped.
struct Enter(Option<Rc<Core>>);

impl Enter {
    fn new(core: &Rc<Core>) -> Self {
        Enter(CURRENT.with(|c| c.replace(Some(core.clone()))))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = self.0.take());
    }
}

/// Runs `f` with the loop running on this thread, or `None` outside one.
pub(crate) fn try_with_core<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(f))
}

/// Runs `f` with the loop running on this thread.
///
/// # Panics
///
/// Outside an [`EventLoop`], naming `what` was called.
pub(crate) fn with_core<R>(what: &str, f: impl FnOnce(&Rc<Core>) -> R) -> R {
    try_with_core(f).unwrap_or_else(|| {
        panic!(
            "timecast::{what} called outside an EventLoop: call it from a task or callback \
             running on an EventLoop (EventLoop::run, block_on or spawn)"
        )
    })
}

impl Core {
    fn new(start: Timestamp, pace: Pace) -> Self {
        Self {
            clock: Cell::new(start),
            last_dispatch: Cell::new(Timestamp::MIN),
            inline_below: Cell::new(Key::MIN),
            pace,
            timers: RefCell::default(),
            tasks: RefCell::default(),
            ready: RefCell::default(),
            remote: Arc::new(Remote {
                queue: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
                idle: AtomicBool::new(false),
                outer: Mutex::new(None),
                window: InlineWindow::new(),
            }),
            current: Cell::new(None),
            current_aborted: Cell::new(false),
            next_seq: Cell::new(0),
            next_rank: Cell::new(0),
            next_serial: Cell::new(0),
            pasts_open: Cell::new(0),
            live: Cell::new(false),
            on_live: RefCell::default(),
            late_events: Cell::new(0),
            events_dispatched: Cell::new(0),
            timers_fired: Cell::new(0),
            waited: Cell::new(false),
            running: Cell::new(false),
            until: Cell::new(None),
            deadline: Cell::new(None),
            registered: Cell::new(None),
            spare: RefCell::default(),
            rethrown: Cell::new(false),
        }
    }

    /// The key of a timer due at `time`, created now.
    pub(crate) fn timer_key(&self, time: Timestamp) -> Key {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        Key::timer(time, seq)
    }

    /// Registers a new source: returns its rank; it counts as replaying its
    /// past until [`past_done`](Self::past_done).
    pub(crate) fn register_source(&self) -> u64 {
        let rank = self.next_rank.get();
        assert!(rank < Key::MAX_RANK, "too many sources on one EventLoop");
        self.next_rank.set(rank + 1);
        self.pasts_open.set(self.pasts_open.get() + 1);
        rank
    }

    pub(crate) fn past_done(&self) {
        self.pasts_open.set(self.pasts_open.get() - 1);
    }

    pub(crate) fn count_late(&self) {
        self.late_events.set(self.late_events.get() + 1);
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.get()
    }

    pub(crate) fn set_lateness(&self, lateness: Option<Duration>) {
        if let Some(index) = self.current.get() {
            if let Some(Some(slot)) = self.tasks.borrow_mut().slots.get_mut(index) {
                slot.lateness = lateness;
            }
        }
    }

    pub(crate) fn lateness(&self) -> Option<Duration> {
        let index = self.current.get()?;
        self.tasks.borrow().slots.get(index)?.as_ref()?.lateness
    }

    /// Queues `key` to wake task `task` (the one being polled); returns
    /// the timer's id. But if the round trip through the queue would
    /// dispatch `key` right away, dispatches it now instead and returns
    /// `None` (see [`dispatch_inline`](Self::dispatch_inline)).
    #[inline]
    pub(crate) fn arm_inline(&self, key: Key, task: usize) -> Option<TimerId> {
        if self.dispatch_inline(key) {
            return None;
        }
        Some(self.timers.borrow_mut().insert(key, Target::Task(task)))
    }

    /// Dispatches `key` now and returns true if queueing it for the task
    /// being polled would dispatch it right away; otherwise closes the
    /// window of [`dispatch_fast`](Self::dispatch_fast) and returns false,
    /// and the caller queues `key`.
    ///
    /// The round trip would be: the task returns `Pending`; no other task is
    /// ready; the run is not over; the smallest pending key is `key` and it
    /// is due; so `key` is dispatched and the same task is polled again.
    /// This checks exactly those conditions. It is only equivalent if
    /// nothing else would run in the task between this call and the task
    /// returning `Pending`: the caller must be a future awaited at the top
    /// of a task of its own, never inside a `join` or `select` (see
    /// `SourceEvent`), or a [`Replay`] the loop drives for its task.
    #[inline(always)]
    pub(crate) fn dispatch_inline(&self, key: Key) -> bool {
        // Keys are unique: `key` is either above a pending key (or a stale
        // entry's, which only makes it queue when it need not), and waits
        // its turn whatever else holds, or below every pending key. The
        // first case, which ends every turn of interleaved sources, is
        // decided here; the rest out of line.
        if self.timers.borrow().has_key_below(key) {
            self.invalidate_inline();
            return false;
        }
        self.dispatch_below_pending(key)
    }

    /// [`dispatch_inline`](Self::dispatch_inline) of a key below every
    /// pending key.
    #[inline(never)]
    fn dispatch_below_pending(&self, key: Key) -> bool {
        if !self.may_dispatch_inline() || self.pace.due_at(key.time).is_some() {
            self.invalidate_inline();
            return false;
        }
        self.dispatch(key);
        let floor = self.timers.borrow().pending_floor();
        let below = floor.min(self.due_bound());
        self.inline_below.set(below);
        self.remote.window.open(below.time, &self.remote.pending);
        true
    }

    /// Dispatches `key` now and returns true if [`dispatch_inline`](Self::dispatch_inline)
    /// would: the conditions it checked at its last inline dispatch still
    /// hold (nothing has been queued, woken, spawned or finished since) and
    /// `key` is below every pending key and due. Otherwise does nothing and
    /// returns false: the caller goes on to `dispatch_inline`. Same caller
    /// contract as `dispatch_inline`.
    ///
    /// This is the whole per-event cost of a source whose events come in a
    /// run with nothing else due between them: one load and comparison (the
    /// [`InlineWindow`]), the event count and the clock update.
    #[inline]
    pub(crate) fn dispatch_fast(&self, key: Key) -> bool {
        debug_assert!(
            key.is_data(),
            "only a source's events are dispatched inline"
        );
        // The time decides, but for a tie with the bound.
        if self.remote.window.covers(key.time)
            || (key < self.inline_below.get() && !self.remote.pending.load(Ordering::Relaxed))
        {
            self.dispatch_event(key.time);
            true
        } else {
            false
        }
    }

    /// The window of [`dispatch_fast`](Self::dispatch_fast) by time alone,
    /// for a loop over a run of events to hold: an event it covers is
    /// dispatched with [`dispatch_event`](Self::dispatch_event).
    #[inline]
    pub(crate) fn inline_window(&self) -> &InlineWindow {
        &self.remote.window
    }

    /// Ends the window of [`dispatch_fast`](Self::dispatch_fast): called
    /// whenever a key is queued, a task becomes ready, or a task ends.
    #[inline]
    pub(crate) fn invalidate_inline(&self) {
        self.inline_below.set(Key::MIN);
        self.remote.window.close();
    }

    /// The smallest data key that is not due now: every key below it is.
    #[inline]
    fn due_bound(&self) -> Key {
        if self.pace.is_simulated() {
            return Key::MAX;
        }
        // `due_until` only grows: keys up to it stay due.
        match self.pace.due_until().checked_add(Duration::from_nanos(1)) {
            Some(after) => Key::data(after, 0, 0),
            None => Key::MAX,
        }
    }

    /// The conditions of an inline dispatch (see
    /// [`dispatch_inline`](Self::dispatch_inline)) that do not depend on the key: a
    /// task is being polled, no other is ready, and the run is not over.
    #[inline]
    fn may_dispatch_inline(&self) -> bool {
        self.current.get().is_some()
            && !self.current_aborted.get()
            && self.ready.borrow().is_empty()
            && !self.remote.pending.load(Ordering::Relaxed)
            && !self.done()
    }

    /// Whether the current run is over: its `block_on` task, or every task,
    /// has finished.
    fn done(&self) -> bool {
        match self.until.get() {
            Some(id) => !self.is_alive(id),
            None => self.live_tasks() == 0,
        }
    }

    fn is_alive(&self, id: TaskId) -> bool {
        self.tasks.borrow().generations.get(id.index) == Some(&id.generation)
    }

    /// Advances the clock for the dispatch of `key`.
    pub(crate) fn dispatch(&self, key: Key) {
        if key.is_data() {
            self.dispatch_event(key.time);
        } else {
            self.timers_fired.set(self.timers_fired.get() + 1);
            self.advance(key.time);
        }
    }

    /// [`dispatch`](Self::dispatch) of a data key at `time`.
    #[inline]
    pub(crate) fn dispatch_event(&self, time: Timestamp) {
        self.events_dispatched.set(self.events_dispatched.get() + 1);
        self.advance(time);
    }

    /// Moves the clock and the last dispatch up to `time`, never back.
    /// The last dispatch never passes the clock (both only move up, and
    /// only here does the last dispatch move), so a time past the clock
    /// moves both, and a replay in time order, where every event is, pays
    /// one comparison per event.
    #[inline]
    fn advance(&self, time: Timestamp) {
        debug_assert!(self.last_dispatch.get() <= self.clock.get());
        if time > self.clock.get() {
            self.clock.set(time);
            self.last_dispatch.set(time);
        } else if time > self.last_dispatch.get() {
            self.last_dispatch.set(time);
        }
    }

    /// A label for a task about to be spawned: `name`, or its serial and
    /// `at`.
    pub(crate) fn label(&self, name: Option<Rc<str>>, at: &'static Location<'static>) -> Label {
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        Label {
            name,
            serial,
            at,
            supervised: false,
        }
    }

    /// A label for a supervised task (see [`Label`]): its panic is handed
    /// to its [`JoinHandle`] and does not stop the run.
    pub(crate) fn supervised_label(&self, name: Rc<str>, at: &'static Location<'static>) -> Label {
        Label {
            supervised: true,
            ..self.label(Some(name), at)
        }
    }

    /// The label of the task being polled.
    pub(crate) fn current_label(&self) -> Option<Label> {
        let index = self.current.get()?;
        Some(
            self.tasks
                .borrow()
                .slots
                .get(index)?
                .as_ref()?
                .label
                .clone(),
        )
    }

    /// Whether the task being polled has aborted itself: it is cancelled
    /// when its poll returns.
    pub(crate) fn is_aborting(&self) -> bool {
        self.current_aborted.get()
    }

    /// The id of the task being polled.
    pub(crate) fn current_task(&self) -> Option<TaskId> {
        let index = self.current.get()?;
        let generation = *self.tasks.borrow().generations.get(index)?;
        Some(TaskId { index, generation })
    }

    pub(crate) fn spawn_boxed(
        &self,
        label: Label,
        join: Rc<dyn Outcome>,
        future: BoxFuture,
    ) -> TaskId {
        let mut tasks = self.tasks.borrow_mut();
        let index = tasks.free.pop().unwrap_or_else(|| {
            tasks.slots.push(None);
            tasks.generations.push(0);
            tasks.slots.len() - 1
        });
        let generation = tasks.generations[index];
        let waker_arc = std::sync::Arc::new(TaskWaker {
            index,
            generation,
            remote: self.remote.clone(),
        });
        let waker = Rc::new(Waker::from(waker_arc.clone()));
        tasks.slots[index] = Some(TaskSlot {
            future: Some(future),
            waker,
            waker_arc,
            join,
            label,
            queued: true,
            aborted: false,
            lateness: None,
        });
        tasks.live += 1;
        drop(tasks);
        self.invalidate_inline();
        self.ready.borrow_mut().push_back(index);
        TaskId { index, generation }
    }

    /// Ends task `id` without completing it: drops its future, and its
    /// handle resolves to a cancelled [`JoinError`]. Does nothing if the
    /// task has finished. A task that aborts itself (it is being polled)
    /// is cancelled when its poll returns, unless it completes in that
    /// poll.
    ///
    /// A panic in the future's `Drop` propagates to the caller, unless the
    /// task is supervised: then it is contained, as a panic of its poll
    /// is, and the task's handle resolves to that panic (the supervisor
    /// that aborted it reports it as the task's failure).
    pub(crate) fn abort(&self, id: TaskId) {
        if !self.is_alive(id) {
            return;
        }
        let current = self.current.get() == Some(id.index);
        let taken = match self.tasks.borrow_mut().slots.get_mut(id.index) {
            Some(Some(slot)) => match slot.future.take_if(|_| !current) {
                Some(future) => {
                    let supervised = slot.label.supervised;
                    Some((
                        future,
                        supervised.then(|| (slot.join.clone(), slot.label.clone())),
                    ))
                }
                None => {
                    // Being polled, or its replay driven: `poll_task` or
                    // `run_replay` cancels it. An inline
                    // dispatch stands for a round trip through the loop,
                    // which would cancel it at once: none from now on.
                    slot.aborted = true;
                    self.current_aborted.set(true);
                    self.invalidate_inline();
                    None
                }
            },
            _ => None,
        };
        match taken {
            None => {}
            Some((future, None)) => {
                self.finish_task(id.index);
                drop(future);
            }
            Some((future, Some((join, label)))) => {
                // Dropped before the task is removed, whose slot would
                // resolve the handle to a cancellation: a panic here is
                // the outcome instead. The slot's future stays `None`
                // meanwhile, as while it is polled.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(future))) {
                    let message = format!("(while dropped) {}", panic_message(&*payload));
                    join.fail(JoinError::panicked(label.to_string(), message, payload));
                }
                drop(join);
                self.finish_task(id.index);
            }
        }
    }

    /// [`abort`](Self::abort) with `core` as the current loop, so that the
    /// dropped future finds its loop (as it would inside a task), wherever
    /// this is called from.
    pub(crate) fn abort_entered(core: &Rc<Core>, id: TaskId) {
        let _enter = Enter::new(core);
        core.abort(id);
    }

    /// Queues task `id` to be polled, if it is still alive.
    pub(crate) fn wake_task(&self, id: TaskId) {
        if self.is_alive(id) {
            self.schedule(id.index);
        }
    }

    /// Resumes the panic of a task this task awaited, whose [`TaskError`]
    /// the loop has already reported: the task being polled ends with the
    /// panic as its outcome, and the loop does not report it again.
    pub(crate) fn rethrow(&self, payload: Box<dyn Any + Send>) -> ! {
        self.rethrown.set(true);
        std::panic::resume_unwind(payload)
    }

    /// Queues task `index` to be polled.
    pub(crate) fn schedule(&self, index: usize) {
        let mut tasks = self.tasks.borrow_mut();
        if let Some(Some(slot)) = tasks.slots.get_mut(index) {
            if !slot.queued {
                slot.queued = true;
                self.invalidate_inline();
                self.ready.borrow_mut().push_back(index);
            }
        }
    }

    /// Moves tasks woken through their wakers onto the ready queue.
    #[inline]
    fn drain_remote(&self) {
        // The relaxed load spares an atomic read-modify-write per event; a
        // wake-up it misses is still pending, and is seen at the latest by
        // the check before the loop waits.
        if self.remote.pending.load(Ordering::Relaxed) {
            self.drain_remote_queue();
        }
    }

    #[inline(never)]
    fn drain_remote_queue(&self) {
        if !self.remote.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let mut woken = self.spare.take();
        std::mem::swap(&mut *self.remote.queue.lock(), &mut woken);
        for (index, generation) in woken.drain(..) {
            if self.tasks.borrow().generations.get(index) == Some(&generation) {
                self.schedule(index);
            }
        }
        self.spare.replace(woken);
    }

    /// Polls task `index` once. Returns an error if it panicked (or its
    /// future panicked when dropped on completion).
    fn poll_task(&self, index: usize) -> Result<(), TaskError> {
        let (mut future, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(Some(slot)) = tasks.slots.get_mut(index) else {
                return Ok(());
            };
            slot.queued = false;
            match slot.future.take() {
                Some(future) => (future, Rc::clone(&slot.waker)),
                None => return Ok(()),
            }
        };
        self.current.set(Some(index));
        self.current_aborted.set(false);
        self.rethrown.set(false);
        let mut cx = Context::from_waker(&waker);
        let outcome = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
        self.current.set(None);
        match outcome {
            Ok(Poll::Pending) => {
                let mut tasks = self.tasks.borrow_mut();
                let slot = tasks.slots[index].as_mut().expect("the polled task");
                if !slot.aborted {
                    // The slot's future stays `None` while the task is
                    // polled (`abort` cannot take it then): nothing to drop
                    // here.
                    let none = slot.future.replace(future);
                    debug_assert!(none.is_none());
                    std::mem::forget(none);
                    return Ok(());
                }
                drop(tasks);
                // It aborted itself: cancelled now.
                let label = self.finish_task(index);
                Self::drop_future(&label, future)
            }
            Ok(Poll::Ready(())) => {
                let label = self.finish_task(index);
                Self::drop_future(&label, future)
            }
            Err(payload) => self.task_panicked(index, future, payload),
        }
    }

    /// Ends task `index`, whose poll panicked with `payload`: its handle
    /// resolves to the panic, and it is reported unless it was already (or
    /// is the supervisor's to report).
    fn task_panicked(
        &self,
        index: usize,
        future: BoxFuture,
        payload: Box<dyn Any + Send>,
    ) -> Result<(), TaskError> {
        let rethrown = self.rethrown.replace(false);
        let (label, join) = {
            let tasks = self.tasks.borrow();
            let slot = tasks.slots[index].as_ref().expect("the polled task");
            (slot.label.clone(), slot.join.clone())
        };
        let message = panic_message(&*payload);
        join.fail(JoinError::panicked(
            label.to_string(),
            message.clone(),
            payload,
        ));
        drop(join);
        self.finish_task(index);
        // A task whose poll panicked may panic again when dropped: the
        // first panic is the one to report.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
        if rethrown || label.supervised {
            // Reported when the task it came from panicked, or handed to a
            // supervisor through the JoinHandle.
            Ok(())
        } else {
            Err(TaskError::panicked(label.to_string(), message))
        }
    }

    /// Drives `replay` for task `index` as a poll of the task would (see
    /// [`Replay`]): the task is the current one, a panic is the task's, and
    /// so is an abort. Once the replay is over (its past exhausted), the
    /// task is polled at once, so that it goes on in the same turn, as it
    /// would have.
    fn run_replay(&self, index: usize, replay: Rc<dyn Replay>) -> Result<(), TaskError> {
        self.current.set(Some(index));
        self.current_aborted.set(false);
        self.rethrown.set(false);
        let outcome = catch_unwind(AssertUnwindSafe(|| replay.drive(self, index)));
        self.current.set(None);
        match outcome {
            Ok(false) if !self.current_aborted.get() => Ok(()),
            Ok(true) if !self.current_aborted.get() => self.poll_task(index),
            Ok(_) => {
                // It aborted itself: cancelled now.
                let future = self.take_future(index);
                let label = self.finish_task(index);
                Self::drop_future(&label, future)
            }
            Err(payload) => {
                let future = self.take_future(index);
                self.task_panicked(index, future, payload)
            }
        }
    }

    /// The future of task `index`, which is not being polled.
    fn take_future(&self, index: usize) -> BoxFuture {
        let mut tasks = self.tasks.borrow_mut();
        let slot = tasks.slots[index].as_mut().expect("a live task");
        slot.future.take().expect("a task not being polled")
    }

    /// Drops the future of task `index`, which has just finished: a panic in
    /// its `Drop` is a [`TaskError`] of the task, not a panic out of the
    /// loop.
    fn drop_future(label: &Label, future: BoxFuture) -> Result<(), TaskError> {
        catch_unwind(AssertUnwindSafe(move || drop(future))).map_err(|payload| {
            TaskError::panicked(
                label.to_string(),
                format!("(while dropped) {}", panic_message(&*payload)),
            )
        })
    }

    /// Removes task `index` from the loop; returns its label.
    fn finish_task(&self, index: usize) -> Label {
        self.invalidate_inline();
        let mut tasks = self.tasks.borrow_mut();
        let slot = tasks.slots[index].take().expect("a live task");
        tasks.generations[index] = tasks.generations[index].wrapping_add(1);
        tasks.free.push(index);
        tasks.live -= 1;
        drop(tasks);
        let label = slot.label.clone();
        drop(slot);
        label
    }

    /// The task being polled, in which a source's future is polled with
    /// `cx`: the task of its own that a source runs in, so `cx` holds that
    /// task's waker (checked in debug builds). `what` says which future,
    /// for the panic message.
    ///
    /// # Panics
    ///
    /// If no task of this loop is being polled.
    #[inline]
    pub(crate) fn source_task(&self, cx: &Context<'_>, what: &str) -> usize {
        let Some(task) = self.current.get() else {
            panic!("{what} outside a task of the loop");
        };
        debug_assert!(
            self.is_task_waker(task, cx.waker()),
            "{what} at the top of a task of its own"
        );
        task
    }

    /// Whether `waker` is task `index`'s own waker (and not, say, a
    /// combinator's that polls the future on the task's behalf).
    pub(crate) fn is_task_waker(&self, index: usize, waker: &Waker) -> bool {
        matches!(self.tasks.borrow().slots.get(index), Some(Some(slot)) if slot.waker.will_wake(waker))
    }

    fn live_tasks(&self) -> usize {
        self.tasks.borrow().live
    }

    /// Runs the loop until the run is [`done`](Self::done) or a task
    /// panics; `Pending` when it must wait for the wall clock or a wake-up
    /// (`cx` is woken then). If `parks`, the caller parks until
    /// [`deadline`](Self::deadline) itself; otherwise the timer thread wakes
    /// `cx` at the deadline.
    fn turn(&self, cx: &mut Context<'_>, parks: bool) -> Poll<Result<(), TaskError>> {
        // Awake: wake-ups no longer need to wake the outer waker.
        self.remote.idle.store(false, Ordering::SeqCst);
        if self.waited.replace(false) {
            self.follow_wall_clock();
        }
        loop {
            self.drain_remote();
            loop {
                let next = self.ready.borrow_mut().pop_front();
                let Some(index) = next else { break };
                self.poll_task(index)?;
                self.drain_remote();
            }
            if self.done() {
                // A run that ends caught up has gone live, even if it never
                // had to wait. The callbacks may spawn tasks: run them too.
                if let Err(e) = self.check_live() {
                    return Poll::Ready(Err(e));
                }
                if self.done() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // Nothing can run: advance the clock to the next key, if due.
            let due = {
                let mut timers = self.timers.borrow_mut();
                match timers.peek() {
                    Some(key) => match self.pace.due_at(key.time) {
                        None => Ok(timers.fire_next()),
                        Some(at) => Err(Some(at)),
                    },
                    None => Err(None),
                }
            };
            let deadline = match due {
                Ok((key, target)) => {
                    self.dispatch(key);
                    match target {
                        // Nothing else is ready: poll it at once rather than
                        // through the ready queue (same order).
                        Target::Task(index) if self.ready.borrow().is_empty() => {
                            self.poll_task(index)?;
                        }
                        Target::Task(index) => self.schedule(index),
                        Target::Waker(waker) => waker.wake(),
                        // Stands for a poll of its task, which nothing ready
                        // comes before.
                        Target::Replay(index, replay) => {
                            debug_assert!(self.ready.borrow().is_empty());
                            self.run_replay(index, replay)?;
                        }
                    }
                    continue;
                }
                Err(deadline) => deadline,
            };
            if let Err(e) = self.check_live() {
                return Poll::Ready(Err(e));
            }
            if !self.ready.borrow().is_empty() {
                continue;
            }
            // Wait: for the deadline, or a wake-up from a waker.
            let replaced = {
                let mut outer = self.remote.outer.lock();
                if outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    None
                } else {
                    Some(outer.replace(cx.waker().clone()))
                }
            };
            if let Some(old) = replaced {
                // A new outer waker: the timer thread holds only the old one.
                self.registered.set(None);
                drop(old);
            }
            self.remote.idle.store(true, Ordering::SeqCst);
            if self.remote.pending.load(Ordering::SeqCst) {
                self.remote.idle.store(false, Ordering::SeqCst);
                continue;
            }
            if deadline.is_none() && self.pace.is_simulated() {
                if let Some(stuck) = self.stuck() {
                    self.remote.idle.store(false, Ordering::SeqCst);
                    return Poll::Ready(Err(stuck));
                }
            }
            if let Some(at) = deadline {
                if !parks && self.registered.replace(Some(at)) != Some(at) {
                    super::clock::wake_at(at, cx.waker());
                }
            }
            self.waited.set(true);
            self.deadline.set(deadline);
            return Poll::Pending;
        }
    }
}

impl Core {
    /// After a wait in real time, the clock catches up with the wall clock
    /// (or the replay speed), but never passes a pending key.
    fn follow_wall_clock(&self) {
        if self.pace.is_simulated() {
            return;
        }
        let mut target = self.pace.due_now();
        if let Some(next) = self.timers.borrow_mut().peek() {
            target = target.min(next.time);
        }
        if target > self.clock.get() {
            self.clock.set(target);
        }
    }

    /// Fires the loop's live notification once: every past is exhausted and
    /// nothing is due. Then runs the [`on_live`](EventLoop::on_live)
    /// callbacks; a panicking one stops the run with a [`TaskError`] (the
    /// others run at the next run).
    fn check_live(&self) -> Result<(), TaskError> {
        if !self.live.get() {
            if self.pasts_open.get() > 0 {
                return Ok(());
            }
            let next = self.timers.borrow_mut().peek();
            if next.is_some_and(|key| self.pace.due_at(key.time).is_none()) {
                return Ok(());
            }
            self.live.set(true);
        }
        loop {
            let next = self.on_live.borrow_mut().pop_front();
            let Some((callback, at)) = next else {
                return Ok(());
            };
            catch_unwind(AssertUnwindSafe(callback)).map_err(|payload| {
                TaskError::panicked(
                    format!("on_live callback (registered at {at})"),
                    panic_message(&*payload),
                )
            })?;
        }
    }

    /// The tasks of a simulated loop that nothing can ever wake: every task
    /// is pending, none is ready, no timer is pending (the caller checked),
    /// no wake-up is queued, and no task's waker is held outside its slot.
    /// `None` if any waker is held elsewhere: whoever holds it (another
    /// thread, a channel, a combinator) may still wake its task.
    ///
    /// Wakers held inside the loop do not count: a task awaiting a
    /// [`JoinHandle`] of this loop, a timer, or a source's next event is
    /// registered by task id, not by waker.
    fn stuck(&self) -> Option<TaskError> {
        let tasks = self.tasks.borrow();
        let shared = tasks
            .slots
            .iter()
            .flatten()
            .any(|slot| std::sync::Arc::strong_count(&slot.waker_arc) != TaskSlot::UNSHARED);
        if shared || tasks.live == 0 {
            return None;
        }
        // A thread that wakes a task queues the wake-up before it drops its
        // waker (a release decrement of the count read above): see the
        // wake-up if the count saw the drop.
        std_fence(Ordering::Acquire);
        if self.remote.pending.load(Ordering::SeqCst) {
            return None;
        }
        let mut slots: Vec<&TaskSlot> = tasks.slots.iter().flatten().collect();
        slots.sort_by_key(|slot| slot.label.serial);
        let mut names: Vec<String> = slots.iter().map(|slot| slot.label.to_string()).collect();
        // A task and the tasks it spawned on its behalf share one name.
        names.dedup();
        Some(TaskError::stuck(names))
    }
}

/// The nested event loop: a single-threaded executor with a virtual clock.
///
/// The clock starts at the wall clock's time ([`new`](Self::new)) or at a
/// chosen time ([`starting_at`](Self::starting_at)). Tasks run until none can
/// make progress; then the clock jumps to the next pending event or timer and
/// dispatches it. Over the past, that is as fast as the machine goes (or
/// [`speed`](Self::speed) times the wall clock); once the clock has caught up
/// with the wall clock, the loop waits for it and for live sources, using no
/// CPU while it waits. In [`simulated`](Self::simulated) mode it never waits
/// for the wall clock: tests of timing run instantly and exactly.
///
/// The rules the loop keeps are listed in the [`time`](crate::time) module.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::{now, sleep, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::from_unix_secs(0)).simulated();
/// let at = el.block_on(async {
///     sleep(Duration::from_secs(3600)).await; // an hour, instantly
///     now()
/// });
/// assert_eq!(at, Timestamp::from_unix_secs(3600));
/// ```
pub struct EventLoop {
    core: Rc<Core>,
}

impl EventLoop {
    /// A loop whose clock starts at the wall clock's time now.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new();
    /// assert!(el.now() <= timecast::Timestamp::now());
    /// ```
    pub fn new() -> Self {
        Self::starting_at(Timestamp::now())
    }

    /// A loop whose clock starts at `start` (ASP's `start_time`): typically
    /// the time of the first past event to replay. Any `start` works, from
    /// [`Timestamp::MIN`] to [`Timestamp::MAX`]; following the wall clock, a
    /// loop started in the future waits for the wall clock to reach each
    /// key (a [`simulated`](Self::simulated) one does not).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{EventLoop, Timestamp};
    ///
    /// let start = Timestamp::from_ymd_hms(2025, 1, 1, 0, 0, 0).unwrap();
    /// assert_eq!(EventLoop::starting_at(start).now(), start);
    /// ```
    pub fn starting_at(start: Timestamp) -> Self {
        Self {
            core: Rc::new(Core::new(start, Pace::new())),
        }
    }

    /// Never waits for the wall clock: the clock jumps from one pending
    /// event or timer to the next even when that is in the future. For
    /// tests and backtests.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let el = timecast::EventLoop::new().simulated();
    /// let start = el.now();
    /// el.block_on(async { timecast::sleep(Duration::from_secs(86_400)).await });
    /// assert_eq!(el.now(), start + Duration::from_secs(86_400));
    /// ```
    pub fn simulated(self) -> Self {
        self.core.pace.set_simulated();
        self
    }

    /// The smallest factor [`speed`](Self::speed) takes: a second of the
    /// past replayed in 16 min 40 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let slow_motion = timecast::EventLoop::new().speed(timecast::EventLoop::MIN_SPEED);
    /// # drop(slow_motion);
    /// ```
    pub const MIN_SPEED: f64 = 1e-3;

    /// The largest factor [`speed`](Self::speed) takes: a second of the
    /// past per nanosecond, as fast as a loop goes anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().speed(timecast::EventLoop::MAX_SPEED);
    /// # drop(el);
    /// ```
    pub const MAX_SPEED: f64 = 1e9;

    /// Replays the past at `speed` times wall-clock speed instead of as fast
    /// as possible (2.0: twice as fast; 0.5: half as fast). Once caught up
    /// with the wall clock, the loop follows it as usual.
    ///
    /// `speed` must lie in [`MIN_SPEED`](Self::MIN_SPEED)`..=`[`MAX_SPEED`](Self::MAX_SPEED):
    /// a smaller factor turns seconds of the past into days of waiting, and
    /// a larger one is no different from not setting a speed at all.
    ///
    /// # Panics
    ///
    /// If `speed` is outside that range (zero, negative, subnormal, NaN or
    /// infinite included).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use timecast::{sleep, EventLoop, Timestamp};
    ///
    /// let start = Timestamp::from_ymd_hms(2020, 1, 1, 0, 0, 0).unwrap();
    /// let el = EventLoop::starting_at(start).speed(1000.0); // a second per millisecond
    /// let wall = Instant::now();
    /// el.block_on(async { sleep(Duration::from_secs(2)).await });
    /// assert_eq!(el.now(), start + Duration::from_secs(2));
    /// assert!(wall.elapsed() >= Duration::from_millis(2));
    /// ```
    pub fn speed(self, speed: f64) -> Self {
        assert!(
            (Self::MIN_SPEED..=Self::MAX_SPEED).contains(&speed),
            "EventLoop::speed takes a factor from {} to {} (EventLoop::MIN_SPEED..=MAX_SPEED), \
             got {speed}; to replay as fast as possible, set no speed",
            Self::MIN_SPEED,
            Self::MAX_SPEED,
        );
        self.core.pace.set_speed(speed);
        self
    }

    /// The loop's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{EventLoop, Timestamp};
    /// assert_eq!(EventLoop::starting_at(Timestamp::UNIX_EPOCH).now(), Timestamp::UNIX_EPOCH);
    /// ```
    pub fn now(&self) -> Timestamp {
        self.core.clock.get()
    }

    /// Spawns a task on the loop; it starts when the loop runs. The future
    /// need not be `Send`. The returned handle is a future of its outcome:
    /// the output, or a [`JoinError`] if the task panicked or was aborted.
    ///
    /// Errors name an unnamed task by its spawn order and the place of this
    /// call: `task #3 (spawned at src/main.rs:10:5)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn(async { 6 * 7 });
    /// assert_eq!(el.block_on(task)?, 42);
    /// # Ok::<_, timecast::JoinError>(())
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        spawn_on(&self.core, None, future)
    }

    /// Spawns a task with a name, used in [`TaskError`]s and
    /// [`JoinError`]s.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// el.spawn_named("feed", async {});
    /// el.run()?;
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    #[track_caller]
    pub fn spawn_named<F>(&self, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        spawn_on(&self.core, Some(name.into()), future)
    }

    /// Registers `callback` to run once, when the whole loop has gone live:
    /// every past is exhausted and every event or timer due before the
    /// wall clock has run. (In simulated mode, where everything is due:
    /// once every past is exhausted and nothing else is pending, at the
    /// latest when the run ends.)
    ///
    /// A callback registered once the loop is live runs at once, on the
    /// caller. One that panics when the loop runs it stops the run with a
    /// [`TaskError`] naming it `on_live callback (registered at
    /// file:line:col)`; the callbacks after it run at the next run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let el = timecast::EventLoop::new().simulated();
    /// let live = Rc::new(Cell::new(false));
    /// let flag = live.clone();
    /// el.on_live(move || flag.set(true));
    /// el.run()?;
    /// assert!(live.get());
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    #[track_caller]
    pub fn on_live(&self, callback: impl FnOnce() + 'static) {
        if self.core.live.get() && self.core.on_live.borrow().is_empty() {
            callback();
        } else {
            self.core
                .on_live
                .borrow_mut()
                .push_back((Box::new(callback), Location::caller()));
        }
    }

    /// Whether the loop has gone live (see [`on_live`](Self::on_live)).
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// assert!(!el.is_live());
    /// el.run()?;
    /// assert!(el.is_live());
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    pub fn is_live(&self) -> bool {
        self.core.live.get()
    }

    /// Number of live events that arrived late (stamped before an event or
    /// timer already dispatched), whatever their late policy did with them.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(timecast::EventLoop::new().late_events(), 0);
    /// ```
    pub fn late_events(&self) -> u64 {
        self.core.late_events.get()
    }

    /// Number of data events dispatched so far: the events of every
    /// [`process_stream`](crate::process_stream), past and live (late
    /// live events delivered at once are counted by
    /// [`late_events`](Self::late_events) instead).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{process_stream, EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let past = (1..=3).map(|s| (Timestamp::from_unix_secs(s), s));
    /// el.spawn(process_stream(|_ts: Timestamp, _v: i64| {}).past(past));
    /// el.run()?;
    /// assert_eq!(el.events_dispatched(), 3);
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    pub fn events_dispatched(&self) -> u64 {
        self.core.events_dispatched.get()
    }

    /// Number of timers fired so far: every [`sleep`](crate::sleep),
    /// [`sleep_until`](crate::sleep_until), [`call_at`](crate::call_at)
    /// and [`timer`](crate::timer) tick that came due.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{sleep, EventLoop};
    ///
    /// let el = EventLoop::new().simulated();
    /// el.block_on(async {
    ///     sleep(Duration::from_secs(1)).await;
    ///     sleep(Duration::from_secs(1)).await;
    /// });
    /// assert_eq!(el.timers_fired(), 2);
    /// ```
    pub fn timers_fired(&self) -> u64 {
        self.core.timers_fired.get()
    }

    /// Runs the loop on the current thread until every task has finished.
    ///
    /// # Waiting, and stuck tasks
    ///
    /// When no task can run and no timer is due, the loop waits for a
    /// wake-up. In [`simulated`](Self::simulated) mode every timer is due at
    /// once, so a wait can only end with a wake-up from outside the loop:
    /// through a task's [`Waker`] held by something else (a channel fed by
    /// another thread, a combinator, user code). If no task's waker is held
    /// anywhere but by the loop itself, nothing can ever wake them: the run
    /// stops with a [`TaskError`] that [`is_stuck`](TaskError::is_stuck)
    /// and names them. The loop counts waker clones, so it reports only what
    /// it can prove: a task whose waker is held elsewhere is waited for,
    /// even if that holder never wakes it (a channel whose only producer is
    /// itself stuck). A task awaiting a [`JoinHandle`] of this loop, a timer
    /// or a source's next event does not hold its waker out.
    ///
    /// Following the wall clock ([`new`](Self::new),
    /// [`starting_at`](Self::starting_at) without `simulated`), the loop
    /// waits for the next timer or a wake-up, as any executor does: with
    /// nothing pending it waits forever (`block_on(std::future::pending())`
    /// is how a program serves other threads forever). Whether a held waker
    /// will ever be used cannot be known, so no wait is reported as stuck.
    ///
    /// # Errors
    ///
    /// [`TaskError`] if a task panicked: the loop stops at once; the other
    /// tasks stay on the loop, unpolled, and the panicked task's
    /// [`JoinHandle`] resolves to a [`JoinError`] when awaited. Also if a
    /// callback of [`on_live`](Self::on_live) panicked, or if the tasks are
    /// stuck (above); running the loop again goes on from there.
    ///
    /// # Panics
    ///
    /// If called from inside a task of this same loop.
    ///
    /// # Blocking
    ///
    /// Parks the thread while waiting for the wall clock or live sources.
    /// From inside another runtime, await [`run_async`](Self::run_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{call_later, EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// el.spawn(async {
    ///     call_later(Duration::from_secs(5), || println!("five seconds in"));
    /// });
    /// el.run()?;
    /// assert_eq!(el.now(), Timestamp::from_unix_secs(5));
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    pub fn run(&self) -> Result<(), TaskError> {
        crate::sync::block_on_with(
            RunFuture {
                el: self,
                until: None,
                parks: true,
            },
            || self.core.deadline.get(),
        )
    }

    /// Runs the loop until every task has finished, as a future: await it
    /// from inside another runtime without blocking that runtime's threads.
    /// The future is not `Send` (the loop's tasks need not be): run it on
    /// the current thread (`block_on`, `#[tokio::main]`'s main future, a
    /// tokio `LocalSet`).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future pauses the loop where it is: its tasks, timers
    /// and clock stay as they are, nothing is lost, and the next `run`,
    /// `run_async` or `block_on` goes on from there.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// el.spawn(async { timecast::sleep(std::time::Duration::from_secs(1)).await });
    /// futures::executor::block_on(el.run_async())?;
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    pub fn run_async(&self) -> RunFuture<'_> {
        RunFuture {
            el: self,
            until: None,
            parks: false,
        }
    }

    /// Runs the loop until `future` completes, and returns its output. Other
    /// tasks run meanwhile and stay on the loop when it returns.
    ///
    /// # Panics
    ///
    /// If the run stops with a [`TaskError`]: a task panicked, or (in
    /// simulated mode) the tasks are stuck; the panic's message is the
    /// error's. Use [`try_block_on`](Self::try_block_on) to get the
    /// [`TaskError`] instead. Also if called from inside a task of this same
    /// loop.
    ///
    /// # Blocking
    ///
    /// As [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// assert_eq!(el.block_on(async { "done" }), "done");
    /// ```
    #[track_caller]
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + 'static,
    {
        self.try_block_on(future).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the loop until `future` completes, and returns its output.
    ///
    /// # Errors
    ///
    /// [`TaskError`] if a task (`future` included) panicked, or if the tasks
    /// are stuck (see [`run`](Self::run)); `future` stays on the loop, and
    /// its output is lost.
    ///
    /// # Blocking
    ///
    /// As [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let err = el.try_block_on(async { panic!("oops") }).unwrap_err();
    /// assert_eq!(err.message(), "oops");
    /// ```
    #[track_caller]
    pub fn try_block_on<F>(&self, future: F) -> Result<F::Output, TaskError>
    where
        F: Future + 'static,
    {
        let handle = spawn_on(&self.core, Some("block_on".into()), future);
        crate::sync::block_on_with(
            RunFuture {
                el: self,
                until: Some(handle.id()),
                parks: true,
            },
            || self.core.deadline.get(),
        )?;
        match handle.try_take() {
            Some(Ok(output)) => Ok(output),
            // Its panic ended the run with an error already.
            _ => unreachable!("block_on's task completed"),
        }
    }
}

impl Drop for EventLoop {
    /// Drops the tasks still on the loop (and `on_live` callbacks not run);
    /// their handles resolve to cancelled [`JoinError`]s. Their futures
    /// hold the loop's core (through sleeps and sources), so without this
    /// the core and the tasks would keep each other alive.
    ///
    /// A task whose `Drop` panics does not stop the others from being
    /// dropped; the first such panic resumes once all are (unless the
    /// thread is panicking already).
    fn drop(&mut self) {
        let core = &self.core;
        let _enter = Enter::new(core);
        let mut panic = None;
        let mut drop_caught = |f: Box<dyn FnOnce() + '_>| {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                panic.get_or_insert(payload);
            }
        };
        // A dropped future may spawn or register callbacks: repeat until
        // nothing is left. The borrows end before anything is dropped.
        loop {
            let tasks = std::mem::take(&mut *core.tasks.borrow_mut());
            let callbacks = std::mem::take(&mut *core.on_live.borrow_mut());
            core.ready.borrow_mut().clear();
            if tasks.live == 0 && callbacks.is_empty() {
                break;
            }
            for slot in tasks.slots.into_iter().flatten() {
                drop_caught(Box::new(move || drop(slot)));
            }
            for callback in callbacks {
                drop_caught(Box::new(move || drop(callback)));
            }
        }
        if let Some(payload) = panic {
            if !std::thread::panicking() {
                std::panic::resume_unwind(payload);
            }
        }
    }
}

impl Default for EventLoop {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("now", &self.core.clock.get())
            .field("tasks", &self.core.live_tasks())
            .field("timers", &self.core.timers.borrow().len())
            .field("live", &self.core.live.get())
            .finish()
    }
}

/// The future returned by [`EventLoop::run_async`]: runs the loop until
/// every task has finished.
///
/// # Cancel safety
///
/// Dropping it pauses the loop where it is; nothing is lost (see
/// [`EventLoop::run_async`]).
///
/// # Examples
///
/// ```
/// use timecast::{time::RunFuture, EventLoop};
///
/// let el = EventLoop::new().simulated();
/// el.spawn(async {});
/// let run: RunFuture<'_> = el.run_async();
/// futures::executor::block_on(run)?;
/// # Ok::<_, timecast::TaskError>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct RunFuture<'a> {
    el: &'a EventLoop,
    /// The task whose end ends the run; `None`: every task's.
    until: Option<TaskId>,
    /// Whether the driver parks the thread until the loop's deadline
    /// (`run`, `block_on`), so that no timer-thread wake-up is needed.
    parks: bool,
}

impl Future for RunFuture<'_> {
    type Output = Result<(), TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let core = &self.el.core;
        assert!(
            !core.running.replace(true),
            "EventLoop run from inside one of its own tasks: spawn the work instead"
        );
        // Reset `running` even if an `on_live` callback panics.
        struct Running<'a>(&'a Core);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.running.set(false);
                self.0.until.set(None);
            }
        }
        let _running = Running(core);
        core.until.set(self.until);
        // A new run may end on another task.
        core.invalidate_inline();
        core.pace.start(core.clock.get());
        let _enter = Enter::new(core);
        core.turn(cx, self.parks)
    }
}

impl fmt::Debug for RunFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::future::{poll_fn, Future};
    use std::pin::pin;
    use std::task::Poll;
    use std::time::Duration;

    use super::super::{current_core, Key, Timestamp};
    use super::EventLoop;

    fn t(millis: i64) -> Timestamp {
        Timestamp::from_unix_nanos(millis * 1_000_000)
    }

    /// Runs `check` in a task whose first event (at 0 ms) was dispatched
    /// inline, so that the window of `dispatch_fast` is open; `check`
    /// gets the loop's core and the source's rank.
    fn in_window<F: Future<Output = ()> + 'static>(
        check: impl FnOnce(std::rc::Rc<super::Core>, u64) -> F + 'static,
    ) {
        let el = EventLoop::starting_at(t(0)).simulated();
        el.block_on(async move {
            let core = current_core("test");
            let rank = core.register_source();
            let task = core.current.get().expect("in a task");
            assert!(core.arm_inline(Key::data(t(0), rank, 1), task).is_none());
            assert!(core.dispatch_fast(Key::data(t(1), rank, 2)));
            check(core.clone(), rank).await;
            core.past_done();
        });
    }

    #[test]
    fn following_the_wall_clock_the_inline_window_ends_at_what_is_due() {
        let start = Timestamp::now() - Duration::from_secs(1);
        let el = EventLoop::starting_at(start);
        el.block_on(async move {
            let core = current_core("test");
            let rank = core.register_source();
            let task = core.current.get().expect("in a task");
            assert!(core.arm_inline(Key::data(start, rank, 1), task).is_none());
            let due = start + Duration::from_millis(1);
            assert!(core.dispatch_fast(Key::data(due, rank, 2)));
            let hour = start + Duration::from_secs(3600);
            assert!(!core.dispatch_fast(Key::data(hour, rank, 3)));
            assert_eq!(core.clock.get(), due);
            core.past_done();
        });
    }

    #[test]
    fn a_queued_timer_closes_the_inline_window() {
        in_window(|core, rank| async move {
            let mut timer = pin!(crate::sleep_until(t(30)));
            poll_fn(|cx| {
                assert!(timer.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert!(!core.dispatch_fast(Key::data(t(40), rank, 3)));
            // Reopened below the timer, at equal times data first.
            let task = core.current.get().expect("in a task");
            assert!(core.arm_inline(Key::data(t(10), rank, 3), task).is_none());
            assert!(core.dispatch_fast(Key::data(t(30), rank, 4)));
            assert!(!core.dispatch_fast(Key::data(t(31), rank, 5)));
            assert_eq!(core.clock.get(), t(30));
        });
    }

    #[test]
    fn a_spawned_or_scheduled_task_closes_the_inline_window() {
        in_window(|core, rank| async move {
            let other = crate::spawn(std::future::pending::<()>());
            assert!(!core.dispatch_fast(Key::data(t(2), rank, 3)));
            // Woken by id, not through a waker: as from a `JoinHandle`.
            crate::sleep(Duration::ZERO).await;
            let me = core.current.get().expect("in a task");
            assert!(core.arm_inline(Key::data(t(2), rank, 3), me).is_none());
            core.wake_task(other.id());
            assert!(!core.dispatch_fast(Key::data(t(3), rank, 4)));
            other.abort();
        });
    }

    #[test]
    fn a_wake_up_closes_the_inline_window() {
        in_window(|core, rank| async move {
            poll_fn(|cx| {
                cx.waker().wake_by_ref();
                Poll::Ready(())
            })
            .await;
            assert!(!core.dispatch_fast(Key::data(t(2), rank, 3)));
        });
    }

    #[test]
    fn a_finished_task_closes_the_inline_window() {
        in_window(|core, rank| async move {
            let task = crate::spawn(async {});
            crate::sleep(Duration::ZERO).await;
            assert!(task.is_finished());
            let me = core.current.get().expect("in a task");
            assert!(core.arm_inline(Key::data(t(2), rank, 3), me).is_none());
            task.abort();
            assert!(core.dispatch_fast(Key::data(t(3), rank, 4)));
            let other = crate::spawn(std::future::pending::<()>());
            crate::sleep(Duration::ZERO).await;
            assert!(core.arm_inline(Key::data(t(4), rank, 5), me).is_none());
            other.abort();
            assert!(!core.dispatch_fast(Key::data(t(5), rank, 6)));
        });
    }
}
