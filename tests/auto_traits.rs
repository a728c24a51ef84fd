//! Pins the auto traits of every public channel type, so that a change to
//! a field cannot silently make a handle `!Send`, `!Sync` or `!Unpin`.
//!
//! Stable Rust has no negative assertion, so only what holds is asserted;
//! comments say what does not.

use std::cell::Cell;
use std::marker::PhantomPinned;

use timecast::channel::{Put, PutSink, Recv};
use timecast::{AsyncStream, Closed, Consumer, TryPutError, TryRecvError};

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
    // Not `Send`, not `Sync`: AsyncStream<V>, Consumer<V>, Put<V>, Recv<V>,
    // PutSink<V>.
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
    assert_unpin::<Recv<'static, V>>();
    assert_unpin::<PutSink<V>>();
    // The errors own the value: `Closed<V>` and `TryPutError<V>` are
    // `Unpin` only if `V` is.
}
