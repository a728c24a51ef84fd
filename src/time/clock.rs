//! Pacing: when a key's time is due, against the wall clock and the replay
//! speed; and a timer thread that wakes loops awaited inside other runtimes.

use crate::sync::{Condvar, OnceLock, StdMutex};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::Timestamp;

/// How the loop's clock relates to the wall clock.
#[derive(Debug)]
pub(crate) struct Pace {
    /// Never wait for the wall clock.
    simulated: Cell<bool>,
    /// Replay at this many times wall-clock speed (`None`: as fast as
    /// possible); within `EventLoop::MIN_SPEED..=MAX_SPEED`.
    speed: Cell<Option<f64>>,
    /// Wall clock and replay anchors, taken when the loop first runs.
    anchors: Cell<Option<Anchors>>,
    /// A time known to be due: keys at or before it need no clock reading.
    due_until: Cell<Timestamp>,
}

#[derive(Clone, Copy, Debug)]
struct Anchors {
    /// The wall clock at `instant`.
    wall: Timestamp,
    /// The loop's clock at `instant`.
    virtual_start: Timestamp,
    instant: Instant,
}

impl Pace {
    pub(crate) fn new() -> Self {
        Self {
            simulated: Cell::new(false),
            speed: Cell::new(None),
            anchors: Cell::new(None),
            due_until: Cell::new(Timestamp::MIN),
        }
    }

    /// Set by the loop's builder, before the loop first runs.
    pub(crate) fn set_simulated(&self) {
        self.simulated.set(true);
    }

    /// Set by the loop's builder, before the loop first runs.
    pub(crate) fn set_speed(&self, speed: f64) {
        self.speed.set(Some(speed));
    }

    pub(crate) fn is_simulated(&self) -> bool {
        self.simulated.get()
    }

    /// Anchors pacing at the loop's first run, with the clock at `clock`.
    pub(crate) fn start(&self, clock: Timestamp) {
        if self.anchors.get().is_none() {
            self.anchors.set(Some(Anchors {
                wall: Timestamp::now(),
                virtual_start: clock,
                instant: Instant::now(),
            }));
        }
    }

    /// The latest time that is due now: the wall clock, or less if replay
    /// at a finite speed has not reached it yet.
    pub(crate) fn due_now(&self) -> Timestamp {
        if self.simulated.get() {
            return Timestamp::MAX;
        }
        let a = self.anchors.get().expect("pacing starts with the loop");
        let elapsed = a.instant.elapsed();
        let wall = a.wall.saturating_add(elapsed);
        let paced = match self.speed.get() {
            Some(speed) => a.virtual_start.saturating_add(scale(elapsed, speed)),
            None => Timestamp::MAX,
        };
        let due = wall.min(paced);
        self.due_until.set(due);
        due
    }

    /// A time known to be due: every time up to it is, now and later.
    #[inline]
    pub(crate) fn due_until(&self) -> Timestamp {
        self.due_until.get()
    }

    /// `None` if `time` is due now; else the instant at which it will be.
    #[inline]
    pub(crate) fn due_at(&self, time: Timestamp) -> Option<Instant> {
        if self.simulated.get() || time <= self.due_until.get() {
            return None;
        }
        self.due_at_slow(time)
    }

    /// [`due_at`](Self::due_at) for a time not known to be due: reads
    /// the wall clock.
    #[inline(never)]
    fn due_at_slow(&self, time: Timestamp) -> Option<Instant> {
        if time <= self.due_now() {
            return None;
        }
        let a = self.anchors.get().expect("pacing starts with the loop");
        let by_wall = later(a.instant, time.duration_since(a.wall));
        let by_speed = match self.speed.get() {
            Some(speed) => later(
                a.instant,
                scale(time.duration_since(a.virtual_start), 1.0 / speed),
            ),
            None => a.instant,
        };
        Some(by_wall.max(by_speed))
    }
}

/// `duration · factor`, saturating at [`Duration::MAX`] (the product of a
/// long duration and a large speed may not fit).
fn scale(duration: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(duration.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// `instant + duration`, capped at a century so that it cannot overflow: a
/// wait that long is as good as forever, and the loop checks again
/// whenever it wakes.
fn later(instant: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
    instant + duration.min(CENTURY)
}

/// Wakes `waker` at `at`, from a timer thread shared by all loops that are
/// awaited as futures (a blocking `run` parks with a timeout instead).
pub(crate) fn wake_at(at: Instant, waker: &Waker) {
    static TIMER: OnceLock<&'static TimerThread> = OnceLock::new();
    let timer = TIMER.get_or_init(|| {
        let timer: &'static TimerThread = Box::leak(Box::default());
        std::thread::Builder::new()
            .name("timecast-timer".into())
            .spawn(move || timer.run())
            .expect("spawning the timecast timer thread");
        timer
    });
    let mut queue = timer.queue.lock().unwrap_or_else(|e| e.into_inner());
    let seq = queue.1;
    queue.1 += 1;
    queue.0.push(Reverse((at, seq, WakerEntry(waker.clone()))));
    drop(queue);
    timer.changed.notify_one();
}

struct WakerEntry(Waker);

impl PartialEq for WakerEntry {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for WakerEntry {}
impl PartialOrd for WakerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for WakerEntry {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

type TimerHeap = BinaryHeap<Reverse<(Instant, u64, WakerEntry)>>;

#[derive(Default)]
struct TimerThread {
    queue: StdMutex<(TimerHeap, u64)>,
    changed: Condvar,
}

impl TimerThread {
    fn run(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while queue.0.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
                let Reverse((_, _, WakerEntry(waker))) = queue.0.pop().expect("peeked");
                due.push(waker);
            }
            if !due.is_empty() {
                drop(queue);
                due.into_iter().for_each(Waker::wake);
                queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            queue = match queue.0.peek() {
                Some(Reverse((at, _, _))) => {
                    let wait = at
                        .saturating_duration_since(now)
                        .max(Duration::from_micros(50));
                    self.changed
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(queue).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}
