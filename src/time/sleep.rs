//! [`Sleep`]: waiting for the loop's clock to reach a key.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::executor::Core;
use super::timers::{Key, Target, TimerId};
use super::Timestamp;

/// The future returned by [`sleep`](crate::sleep) and
/// [`sleep_until`](crate::sleep_until): completes when the loop's clock is
/// dispatched at its deadline.
///
/// Its place in the loop's order (rule 1 of [`time`](crate::time)) is
/// taken when it is created, not when first polled.
///
/// # Cancel safety
///
/// Dropping it cancels the timer; nothing else changes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::future::{select, Either};
/// use timecast::{sleep, EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let first = el.block_on(async {
///     // A timeout: whichever sleep ends first wins; the other is dropped.
///     match select(sleep(Duration::from_secs(5)), sleep(Duration::from_secs(3))).await {
///         Either::Left(_) => "five",
///         Either::Right(_) => "three",
///     }
/// });
/// assert_eq!(first, "three");
/// assert_eq!(el.now(), Timestamp::from_unix_secs(3));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    core: Rc<Core>,
    key: Key,
    timer: Option<TimerId>,
    done: bool,
}

impl Sleep {
    pub(crate) fn new(core: Rc<Core>, key: Key) -> Self {
        Self {
            core,
            key,
            timer: None,
            done: false,
        }
    }

    /// The time this sleep ends at.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let deadline = el.block_on(async { timecast::sleep(Duration::from_secs(2)).deadline() });
    /// assert_eq!(deadline, Timestamp::from_unix_secs(2));
    /// ```
    pub fn deadline(&self) -> Timestamp {
        self.key.time
    }

    /// Whom the timer wakes: the task being polled if `cx` is its own
    /// waker, else a clone of `cx`'s waker.
    fn target(core: &Core, cx: &Context<'_>) -> Target {
        if let Some(index) = core.current.get() {
            if core.is_task_waker(index, cx.waker()) {
                return Target::Task(index);
            }
        }
        Target::Waker(cx.waker().clone())
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let this = &mut *self;
        match this.timer {
            None => {
                let target = Self::target(&this.core, cx);
                this.core.invalidate_inline();
                this.timer = Some(this.core.timers.borrow_mut().insert(this.key, target));
                Poll::Pending
            }
            Some(id) => {
                if this.core.timers.borrow_mut().take_fired(id) {
                    this.timer = None;
                    this.done = true;
                    return Poll::Ready(());
                }
                let target = Self::target(&this.core, cx);
                let old = this.core.timers.borrow_mut().retarget(id, target);
                drop(old);
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.timer.take() {
            let target = self.core.timers.borrow_mut().remove(id);
            drop(target);
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.key.time)
            .field("done", &self.done)
            .finish()
    }
}

/// The wait of a source for the dispatch of its next event: a [`Sleep`]
/// that borrows the loop (no reference count per event) and that, when
/// nothing else could run before its key, completes at its first poll,
/// saving the round trip through the timer queue; the dispatch order is the
/// same (see `Core::dispatch_inline`).
///
/// Only for a future awaited at the top of a task of its own, with nothing
/// polled beside it (a source's task): a sibling in a `join` could
/// otherwise register an earlier key after the clock has moved. So the
/// waker it is polled with is always its task's own, and the timer targets
/// the task directly.
#[must_use = "futures do nothing unless polled"]
pub(crate) struct SourceEvent<'a> {
    core: &'a Core,
    key: Key,
    /// The queued timer, once polled without completing.
    timer: Option<TimerId>,
}

impl<'a> SourceEvent<'a> {
    pub(crate) fn new(core: &'a Core, key: Key) -> Self {
        Self {
            core,
            key,
            timer: None,
        }
    }
}

impl Future for SourceEvent<'_> {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let core = self.core;
        match self.timer {
            None => {
                let index = core.source_task(cx, "a source event is awaited");
                match core.arm_inline(self.key, index) {
                    None => Poll::Ready(()),
                    Some(id) => {
                        self.timer = Some(id);
                        Poll::Pending
                    }
                }
            }
            Some(id) => {
                if core.timers.borrow_mut().take_fired(id) {
                    self.timer = None;
                    return Poll::Ready(());
                }
                // Woken by something else: the timer still targets the task.
                Poll::Pending
            }
        }
    }
}

impl Drop for SourceEvent<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.timer.take() {
            let target = self.core.timers.borrow_mut().remove(id);
            drop(target);
        }
    }
}

impl fmt::Debug for SourceEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceEvent")
            .field("time", &self.key.time)
            .field("queued", &self.timer.is_some())
            .finish()
    }
}
