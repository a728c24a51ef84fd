//! Pins the auto traits of every public type, so that a change to a field
//! cannot silently make a handle `!Send`, `!Sync` or `!Unpin`.
//!
//! Stable Rust has no negative assertion, so only what holds is asserted;
//! comments say what does not.

use std::cell::Cell;
use std::marker::PhantomPinned;

use timecast::channel::{Put, PutAll, PutSink, Recv};
use timecast::{
    ops, sink, AsyncStream, Closed, Consumer, EventLoop, JoinError, JoinHandle, LatePolicy,
    TaskError, Timestamp, TryPutError, TryRecvError, Window,
};

fn assert_send<T: Send>() {}
fn assert_unpin<T: Unpin>() {}

fn assert_all<T: Send + Sync + Unpin>() {}

/// With a `Send + Sync` value every type is `Send + Sync + Unpin`: the
/// stream can connect event loops on several threads (DESIGN.md).
#[test]
fn send_sync_values_make_every_type_send_sync_unpin() {
    assert_all::<AsyncStream<String>>();
    assert_all::<Consumer<String>>();
    assert_all::<Put<'static, String>>();
    assert_all::<PutAll<'static, String, std::vec::IntoIter<String>>>();
    assert_all::<Recv<'static, String>>();
    assert_all::<PutSink<String>>();
    assert_all::<Closed<String>>();
    assert_all::<TryPutError<String>>();
    assert_all::<TryRecvError>();
}

/// With a `Send` but `!Sync` value (`Cell<u8>`), nothing that reaches the
/// stream is `Send` or `Sync`: consumers take values without a lock, so two
/// consumers on two threads may clone the same value at once, which needs
/// `T: Sync` (as with tokio's broadcast). Such a stream stays usable on one
/// thread, on an `EventLoop` for instance. The errors and the value-owning
/// parts follow the value.
#[test]
fn send_only_values_stay_on_one_thread() {
    type V = Cell<u8>;
    assert_unpin::<AsyncStream<V>>();
    assert_unpin::<Consumer<V>>();
    assert_send::<Closed<V>>();
    assert_send::<TryPutError<V>>();
    // Not `Send`, not `Sync`: AsyncStream<V>, Consumer<V>, Put<V>,
    // PutAll<V, _>, Recv<V>, PutSink<V>.
    let stream = AsyncStream::with_capacity(1);
    let mut consumer = stream.subscribe();
    stream.try_put(Cell::new(7)).unwrap();
    assert_eq!(consumer.try_recv().map(Cell::into_inner), Ok(7));
}

/// Handles and futures stay `Unpin` even for a `!Unpin` value: none of them
/// pins the value (STYLE.md; smol-rs/async-channel issue 74).
#[test]
fn handles_and_futures_are_unpin_for_any_value() {
    type V = PhantomPinned;
    assert_unpin::<AsyncStream<V>>();
    assert_unpin::<Consumer<V>>();
    assert_unpin::<Put<'static, V>>();
    // `Once<V>` is `!Unpin`: `PutAll` pins neither its iterator nor its values.
    assert_unpin::<PutAll<'static, V, std::iter::Once<V>>>();
    assert_unpin::<Recv<'static, V>>();
    assert_unpin::<PutSink<V>>();
    // The errors own the value: `Closed<V>` and `TryPutError<V>` are
    // `Unpin` only if `V` is.
}

type Events = futures::stream::Iter<std::vec::IntoIter<(Timestamp, u64)>>;

/// Values, errors and the stream combinators cross threads whenever what
/// they hold does: a pipeline built from `Send` parts can be spawned on a
/// multi-threaded runtime.
#[test]
fn values_errors_and_combinators_follow_their_parts() {
    assert_all::<Timestamp>();
    assert_all::<Window<String>>();
    assert_all::<TaskError>();
    assert_all::<JoinError>();
    assert_all::<ops::Tumbling>();
    assert_all::<ops::Hopping>();
    assert_all::<ops::Session>();
    assert_all::<ops::CountLate>();
    assert_all::<ops::EventTime>();

    assert_all::<ops::Pairwise<Events>>();
    assert_all::<ops::Accumulate<Events, fn((Timestamp, u64), (Timestamp, u64)) -> (Timestamp, u64)>>(
    );
    assert_all::<ops::AccumulateFrom<Events, u64, fn(u64, (Timestamp, u64)) -> u64>>();
    assert_all::<ops::Windowed<Events, ops::Tumbling, u64>>();
    assert_all::<ops::Windowed<Events, ops::Hopping, u64>>();
    assert_all::<ops::Windowed<Events, ops::Session, u64>>();
    assert_all::<ops::Sliding<Events, u64>>();
    assert_all::<ops::AsOfJoin<Events, Events, u64, u64>>();

    assert_all::<sink::Discard>();
    assert_all::<sink::FanOut<AsyncStream<u64>, sink::Discard>>();
    assert_all::<sink::Handle<Events, fn((Timestamp, u64)) -> Option<u64>, sink::marker::Plain>>();
    assert_all::<
        sink::Handle<
            Events,
            sink::Fallible<fn((Timestamp, u64)) -> Result<Option<u64>, String>>,
            sink::marker::Iter,
        >,
    >();
    assert_all::<sink::HandleError<String, Closed<u64>>>();
}

/// A pipeline's `run()` future is `Send` when its parts are, plain or
/// fallible, sync or async handler: it can be spawned on a multi-threaded
/// runtime.
#[test]
fn pipeline_runs_are_send() {
    fn assert_send_future<F: std::future::Future + Send>(_: F) {}
    let source = || futures::stream::iter([1u64, 2]);
    let topic = AsyncStream::<u64>::with_capacity(4);
    assert_send_future(sink::handle(source(), Some).sink_to(topic.clone()).run());
    assert_send_future(
        sink::handle(source(), |x| async move { [x] })
            .sink(|_| ())
            .run(),
    );
    assert_send_future(
        sink::try_handle(source(), |x| Ok::<_, String>(Some(x)))
            .sink_to(topic.clone())
            .run(),
    );
    assert_send_future(
        sink::try_handle(source(), |x| async move { Ok::<_, String>(vec![x]) })
            .sink(|_| async {})
            .run(),
    );
}

/// The event loop and what is bound to it stay on the loop's thread (they
/// share its `Rc` core), but all of them are `Unpin`, so they can be polled
/// by hand and stored without pinning.
#[test]
fn loop_bound_types_are_unpin() {
    assert_unpin::<EventLoop>();
    assert_unpin::<JoinHandle<PhantomPinned>>();
    assert_unpin::<timecast::time::RunFuture<'static>>();
    assert_unpin::<timecast::time::Sleep>();
    assert_unpin::<timecast::source::Timer>();
    assert_unpin::<LatePolicy<String>>();
    // Not `Send`, not `Sync`: EventLoop, JoinHandle, RunFuture, Sleep, Timer
    // and ProcessStream, which all hold the loop's `Rc` core or a task slot,
    // and LatePolicy, whose diverting closure runs on the loop.
}

/// The store's handles are shared across threads and executors: a table
/// is written from a loop and read from a thread at once.
#[cfg(feature = "store")]
#[test]
fn store_handles_are_send_sync_unpin() {
    use timecast::store::{
        Binary, CommitPolicy, Json, Range, Store, StoreError, Table, TableTypes,
    };
    assert_all::<Store>();
    assert_all::<Table<String, u64>>();
    assert_all::<Table<(i64, Timestamp), String, Json>>();
    // A range iterator is `Send` (iterate it on another thread), not
    // `Sync`: the database's iterator is not.
    assert_send::<Range<u64, String, Binary>>();
    assert_unpin::<Range<u64, String, Binary>>();
    assert_all::<CommitPolicy>();
    assert_all::<StoreError>();
    assert_all::<TableTypes>();
    // A paused stream moves across threads with the stream it wraps.
    type Items = futures::stream::Iter<std::vec::IntoIter<u8>>;
    assert_all::<timecast::store::Pausable<Items, u64>>();
    assert_all::<timecast::store::TryPausable<Items, u64>>();
}

/// A flow's handle, its reports and its errors cross threads, so a flow
/// can be watched and shut down from anywhere; the flow itself and what a
/// pipeline holds stay on the loop.
#[test]
fn flow_handles_and_reports_are_send_sync_unpin() {
    use timecast::flow::{
        FlowHandle, FlowReport, FlowStatus, PipelineError, PipelineReport, PipelineState,
        PipelineStatus, Restart, Shutdown,
    };
    use timecast::source::PollError;
    assert_all::<FlowHandle>();
    assert_all::<FlowReport>();
    assert_all::<FlowStatus>();
    assert_all::<PipelineError>();
    assert_all::<PipelineReport>();
    assert_all::<PipelineState>();
    assert_all::<PipelineStatus>();
    assert_all::<Restart>();
    assert_all::<PollError<String>>();
    assert_unpin::<Shutdown>();
    assert_unpin::<timecast::flow::Flow>();
    assert_unpin::<timecast::flow::PipelineContext>();
}

/// The topic abstraction's values cross threads with their contents.
#[test]
fn topic_values_are_send_sync_unpin() {
    use timecast::topic::{Offset, Position, Record};
    assert_all::<Offset>();
    assert_all::<Position>();
    assert_all::<Record<String>>();
}

/// The Kafka connector's handles cross threads and executors: a topic is
/// published to from anywhere, and a reader (its consumer polled by a
/// thread of its own) is read under any executor.
#[cfg(feature = "kafka")]
#[test]
fn kafka_handles_are_send_sync_unpin() {
    use timecast::kafka::{
        Kafka, KafkaBuilder, KafkaError, KafkaLive, KafkaPast, KafkaReader, KafkaSeek, KafkaSink,
        KafkaTopic,
    };
    use timecast::store::Json;
    assert_all::<Kafka>();
    assert_all::<KafkaBuilder>();
    assert_all::<KafkaTopic<String>>();
    assert_all::<KafkaTopic<String, Json>>();
    assert_all::<KafkaSink<String>>();
    assert_all::<KafkaReader<String>>();
    assert_all::<KafkaPast<String>>();
    assert_all::<KafkaLive<String>>();
    assert_all::<KafkaSeek>();
    assert_all::<KafkaError>();
}
