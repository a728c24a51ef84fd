//! Layer 2, time: [`Timestamp`], the virtual clock, the timer queue, and
//! [`EventLoop`], the nested event loop.
//!
//! # The rules
//!
//! The clock is a virtual [`Timestamp`]. The loop keeps these rules, and the
//! tests hold it to them.
//!
//! 1. **Total order.** Work is dispatched by key: data events by
//!    `(ts, 0, source rank, seq)`, timers by `(due, 1, creation order)`.
//!    Sources rank in registration order (the order their tasks first run).
//!    At equal times all data runs before timers.
//! 2. **`now()`** inside a callback is the time of the event or timer being
//!    dispatched, frozen for the callback. During replay it never reads the
//!    wall clock: the same input gives the same output every run, at any
//!    speed. (A key dispatched later than its time — the next event of a
//!    stream whose callback slept past it — sees the clock, which never goes
//!    back.)
//! 3. **Monotonic.** The clock never goes backwards.
//! 4. **Strict chronology.** A timer due at or before `now` runs before
//!    anything later; a callback scheduled for the past runs before the next
//!    event.
//! 5. **Advancing.** Virtual time moves only when no task can make progress.
//!    Then it jumps to the next key if that key is at or before the wall
//!    clock (always, in [`simulated`](EventLoop::simulated) mode); otherwise
//!    the loop waits for the wall clock or a wake-up from a live source. In
//!    real time, a loop woken from waiting moves its clock up to the wall
//!    clock (never past a pending key): once caught up, the clock follows
//!    the wall clock. A simulated loop whose pending tasks nothing can wake
//!    (no timer, no waker held outside the loop) stops with a
//!    [`TaskError`] that names them, instead of waiting forever (see
//!    [`EventLoop::run`]).
//! 6. **Per stream, callbacks are serial**: the next event of a stream is not
//!    dispatched before the previous callback (and its awaits) finished.
//!    Streams run concurrently with each other.
//! 7. **Past then live.** A stream's `on_live_start` runs once, when its past
//!    is exhausted; [`EventLoop::on_live`] runs once when every stream is
//!    live. A live event is dispatched at its own timestamp; one stamped
//!    before an already dispatched key is late: delivered with its own `ts`
//!    by default ([`lateness`] tells the callback), counted
//!    ([`EventLoop::late_events`]), and a policy may drop or divert it
//!    instead. Live events are never silently lost.
//! 8. **Timers** tick at `start + k·period` (k = 1, 2, …) while the tick is
//!    `≤ until`; they never drift.

mod callback;
mod clock;
mod executor;
mod join;
mod sleep;
mod timers;
mod timestamp;

use std::panic::Location;
use std::rc::Rc;
use std::time::Duration;

pub use callback::{marker, Callback, EventHandler};
pub use executor::{EventLoop, RunFuture, TaskError};
pub use join::{JoinError, JoinHandle};
pub use sleep::Sleep;
pub use timestamp::Timestamp;

pub(crate) use executor::{try_with_core, with_core, Core, Replay, TaskId};
pub(crate) use join::{spawn_as, spawn_on};
pub(crate) use sleep::SourceEvent;
pub(crate) use timers::{Key, Target, TimerId};

/// The clock of the loop running this code.
///
/// # Panics
///
/// Outside an [`EventLoop`] (the message says so).
///
/// # Examples
///
/// ```
/// use timecast::{EventLoop, Timestamp};
///
/// let start = Timestamp::from_unix_secs(1_000);
/// let el = EventLoop::starting_at(start).simulated();
/// assert_eq!(el.block_on(async { timecast::now() }), start);
/// ```
pub fn now() -> Timestamp {
    with_core("now()", |core| core.clock.get())
}

/// Waits `duration` of the loop's time: instantly over the past (or in
/// simulated mode), in real time once live. A deadline past
/// [`Timestamp::MAX`] is `Timestamp::MAX`.
///
/// # Panics
///
/// Outside an [`EventLoop`].
///
/// # Cancel safety
///
/// Dropping the future cancels the sleep.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::{now, sleep, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let t = el.block_on(async {
///     sleep(Duration::from_millis(1500)).await;
///     now()
/// });
/// assert_eq!(t, Timestamp::from_unix_millis(1500));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    with_core("sleep()", |core| {
        let deadline = core.clock.get().saturating_add(duration);
        Sleep::new(core.clone(), core.timer_key(deadline))
    })
}

/// Waits until the loop's clock reaches `deadline`. A deadline in the past
/// completes before any later event or timer is dispatched.
///
/// # Panics
///
/// Outside an [`EventLoop`].
///
/// # Cancel safety
///
/// Dropping the future cancels the sleep.
///
/// # Examples
///
/// ```
/// use timecast::{now, sleep_until, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let t = el.block_on(async {
///     sleep_until(Timestamp::from_unix_secs(60)).await;
///     now()
/// });
/// assert_eq!(t, Timestamp::from_unix_secs(60));
/// ```
pub fn sleep_until(deadline: Timestamp) -> Sleep {
    with_core("sleep_until()", |core| {
        Sleep::new(core.clone(), core.timer_key(deadline))
    })
}

/// Runs `callback` when the loop's clock reaches `at` (at once, before any
/// later event, if `at` is past). The callback is a closure, or a closure
/// returning a future that the loop then runs as a task.
///
/// The timer takes its place in the order when `call_at` is called. The
/// callback runs as a task: the returned [`JoinHandle`] resolves when it is
/// done (a panic in it is a [`TaskError`] of the run);
/// dropping the handle leaves the callback scheduled, and
/// [`abort`](JoinHandle::abort) cancels it.
///
/// # Panics
///
/// Outside an [`EventLoop`].
///
/// # Examples
///
/// ```
/// use timecast::{call_at, now, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// el.spawn(async {
///     call_at(Timestamp::from_unix_secs(10), || assert_eq!(now(), Timestamp::from_unix_secs(10)));
/// });
/// el.run()?;
/// # Ok::<_, timecast::TaskError>(())
/// ```
#[track_caller]
pub fn call_at<M>(at: Timestamp, callback: impl Callback<M>) -> JoinHandle<()> {
    let caller = Location::caller();
    with_core("call_at()", |core| {
        let wait = Sleep::new(core.clone(), core.timer_key(at));
        spawn_as(core, core.label(None, caller), async move {
            wait.await;
            callback.call().await;
        })
    })
}

/// Runs `callback` after `delay` of the loop's time; see [`call_at`]. A
/// time past [`Timestamp::MAX`] is `Timestamp::MAX`.
///
/// # Panics
///
/// Outside an [`EventLoop`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::{call_later, now, sleep, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// el.spawn(async {
///     call_later(Duration::from_secs(1), || async {
///         sleep(Duration::from_secs(1)).await; // callbacks may await
///         assert_eq!(now(), Timestamp::from_unix_secs(2));
///     });
/// });
/// el.run()?;
/// # Ok::<_, timecast::TaskError>(())
/// ```
#[track_caller]
pub fn call_later<M>(delay: Duration, callback: impl Callback<M>) -> JoinHandle<()> {
    let at = with_core("call_later()", |core| {
        core.clock.get().saturating_add(delay)
    });
    call_at(at, callback)
}

/// Spawns a task on the loop running this code; see [`EventLoop::spawn`].
///
/// # Panics
///
/// Outside an [`EventLoop`].
///
/// # Examples
///
/// ```
/// let el = timecast::EventLoop::new().simulated();
/// let n = el.block_on(async { timecast::spawn(async { 5 }).await })?;
/// assert_eq!(n, 5);
/// # Ok::<_, timecast::JoinError>(())
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + 'static,
{
    let caller = Location::caller();
    with_core("spawn()", |core| {
        spawn_as(core, core.label(None, caller), future)
    })
}

/// Inside the callback of a late live event: how late it was (how far
/// before the last dispatched key it was stamped). `None` for events on time
/// and outside callbacks.
///
/// # Examples
///
/// ```
/// let el = timecast::EventLoop::new().simulated();
/// assert_eq!(el.block_on(async { timecast::lateness() }), None);
/// ```
pub fn lateness() -> Option<Duration> {
    try_with_core(|core| core.lateness()).flatten()
}

/// Whether the loop running this code has gone live (see
/// [`EventLoop::on_live`]); `false` outside a loop.
///
/// # Examples
///
/// ```
/// assert!(!timecast::is_live());
/// ```
pub fn is_live() -> bool {
    try_with_core(|core| core.is_live()).unwrap_or(false)
}

pub(crate) fn current_core(what: &str) -> Rc<Core> {
    with_core(what, Rc::clone)
}
