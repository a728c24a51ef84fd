//! Pipelines and their sinks: cancellation through a borrowed sink, the
//! output a closed topic refuses, a table whose subscribers leave, order
//! and backpressure, fan-out failures, and `Record::next` at the end of
//! the offsets.

use std::cell::{Cell, RefCell};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::executor::block_on;
use futures::future::{select, Either};
use futures::task::noop_waker;
use futures::{stream, StreamExt};
use timecast::sink::{fan_out, from_fn, handle, try_handle, HandleError};
use timecast::topic::Record;
use timecast::{sleep, AsyncStream, Closed, EventLoop, Timestamp};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let waker = noop_waker();
    fut.poll(&mut Context::from_waker(&waker))
}

/// Runs `fut` on the simulated loop `el`: `None` if it is still pending
/// after 1000 virtual seconds (a hang the loop cannot prove stuck).
fn within<F: std::future::Future + 'static>(el: &EventLoop, fut: F) -> Option<F::Output> {
    el.block_on(async move {
        match select(Box::pin(fut), Box::pin(sleep(Duration::from_secs(1000)))).await {
            Either::Left((out, _)) => Some(out),
            Either::Right(_) => None,
        }
    })
}

/// Dropping `run` while an output's put waits: the output is not
/// delivered, also through a borrowed `PutSink` (`sink_to(&mut sink)`),
/// which then holds nothing for the next pipeline to deliver.
#[test]
fn a_dropped_run_does_not_deliver_its_output_through_a_borrowed_put_sink() {
    let el = EventLoop::starting_at(t(0)).simulated();
    let topic = AsyncStream::<u32>::with_capacity(1);
    let mut consumer = topic.subscribe();
    topic.try_put(1).expect("room for one");
    let mut sink = topic.sink();
    {
        // The buffer is full: the put of 2 waits for room.
        let mut run = pin!(handle(stream::iter([2u32]), Some).sink_to(&mut sink).run());
        assert!(poll_once(run.as_mut()).is_pending());
    } // the pipeline is dropped, its output 2 "not delivered"
    assert_eq!(consumer.try_recv(), Ok(1));
    // A later pipeline through the same sink, read to the end.
    let (result, got) = within(&el, async move {
        let producer = async move {
            let result = handle(stream::iter([3u32]), Some)
                .sink_to(&mut sink)
                .run()
                .await;
            drop((sink, topic)); // the last producers: the topic closes
            result
        };
        let reader = async move {
            let mut got = Vec::new();
            while let Some(v) = consumer.recv().await {
                got.push(v);
            }
            got
        };
        futures::join!(producer, reader)
    })
    .expect("the second pipeline finishes");
    assert_eq!(result, Ok(()));
    assert_eq!(got, [3], "2 was the output of the dropped pipeline");
}

/// After a dropped pipeline and a close, the next pipeline through the
/// same sink fails with `Closed` holding its own output.
#[test]
fn a_closed_error_hands_back_the_refused_output_of_this_pipeline() {
    let topic = AsyncStream::<u32>::with_capacity(1);
    let _consumer = topic.subscribe();
    topic.try_put(1).expect("room for one");
    let mut sink = topic.sink();
    {
        let mut run = pin!(handle(stream::iter([2u32]), Some).sink_to(&mut sink).run());
        assert!(poll_once(run.as_mut()).is_pending());
    }
    topic.close();
    let result = block_on(handle(stream::iter([3u32]), Some).sink_to(&mut sink).run());
    assert_eq!(
        result.map_err(|Closed(v)| v),
        Err(3),
        "the output refused is 3"
    );
}

/// A table sink whose only `updates()` subscriber falls behind (holding
/// the pipeline back) and then leaves goes on: it publishes only to the
/// subscribers there are.
#[cfg(feature = "store")]
#[test]
fn a_table_sink_goes_on_once_its_only_updates_subscriber_leaves() {
    let store = timecast::store::Store::temporary().unwrap();
    let table = store.table::<u32, u32>("t").unwrap();
    let el = EventLoop::starting_at(t(0)).simulated();
    let updates = table.updates();
    el.spawn(async move {
        sleep(Duration::from_secs(1)).await;
        drop(updates); // never read: it falls behind, then leaves
    });
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let sink = table.clone();
    el.spawn(async move {
        handle(stream::iter(0..40u32), |i| Some((i, i)))
            .sink_to(sink)
            .run()
            .await
            .unwrap();
        d.set(true);
    });
    let watchdog = done.clone();
    let finished = within(&el, async move {
        while !watchdog.get() {
            sleep(Duration::from_secs(1)).await;
        }
    });
    assert!(finished.is_some(), "the pipeline never finished");
    assert_eq!(table.get(&39).unwrap(), Some(39));
}

/// `Record::next` at the last offset `u64` holds neither panics nor wraps
/// to 0 (which would read the topic again).
#[test]
fn record_next_at_the_last_offset_does_not_overflow() {
    let r = Record::new(u64::MAX, t(0), ());
    let next = std::panic::catch_unwind(|| r.next());
    assert!(next.is_ok(), "Record::next panicked on offset u64::MAX");
    assert_ne!(
        next.unwrap().offset,
        0,
        "wrapped to 0: would re-read the topic"
    );
}

/// A topic closed while the pipeline's put waits for room: `run()` fails
/// with the refused output, and the source is not pulled again.
#[test]
fn a_topic_closed_during_a_pending_put_stops_the_pipeline() {
    let el = EventLoop::starting_at(t(0)).simulated();
    let topic = AsyncStream::<u32>::with_capacity(1);
    let _consumer = topic.subscribe();
    let closer = topic.clone();
    el.spawn(async move {
        sleep(Duration::from_secs(1)).await;
        closer.close();
    });
    let pulled = Rc::new(Cell::new(0));
    let p = pulled.clone();
    let source = stream::iter(1..=5u32).inspect(move |_| p.set(p.get() + 1));
    let run = handle(source, Some).sink_to(topic.sink()).run();
    let result = within(&el, run).expect("the pipeline stops");
    assert_eq!(result, Err(Closed(2)));
    assert_eq!(pulled.get(), 2);
}

/// A fan-out whose second sink fails: the first got the value, the
/// pipeline stops with the second's error, and no later item is handled.
#[test]
fn fan_out_stops_at_the_failing_sink() {
    let first = RefCell::new(Vec::new());
    let topic = AsyncStream::<u32>::with_capacity(4);
    let _c = topic.subscribe();
    topic.close();
    let handled = Cell::new(0);
    let result = block_on(
        handle(stream::iter(1..=3u32), |x| {
            handled.set(handled.get() + 1);
            Some(x)
        })
        .sink_to(fan_out(from_fn(|x| first.borrow_mut().push(x)), topic))
        .run(),
    );
    assert_eq!(result, Err(Closed(1)));
    assert_eq!((first.borrow().clone(), handled.get()), (vec![1], 1));
}

/// Dropping `run()` while an owned topic's put waits: the value reaches no
/// one, and the topic, its last producer gone, closes.
#[test]
fn a_dropped_run_with_an_owned_topic_delivers_nothing() {
    let topic = AsyncStream::<u32>::with_capacity(1);
    let mut consumer = topic.subscribe();
    topic.try_put(1).expect("room");
    {
        let mut run = pin!(handle(stream::iter([2u32]), Some).sink_to(topic).run());
        assert!(poll_once(run.as_mut()).is_pending());
    }
    assert_eq!(consumer.try_recv(), Ok(1));
    assert!(consumer.try_recv().is_err());
    let el = EventLoop::starting_at(t(0)).simulated();
    let end = within(&el, async move { consumer.recv().await });
    assert_eq!(end, Some(None), "closed");
}

/// Sinks run in the order added, each output awaited before the next, and
/// async handlers and sinks are paced in virtual time.
#[test]
fn sinks_in_order_with_backpressure_in_virtual_time() {
    let el = EventLoop::starting_at(t(0)).simulated();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (a, b) = (log.clone(), log.clone());
    let pipeline = handle(stream::iter([1u32, 2]), |x| [x, x * 10])
        .sink(move |x| {
            let a = a.clone();
            async move {
                sleep(Duration::from_secs(1)).await;
                a.borrow_mut().push((timecast::now().unix_secs(), 'a', x));
            }
        })
        .sink(move |x| b.borrow_mut().push((timecast::now().unix_secs(), 'b', x)));
    el.block_on(pipeline.run()).unwrap();
    assert_eq!(
        *log.borrow(),
        [
            (1, 'a', 1),
            (1, 'b', 1),
            (2, 'a', 10),
            (2, 'b', 10),
            (3, 'a', 2),
            (3, 'b', 2),
            (4, 'a', 20),
            (4, 'b', 20)
        ]
    );
}

/// A fallible handler's `Err` stops the pipeline: every output of the
/// items before it reached the sinks (the topic's consumer gets them, then
/// the end, its only producer gone), the failing item's none, and the
/// source is not pulled again.
#[test]
fn a_handler_error_stops_the_pipeline_after_the_outputs_before_it() {
    let topic = AsyncStream::<u32>::with_capacity(8);
    let consumer = topic.subscribe();
    let pulled = Rc::new(Cell::new(0));
    let p = pulled.clone();
    let source = stream::iter(1..=5u32).inspect(move |_| p.set(p.get() + 1));
    let seen = RefCell::new(Vec::new());
    let run = try_handle(source, |x| {
        if x == 3 {
            Err(format!("no {x}"))
        } else {
            Ok([x, 10 * x])
        }
    })
    .sink(|x| seen.borrow_mut().push(x))
    .sink_to(topic)
    .run();
    let result: Result<(), HandleError<String, Closed<u32>>> = block_on(run);
    assert_eq!(result, Err(HandleError::Handler("no 3".to_string())));
    assert_eq!(pulled.get(), 3);
    assert_eq!(*seen.borrow(), [1, 10, 2, 20]);
    assert_eq!(block_on(consumer.collect::<Vec<_>>()), [1, 10, 2, 20]);
}

/// The same with an async handler, in virtual time: it fails at the
/// second item, one second in.
#[test]
fn an_async_handler_error_stops_the_pipeline_at_its_time() {
    let el = EventLoop::starting_at(t(0)).simulated();
    let out = Rc::new(RefCell::new(Vec::new()));
    let o = out.clone();
    let run = try_handle(stream::iter(1..=3u32), |x| async move {
        sleep(Duration::from_secs(1)).await;
        if x == 2 {
            Err("timeout")
        } else {
            Ok(Some(x))
        }
    })
    .sink(move |x| o.borrow_mut().push((timecast::now(), x)))
    .run();
    let result = within(&el, run).expect("the pipeline stops");
    assert_eq!(result, Err(HandleError::Handler("timeout")));
    assert_eq!(*out.borrow(), [(t(1000), 1)]);
    assert_eq!(el.now(), t(2000));
}

/// A handler with no outputs (`Result<(), E>`), sync and async, runs to
/// the end when nothing fails and stops at its first error.
#[test]
fn handlers_without_outputs_go_on_until_their_error() {
    let handled = Cell::new(0);
    let count = |x: u32| {
        handled.set(handled.get() + 1);
        if x < 4 {
            Ok(())
        } else {
            Err(x)
        }
    };
    let ended = block_on(try_handle(stream::iter(1..=3u32), count).run());
    assert_eq!(ended, Ok(()));
    assert_eq!(handled.get(), 3);
    let stopped = block_on(try_handle(stream::iter(1..=9u32), count).run());
    assert_eq!(stopped, Err(HandleError::Handler(4)));
    assert_eq!(handled.get(), 7);
    let later = block_on(try_handle(stream::iter([1u32, 5, 2]), |x| async move { count(x) }).run());
    assert_eq!(later, Err(HandleError::Handler(5)));
    assert_eq!(handled.get(), 9);
}

/// A sink's error stops a fallible pipeline as it stops any other, told
/// apart from the handler's: the output the closed topic refused.
#[test]
fn a_sink_error_in_a_fallible_pipeline_is_the_sinks() {
    let topic = AsyncStream::<u32>::with_capacity(4);
    let _c = topic.subscribe();
    topic.close();
    let result = block_on(
        try_handle(stream::iter(1..=3u32), |x| Ok::<_, String>(Some(x)))
            .sink_to(topic)
            .run(),
    );
    assert_eq!(result, Err(HandleError::Sink(Closed(1))));
    let error = result.unwrap_err();
    assert_eq!(
        error.to_string(),
        "a sink failed: putting into a closed stream"
    );
}

/// A fallible pipeline's error is an `Error` whenever both errors display,
/// `String` and `&str` handler errors included, so `?` takes it into a
/// `Box<dyn Error>`; its text says which part failed, once.
#[test]
fn a_fallible_pipelines_error_goes_into_a_boxed_error() {
    fn run(items: &[&'static str]) -> Result<u32, Box<dyn std::error::Error>> {
        let mut total = 0;
        let parse = |s: &'static str| {
            s.parse::<u32>()
                .map_err(|_| format!("{s:?} is no number"))
                .map(Some)
        };
        block_on(
            try_handle(stream::iter(items.to_vec()), parse)
                .sink(|n| total += n)
                .run(),
        )?;
        Ok(total)
    }
    assert_eq!(run(&["1", "2"]).unwrap(), 3);
    let error = run(&["1", "two"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the handler failed: \"two\" is no number"
    );
    assert!(error.source().is_none());
}

/// A fan-out whose second sink fails, in a fallible pipeline: the first got
/// the value, and the error is the sink's.
#[test]
fn a_failing_sink_of_a_fan_out_stops_a_fallible_pipeline() {
    let first = RefCell::new(Vec::new());
    let topic = AsyncStream::<u32>::with_capacity(4);
    let _c = topic.subscribe();
    topic.close();
    let result = block_on(
        try_handle(stream::iter(1..=3u32), |x| Ok::<_, String>(vec![x]))
            .sink_to(fan_out(from_fn(|x| first.borrow_mut().push(x)), topic))
            .run(),
    );
    assert_eq!(result, Err(HandleError::Sink(Closed(1))));
    assert_eq!(*first.borrow(), [1]);
}
