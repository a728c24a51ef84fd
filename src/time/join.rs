//! [`JoinHandle`] and [`JoinError`]: the outcome of a task spawned on an
//! [`EventLoop`](crate::EventLoop).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use super::executor::{try_with_core, Core, Label, TaskId};
use crate::sync::StdMutex;

/// Why a task ended without an output: it panicked, or it was cancelled
/// ([`JoinHandle::abort`], a dropped [`ProcessStream`](crate::source::ProcessStream)'s
/// source, or its loop dropped before it finished). Names the task as
/// [`TaskError`](crate::TaskError) does.
///
/// The loop reports a panic once, as the `TaskError` of the run in which it
/// happened; the `JoinError` is what the task's handle resolves to, for a
/// supervisor to act on (restart, give up).
///
/// # Examples
///
/// ```
/// let el = timecast::EventLoop::new().simulated();
/// let task = el.spawn_named("parser", async { panic!("bad input") });
/// assert!(el.run().is_err()); // the run stops at the panic
/// let err = el.block_on(task).unwrap_err(); // the handle keeps the outcome
/// assert!(err.is_panic());
/// assert_eq!(err.task(), "parser");
/// assert_eq!(err.to_string(), "task `parser` panicked: bad input");
/// ```
pub struct JoinError {
    task: String,
    repr: Repr,
}

enum Repr {
    /// The payload is only ever taken by value; the mutex makes the error
    /// `Sync` without `unsafe`.
    Panic {
        message: String,
        payload: StdMutex<Box<dyn Any + Send>>,
    },
    Cancelled,
}

impl JoinError {
    pub(crate) fn panicked(task: String, message: String, payload: Box<dyn Any + Send>) -> Self {
        Self {
            task,
            repr: Repr::Panic {
                message,
                payload: StdMutex::new(payload),
            },
        }
    }

    pub(crate) fn cancelled(task: String) -> Self {
        Self {
            task,
            repr: Repr::Cancelled,
        }
    }

    /// Whether the task panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn(async { panic!("oops") });
    /// let _ = el.run();
    /// assert!(el.block_on(task).unwrap_err().is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic { .. })
    }

    /// Whether the task was cancelled before it completed.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn(std::future::pending::<()>());
    /// task.abort();
    /// assert!(el.block_on(task).unwrap_err().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task's name: the one given to
    /// [`spawn_named`](crate::EventLoop::spawn_named), or `task #N (spawned
    /// at file:line:col)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn_named("feed", std::future::pending::<()>());
    /// task.abort();
    /// assert_eq!(el.block_on(task).unwrap_err().task(), "feed");
    /// ```
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The panic message, if the task panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn(async { panic!("bad input {}", 42) });
    /// let _ = el.run();
    /// assert_eq!(el.block_on(task).unwrap_err().panic_message(), Some("bad input 42"));
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panic { message, .. } => Some(message),
            Repr::Cancelled => None,
        }
    }

    /// The panic's payload, to resume it with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the task was cancelled, not panicked (see
    /// [`try_into_panic`](Self::try_into_panic)).
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn(async { std::panic::panic_any(7_u32) });
    /// let _ = el.run();
    /// let payload = el.block_on(task).unwrap_err().into_panic();
    /// assert_eq!(payload.downcast_ref::<u32>(), Some(&7));
    /// ```
    pub fn into_panic(self) -> Box<dyn Any + Send> {
        self.try_into_panic()
            .unwrap_or_else(|e| panic!("JoinError::into_panic on a task that did not panic: {e}"))
    }

    /// The panic's payload, or the error itself if the task was cancelled.
    ///
    /// # Errors
    ///
    /// `self`, if the task did not panic.
    ///
    /// # Examples
    ///
    /// ```
    /// let el = timecast::EventLoop::new().simulated();
    /// let task = el.spawn(std::future::pending::<()>());
    /// task.abort();
    /// let err = el.block_on(task).unwrap_err();
    /// assert!(err.try_into_panic().unwrap_err().is_cancelled());
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send>, JoinError> {
        match self.repr {
            Repr::Panic { payload, .. } => {
                Ok(payload.into_inner().unwrap_or_else(|e| e.into_inner()))
            }
            Repr::Cancelled => Err(self),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic { message, .. } => write!(f, "task `{}` panicked: {message}", self.task),
            Repr::Cancelled => write!(f, "task `{}` was cancelled", self.task),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JoinError");
        d.field("task", &self.task);
        match &self.repr {
            Repr::Panic { message, .. } => d.field("panic", message),
            Repr::Cancelled => d.field("cancelled", &true),
        };
        d.finish()
    }
}

impl std::error::Error for JoinError {}

/// Who waits for a task's outcome.
enum Waiter {
    None,
    /// A task of the task's own loop, polled with its own waker: woken by
    /// id, so that it holds no waker clone (see `Core::stuck`).
    Task(TaskId),
    Waker(Waker),
}

struct JoinState<T> {
    /// The task's loop.
    core: Weak<Core>,
    /// Set once; taken by the handle.
    outcome: Option<Result<T, JoinError>>,
    /// Whether `outcome` was set (it stays set once taken).
    finished: bool,
    waiter: Waiter,
}

/// Where the loop puts the outcome of a task that did not complete.
pub(crate) trait Outcome {
    /// The task panicked.
    fn fail(&self, error: JoinError);
    /// The task was dropped; no-op if it has an outcome already.
    fn cancel(&self, label: &Label);
}

/// Sets the outcome (unless set), then wakes the waiter, with no borrow
/// held.
fn resolve<T>(state: &RefCell<JoinState<T>>, outcome: Result<T, JoinError>) {
    let (waiter, core) = {
        let mut state = state.borrow_mut();
        if state.finished {
            return;
        }
        state.outcome = Some(outcome);
        state.finished = true;
        (
            std::mem::replace(&mut state.waiter, Waiter::None),
            state.core.clone(),
        )
    };
    match waiter {
        Waiter::None => {}
        Waiter::Task(id) => {
            if let Some(core) = core.upgrade() {
                core.wake_task(id);
            }
        }
        Waiter::Waker(waker) => waker.wake(),
    }
}

impl<T> Outcome for RefCell<JoinState<T>> {
    fn fail(&self, error: JoinError) {
        resolve(self, Err(error));
    }

    fn cancel(&self, label: &Label) {
        if !self.borrow().finished {
            resolve(self, Err(JoinError::cancelled(label.to_string())));
        }
    }
}

/// A handle to a task spawned on an [`EventLoop`](crate::EventLoop): a
/// future of the task's outcome, `Ok(output)`, or a [`JoinError`] if the
/// task panicked or was cancelled. Dropping the handle detaches the task,
/// which runs on.
///
/// # Cancel safety
///
/// Dropping a pending `JoinHandle` (or a `select` branch awaiting it)
/// detaches the task and loses nothing else; awaiting a handle again after a
/// cancelled await still yields the outcome. Cancelling the task itself is
/// [`abort`](Self::abort).
///
/// # Panics
///
/// Polled again after it returned the outcome.
///
/// # Examples
///
/// ```
/// let el = timecast::EventLoop::new().simulated();
/// let out = el.block_on(async {
///     let a = timecast::spawn(async { 1 });
///     let b = timecast::spawn(async { 2 });
///     Ok::<_, timecast::JoinError>(a.await? + b.await?)
/// })?;
/// assert_eq!(out, 3);
/// # Ok::<_, timecast::JoinError>(())
/// ```
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
    id: TaskId,
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished: completed, panicked or cancelled.
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

    /// Cancels the task: its future is dropped at once (a task aborting
    /// itself is dropped when its current poll returns, unless it completes
    /// in that poll), and the handle resolves to a [`JoinError`] that
    /// [`is_cancelled`](JoinError::is_cancelled). Does nothing if the task
    /// has finished, or its loop is gone.
    ///
    /// # Panics
    ///
    /// If the task's future panics when dropped (inside a task of the
    /// loop, that panic is the task's [`TaskError`](crate::TaskError)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{sleep, spawn, EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let outcome = el.block_on(async {
    ///     let ticker = spawn(async { loop { sleep(Duration::from_secs(1)).await } });
    ///     sleep(Duration::from_secs(5)).await;
    ///     ticker.abort();
    ///     ticker.await
    /// });
    /// assert!(outcome.unwrap_err().is_cancelled());
    /// assert_eq!(el.now(), Timestamp::from_unix_secs(5));
    /// ```
    pub fn abort(&self) {
        let core = self.state.borrow().core.upgrade();
        if let Some(core) = core {
            Core::abort_entered(&core, self.id);
        }
    }

    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    /// The outcome, if the task has finished and it was not taken yet.
    pub(crate) fn try_take(&self) -> Option<Result<T, JoinError>> {
        self.state.borrow_mut().outcome.take()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let old = {
            let mut state = self.state.borrow_mut();
            if let Some(outcome) = state.outcome.take() {
                return Poll::Ready(outcome);
            }
            assert!(
                !state.finished,
                "JoinHandle polled after it returned the task's outcome"
            );
            if matches!(&state.waiter, Waiter::Waker(w) if w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
            let own = try_with_core(|core| {
                if !std::ptr::eq(Rc::as_ptr(core), state.core.as_ptr()) {
                    return None;
                }
                let id = core.current_task()?;
                core.is_task_waker(id.index(), cx.waker()).then_some(id)
            })
            .flatten();
            let waiter = match own {
                Some(id) => Waiter::Task(id),
                None => Waiter::Waker(cx.waker().clone()),
            };
            std::mem::replace(&mut state.waiter, waiter)
        };
        // A replaced waker is dropped with no borrow held.
        drop(old);
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

/// Spawns `future` on `core`, named `name` or, unnamed, after the caller's
/// location.
#[track_caller]
pub(crate) fn spawn_on<F>(
    core: &Rc<Core>,
    name: Option<Rc<str>>,
    future: F,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    let label = core.label(name, Location::caller());
    spawn_as(core, label, future)
}

/// Spawns `future` on `core` under `label` (a task spawned on behalf of
/// another shares its label).
pub(crate) fn spawn_as<F>(core: &Rc<Core>, label: Label, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    let state = Rc::new(RefCell::new(JoinState {
        core: Rc::downgrade(core),
        outcome: None,
        finished: false,
        waiter: Waiter::None,
    }));
    let task_state = state.clone();
    let id = core.spawn_boxed(
        label,
        state.clone(),
        Box::pin(async move {
            let output = future.await;
            resolve(&task_state, Ok(output));
        }),
    );
    JoinHandle { state, id }
}
