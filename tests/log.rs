//! The log: dense offsets across restarts, replay then tail (woken by
//! appends, no polling), seek, groups, time offsets, retention, decode
//! errors, and one commit covering tables, appends and group offsets.
#![cfg(feature = "store")]

use std::error::Error;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::{Stream, StreamExt};
use timecast::store::codec::{Codec, CodecError};
use timecast::store::{
    CommitPolicy, DecodeErrors, Offset, Position, Record, Retention, Store, StoreError, Topic,
};
use timecast::{sleep, EventLoop, Timestamp};

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("timecast-log-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn secs(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll<S: Stream + Unpin>(s: &mut S, waker: &Waker) -> Poll<Option<S::Item>> {
    Pin::new(s).poll_next(&mut Context::from_waker(waker))
}

fn values<T: Clone>(records: &[Record<T>]) -> Vec<T> {
    records.iter().map(|r| r.value.clone()).collect()
}

#[test]
fn offsets_are_dense_and_survive_reopening() -> Result {
    let dir = scratch("dense");
    {
        let store = Store::open(&dir)?;
        let log = store.log::<String>("events")?;
        for i in 0..3 {
            assert_eq!(log.append(secs(i), &format!("e{i}"))?, i as u64);
        }
    }
    {
        let store = Store::open(&dir)?;
        let log = store.log::<String>("events")?;
        assert_eq!(log.end(), 3);
        assert_eq!(log.append(secs(3), &"e3".into())?, 3);
        let mut reader = log.read(Offset::Start);
        let all: Vec<_> = futures::executor::block_on(async {
            let mut all = Vec::new();
            for _ in 0..4 {
                all.push(reader.next().await.expect("a record")?);
            }
            Ok::<_, StoreError>(all)
        })?;
        assert_eq!(
            all.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_eq!(values(&all), ["e0", "e1", "e2", "e3"]);
        assert_eq!(all[2].ts, secs(2));
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn a_reader_replays_then_is_woken_by_each_append() -> Result {
    let store = Store::temporary()?;
    let log = store.log::<u32>("l")?;
    log.append(secs(0), &10)?;
    log.append(secs(1), &11)?;
    let mut reader = log.read(Offset::Start);
    let counting = Arc::new(Counting::default());
    let waker = Waker::from(counting.clone());
    for want in [10, 11] {
        match poll(&mut reader, &waker) {
            Poll::Ready(Some(Ok(r))) => assert_eq!(r.value, want),
            other => panic!("expected record {want}, got {other:?}"),
        }
    }
    assert!(poll(&mut reader, &waker).is_pending());
    assert!(poll(&mut reader, &waker).is_pending());
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        0,
        "no wake-up without an append"
    );
    log.append(secs(2), &12)?;
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        1,
        "one append, one wake-up"
    );
    match poll(&mut reader, &waker) {
        Poll::Ready(Some(Ok(r))) => assert_eq!((r.offset, r.value), (2, 12)),
        other => panic!("expected record 2, got {other:?}"),
    }
    // A dropped reader is no longer woken.
    assert!(poll(&mut reader, &waker).is_pending());
    drop(reader);
    log.append(secs(3), &13)?;
    assert_eq!(counting.0.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn a_reader_tails_in_an_event_loop_in_simulated_time() -> Result {
    let store = Store::temporary()?;
    let log = store.log::<String>("l")?;
    log.append(secs(0), &"past".into())?;
    let el = EventLoop::starting_at(secs(100)).simulated();
    let writer = log.clone();
    el.spawn(async move {
        for i in 0..3 {
            sleep(Duration::from_secs(10)).await;
            writer
                .append(timecast::now(), &format!("live{i}"))
                .expect("append");
        }
    });
    let mut reader = log.read(Offset::Start);
    let seen = el.block_on(async move {
        let mut seen = Vec::new();
        for _ in 0..4 {
            let r = reader.next().await.expect("a record").expect("decodes");
            seen.push((timecast::now(), r.ts, r.value));
        }
        seen
    });
    assert_eq!(
        seen,
        [
            (secs(100), secs(0), "past".to_string()),
            (secs(110), secs(110), "live0".to_string()),
            (secs(120), secs(120), "live1".to_string()),
            (secs(130), secs(130), "live2".to_string()),
        ]
    );
    Ok(())
}

#[test]
fn seek_moves_a_reader_back_and_forth_and_a_handle_wakes_it() -> Result {
    let store = Store::temporary()?;
    let log = store.log::<u32>("l")?;
    for i in 0..5 {
        log.append(secs(i), &(i as u32))?;
    }
    let mut reader = log.read(Offset::End);
    let waker = Waker::from(Arc::new(Counting::default()));
    assert!(poll(&mut reader, &waker).is_pending());
    reader.seek(3);
    let next = |reader: &mut timecast::store::LogReader<u32>| match poll(reader, &waker) {
        Poll::Ready(Some(Ok(r))) => r.offset,
        other => panic!("expected a record, got {other:?}"),
    };
    assert_eq!(next(&mut reader), 3);
    reader.seek(1);
    assert_eq!(next(&mut reader), 1);
    assert_eq!(next(&mut reader), 2);
    // From elsewhere, waking the waiting reader.
    let counting = Arc::new(Counting::default());
    let waker = Waker::from(counting.clone());
    reader.seek(5);
    assert!(poll(&mut reader, &waker).is_pending());
    reader.seek_handle().seek(0);
    assert_eq!(counting.0.load(Ordering::SeqCst), 1);
    assert_eq!(reader.position(), 0);
    Ok(())
}

#[test]
fn an_offset_beyond_the_end_waits_for_the_log_to_reach_it() -> Result {
    let store = Store::temporary()?;
    let log = store.log::<u32>("l")?;
    let mut reader = log.read(Offset::At(2));
    let counting = Arc::new(Counting::default());
    let waker = Waker::from(counting.clone());
    assert!(poll(&mut reader, &waker).is_pending());
    log.append(secs(0), &0)?;
    log.append(secs(1), &1)?;
    // Woken by the appends; still waiting for offset 2.
    assert!(poll(&mut reader, &waker).is_pending());
    log.append(secs(2), &2)?;
    match poll(&mut reader, &waker) {
        Poll::Ready(Some(Ok(r))) => assert_eq!(r.offset, 2),
        other => panic!("expected record 2, got {other:?}"),
    }
    Ok(())
}

#[test]
fn groups_persist_across_reopening_and_refuse_a_commit_past_the_end() -> Result {
    let dir = scratch("groups");
    {
        let store = Store::open(&dir)?;
        let log = store.log::<u32>("l")?;
        for i in 0..4 {
            log.append(secs(i), &(i as u32))?;
        }
        let group = log.group("billing");
        assert_eq!(group.committed()?, None);
        group.commit(3)?;
        match group.commit(5) {
            Err(StoreError::CommitPastEnd {
                log,
                group,
                offset,
                end,
            }) => {
                assert_eq!(
                    (log.as_str(), group.as_str(), offset, end),
                    ("l", "billing", 5, 4)
                );
            }
            other => panic!("expected CommitPastEnd, got {other:?}"),
        }
        let message = log.group("billing").commit(9).unwrap_err().to_string();
        assert!(
            message.contains("\"billing\"") && message.contains("ends at 4"),
            "{message}"
        );
    }
    let store = Store::open(&dir)?;
    let log = store.log::<u32>("l")?;
    let group = log.group("billing");
    assert_eq!(group.committed()?, Some(3));
    let mut reader = group.read();
    let r = futures::executor::block_on(reader.next()).expect("a record")?;
    assert_eq!(r.value, 3);
    assert_eq!(log.group("other").committed()?, None);
    drop((reader, group, log, store));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Child mode of the test below: commits a batch, stages another, aborts.
#[test]
fn child_commits_then_aborts() -> Result {
    let Some(dir) = std::env::var_os("TIMECAST_CHILD_LOG_ABORT") else {
        return Ok(());
    };
    let store = Store::open(dir)?;
    store.set_commit_policy(CommitPolicy::manual());
    let state = store.table::<String, u64>("state")?;
    let log = store.log::<u64>("out")?;
    state.put(&"count".into(), &1)?;
    log.append(secs(0), &1)?;
    log.group("g").commit(1)?;
    store.commit()?;
    // Pending, never committed: the abort loses all three together.
    state.put(&"count".into(), &2)?;
    log.append(secs(1), &2)?;
    log.group("g").commit(2)?;
    assert_eq!(log.group("g").committed()?, Some(2)); // visible before the commit
    std::process::abort();
}

#[test]
fn one_commit_covers_a_table_an_append_and_a_group() -> Result {
    let dir = scratch("atomic");
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "child_commits_then_aborts", "--nocapture"])
        .env("TIMECAST_CHILD_LOG_ABORT", &dir)
        .stderr(std::process::Stdio::null())
        .status()?;
    assert!(!status.success(), "the child aborts");
    let store = Store::open(&dir)?;
    let state = store.table::<String, u64>("state")?;
    let log = store.log::<u64>("out")?;
    assert_eq!(state.get(&"count".into())?, Some(1));
    assert_eq!(log.end(), 1);
    assert_eq!(log.group("g").committed()?, Some(1));
    assert_eq!(
        log.append(secs(1), &2)?,
        1,
        "the uncommitted offset is given again"
    );
    drop((state, log, store));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn time_offsets_start_at_the_first_record_at_or_after_the_time() -> Result {
    let store = Store::temporary()?;
    let log = store.log::<u32>("l")?;
    // Event times out of order: 10, 30, 20, 40, 25.
    for (i, t) in [10, 30, 20, 40, 25].into_iter().enumerate() {
        log.append(secs(t), &(i as u32))?;
    }
    let first = |t: i64| -> Result<Option<u64>> {
        let mut reader = log.read(Offset::Time(secs(t)));
        let waker = Waker::from(Arc::new(Counting::default()));
        Ok(match poll(&mut reader, &waker) {
            Poll::Ready(Some(r)) => Some(r?.offset),
            _ => None,
        })
    };
    assert_eq!(first(0)?, Some(0));
    assert_eq!(first(10)?, Some(0));
    assert_eq!(first(11)?, Some(1));
    assert_eq!(first(25)?, Some(1));
    assert_eq!(first(31)?, Some(3));
    assert_eq!(first(40)?, Some(3));
    assert_eq!(first(41)?, None); // waits
                                  // A later record at or after the time, not one before it.
    let mut reader = log.read(Offset::Time(secs(50)));
    log.append(secs(45), &5)?;
    log.append(secs(55), &6)?;
    let r = futures::executor::block_on(reader.next()).expect("a record")?;
    assert_eq!(r.offset, 6);
    Ok(())
}

#[test]
fn retention_by_count_and_age_keeps_offsets_and_refuses_reads_below() -> Result {
    let dir = scratch("retention");
    {
        let store = Store::open(&dir)?;
        let log = store.log::<u32>("l")?;
        log.set_retention(Retention::count(3));
        for i in 0..10 {
            log.append(secs(i), &(i as u32))?;
        }
        assert_eq!((log.start(), log.end()), (7, 10));
        let mut reader = log.read(Offset::At(2));
        match futures::executor::block_on(reader.next()) {
            Some(Err(StoreError::Trimmed { log, offset, start })) => {
                assert_eq!((log.as_str(), offset, start), ("l", 2, 7));
            }
            other => panic!("expected Trimmed, got {other:?}"),
        }
        assert!(futures::executor::block_on(reader.next()).is_none());
        reader.seek(7);
        let r = futures::executor::block_on(reader.next()).expect("a record")?;
        assert_eq!(r.value, 7);
        let start =
            futures::executor::block_on(log.read(Offset::Start).next()).expect("a record")?;
        assert_eq!(start.offset, 7);
        // By age, in event time: keep records within 2 s of the newest.
        log.set_retention(Retention::age(Duration::from_secs(2)));
        log.append(secs(20), &20)?;
        assert_eq!((log.start(), log.end()), (10, 11));
    }
    // Offsets are never reused, even with every old record removed.
    let store = Store::open(&dir)?;
    let log = store.log::<u32>("l")?;
    assert_eq!((log.start(), log.end()), (10, 11));
    log.set_retention(Retention::count(1));
    log.append(secs(21), &21)?;
    assert_eq!((log.start(), log.end()), (11, 12));
    drop((log, store));
    let store = Store::open(&dir)?;
    let log = store.log::<u32>("l")?;
    assert_eq!((log.start(), log.end()), (11, 12));
    assert_eq!(log.append(secs(22), &22)?, 12);
    drop((log, store));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Decodes even numbers only.
struct EvenOnly;

impl Codec<u32> for EvenOnly {
    fn name(&self) -> String {
        "even-only".into()
    }
    fn encode(&self, value: &u32, out: &mut Vec<u8>) -> std::result::Result<(), CodecError> {
        out.extend_from_slice(&value.to_be_bytes());
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> std::result::Result<u32, CodecError> {
        let v = u32::from_be_bytes(bytes.try_into()?);
        if v % 2 == 1 {
            return Err(format!("odd value {v}").into());
        }
        Ok(v)
    }
}

/// Encodes even numbers only.
struct EncodesEvenOnly;

impl Codec<u32> for EncodesEvenOnly {
    fn name(&self) -> String {
        "encodes-even-only".into()
    }
    fn encode(&self, value: &u32, out: &mut Vec<u8>) -> std::result::Result<(), CodecError> {
        if value % 2 == 1 {
            return Err(format!("odd value {value}").into());
        }
        out.extend_from_slice(&value.to_be_bytes());
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> std::result::Result<u32, CodecError> {
        Ok(u32::from_be_bytes(bytes.try_into()?))
    }
}

#[test]
fn a_value_that_does_not_encode_names_the_log_and_appends_nothing() -> Result {
    let store = Store::temporary()?;
    let log = store.log_with::<u32, _>("numbers", EncodesEvenOnly)?;
    assert_eq!(log.append(secs(1), &2)?, 0);
    let err = log.append(secs(2), &3).expect_err("3 is odd");
    assert!(matches!(&err, StoreError::LogEncode { log, .. } if log == "numbers"));
    assert_eq!(
        err.to_string(),
        "cannot encode a value for log \"numbers\" with its codec; nothing was appended"
    );
    assert_eq!(
        err.source().map(|e| e.to_string()),
        Some("odd value 3".into())
    );
    // No offset was used.
    assert_eq!(log.append(secs(3), &4)?, 1);
    Ok(())
}

#[test]
fn a_record_that_does_not_decode_names_log_and_offset_then_stops_or_is_skipped() -> Result {
    let store = Store::temporary()?;
    let log = store.log_with::<u32, _>("numbers", EvenOnly)?;
    for v in [0, 2, 3, 4] {
        log.append(secs(0), &v)?;
    }
    let run = |policy| {
        let mut reader = log.read(Offset::Start).on_decode_error(policy);
        let mut out = Vec::new();
        futures::executor::block_on(async {
            while let Some(r) = reader.next().await {
                out.push(r.map(|r| r.value));
                if reader.position() == 4 {
                    break;
                }
            }
        });
        (out, reader.skipped())
    };
    let (stopped, _) = run(DecodeErrors::Stop);
    assert_eq!(stopped.len(), 3);
    match &stopped[2] {
        Err(e @ StoreError::LogDecode { log, offset, .. }) => {
            assert_eq!((log.as_str(), *offset), ("numbers", 2));
            let message = e.to_string();
            assert!(message.contains("record 2 of log \"numbers\""), "{message}");
            assert!(e
                .source()
                .expect("the codec's error")
                .to_string()
                .contains("odd value 3"));
        }
        other => panic!("expected LogDecode, got {other:?}"),
    }
    let (skipped, count) = run(DecodeErrors::Skip);
    assert_eq!(
        skipped
            .into_iter()
            .collect::<std::result::Result<Vec<_>, _>>()?,
        [0, 2, 4]
    );
    assert_eq!(count, 1);
    Ok(())
}

#[test]
fn a_log_reopened_with_another_type_is_refused_naming_it() -> Result {
    let store = Store::temporary()?;
    let _log = store.log::<u32>("l")?;
    match store.log::<String>("l") {
        Err(StoreError::TableTypes { table, .. }) => assert_eq!(table, "l"),
        other => panic!("expected TableTypes, got {other:?}"),
    }
    Ok(())
}

#[test]
fn the_log_is_a_topic() -> Result {
    fn roundtrip<T: Topic<u32>>(topic: &T) -> std::result::Result<Vec<u64>, T::Error> {
        let a = topic.publish(secs(0), &1)?;
        let b = topic.publish(secs(1), &2)?;
        assert_eq!((a.partition, b.partition, topic.partitions()), (0, 0, 1));
        topic.commit("g", Position::new(0, 1))?;
        let mut reader = topic.subscribe("g")?;
        let second = futures::executor::block_on(reader.next()).expect("a record")?;
        T::seek(&mut reader, Position::new(0, 0));
        let first = futures::executor::block_on(reader.next()).expect("a record")?;
        assert_eq!((first.partition, first.key.as_ref()), (0, None));
        Ok(vec![a.offset, b.offset, second.offset, first.offset])
    }
    let store = Store::temporary()?;
    let log = store.log::<u32>("t")?;
    assert_eq!(roundtrip(&log)?, [0, 1, 1, 0]);
    assert_eq!(Topic::name(&log), "t");
    // The log keeps no keys, and has no partition but 0: both refused.
    match log.publish_keyed(secs(2), b"k", &3) {
        Err(StoreError::Unsupported { log, .. }) => assert_eq!(log, "t"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let committed = log.group("g").committed()?;
    let err = Topic::commit(&log, "g", Position::new(1, 0)).expect_err("partition 1");
    assert!(matches!(&err, StoreError::Unsupported { log, .. } if log == "t"));
    assert_eq!(
        err.to_string(),
        "log \"t\" does not support committing partition 1 (it has only partition 0)"
    );
    assert_eq!(log.group("g").committed()?, committed, "nothing committed");
    assert_eq!(log.end(), 2, "nothing appended by the refused publish");
    Ok(())
}

#[test]
fn handles_are_send_sync_and_readers_unpin() {
    fn check<T: Send + Sync>() {}
    fn unpin<T: Unpin + Send>() {}
    check::<timecast::store::Log<String>>();
    check::<timecast::store::Group<String>>();
    unpin::<timecast::store::LogReader<String>>();
    unpin::<timecast::store::ExactlyOnce<String>>();
    // A log source's parts may be built on one thread and run on another.
    check::<timecast::store::LogPast<timecast::store::LogReader<String>>>();
    unpin::<timecast::store::LogLive<timecast::store::ExactlyOnce<String>>>();
}

/// A windowed sum over `input` through the group "sum", its open window in
/// a table and its closed windows appended to `out`: the pipeline of the
/// exactly-once tests, small. Fails with an error after `fail_after`
/// records, if given.
fn windowed_sum(store: &Store, fail_after: Option<u64>, until: u64) -> Result {
    let input = store.log::<u64>("input")?;
    let out = store.log::<(i64, u64)>("out")?;
    let window = store.table::<u8, (i64, u64)>("window")?;
    let mut records = input.group("sum").consume().checkpoint_every(100);
    let mut seen = 0;
    futures::executor::block_on(async {
        while let Some(r) = records.next().await {
            let r = r?;
            let w = r.ts.unix_secs() / 10;
            let mut acc = window.get(&0)?;
            if let Some(closed) = acc.filter(|a| a.0 != w) {
                out.append(r.ts, &closed)?;
                acc = None;
            }
            let (w, sum) = acc.unwrap_or((w, 0));
            window.put(&0, &(w, sum + r.value))?;
            seen += 1;
            if Some(seen) == fail_after {
                return Err("the pipeline failed".into());
            }
            if r.offset + 1 == until {
                break;
            }
        }
        records.commit()?;
        Ok(())
    })
}

#[test]
fn an_exactly_once_pipeline_that_stops_on_an_error_commits_nothing_half_done() -> Result {
    let n = 1_000;
    let fill = |dir: &PathBuf| -> Result {
        let store = Store::open(dir)?;
        let input = store.log::<u64>("input")?;
        for i in 0..n {
            input.append(secs(i as i64), &i)?;
        }
        Ok(())
    };
    let (straight, failing) = (scratch("eo-straight"), scratch("eo-failing"));
    fill(&straight)?;
    windowed_sum(&Store::open(&straight)?, None, n)?;
    fill(&failing)?;
    // Fails 150 records in, 50 after its checkpoint at 100; the store's
    // last handle then drops with those 50 records' writes pending.
    assert!(windowed_sum(&Store::open(&failing)?, Some(150), n).is_err());
    {
        let store = Store::open(&failing)?;
        let input = store.log::<u64>("input")?;
        assert_eq!(input.group("sum").committed()?, Some(100));
        assert_eq!(
            store.log::<(i64, u64)>("out")?.end(),
            9,
            "windows 0..9 closed by record 99"
        );
    }
    windowed_sum(&Store::open(&failing)?, None, n)?;
    let outputs = |dir: &PathBuf| -> Result<Vec<(i64, u64)>> {
        let store = Store::open(dir)?;
        let out = store.log::<(i64, u64)>("out")?;
        let mut reader = out.read(Offset::Start);
        let mut all = Vec::new();
        while all.len() < out.end() as usize {
            let r = futures::executor::block_on(reader.next()).ok_or("ended")??;
            all.push(r.value);
        }
        Ok(all)
    };
    let expected = outputs(&straight)?;
    assert_eq!(expected.len(), 99);
    assert_eq!(outputs(&failing)?, expected);
    Ok(())
}

#[test]
fn rollback_discards_pending_writes_and_moves_logs_and_readers_back() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual());
    let log = store.log::<u32>("l")?;
    let table = store.table::<u8, u32>("t")?;
    log.append(secs(1), &1)?;
    table.put(&0, &1)?;
    store.commit()?;
    let mut reader = log.read(Offset::Start);
    let waker = Waker::from(Arc::new(Counting::default()));
    log.append(secs(2), &2)?;
    log.append(secs(3), &3)?;
    table.put(&0, &3)?;
    let read = |reader: &mut timecast::store::LogReader<u32>| match poll(reader, &waker) {
        Poll::Ready(Some(Ok(r))) => Some((r.offset, r.value)),
        Poll::Ready(Some(Err(e))) => panic!("{e}"),
        _ => None,
    };
    assert_eq!(read(&mut reader), Some((0, 1)));
    assert_eq!(read(&mut reader), Some((1, 2))); // not yet committed
    assert_eq!(store.rollback(), 3);
    assert_eq!(
        (store.pending(), log.end(), table.get(&0)?),
        (0, 1, Some(1))
    );
    // A reader waiting at offset 9 (never passed the end) stays there.
    let mut ahead = log.read(Offset::At(9));
    assert_eq!(ahead.position(), 9);
    assert_eq!(log.append(secs(4), &4)?, 1);
    assert_eq!(read(&mut reader), Some((1, 4)), "back at the committed end");
    assert!(read(&mut reader).is_none());
    assert!(poll(&mut ahead, &waker).is_pending());
    assert_eq!(ahead.position(), 9);
    store.commit()?;
    assert_eq!(store.rollback(), 0);
    assert_eq!(log.end(), 2);
    Ok(())
}

/// A reader that misses two rollbacks, to ends 1 then 4, moves back to
/// the lower: the records it had read past 1 were replaced, though it is
/// below the later end.
#[test]
fn a_reader_that_missed_several_rollbacks_moves_back_to_the_lowest_end() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual());
    let log = store.log::<char>("l")?;
    log.append(secs(0), &'0')?;
    store.commit()?;
    log.append(secs(1), &'x')?;
    log.append(secs(2), &'y')?;
    let mut reader = log.read(Offset::Start);
    let waker = Waker::from(Arc::new(Counting::default()));
    let read = |reader: &mut timecast::store::LogReader<char>| match poll(reader, &waker) {
        Poll::Ready(Some(Ok(r))) => Some((r.offset, r.value)),
        Poll::Ready(Some(Err(e))) => panic!("{e}"),
        _ => None,
    };
    assert_eq!(read(&mut reader), Some((0, '0')));
    assert_eq!(read(&mut reader), Some((1, 'x')));
    assert_eq!(read(&mut reader), Some((2, 'y')));
    assert_eq!(store.rollback(), 2);
    for (i, c) in ['a', 'b', 'c'].into_iter().enumerate() {
        log.append(secs(3 + i as i64), &c)?;
    }
    store.commit()?;
    log.append(secs(9), &'d')?;
    assert_eq!(store.rollback(), 1);
    assert_eq!(log.end(), 4);
    assert_eq!(read(&mut reader), Some((1, 'a')));
    assert_eq!(read(&mut reader), Some((2, 'b')));
    assert_eq!(read(&mut reader), Some((3, 'c')));
    assert_eq!(read(&mut reader), None);
    Ok(())
}

#[test]
fn a_log_source_replays_its_records_in_virtual_time_then_follows_appends_live() -> Result {
    use std::cell::RefCell;
    use std::rc::Rc;
    use timecast::{now, process_stream, sleep_until};

    let store = Store::temporary()?;
    let log = store.log::<u32>("l")?;
    for i in 0..1_000u32 {
        log.append(secs(1_000 + i64::from(i)), &i)?;
    }
    let seen = Rc::new(RefCell::new(Vec::new()));
    let live = Rc::new(std::cell::Cell::new(false));
    let (s, l) = (seen.clone(), live.clone());
    let el = EventLoop::starting_at(secs(0)).simulated();
    let task = el.spawn(
        process_stream(
            move |ts: Timestamp, r: std::result::Result<Record<u32>, StoreError>| {
                let r = r.expect("every record decodes");
                // Each record at its own event time, on the loop's clock.
                assert_eq!(now(), ts);
                s.borrow_mut().push((r.offset, r.value, l.get()));
            },
        )
        .source(log.read(Offset::At(500)))
        .on_live_start(move || live.set(true)),
    );
    let writer = log.clone();
    el.spawn(async move {
        for i in 0..3 {
            sleep_until(secs(5_000 + i)).await;
            writer
                .append(now(), &(7_000 + i as u32))
                .expect("an append");
        }
        sleep_until(secs(6_000)).await;
        task.abort();
    });
    el.run()?;
    let seen = seen.take();
    assert_eq!(seen.len(), 503);
    let expected: Vec<_> = (500..1_000u64)
        .map(|o| (o, o as u32))
        .chain((0..3).map(|i| (1_000 + i, 7_000 + i as u32)))
        .collect();
    assert_eq!(
        seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        expected
    );
    assert!(
        seen[..500].iter().all(|s| !s.2),
        "the stored records are the past"
    );
    assert!(seen[500..].iter().all(|s| s.2), "the appends are live");
    Ok(())
}

#[test]
fn a_record_that_does_not_decode_reaches_a_log_sources_handler_as_an_error_naming_it() -> Result {
    use std::cell::RefCell;
    use std::rc::Rc;
    use timecast::process_stream;

    type Item = std::result::Result<Record<u32>, StoreError>;
    let store = Store::temporary()?;
    let log = store.log_with::<u32, _>("numbers", EvenOnly)?;
    for (t, v) in [(1, 0), (2, 2), (3, 3), (4, 4)] {
        log.append(secs(t), &v)?;
    }
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let el = EventLoop::starting_at(secs(0)).simulated();
    el.spawn(
        process_stream(move |ts: Timestamp, r: Item| {
            s.borrow_mut().push((
                ts.unix_secs(),
                r.map(|r| r.value).map_err(|e| e.to_string()),
            ))
        })
        .source(log.read(Offset::Start)),
    );
    el.run()?; // the reader stops at the error: the source ends
    let seen = seen.take();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[..2], [(1, Ok(0)), (2, Ok(2))]);
    let (t, e) = &seen[2];
    assert_eq!(
        *t, 2,
        "an error in the past is stamped with the last record's time"
    );
    let e = e.as_ref().expect_err("record 2 does not decode");
    assert!(e.contains("record 2 of log \"numbers\""), "{e}");
    // Skipped by policy, it is no error.
    let sum = std::rc::Rc::new(std::cell::Cell::new(0));
    let s = sum.clone();
    let skipping = log.read(Offset::Start).on_decode_error(DecodeErrors::Skip);
    let el = EventLoop::starting_at(secs(0)).simulated();
    let task = el.spawn(
        process_stream(move |_ts: Timestamp, r: Item| s.set(s.get() + r.expect("skipped").value))
            .source(skipping),
    );
    el.spawn(async move {
        sleep(Duration::from_secs(10)).await;
        task.abort();
    });
    el.run()?;
    assert_eq!(sum.get(), 6);
    Ok(())
}

#[test]
fn an_exactly_once_source_stopped_anywhere_resumes_with_nothing_lost_or_repeated() -> Result {
    use timecast::process_stream;

    let n = 2_000u64;
    let run = |dir: &PathBuf, stop_at: Option<u64>| -> Result {
        let store = Store::open(dir)?;
        let input = store.log::<u64>("input")?;
        let out = store.log::<u64>("out")?;
        let sum = store.table::<u8, u64>("sum")?;
        let source = input.group("g").consume().checkpoint_every(64);
        let el = EventLoop::starting_at(secs(0)).simulated();
        let task = el.spawn(
            process_stream(
                move |_ts: Timestamp, r: std::result::Result<Record<u64>, StoreError>| {
                    let r = r.expect("every record decodes");
                    if Some(r.offset) == stop_at {
                        panic!("stopped at {}", r.offset);
                    }
                    let s = sum.get(&0).expect("a get").unwrap_or(0) + r.value;
                    sum.put(&0, &s).expect("a put");
                    out.append(r.ts, &s).expect("an append");
                },
            )
            .source(source),
        );
        el.spawn(async move {
            sleep(Duration::from_secs(1_000_000)).await;
            task.abort();
        });
        let outcome = el.run();
        assert_eq!(outcome.is_err(), stop_at.is_some());
        Ok(())
    };
    let dir = scratch("eo-source");
    {
        let store = Store::open(&dir)?;
        let input = store.log::<u64>("input")?;
        for i in 0..n {
            input.append(secs(i as i64), &i)?;
        }
    }
    for stop in [100, 101, 700, 1_999] {
        run(&dir, Some(stop))?;
    }
    run(&dir, None)?;
    run(&dir, None)?; // a restart at the end outputs nothing
    let store = Store::open(&dir)?;
    let out = store.log::<u64>("out")?;
    assert_eq!(out.end(), n);
    let mut reader = out.read(Offset::Start);
    let mut total = 0;
    for i in 0..n {
        let r = futures::executor::block_on(reader.next()).ok_or("ended")??;
        total += i;
        assert_eq!((r.offset, r.value), (i, total));
    }
    Ok(())
}

/// A reader stopped by a record it cannot decode stays at that record: a
/// clean stop of an exactly-once consumer (`commit()`) does not commit
/// past it, so the next run meets it again.
#[test]
fn a_clean_stop_after_a_decode_error_does_not_skip_the_record() -> Result {
    let store = Store::temporary()?;
    let input = store.log_with::<u32, _>("in", EvenOnly)?;
    for v in [2, 4, 7, 8] {
        input.append(secs(i64::from(v)), &v)?;
    }
    let mut records = input.group("g").consume().checkpoint_every(100);
    let mut seen = Vec::new();
    futures::executor::block_on(async {
        while let Some(r) = records.next().await {
            match r {
                Ok(r) => seen.push(r.value),
                Err(e) => {
                    assert!(matches!(e, StoreError::LogDecode { offset: 2, .. }), "{e}");
                    break;
                }
            }
        }
    });
    records.commit()?;
    assert_eq!(seen, [2, 4]);
    assert_eq!(input.group("g").committed()?, Some(2));
    Ok(())
}

/// A log created in a batch that a rollback discards keeps its types: a
/// later run cannot open it with another value type.
#[test]
fn a_logs_types_survive_a_rollback_after_its_creation() -> Result {
    let dir = scratch("log-types");
    {
        let store = Store::open(&dir)?;
        store.set_commit_policy(CommitPolicy::manual());
        let log = store.log::<u64>("out")?;
        log.append(secs(1), &1)?;
        store.rollback();
        log.append(secs(2), &2)?;
        store.commit()?;
    }
    let store = Store::open(&dir)?;
    let wrong = store.log::<String>("out");
    let refused = matches!(wrong, Err(StoreError::TableTypes { .. }));
    drop(wrong);
    assert_eq!(store.log::<u64>("out")?.end(), 1);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(refused, "a log of u64 was reopened as a log of String");
    Ok(())
}

/// A tailing reader of appends not yet committed, while another thread
/// appends and rolls back, again and again: a rollback between the
/// reader's look at the log's end and its read of the records is no
/// error (it was reported as `Trimmed`, with no retention set).
#[test]
fn a_rollback_during_a_read_is_not_an_error() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual());
    let log = store.log::<u64>("l")?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (log, store, stop) = (log.clone(), store.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                log.append(Timestamp::UNIX_EPOCH, &1).expect("an append");
                store.rollback();
            }
        }
    });
    let mut reader = log.read(Offset::Start);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut failure = None;
    while std::time::Instant::now() < deadline {
        match poll(&mut reader, Waker::noop()) {
            Poll::Ready(Some(Err(e))) => {
                failure = Some(e.to_string());
                break;
            }
            Poll::Ready(None) => {
                failure = Some("the reader ended".into());
                break;
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer");
    assert_eq!(failure, None, "a tailing reader failed under rollbacks");
    Ok(())
}

/// A `try_process_stream` over a group's exactly-once reader stops at the
/// failing record without reading on, so its checkpoint never commits it:
/// a restart reads it again. Plain and async handlers, past and live.
#[test]
fn a_failing_handler_leaves_the_failing_record_uncommitted() -> Result {
    use timecast::source::try_process_stream;
    use timecast::store::Record;

    type Item = std::result::Result<Record<u64>, StoreError>;
    let fail_at_1 = |_ts: Timestamp, r: Item| match r {
        Ok(r) if r.offset == 1 => Err(format!("record {}", r.offset)),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    for run in ["plain", "async"] {
        let store = Store::temporary()?;
        let input = store.log::<u64>("in")?;
        for i in 0..4u64 {
            input.append(secs(i as i64 + 1), &i)?;
        }
        let reader = input.group("g").consume().checkpoint_every(2);
        let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
        let outcome = if run == "plain" {
            el.block_on(try_process_stream(fail_at_1).source(reader))
        } else {
            el.block_on(
                try_process_stream(move |ts: Timestamp, r: Item| async move { fail_at_1(ts, r) })
                    .source(reader),
            )
        };
        assert_eq!(outcome, Err("record 1".to_string()), "{run}");
        assert_eq!(input.group("g").committed()?, None, "{run}");
    }

    // Live: the first record appended fails, and is not committed.
    let store = Store::temporary()?;
    let input = store.log::<u64>("in")?;
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let appender = input.clone();
    el.spawn(async move {
        sleep(Duration::from_secs(5)).await;
        appender.append(secs(5), &0).unwrap();
        appender.append(secs(6), &1).unwrap();
    });
    let outcome = el.block_on(
        try_process_stream(|_ts: Timestamp, r: Item| Err::<(), _>(r.map(|r| r.offset)))
            .source(input.group("g").consume().checkpoint_every(1)),
    );
    assert!(matches!(outcome, Err(Ok(0))));
    assert_eq!(input.group("g").committed()?, None);
    Ok(())
}
