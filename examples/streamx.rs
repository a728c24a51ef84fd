//! The streamx example, on timecast's event loop: a producer puts a value
//! every second on an [`AsyncStream`]; a consumer takes two seconds over
//! each one.
//!
//! `AsyncStream::new()` is a rendezvous: `put` returns once every consumer
//! has taken the value. So the slow consumer sets the pace (backpressure):
//! the producer, which would like to put a value a second, puts one every
//! two seconds.
//!
//! The loop is [`simulated`](EventLoop::simulated): its clock jumps from one
//! wake-up to the next instead of waiting, so the ten seconds of this
//! timeline take no time, and it is exactly the same on every run. Run the
//! same code on `EventLoop::new()` and it takes ten real seconds.
//!
//! ```text
//! $ cargo run --release --example streamx
//! t=0s  producing 0
//! t=0s  consumed 0
//! t=1s  producing 1
//! t=2s  consumed 1
//! t=3s  producing 2
//! t=4s  consumed 2
//! t=5s  producing 3
//! t=6s  consumed 3
//! t=7s  producing 4
//! t=8s  consumed 4
//! t=9s  producer closed the stream
//! t=10s consumer finished
//! ```

use std::time::Duration;

use futures::StreamExt;
use timecast::{now, sleep, AsyncStream, EventLoop, TaskError, Timestamp};

/// Spawns the consumer and the producer on `el`. `say` receives each line
/// of the timeline as it happens.
pub(crate) fn producer_and_consumer(el: &EventLoop, say: impl Fn(String) + Clone + 'static) {
    let start = el.now();
    // Seconds since the start, by the loop's clock.
    let t = move || (now() - start).as_secs();

    // A rendezvous stream of integers. The consumer subscribes before the
    // producer puts anything: a consumer sees the values put after it
    // subscribed.
    let stream = AsyncStream::<u32>::new();
    let mut values = stream.subscribe();

    // The consumer: a `Consumer` is a `Stream`.
    let log = say.clone();
    el.spawn(async move {
        while let Some(value) = values.next().await {
            log(format!("t={}s  consumed {value}", t()));
            sleep(Duration::from_secs(2)).await; // Processing takes a while.
        }
        log(format!("t={}s consumer finished", t()));
    });

    // The producer: each `put` waits until the consumer has taken the value.
    el.spawn(async move {
        for i in 0..5 {
            say(format!("t={}s  producing {i}", t()));
            stream.put(i).await.expect("the stream is open");
            sleep(Duration::from_secs(1)).await;
        }
        stream.close(); // The consumer's `next()` then returns `None`.
        say(format!("t={}s  producer closed the stream", t()));
    });
}

fn main() -> Result<(), TaskError> {
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    producer_and_consumer(&el, |line| println!("{line}"));
    el.run() // Until both tasks are done.
}
