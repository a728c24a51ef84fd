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
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    core: Rc<Core>,
    key: Key,
    timer: Option<TimerId>,
    done: bool,
    /// May complete at its first poll without a trip through the timer
    /// queue (see `source_event`).
    inline: bool,
}

impl Sleep {
    pub(crate) fn new(core: Rc<Core>, key: Key) -> Self {
        Self {
            core,
            key,
            timer: None,
            done: false,
            inline: false,
        }
    }

    /// The wait of a source for the dispatch of its next event. When
    /// nothing else could run before `key`, it completes at its first poll,
    /// saving the round trip through the timer queue; the dispatch order is
    /// the same (see `Core::arm`).
    ///
    /// Only for a future awaited at the top of a task of its own, with
    /// nothing polled beside it (a source's task): a sibling in a `join`
    /// could otherwise register an earlier key after the clock has moved.
    pub(crate) fn source_event(core: Rc<Core>, key: Key) -> Self {
        let mut sleep = Self::new(core, key);
        sleep.inline = true;
        sleep
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
            None => match this
                .core
                .arm(this.key, this.inline, || Self::target(&this.core, cx))
            {
                None => {
                    this.done = true;
                    Poll::Ready(())
                }
                Some(id) => {
                    this.timer = Some(id);
                    Poll::Pending
                }
            },
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
