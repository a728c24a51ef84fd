//! The Slipstream cookbook's "Iterable": a plain iterable turned into an
//! async one that sleeps between messages, so that other handlers run
//! during the delay.
//!
//! The sleeps are on the event loop's virtual clock: the two handlers
//! interleave exactly as they would in real time, instantly.
//!
//! Run with `cargo run --example slipstream_iterable`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::{stream, Stream};
use timecast::{now, sink::handle, sleep, EventLoop, Timestamp};

/// `async_iterable(it)`: each message after a 10 ms sleep.
///
/// The stream comes from an `async` block, so it is pinned once here: the
/// timecast combinators and `handle` take it as it is.
pub(crate) fn async_iterable<I>(it: I) -> impl Stream<Item = I::Item> + Unpin
where
    I: IntoIterator,
{
    Box::pin(stream::unfold(it.into_iter(), |mut it| async move {
        let msg = it.next()?;
        sleep(Duration::from_millis(10)).await;
        Some((msg, it))
    }))
}

/// What the example prints.
pub(crate) fn lines() -> Vec<String> {
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let printed = Rc::new(RefCell::new(Vec::new()));

    let print = printed.clone();
    let letters = handle(async_iterable(["a", "b", "c"]), |msg| {
        Some(format!("{} ms: {msg}", now().unix_millis()))
    });
    el.spawn(
        letters
            .sink(move |line| print.borrow_mut().push(line))
            .run(),
    );

    let print = printed.clone();
    let numbers = handle(async_iterable([1, 2, 3]), |msg| {
        Some(format!("{} ms: {msg}", now().unix_millis()))
    });
    el.spawn(
        numbers
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
