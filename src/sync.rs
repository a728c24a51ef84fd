//! The synchronization primitives timecast is built on.
//!
//! This is the only module that names `parking_lot`, atomics or `loom`: under
//! `--cfg loom` every lock and atomic is loom's, so the models in
//! `tests/loom.rs` explore every interleaving of the real code.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;

/// A fence on the `std` atomics inside `std::sync::Arc` (task wakers are
/// `std` wakers under loom too).
pub(crate) use std::sync::atomic::fence as std_fence;
/// Primitives of the time layer's timer thread, which loom does not model.
pub(crate) use std::sync::{Condvar, Mutex as StdMutex, OnceLock};

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

/// An `UnsafeCell` with loom's closure-based access, so that loom can check
/// every access to the channel's slots.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(
    #[cfg(not(loom))] std::cell::UnsafeCell<T>,
    #[cfg(loom)] loom::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Self(std::cell::UnsafeCell::new(value));
        #[cfg(loom)]
        return Self(loom::cell::UnsafeCell::new(value));
    }

    /// Runs `f` with a pointer to the contents, for reading.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(not(loom))]
        return f(self.0.get());
        #[cfg(loom)]
        return self.0.with(f);
    }

    /// Runs `f` with a pointer to the contents, for writing.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(loom))]
        return f(self.0.get());
        #[cfg(loom)]
        return self.0.with_mut(f);
    }
}

/// A mutual-exclusion lock whose `lock` cannot fail (no poisoning).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(not(loom))] parking_lot::Mutex<T>,
    #[cfg(loom)] loom::sync::Mutex<T>,
);

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Self(parking_lot::Mutex::new(value));
        #[cfg(loom)]
        return Self(loom::sync::Mutex::new(value));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.0.lock();
        #[cfg(loom)]
        return self.0.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// One round of waiting for another thread to finish a few instructions:
/// spins with pause hints at first, then yields the CPU, so that on a busy
/// machine the thread waited for gets to run. `spins` counts the rounds.
#[inline]
pub(crate) fn spin_wait(spins: &mut u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if *spins < 6 {
            for _ in 0..1 << *spins {
                std::hint::spin_loop();
            }
            *spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Wakes the thread that created it.
struct ThreadWaker {
    thread: std::thread::Thread,
    notified: std::sync::atomic::AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.notified
            .store(true, std::sync::atomic::Ordering::Release);
        self.thread.unpark();
    }
}

thread_local! {
    static PARKER: (std::sync::Arc<ThreadWaker>, std::cell::Cell<bool>) = (
        ThreadWaker::for_current_thread(),
        std::cell::Cell::new(false),
    );
}

impl ThreadWaker {
    fn for_current_thread() -> std::sync::Arc<Self> {
        std::sync::Arc::new(ThreadWaker {
            thread: std::thread::current(),
            notified: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// Rounds of `pause` hints (1, 2, 4, ... 64 of them) and then of yields
/// that a blocking call spends looking for its wake-up before it parks.
const SPIN_ROUNDS: u32 = 7;
const YIELD_ROUNDS: u32 = 4;

/// Waits a moment for `parker` to be notified, without parking: across two
/// threads a rendezvous is answered within microseconds, sooner than a
/// parked thread wakes.
fn spin_until_notified(parker: &ThreadWaker) {
    spin_until(|| {
        parker
            .notified
            .load(std::sync::atomic::Ordering::Acquire)
            .then_some(())
    });
}

/// Calls `ready` until it returns `Some`, for a moment, without parking:
/// once at once, then between rounds of `pause` hints (a few microseconds
/// in all), then between yields of the CPU, so that on a busy machine the
/// thread it waits for gets to run. `None` if it never did.
pub(crate) fn spin_until<R>(mut ready: impl FnMut() -> Option<R>) -> Option<R> {
    if let Some(ready) = ready() {
        return Some(ready);
    }
    for round in 0..SPIN_ROUNDS {
        for _ in 0..1 << round {
            std::hint::spin_loop();
        }
        if let Some(ready) = ready() {
            return Some(ready);
        }
    }
    for _ in 0..YIELD_ROUNDS {
        std::thread::yield_now();
        if let Some(ready) = ready() {
            return Some(ready);
        }
    }
    None
}

/// Runs `fut` to completion on the current thread, parking it while the
/// future is pending. `deadline` is asked after every pending poll: `Some(t)`
/// parks at most until `t`, `None` until a wake-up.
///
/// Before parking with no deadline, it spins a moment
/// ([`spin_until_notified`]): the wake-up a blocking call waits for often
/// comes from another thread within microseconds.
///
/// The waker is cached per thread, so a blocking call allocates nothing; a
/// nested call (a blocking call made from inside a future that is itself
/// being blocked on) gets a parker of its own, so no wake-up is swallowed.
pub(crate) fn block_on_with<F: Future>(
    fut: F,
    mut deadline: impl FnMut() -> Option<Instant>,
) -> F::Output {
    let (parker, nested) = PARKER.with(|(parker, in_use)| {
        if in_use.replace(true) {
            (ThreadWaker::for_current_thread(), true)
        } else {
            (parker.clone(), false)
        }
    });
    struct Release(bool);
    impl Drop for Release {
        fn drop(&mut self) {
            if !self.0 {
                PARKER.with(|(_, in_use)| in_use.set(false));
            }
        }
    }
    let _release = Release(nested);
    let waker = Waker::from(parker.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    parker
        .notified
        .store(false, std::sync::atomic::Ordering::Release);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        let until = deadline();
        if until.is_none() {
            spin_until_notified(&parker);
        }
        while !parker
            .notified
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            match until {
                None => std::thread::park(),
                Some(t) => {
                    let now = Instant::now();
                    if now >= t {
                        break;
                    }
                    std::thread::park_timeout(t - now);
                }
            }
        }
    }
}

/// Runs `fut` to completion on the current thread.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    block_on_with(fut, || None)
}
