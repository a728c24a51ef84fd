//! Arbitrary futures on the loop: like asyncio, an [`EventLoop`] runs any
//! future, with its own clock. Breakfast in virtual time: the kettle and
//! the toaster run as tasks whose [`JoinHandle`](timecast::JoinHandle)s are
//! awaited (each gives the task's output, or a
//! [`JoinError`](timecast::JoinError) had it panicked); a task spawns another; [`call_later`] schedules a plain and an
//! async callback.
//!
//! The loop is [`simulated`](EventLoop::simulated): the clock jumps from
//! one wake-up to the next, so eleven minutes of breakfast take no time.
//! The output is the same on every run.
//!
//! ```text
//! $ cargo run --release --example asp_futures
//! 07:00:00 kettle on, toast in
//! 07:02:00 toast ready
//! 07:02:00 butter the toast (a task spawned by the toaster)
//! 07:03:00 water boiled
//! 07:03:00 breakfast has toast and hot water
//! 07:03:30 toast buttered
//! 07:04:00 coffee brewing (an async callback, 4 min after 07:00)
//! 07:08:00 coffee ready
//! 07:10:00 clear the table (a plain callback)
//! 07:10:00 breakfast over: 3 tasks and 2 callbacks, 10 minutes
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use timecast::{call_later, now, sleep, sleep_until, spawn, EventLoop, JoinError, Timestamp};

/// What a task says, and when (by the loop's clock).
pub(crate) type Log = Rc<RefCell<Vec<(Timestamp, String)>>>;

fn say(log: &Log, what: impl Into<String>) {
    let what = what.into();
    log.borrow_mut().push((now(), what));
}

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// Breakfast, as a future that runs on an [`EventLoop`]. Fails if a task it
/// awaits panicked.
pub(crate) async fn breakfast(log: Log) -> Result<(), JoinError> {
    let start = now();
    say(&log, "kettle on, toast in");

    // Two tasks run concurrently; their handles are futures of their outcome.
    let l = log.clone();
    let kettle = spawn(async move {
        sleep(minutes(3)).await;
        say(&l, "water boiled");
        "hot water"
    });
    let l = log.clone();
    let toaster = spawn(async move {
        sleep(minutes(2)).await;
        say(&l, "toast ready");
        // A task may spawn tasks; this one runs on after the toaster is done.
        let l2 = l.clone();
        spawn(async move {
            say(&l2, "butter the toast (a task spawned by the toaster)");
            sleep(Duration::from_secs(90)).await;
            say(&l2, "toast buttered");
        });
        "toast"
    });

    // Callbacks: an async one (it sleeps), and a plain one.
    let l = log.clone();
    call_later(minutes(4), move || async move {
        say(&l, "coffee brewing (an async callback, 4 min after 07:00)");
        sleep(minutes(4)).await;
        say(&l, "coffee ready");
    });
    let l = log.clone();
    call_later(minutes(10), move || {
        say(&l, "clear the table (a plain callback)")
    });

    let (toast, water) = (toaster.await?, kettle.await?);
    say(&log, format!("breakfast has {toast} and {water}"));

    // Wait for the rest of breakfast, callbacks included. This timer, due at
    // the same time as the table-clearing callback's but created after it,
    // runs after it.
    sleep_until(start + minutes(10)).await;
    let minutes = (now() - start).as_secs() / 60;
    say(
        &log,
        format!("breakfast over: 3 tasks and 2 callbacks, {minutes} minutes"),
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seven = Timestamp::from_ymd_hms(2025, 1, 1, 7, 0, 0).expect("a valid date");
    let el = EventLoop::starting_at(seven).simulated();
    let log = Log::default();
    el.try_block_on(breakfast(log.clone()))??;
    for (t, what) in log.borrow().iter() {
        // `HH:MM:SS` of the RFC 3339 form.
        println!("{} {what}", &t.to_string()[11..19]);
    }
    Ok(())
}
