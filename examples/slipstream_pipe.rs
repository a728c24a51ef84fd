//! The Slipstream cookbook's "Pipe": `pairwise` and `accumulate` applied to
//! the stream itself, before the handler.
//!
//! `numbers()` yields 0..100, one every 100 ms of the event loop's virtual
//! clock; the three pipelines run side by side and the example prints the
//! cookbook's table:
//!
//! ```text
//! # pipe=[pairwise] # pipe=[accumulate] # pipe=[accumulate, pairwise]
//! (0, 1) 0 (0, 1)
//! (1, 2) 1 (1, 3)
//! (2, 3) 3 (3, 6)
//! (3, 4) 6 (6, 10)
//! ... ... ...
//! ```
//!
//! Run with `cargo run --example slipstream_pipe`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use timecast::{ops::StreamOps, sink::handle, timer, EventLoop, Timestamp};

/// `numbers(n)`: 0, 1, …, n - 1, each after a 100 ms sleep.
pub(crate) fn numbers(n: u64) -> impl Stream<Item = u64> + Unpin {
    stream::iter(0..n)
        .zip(timer(Duration::from_millis(100)))
        .map(|(i, _tick)| i)
}

/// What the three pipelines output: `[pairwise]`, `[accumulate]` and
/// `[accumulate, pairwise]`.
pub(crate) type Outputs = (Vec<(u64, u64)>, Vec<u64>, Vec<(u64, u64)>);

/// Runs the three pipelines on `numbers(n)` in virtual time.
pub(crate) fn outputs(n: u64) -> Outputs {
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let pairwise = Rc::new(RefCell::new(Vec::new()));
    let accumulate = Rc::new(RefCell::new(Vec::new()));
    let both = Rc::new(RefCell::new(Vec::new()));

    let out = pairwise.clone();
    el.spawn(
        handle(numbers(n).pairwise(), Some)
            .sink(move |pair| out.borrow_mut().push(pair))
            .run(),
    );
    let out = accumulate.clone();
    el.spawn(
        handle(numbers(n).accumulate(|a, b| a + b), Some)
            .sink(move |sum| out.borrow_mut().push(sum))
            .run(),
    );
    let out = both.clone();
    el.spawn(
        handle(numbers(n).accumulate(|a, b| a + b).pairwise(), Some)
            .sink(move |pair| out.borrow_mut().push(pair))
            .run(),
    );
    el.run().expect("no task panics");
    (pairwise.take(), accumulate.take(), both.take())
}

/// The cookbook's table: a header, the first four rows, and an ellipsis.
pub(crate) fn table((pairwise, accumulate, both): &Outputs) -> Vec<String> {
    let mut lines =
        vec!["# pipe=[pairwise] # pipe=[accumulate] # pipe=[accumulate, pairwise]".to_owned()];
    for row in 0..4 {
        lines.push(format!(
            "{:?} {} {:?}",
            pairwise[row], accumulate[row], both[row]
        ));
    }
    lines.push("... ... ...".to_owned());
    lines
}

/// What the example prints.
pub(crate) fn lines() -> Vec<String> {
    table(&outputs(100))
}

fn main() {
    for line in lines() {
        println!("{line}");
    }
}
