//! [`EventLoop`]: a single-threaded executor whose clock replays the past as
//! fast as possible (or at a chosen speed), then follows the wall clock.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::clock::Pace;
use super::timers::{Key, Target, TimerId, TimerQueue};
use super::Timestamp;
use crate::sync::{Arc, AtomicBool, Mutex, Ordering};

/// A task panicked: the loop stopped. Names the task and keeps its panic
/// message.
///
/// # Examples
///
/// ```
/// let el = timecast::EventLoop::new().simulated();
/// el.spawn_named("parser", async { panic!("bad input") });
/// let err = el.run().unwrap_err();
/// assert_eq!(err.task(), "parser");
/// assert_eq!(err.message(), "bad input");
/// assert_eq!(err.to_string(), "task `parser` panicked: bad input");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    task: String,
    message: String,
}

impl TaskError {
    /// The name of the task that panicked (`task #N` for unnamed tasks).
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The panic message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task `{}` panicked: {}", self.task, self.message)
    }
}

impl std::error::Error for TaskError {}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
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
}

impl Remote {
    fn push(&self, index: usize, generation: u32) {
        self.queue.lock().push((index, generation));
        self.pending.store(true, Ordering::SeqCst);
        if self.idle.load(Ordering::SeqCst) {
            // Clone, release the lock, then wake: never wake under a lock.
            let outer = self.outer.lock().clone();
            if let Some(waker) = outer {
                waker.wake();
            }
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
    name: Option<Rc<str>>,
    serial: u64,
    queued: bool,
    /// How late the live event this task is handling was, if it was.
    lateness: Option<Duration>,
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
    pace: Pace,
    pub(crate) timers: RefCell<TimerQueue>,
    tasks: RefCell<Tasks>,
    ready: RefCell<VecDeque<usize>>,
    remote: Arc<Remote>,
    /// The task being polled.
    pub(crate) current: Cell<Option<usize>>,
    next_seq: Cell<u64>,
    next_rank: Cell<u64>,
    next_serial: Cell<u64>,
    /// Sources whose past is not exhausted yet.
    pasts_open: Cell<usize>,
    live: Cell<bool>,
    on_live: RefCell<Vec<Box<dyn FnOnce()>>>,
    late_events: Cell<u64>,
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
}

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
            pace,
            timers: RefCell::default(),
            tasks: RefCell::default(),
            ready: RefCell::default(),
            remote: Arc::new(Remote {
                queue: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
                idle: AtomicBool::new(false),
                outer: Mutex::new(None),
            }),
            current: Cell::new(None),
            next_seq: Cell::new(0),
            next_rank: Cell::new(0),
            next_serial: Cell::new(0),
            pasts_open: Cell::new(0),
            live: Cell::new(false),
            on_live: RefCell::default(),
            late_events: Cell::new(0),
            waited: Cell::new(false),
            running: Cell::new(false),
            until: Cell::new(None),
            deadline: Cell::new(None),
            registered: Cell::new(None),
            spare: RefCell::default(),
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
    /// `None`.
    ///
    /// The round trip would be: the task returns `Pending`; no other task is
    /// ready; the run is not over; the smallest pending key is `key` and it
    /// is due; so `key` is dispatched and the same task is polled again.
    /// This checks exactly those conditions. It is only equivalent if
    /// nothing else would run in the task between this call and the task
    /// returning `Pending`: the caller must be a future awaited at the top
    /// of a task of its own, never inside a `join` or `select` (see
    /// `SourceEvent`).
    #[inline]
    pub(crate) fn arm_inline(&self, key: Key, task: usize) -> Option<TimerId> {
        let mut timers = self.timers.borrow_mut();
        if !self.may_dispatch_inline() {
            return Some(timers.insert(key, Target::Task(task)));
        }
        if timers.is_empty() {
            // Nothing pending to compare with: no heap work at all.
            if self.pace.due_at(key.time).is_none() {
                drop(timers);
                self.dispatch(key);
                return None;
            }
            return Some(timers.insert(key, Target::Task(task)));
        }
        // Below every pending key once queued (it is then on top), and due.
        match timers.insert_or_fire(key, Target::Task(task), || {
            self.pace.due_at(key.time).is_none()
        }) {
            Ok(id) => Some(id),
            Err(_) => {
                // The target is a task index: nothing to drop.
                drop(timers);
                self.dispatch(key);
                None
            }
        }
    }

    /// The conditions of an inline dispatch (see
    /// [`arm_inline`](Self::arm_inline)) that do not depend on the key: a
    /// task is being polled, no other is ready, and the run is not over.
    #[inline]
    fn may_dispatch_inline(&self) -> bool {
        self.current.get().is_some()
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
        if key.time > self.clock.get() {
            self.clock.set(key.time);
        }
        if key.time > self.last_dispatch.get() {
            self.last_dispatch.set(key.time);
        }
    }

    pub(crate) fn spawn_boxed(&self, name: Option<Rc<str>>, future: BoxFuture) -> TaskId {
        let mut tasks = self.tasks.borrow_mut();
        let index = tasks.free.pop().unwrap_or_else(|| {
            tasks.slots.push(None);
            tasks.generations.push(0);
            tasks.slots.len() - 1
        });
        let generation = tasks.generations[index];
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        let waker = Rc::new(Waker::from(std::sync::Arc::new(TaskWaker {
            index,
            generation,
            remote: self.remote.clone(),
        })));
        tasks.slots[index] = Some(TaskSlot {
            future: Some(future),
            waker,
            name,
            serial,
            queued: true,
            lateness: None,
        });
        tasks.live += 1;
        drop(tasks);
        self.ready.borrow_mut().push_back(index);
        TaskId { index, generation }
    }

    /// Ends task `id` without completing it: drops its future. Does nothing
    /// if the task has finished, or is the one being polled (a task cannot
    /// drop itself mid-poll; it runs on).
    pub(crate) fn abort(&self, id: TaskId) {
        if !self.is_alive(id) {
            return;
        }
        let future = match self.tasks.borrow_mut().slots.get_mut(id.index) {
            Some(Some(slot)) => slot.future.take(),
            _ => None,
        };
        if let Some(future) = future {
            self.finish_task(id.index);
            drop(future);
        }
    }

    /// The name of the task being polled, if it has one.
    pub(crate) fn current_name(&self) -> Option<Rc<str>> {
        let index = self.current.get()?;
        self.tasks.borrow().slots.get(index)?.as_ref()?.name.clone()
    }

    /// Queues task `index` to be polled.
    pub(crate) fn schedule(&self, index: usize) {
        let mut tasks = self.tasks.borrow_mut();
        if let Some(Some(slot)) = tasks.slots.get_mut(index) {
            if !slot.queued {
                slot.queued = true;
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

    /// Polls task `index` once. Returns an error if it panicked.
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
        let mut cx = Context::from_waker(&waker);
        let outcome = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
        self.current.set(None);
        match outcome {
            Ok(Poll::Pending) => {
                if let Some(Some(slot)) = self.tasks.borrow_mut().slots.get_mut(index) {
                    // The slot's future stays `None` while the task is polled
                    // (`abort` cannot take it then): nothing to drop here.
                    let none = slot.future.replace(future);
                    debug_assert!(none.is_none());
                    std::mem::forget(none);
                }
                Ok(())
            }
            Ok(Poll::Ready(())) => {
                self.finish_task(index);
                drop(future);
                Ok(())
            }
            Err(payload) => {
                let name = self.task_name(index);
                self.finish_task(index);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
                Err(TaskError {
                    task: name,
                    message: panic_message(&*payload),
                })
            }
        }
    }

    fn task_name(&self, index: usize) -> String {
        match self.tasks.borrow().slots.get(index) {
            Some(Some(TaskSlot {
                name: Some(name), ..
            })) => name.to_string(),
            Some(Some(slot)) => format!("task #{}", slot.serial),
            _ => format!("task #{index}"),
        }
    }

    fn finish_task(&self, index: usize) {
        let mut tasks = self.tasks.borrow_mut();
        let slot = tasks.slots[index].take();
        tasks.generations[index] = tasks.generations[index].wrapping_add(1);
        tasks.free.push(index);
        tasks.live -= 1;
        drop(tasks);
        drop(slot);
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
                self.check_live();
                if self.done() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // Nothing can run: advance the clock to the next key, if due.
            let next = self.timers.borrow_mut().peek();
            let deadline = match next {
                Some(key) => match self.pace.due_at(key.time) {
                    None => {
                        let (key, target) = self.timers.borrow_mut().fire_next();
                        self.dispatch(key);
                        match target {
                            // Nothing else is ready: poll it at once rather
                            // than through the ready queue (same order).
                            Target::Task(index) if self.ready.borrow().is_empty() => {
                                self.poll_task(index)?;
                            }
                            Target::Task(index) => self.schedule(index),
                            Target::Waker(waker) => waker.wake(),
                        }
                        continue;
                    }
                    Some(at) => Some(at),
                },
                None => None,
            };
            self.check_live();
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
    /// nothing is due.
    fn check_live(&self) {
        if self.live.get() || self.pasts_open.get() > 0 {
            return;
        }
        let next = self.timers.borrow_mut().peek();
        if next.is_some_and(|key| self.pace.due_at(key.time).is_none()) {
            return;
        }
        self.live.set(true);
        let callbacks = std::mem::take(&mut *self.on_live.borrow_mut());
        for callback in callbacks {
            callback();
        }
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
    /// the time of the first past event to replay.
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
    pub fn simulated(mut self) -> Self {
        self.pace_mut().set_simulated();
        self
    }

    /// Replays the past at `speed` times wall-clock speed instead of as fast
    /// as possible (2.0: twice as fast). Once caught up with the wall clock,
    /// the loop follows it as usual.
    ///
    /// # Panics
    ///
    /// If `speed` is not a positive finite number.
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
    pub fn speed(mut self, speed: f64) -> Self {
        assert!(
            speed.is_finite() && speed > 0.0,
            "EventLoop::speed takes a positive finite factor, got {speed}"
        );
        self.pace_mut().set_speed(speed);
        self
    }

    fn pace_mut(&mut self) -> &mut Pace {
        &mut Rc::get_mut(&mut self.core)
            .expect("configure the EventLoop before spawning onto it")
            .pace
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
    /// need not be `Send`. The returned handle is a future of its output.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn(async { 6 * 7 });
    /// assert_eq!(el.block_on(task), 42);
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        spawn_on(&self.core, None, future)
    }

    /// Spawns a task with a name, used in [`TaskError`] if it panics.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// el.spawn_named("feed", async {});
    /// el.run()?;
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
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
    pub fn on_live(&self, callback: impl FnOnce() + 'static) {
        if self.core.live.get() {
            callback();
        } else {
            self.core.on_live.borrow_mut().push(Box::new(callback));
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

    /// Runs the loop on the current thread until every task has finished.
    ///
    /// # Errors
    ///
    /// [`TaskError`] if a task panicked: the loop stops at once; the other
    /// tasks stay on the loop, unpolled.
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
    /// If a task panics (the panic names the task and keeps its message; use
    /// [`try_block_on`](Self::try_block_on) to get a [`TaskError`] instead),
    /// or if called from inside a task of this same loop.
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
    /// [`TaskError`] if a task (`future` included) panicked.
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
    pub fn try_block_on<F>(&self, future: F) -> Result<F::Output, TaskError>
    where
        F: Future + 'static,
    {
        let handle = spawn_on(&self.core, Some("block_on".into()), future);
        crate::sync::block_on_with(
            RunFuture {
                el: self,
                until: Some(handle.id),
                parks: true,
            },
            || self.core.deadline.get(),
        )?;
        let output = handle.state.borrow_mut().output.take();
        Ok(output.expect("block_on's task finished"))
    }
}

impl Drop for EventLoop {
    /// Drops the tasks still on the loop (and `on_live` callbacks not run).
    /// Their futures hold the loop's core (through sleeps and sources), so
    /// without this the core and the tasks would keep each other alive.
    fn drop(&mut self) {
        let core = &self.core;
        let _enter = Enter::new(core);
        // A dropped future may spawn or register callbacks: repeat until
        // nothing is left. The borrows end before anything is dropped.
        loop {
            let tasks = std::mem::take(&mut *core.tasks.borrow_mut());
            let callbacks = std::mem::take(&mut *core.on_live.borrow_mut());
            core.ready.borrow_mut().clear();
            if tasks.live == 0 && callbacks.is_empty() {
                break;
            }
            drop(tasks);
            drop(callbacks);
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

/// The future returned by [`EventLoop::run_async`].
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

struct JoinState<T> {
    output: Option<T>,
    finished: bool,
    waker: Option<Waker>,
}

/// A handle to a task spawned on an [`EventLoop`]: a future of the task's
/// output. Dropping it detaches the task, which runs on.
///
/// # Examples
///
/// ```
/// let el = timecast::EventLoop::new().simulated();
/// let out = el.block_on(async {
///     let a = timecast::spawn(async { 1 });
///     let b = timecast::spawn(async { 2 });
///     a.await + b.await
/// });
/// assert_eq!(out, 3);
/// ```
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
    id: TaskId,
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn(async {});
    /// assert!(!task.is_finished());
    /// el.run()?;
    /// assert!(task.is_finished());
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        self.state.borrow().finished
    }

    pub(crate) fn id(&self) -> TaskId {
        self.id
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state.borrow_mut();
        if let Some(output) = state.output.take() {
            return Poll::Ready(output);
        }
        assert!(
            !state.finished,
            "JoinHandle polled after it returned the output"
        );
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            empty => *empty = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.state.borrow().finished)
            .finish()
    }
}

pub(crate) fn spawn_on<F>(
    core: &Rc<Core>,
    name: Option<Rc<str>>,
    future: F,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    let state = Rc::new(RefCell::new(JoinState {
        output: None,
        finished: false,
        waker: None,
    }));
    let task_state = state.clone();
    let id = core.spawn_boxed(
        name,
        Box::pin(async move {
            let output = future.await;
            let waker = {
                let mut state = task_state.borrow_mut();
                state.output = Some(output);
                state.finished = true;
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }),
    );
    JoinHandle { state, id }
}
