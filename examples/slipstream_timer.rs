//! The Slipstream cookbook's "Timer": a handler triggered every second.
//!
//! Slipstream loops over `await sleep(interval)`; timecast's [`timer`] ticks
//! on the event loop's clock, here virtual: the three seconds pass at once.
//! (The cookbook's timer never ends; this one stops after three ticks.)
//!
//! Run with `cargo run --example slipstream_timer`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use timecast::{sink::handle, timer, EventLoop, Timestamp};

/// `strftime('%H:%M:%S')` of a time, in UTC.
fn hms(t: Timestamp) -> String {
    t.to_string()[11..19].to_owned()
}

/// What the example prints.
pub(crate) fn lines() -> Vec<String> {
    let start = Timestamp::from_ymd_hms(2023, 1, 1, 23, 25, 9).expect("a valid date");
    let el = EventLoop::starting_at(start).simulated();
    let printed = Rc::new(RefCell::new(Vec::new()));
    let print = printed.clone();

    let ticks = timer(Duration::from_secs(1)).until(start + Duration::from_secs(3));
    let handler = |tick: Timestamp| Some(hms(tick));
    el.spawn(
        handle(ticks, handler)
            .sink(move |line| print.borrow_mut().push(line))
            .run(),
    );
    el.run().expect("no task panics");
    printed.take()
}

fn main() {
    for line in lines() {
        println!("{line}");
    }
}
