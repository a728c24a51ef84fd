//! Fixed workloads of the channel, to be counted with callgrind, whose
//! instruction counts machine load does not move (wall-clock benches on a
//! shared machine do). One run does one workload and prints nothing but
//! its checks; the instructions per message are the difference between
//! two runs of different lengths, divided by the difference in messages,
//! so that setup and teardown cancel out:
//!
//! ```text
//! cargo bench --bench instructions --no-run
//! B=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -1)
//! for n in 100000 200000; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         $B put 1024 1 $n 2>&1 | grep Collected
//! done
//! # (second - first) / 100000 = instructions per message
//! ```
//!
//! Workloads, each `<kind> <capacity> <consumers> <messages> [string]`,
//! `u64` unless `string` follows (`format!("{i}")`, as in `fanout`), on
//! one thread (`futures::executor::block_on` over the producer joined with
//! every consumer, as `fanout/single` does):
//!
//! - `put`: the producer awaits [`AsyncStream::put`] for each value.
//! - `live`: as `put`, and the producer yields after every value, so that
//!   each value finds the consumers waiting and wakes them (as
//!   `fanout --paired`'s live rows do).
//! - `put-all`: the producer awaits one [`AsyncStream::put_all`] of every
//!   value.
//! - `try-put`: no executor: the producer `try_put`s until full, then each
//!   consumer `try_recv`s until empty, in turn.
//!
//! Run without arguments (as `cargo test --benches` does), it runs each
//! workload once, small, as a smoke test.

use std::hint::black_box;

use futures::executor::block_on;
use futures::future::{join, join_all};
use timecast::{AsyncStream, Consumer, TryRecvError};

/// A value the producer puts: the `i`-th.
trait Payload: Clone + Send + Sync + 'static {
    fn make(i: u64) -> Self;
}

impl Payload for u64 {
    fn make(i: u64) -> Self {
        i
    }
}

impl Payload for String {
    fn make(i: u64) -> Self {
        format!("{i}")
    }
}

/// Receives until the stream closes; returns how many values came.
async fn consume<T: Payload>(mut consumer: Consumer<T>) -> u64 {
    let mut received = 0;
    while let Some(value) = consumer.recv().await {
        black_box(value);
        received += 1;
    }
    received
}

/// Returns `Pending` once, waking itself: the other futures run.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// Runs one workload; returns how many values each consumer received.
#[inline(never)]
fn run<T: Payload>(kind: &str, capacity: usize, consumers: usize, messages: u64) -> Vec<u64> {
    let stream = AsyncStream::<T>::with_capacity(capacity);
    let rxs: Vec<_> = (0..consumers).map(|_| stream.subscribe()).collect();
    match kind {
        "put" => {
            let produce = async move {
                for i in 0..messages {
                    stream.put(T::make(black_box(i))).await.expect("open");
                }
            };
            block_on(join(produce, join_all(rxs.into_iter().map(consume::<T>)))).1
        }
        "live" => {
            let produce = async move {
                for i in 0..messages {
                    stream.put(T::make(black_box(i))).await.expect("open");
                    yield_now().await;
                }
            };
            block_on(join(produce, join_all(rxs.into_iter().map(consume::<T>)))).1
        }
        "put-all" => {
            let produce = async move {
                stream
                    .put_all((0..messages).map(|i| T::make(black_box(i))))
                    .await
                    .unwrap_or_else(|_| panic!("closed"));
            };
            block_on(join(produce, join_all(rxs.into_iter().map(consume::<T>)))).1
        }
        "try-put" => {
            let mut rxs = rxs;
            let mut received = vec![0; consumers];
            let mut i = 0;
            while i < messages {
                while i < messages && stream.try_put(T::make(black_box(i))).is_ok() {
                    i += 1;
                }
                for (rx, received) in rxs.iter_mut().zip(&mut received) {
                    loop {
                        match rx.try_recv() {
                            Ok(value) => {
                                black_box(value);
                                *received += 1;
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Closed) => unreachable!("the producer is alive"),
                        }
                    }
                }
            }
            received
        }
        other => panic!("unknown workload {other}: put, live, put-all or try-put"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        // Smoke test: every workload, small.
        for kind in ["put", "live", "put-all", "try-put"] {
            for capacity in [0, 64] {
                if kind == "try-put" && capacity == 0 {
                    continue; // a rendezvous `try_put` waits for no one
                }
                assert_eq!(run::<u64>(kind, capacity, 2, 1000), [1000, 1000]);
                assert_eq!(run::<String>(kind, capacity, 2, 1000), [1000, 1000]);
            }
        }
        return;
    }
    let capacity = args[1].parse().expect("capacity");
    let consumers = args[2].parse().expect("consumers");
    let messages = args[3].parse().expect("messages");
    let received = match args.get(4).map(String::as_str) {
        None | Some("u64") => run::<u64>(&args[0], capacity, consumers, messages),
        Some("string") => run::<String>(&args[0], capacity, consumers, messages),
        Some(other) => panic!("unknown payload {other}: u64 or string"),
    };
    assert_eq!(received, vec![messages; consumers], "a value was lost");
}
