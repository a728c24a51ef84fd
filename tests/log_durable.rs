//! Exactly-once with durable operators, stopped at many points and built
//! again: the outputs are exactly those of an uninterrupted run. Readers
//! after a rollback.
#![cfg(feature = "store")]

use std::error::Error;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::{Stream, StreamExt};
use timecast::ops::StreamOps;
use timecast::store::{CheckpointScope, Log, Offset, Store, StoreError};
use timecast::Timestamp;

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

type Outputs = Pin<Box<dyn Stream<Item = std::result::Result<(Timestamp, u64), StoreError>>>>;

fn secs(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

/// 300 records, in time order, one second apart with a gap of 27 s after
/// every fourth: a gap closes several windows at once.
fn fill(store: &Store) -> Result {
    let input = store.log::<u64>("in")?;
    let mut t = 0;
    for i in 0..300u64 {
        input.append(secs(t), &i)?;
        t += if i % 4 == 3 { 27 } else { 1 };
    }
    store.commit()?;
    Ok(())
}

/// Polls `outputs` (with a waker that does nothing) until it has given
/// `limit` outputs or stays idle, appending them to `out`.
fn drive(outputs: &mut Outputs, out: &Log<u64>, limit: usize) -> Result {
    let mut cx = Context::from_waker(Waker::noop());
    let (mut n, mut idle) = (0, 0);
    while n < limit && idle < 4 {
        match outputs.poll_next_unpin(&mut cx) {
            Poll::Ready(Some(item)) => {
                let (ts, v) = item?;
                out.append(ts, &v)?;
                n += 1;
                idle = 0;
            }
            Poll::Ready(None) => break,
            Poll::Pending => idle += 1,
        }
    }
    Ok(())
}

fn contents(log: &Log<u64>) -> Result<Vec<(Timestamp, u64)>> {
    let mut reader = log.read(Offset::Start);
    let mut all = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(r)) = reader.poll_next_unpin(&mut cx) {
        let r = r?;
        all.push((r.ts, r.value));
    }
    Ok(all)
}

/// Runs `build`'s pipeline uninterrupted, then stopped (dropped) after
/// 1, 2, … outputs and built again many times: the output logs match.
fn stopped_anywhere_matches_uninterrupted(build: fn(&Store) -> Result<Outputs>) -> Result {
    let straight = Store::temporary()?;
    fill(&straight)?;
    let out = straight.log::<u64>("out")?;
    drive(&mut build(&straight)?, &out, usize::MAX)?;
    let expected = contents(&out)?;
    assert!(expected.len() > 20, "{}", expected.len());
    assert_eq!(straight.pending(), 0, "caught up, committed");

    let stopped = Store::temporary()?;
    fill(&stopped)?;
    let out = stopped.log::<u64>("out")?;
    let group = stopped.log::<u64>("in")?.group("g");
    // Checkpoints taken between the stops: each run resumes from one.
    let mut resumed_from = std::collections::BTreeSet::new();
    for run in 0..60 {
        drive(&mut build(&stopped)?, &out, 1 + (run * 7) % 5)?;
        resumed_from.extend(group.committed()?.filter(|&c| c < 300));
    }
    assert!(resumed_from.len() >= 10, "{resumed_from:?}");
    drive(&mut build(&stopped)?, &out, usize::MAX)?;
    assert_eq!(stopped.pending(), 0, "caught up, committed");
    assert_eq!(group.committed()?, Some(300));
    assert_eq!(contents(&out)?, expected);
    Ok(())
}

fn windows_sum(w: std::result::Result<timecast::Window<u64>, StoreError>) -> (Timestamp, u64) {
    let w = w.expect("the state saves");
    (w.end, w.values().sum())
}

/// The input's records as events, checkpointed every 3, and their scope.
fn events(
    store: &Store,
) -> Result<(
    CheckpointScope,
    impl Stream<Item = (Timestamp, u64)> + Unpin + 'static,
)> {
    let records = store
        .log::<u64>("in")?
        .group("g")
        .consume()
        .checkpoint_every(3);
    let scope = records.scope()?;
    let events = records.map(|r| r.map(|r| (r.ts, r.value)).expect("the input decodes"));
    Ok((scope, events))
}

fn hopping(store: &Store) -> Result<Outputs> {
    let (scope, events) = events(store)?;
    let windows = events.hopping(Duration::from_secs(10), Duration::from_secs(5));
    let windows = scope.durable("hopping", windows)?;
    Ok(Box::pin(windows.map(|w| Ok(windows_sum(w)))))
}

fn nested(store: &Store) -> Result<Outputs> {
    let (scope, events) = events(store)?;
    let inner = events.hopping(Duration::from_secs(10), Duration::from_secs(5));
    let inner = scope.durable("inner", inner)?;
    let outer = inner.map(windows_sum).tumbling(Duration::from_secs(60));
    let outer = scope.durable("outer", outer)?;
    Ok(Box::pin(outer.map(|w| Ok(windows_sum(w)))))
}

#[test]
fn durable_hopping_windows_stopped_anywhere_output_exactly_an_uninterrupted_run() -> Result {
    stopped_anywhere_matches_uninterrupted(hopping)
}

#[test]
fn nested_durable_windows_stopped_anywhere_output_exactly_an_uninterrupted_run() -> Result {
    stopped_anywhere_matches_uninterrupted(nested)
}

fn late_tumbling(store: &Store) -> Result<Outputs> {
    let (scope, events) = events(store)?;
    let windows = events
        .tumbling(Duration::from_secs(3))
        .allowed_lateness(Duration::from_secs(20));
    let windows = scope.durable("tumbling", windows)?;
    Ok(Box::pin(windows.map(|w| Ok(windows_sum(w)))))
}

fn sessions(store: &Store) -> Result<Outputs> {
    let (scope, events) = events(store)?;
    let windows = events.session(Duration::from_secs(5));
    let windows = scope.durable("sessions", windows)?;
    Ok(Box::pin(windows.map(|w| Ok(windows_sum(w)))))
}

fn sliding(store: &Store) -> Result<Outputs> {
    let (scope, events) = events(store)?;
    let windows = events.sliding(Duration::from_secs(30));
    let windows = scope.durable("sliding", windows)?;
    Ok(Box::pin(windows.map(|w| Ok(windows_sum(w)))))
}

#[test]
fn durable_late_tumbling_session_and_sliding_windows_stopped_anywhere_output_exactly_an_uninterrupted_run(
) -> Result {
    stopped_anywhere_matches_uninterrupted(late_tumbling)?;
    stopped_anywhere_matches_uninterrupted(sessions)?;
    stopped_anywhere_matches_uninterrupted(sliding)
}

/// Reads what `reader` has ready: (offset, value) pairs.
fn ready<C: timecast::store::Codec<u64>>(
    reader: &mut timecast::store::LogReader<u64, C>,
) -> Result<Vec<(u64, u64)>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut all = Vec::new();
    while let Poll::Ready(Some(r)) = reader.poll_next_unpin(&mut cx) {
        let r = r?;
        all.push((r.offset, r.value));
    }
    Ok(all)
}

/// A temporary store with manual commits and a log `l` of records 0..10,
/// one a second: the first five committed, the last five pending.
fn ten_records_five_committed() -> Result<(Store, Log<u64>)> {
    let store = Store::temporary()?;
    store.set_commit_policy(timecast::store::CommitPolicy::manual());
    let log = store.log::<u64>("l")?;
    for i in 0..10 {
        log.append(secs(i as i64), &i)?;
        if i == 4 {
            store.commit()?;
        }
    }
    Ok((store, log))
}

#[test]
fn a_seek_made_after_a_rollback_is_where_the_reader_goes() -> Result {
    let (store, log) = ten_records_five_committed()?;
    let mut reader = log.read(Offset::Start);
    let mut handled = log.read(Offset::Start);
    let handle = handled.seek_handle();
    assert_eq!(ready(&mut reader)?.len(), 10);
    assert_eq!(ready(&mut handled)?.len(), 10);
    assert_eq!(store.rollback(), 5);
    for i in 100..105 {
        log.append(secs(i as i64), &i)?; // offsets 5..10 again
    }
    reader.seek(7);
    handle.seek(8);
    assert_eq!(ready(&mut reader)?, [(7, 102), (8, 103), (9, 104)]);
    assert_eq!(ready(&mut handled)?, [(8, 103), (9, 104)]);
    Ok(())
}

/// Tumbling windows that the loop's clock closes, durable, in an event
/// loop: taken `n` at a time, the pipeline dropped after each batch and
/// built again, then committed after the last; the outputs are those of
/// one run.
#[test]
fn durable_windows_closed_by_the_loop_clock_resume_exactly() -> Result {
    use timecast::ops::LoopClock;
    use timecast::EventLoop;

    let run = |store: &Store, n: usize, commit: bool| -> Result {
        let out = store.log::<u64>("out")?;
        let records = store
            .log::<u64>("in")?
            .group("g")
            .consume()
            .checkpoint_every(5);
        let scope = records.scope()?;
        let windows = records
            .map(|r| r.map(|r| (r.ts, r.value)).expect("the input decodes"))
            .tumbling(Duration::from_secs(10))
            .clock(LoopClock::new());
        let mut windows = scope.durable("windows", windows)?;
        let el = EventLoop::starting_at(secs(0)).simulated();
        el.block_on(async move {
            for _ in 0..n {
                let (ts, v) = windows_sum(windows.next().await.ok_or("ended")?);
                out.append(ts, &v)?;
            }
            if commit {
                windows.commit()?;
            }
            Ok::<_, Box<dyn Error>>(())
        })
    };
    let straight = Store::temporary()?;
    fill(&straight)?;
    // The last window too: the clock closes it once the input is idle.
    let total = {
        let ends: std::collections::BTreeSet<i64> = contents(&straight.log::<u64>("in")?)?
            .iter()
            .map(|(ts, _)| ts.unix_secs() / 10)
            .collect();
        ends.len()
    };
    run(&straight, total, true)?;
    let expected = contents(&straight.log::<u64>("out")?)?;
    assert_eq!(expected.len(), total);

    let stopped = Store::temporary()?;
    fill(&stopped)?;
    let out = stopped.log::<u64>("out")?;
    for round in 0..40 {
        let left = total - out.end() as usize;
        run(&stopped, left.min(1 + round % 4), false)?;
    }
    run(&stopped, total - out.end() as usize, true)?;
    assert_eq!(contents(&out)?, expected);
    Ok(())
}

type Hook = std::sync::Arc<std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// Big-endian `u64`s; `u64::MAX` does not decode, and runs the hook
/// first (what another thread might do while the reader decodes).
struct Hooked(Hook);

impl timecast::store::Codec<u64> for Hooked {
    fn name(&self) -> String {
        "hooked".into()
    }
    fn encode(
        &self,
        value: &u64,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), timecast::store::codec::CodecError> {
        out.extend_from_slice(&value.to_be_bytes());
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> std::result::Result<u64, timecast::store::codec::CodecError> {
        let v = u64::from_be_bytes(bytes.try_into()?);
        if v == u64::MAX {
            let hook = self.0.lock().expect("the hook's lock").take();
            if let Some(hook) = hook {
                hook();
            }
            return Err("the marker".into());
        }
        Ok(v)
    }
}

/// A rollback (and appends after it) while a reader skips a record that
/// does not decode: the reader still moves back to the committed end
/// before it reads the new appends, and yields each once, in order.
#[test]
fn a_rollback_while_a_reader_skips_a_record_moves_it_back_before_it_reads_on() -> Result {
    use timecast::store::DecodeErrors;

    let store = Store::temporary()?;
    store.set_commit_policy(timecast::store::CommitPolicy::manual());
    let hook = Hook::default();
    let log = store.log_with::<u64, _>("l", Hooked(hook.clone()))?;
    for i in 0..5 {
        log.append(secs(0), &i)?;
    }
    store.commit()?;
    for i in 5..9 {
        log.append(secs(0), &i)?;
    }
    log.append(secs(0), &u64::MAX)?; // offset 9
    let (s, l) = (store.clone(), log.clone());
    *hook.lock().expect("the hook's lock") = Some(Box::new(move || {
        s.rollback();
        for i in 105..112 {
            l.append(secs(0), &i).expect("an append"); // offsets 5..12
        }
    }));
    let mut reader = log.read(Offset::Start).on_decode_error(DecodeErrors::Skip);
    let read = ready(&mut reader)?;
    let offsets: Vec<u64> = read.iter().map(|r| r.0).collect();
    // 0..9 as read before the rollback, then the new 5..12 once each.
    let expected: Vec<u64> = (0..9).chain(5..12).collect();
    assert_eq!(offsets, expected, "{read:?}");
    assert_eq!(
        read[9..].iter().map(|r| r.1).collect::<Vec<_>>(),
        (105..112).collect::<Vec<_>>()
    );
    Ok(())
}

/// Readers placed by the log (its end, an event time) over appends that a
/// rollback discards: the records appended after the rollback are the
/// first they read, none skipped.
#[test]
fn end_and_time_readers_placed_over_discarded_appends_read_every_later_append() -> Result {
    let (store, log) = ten_records_five_committed()?;
    let mut tail = log.read(Offset::End);
    let mut from_time = log.read(Offset::Time(secs(7)));
    assert_eq!((tail.position(), from_time.position()), (10, 7));
    assert_eq!(store.rollback(), 5);
    for i in 100..105 {
        log.append(secs(i as i64), &i)?; // offsets 5..10 again
    }
    let appended: Vec<(u64, u64)> = (5..10).zip(100..105).collect();
    assert_eq!(ready(&mut tail)?, appended);
    assert_eq!(ready(&mut from_time)?, appended);
    Ok(())
}
