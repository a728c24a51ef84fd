//! The store: reads through pending writes, commits, batching, faults, and
//! a child process killed with SIGKILL while it commits.
#![cfg(feature = "store")]

use std::cell::RefCell;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::ops::Bound;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use timecast::store::{codec::Codec, CommitPolicy, Json, Key, Store, StoreError, MAX_KEY_LEN};
use timecast::{sleep, EventLoop, Timestamp};

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("timecast-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn pending_writes_are_visible_to_every_read() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual());
    let t = store.table::<i64, String>("t")?;
    t.put(&1, &"one".into())?;
    t.put(&5, &"five".into())?;
    store.commit()?;
    // Pending: a new key, an overwrite, a removal.
    t.put(&3, &"three".into())?;
    t.put(&5, &"FIVE".into())?;
    t.remove(&1)?;
    assert_eq!(store.pending(), 3);
    assert_eq!(t.get(&1)?, None);
    assert_eq!(t.get(&5)?.as_deref(), Some("FIVE"));
    assert_eq!(t.len()?, 2);
    let all = t.range(..)?.collect::<std::result::Result<Vec<_>, _>>()?;
    assert_eq!(all, [(3, "three".to_string()), (5, "FIVE".to_string())]);
    let back = t
        .range(..)?
        .rev()
        .map(|e| e.map(|(k, _)| k))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    assert_eq!(back, [5, 3]);
    assert_eq!(t.at_or_before(&2)?, None); // 1 is removed, pending
    assert_eq!(t.at_or_before(&4)?, Some((3, "three".to_string())));
    // Another handle of the same table sees them too.
    let other = store.table::<i64, String>("t")?;
    assert_eq!(other.get(&3)?.as_deref(), Some("three"));
    store.commit()?;
    assert_eq!(store.pending(), 0);
    assert_eq!(t.range(..)?.count(), 2);
    Ok(())
}

#[test]
fn a_commit_spans_tables_and_survives_reopening() -> Result {
    let dir = scratch("reopen");
    {
        let store = Store::open(&dir)?;
        store.set_commit_policy(CommitPolicy::manual());
        let a = store.table::<u64, u64>("a")?;
        let b = store.table::<String, Vec<u8>>("b")?;
        a.put(&1, &10)?;
        b.put(&"x".into(), &vec![1, 2])?;
        store.commit()?;
        // Not committed explicitly: the drop of the last handle commits.
        a.put(&2, &20)?;
    }
    {
        let store = Store::open(&dir)?;
        let a = store.table::<u64, u64>("a")?;
        let b = store.table::<String, Vec<u8>>("b")?;
        assert_eq!(a.get(&1)?, Some(10));
        assert_eq!(a.get(&2)?, Some(20));
        assert_eq!(b.get(&"x".into())?, Some(vec![1, 2]));
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn batching_by_count_and_by_loop_time() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual().max_writes(3));
    let t = store.table::<u32, u32>("t")?;
    let mut pending = Vec::new();
    for i in 0..7 {
        t.put(&i, &i)?;
        pending.push(store.pending());
    }
    assert_eq!(pending, [1, 2, 0, 1, 2, 0, 1]);
    assert_eq!(store.commits(), 2);

    // In virtual time: a write 10 s after the oldest pending one commits.
    store.commit()?;
    store.set_commit_policy(CommitPolicy::manual().max_delay(Duration::from_secs(10)));
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let (t2, s2) = (t.clone(), store.clone());
    let seen = el.block_on(async move {
        let mut seen = Vec::new();
        for i in 0..6u32 {
            t2.put(&i, &i).unwrap();
            seen.push((timecast::now().unix_secs(), s2.pending()));
            sleep(Duration::from_secs(3)).await;
        }
        seen
    });
    // The first write's timer commits the four at 10 s; the write at 12 s
    // starts a new batch, whose timer is due at 22 s.
    assert_eq!(seen, [(0, 1), (3, 2), (6, 3), (9, 4), (12, 1), (15, 2)]);
    Ok(())
}

/// A batch that no later write fills is committed by the loop's timer, at
/// the first write's time plus the delay, in virtual time.
#[test]
fn a_batch_with_no_later_write_commits_on_the_loops_clock() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual().max_delay(Duration::from_secs(10)));
    let t2 = store.table::<u32, String>("t")?;
    let s2 = store.clone();
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let probes = Rc::new(RefCell::new(Vec::new()));
    let log = probes.clone();
    el.spawn(async move {
        t2.put(&1, &"one".to_string()).unwrap();
        sleep(Duration::from_secs(4)).await;
        t2.put(&2, &"two".to_string()).unwrap();
        for _ in 0..3 {
            sleep(Duration::from_secs(3)).await;
            log.borrow_mut()
                .push((timecast::now().unix_secs(), s2.pending(), s2.commits()));
        }
    });
    el.run()?;
    // 7 s: both pending; 10 s: the timer committed both, in one commit.
    assert_eq!(*probes.borrow(), [(7, 2, 0), (10, 0, 1), (13, 0, 1)]);
    assert_eq!(store.commits(), 1);
    Ok(())
}

#[test]
fn the_store_is_shared_across_threads() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual().max_writes(100));
    let threads = (0..4u64)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || -> std::result::Result<(), StoreError> {
                let t = store.table::<(u64, u64), u64>("t")?;
                for i in 0..500 {
                    t.put(&(n, i), &(n * i))?;
                }
                Ok(())
            })
        })
        .collect::<Vec<_>>();
    for t in threads {
        t.join().expect("a writer thread panicked")?;
    }
    store.sync()?;
    let t = store.table::<(u64, u64), u64>("t")?;
    assert_eq!(t.len()?, 2000);
    assert_eq!(t.get(&(3, 499))?, Some(3 * 499));
    Ok(())
}

#[test]
fn a_store_held_by_another_process_is_refused_naming_its_path() -> Result {
    let dir = scratch("held");
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "child_holds_a_store",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TIMECAST_CHILD_HOLD", &dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    while !line.contains("holding") {
        line.clear();
        assert!(out.read_line(&mut line)? > 0, "the child ended");
    }
    let err = Store::open(&dir).expect_err("the child holds the store");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    child.kill()?;
    child.wait()?;
    // Once the holder is gone, the store opens, intact.
    let store = Store::open(&dir)?;
    assert_eq!(store.table::<u8, u8>("t")?.get(&1)?, Some(1));
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Child mode of the test above: holds the store until killed.
#[test]
fn child_holds_a_store() -> Result {
    let Some(dir) = std::env::var_os("TIMECAST_CHILD_HOLD") else {
        return Ok(());
    };
    let store = Store::open(dir)?;
    store.table::<u8, u8>("t")?.put(&1, &1)?;
    println!("holding");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn reopening_a_table_with_other_types_names_the_table_and_both_types() -> Result {
    let store = Store::temporary()?;
    store.table::<String, u64>("counts")?;
    let err = store
        .table::<u64, u64>("counts")
        .expect_err("other key type");
    let msg = err.to_string();
    assert!(msg.contains("\"counts\""), "{msg}");
    assert!(
        msg.contains("alloc::string::String") && msg.contains("Table<u64, u64"),
        "{msg}"
    );
    let err = store
        .table_with::<String, u64, _>("counts", Json)
        .expect_err("other codec");
    assert!(err.to_string().contains("json"), "{err}");
    // Also across a reopen, when the types come from the store's records.
    let dir = scratch("types");
    drop(Store::open(&dir)?.table::<i32, String>("t")?);
    let err = Store::open(&dir)?
        .table::<i32, i32>("t")
        .expect_err("other value type");
    assert!(
        matches!(&err, StoreError::TableTypes { table, stored, requested }
            if table == "t" && stored.value.contains("String") && requested.value == "i32"),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Stores bytes that are not postcard.
struct Garbage;

impl Codec<String> for Garbage {
    fn name(&self) -> String {
        "garbage".into()
    }
    fn encode(
        &self,
        _: &String,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), timecast::store::codec::CodecError> {
        out.extend_from_slice(&[1, 0xFF, 0xFF]); // version 1, then a bad length
        Ok(())
    }
    fn decode(
        &self,
        bytes: &[u8],
    ) -> std::result::Result<String, timecast::store::codec::CodecError> {
        Codec::<String>::decode(&timecast::store::Binary, bytes)
    }
}

#[test]
fn a_value_that_does_not_decode_is_an_error_naming_table_and_key() -> Result {
    let store = Store::temporary()?;
    let t = store.table_with::<(String, u32), String, _>("weather", Garbage)?;
    t.put(&("oslo".into(), 7), &"🌧".into())?;
    for err in [
        t.get(&("oslo".into(), 7)).expect_err("garbage"),
        t.range(..)?
            .next()
            .expect("one entry")
            .expect_err("garbage"),
        t.at_or_before(&("zzz".into(), 0)).expect_err("garbage"),
    ] {
        let msg = err.to_string();
        assert!(
            msg.contains("\"weather\"") && msg.contains("(\"oslo\", 7)"),
            "{msg}"
        );
        assert!(err.source().is_some());
    }
    Ok(())
}

#[test]
fn a_path_that_cannot_be_created_is_an_error_naming_it() -> Result {
    let file = scratch("not-a-dir");
    std::fs::write(&file, b"a file")?;
    let path = file.join("store");
    let err = Store::open(&path).expect_err("a file is in the way");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.source().is_some());
    std::fs::remove_file(&file)?;
    Ok(())
}

// ---- Killed by SIGKILL while committing ----

const KILLS: usize = 20;

/// Child mode: commits forever into two tables; after each commit prints
/// its number. Commit `n` writes `n` into `a` and `b` under key `n % 64`,
/// and the counter under key `u64::MAX`, in one atomic commit.
#[test]
fn child_commits_until_killed() -> Result {
    let Some(dir) = std::env::var_os("TIMECAST_CHILD_COMMIT") else {
        return Ok(());
    };
    let store = Store::open(dir)?;
    store.set_commit_policy(CommitPolicy::manual());
    let a = store.table::<u64, u64>("a")?;
    let b = store.table::<u64, (u64, String)>("b")?;
    let mut n = a.get(&u64::MAX)?.unwrap_or(0);
    loop {
        n += 1;
        for i in 0..8 {
            a.put(&((n + i) % 64), &n)?;
            b.put(&((n + i) % 64), &(n, "x".repeat(100)))?;
        }
        a.put(&u64::MAX, &n)?;
        store.commit()?;
        println!("{n}");
    }
}

#[test]
fn commits_survive_sigkill_whole_and_never_partial() -> Result {
    let dir = scratch("sigkill");
    let mut rng = 0x853C_49E6_748F_EA9Bu64;
    let mut acknowledged = 0u64;
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "child_commits_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TIMECAST_CHILD_COMMIT", &dir)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        // Let it commit a random number of times, then kill it mid-loop.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let commits_before_kill = 1 + rng % 200;
        let mut line = String::new();
        for _ in 0..commits_before_kill {
            line.clear();
            if out.read_line(&mut line)? == 0 {
                break;
            }
            if let Ok(n) = line.trim().parse::<u64>() {
                acknowledged = acknowledged.max(n);
            }
        }
        child.kill()?; // SIGKILL
        child.wait()?;

        let store = Store::open(&dir)?;
        let a = store.table::<u64, u64>("a")?;
        let b = store.table::<u64, (u64, String)>("b")?;
        let last = a.get(&u64::MAX)?.unwrap_or(0);
        assert!(
            last >= acknowledged,
            "kill {kill}: commit {acknowledged} was acknowledged, the store has {last}"
        );
        // Commit `last` is there in full, with nothing of a later one.
        for i in 0..8 {
            let k = (last + i) % 64;
            assert_eq!(
                a.get(&k)?,
                Some(last),
                "kill {kill}: key {k} of commit {last}"
            );
            let (nb, pad) = b.get(&k)?.expect("b agrees with a");
            assert_eq!(
                (nb, pad.len()),
                (last, 100),
                "kill {kill}: b disagrees at {k}"
            );
        }
        for k in 0..64 {
            assert_eq!(
                a.get(&k)?,
                b.get(&k)?.map(|(n, _)| n),
                "kill {kill}: key {k}"
            );
            assert!(a.get(&k)?.is_none_or(|n| n <= last));
        }
        acknowledged = last;
    }
    assert!(
        acknowledged > KILLS as u64,
        "the children committed {acknowledged} times"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

// ---- The table as a sink ----

#[test]
fn handles_are_send_sync_and_unpin() {
    fn check<T: Send + Sync + Unpin>() {}
    fn send<T: Send>() {}
    check::<Store>();
    check::<timecast::store::Table<String, u64>>();
    check::<timecast::store::Table<u64, Vec<u8>, Json>>();
    check::<StoreError>();
    check::<CommitPolicy>();
    send::<timecast::store::Range<u64, String>>();
}

/// Two subscribers, one slow: each sees every update sent after it
/// subscribed, in order; the value is readable from the table when its
/// update arrives.
#[test]
fn every_subscriber_sees_every_later_update_and_the_put_first() -> Result {
    use futures::StreamExt;
    use timecast::sink::handle;

    let store = Store::temporary()?;
    let table = store.table::<u64, String>("t")?;
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let mut seen = Vec::new();
    for slow in [false, true] {
        let mut updates = table.updates();
        let reader = table.clone();
        seen.push(el.spawn(async move {
            let mut got = Vec::new();
            while let Some((k, v)) = updates.next().await {
                // A put is visible to get before its update is published.
                assert_eq!(reader.get(&k).unwrap().as_deref(), Some(v.as_str()));
                got.push((timecast::now().unix_secs(), k));
                if slow {
                    sleep(Duration::from_secs(10)).await;
                }
                if k == 99 {
                    break;
                }
            }
            got
        }));
    }
    let source = futures::stream::iter(0..100u64);
    let pipeline = handle(source, |k| Some((k, k.to_string()))).sink_to(table.clone());
    el.block_on(pipeline.run())?;
    el.run()?;
    let fast = el.block_on(seen.remove(0))?;
    let slow = el.block_on(seen.remove(0))?;
    assert_eq!(
        fast.iter().map(|(_, k)| *k).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    assert_eq!(
        slow.iter().map(|(_, k)| *k).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    // Backpressure: the slow subscriber paced the pipeline, so the fast
    // one received the last updates late in virtual time.
    assert_eq!(slow.last().map(|(t, _)| *t), Some(990));
    assert!(
        fast.last().map(|(t, _)| *t) >= Some(800),
        "{:?}",
        fast.last()
    );
    assert_eq!(table.len()?, 100);
    Ok(())
}

/// A codec that cannot encode odd numbers.
struct EvenOnly;

impl Codec<u64> for EvenOnly {
    fn name(&self) -> String {
        "even-only".into()
    }
    fn encode(
        &self,
        v: &u64,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), timecast::store::codec::CodecError> {
        if v % 2 == 1 {
            return Err(format!("{v} is odd").into());
        }
        out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn decode(&self, b: &[u8]) -> std::result::Result<u64, timecast::store::codec::CodecError> {
        Ok(u64::from_be_bytes(b.try_into()?))
    }
}

/// A table's error stops the pipeline and comes out of `run`, whichever
/// side of a closure sink the table is on.
#[test]
fn a_table_sink_error_stops_the_pipeline_and_is_returned() -> Result {
    use timecast::sink::handle;

    let store = Store::temporary()?;
    let table = store.table_with::<String, u64, _>("t", EvenOnly)?;
    let source = || futures::stream::iter([0u64, 2, 3, 4]);

    let mut printed = Vec::new();
    let run = handle(source(), |n| Some((format!("k{n}"), n)))
        .sink_to(table.clone())
        .sink(|(k, _)| printed.push(k))
        .run();
    let err = futures::executor::block_on(run).expect_err("3 is odd");
    assert!(
        matches!(&err, StoreError::Encode { table, key, .. } if table == "t" && key == "\"k3\""),
        "{err:?}"
    );
    assert_eq!(printed, ["k0", "k2"]);

    let mut printed = Vec::new();
    let run = handle(source(), |n| Some((format!("k{n}"), n)))
        .sink(|(k, _)| printed.push(k))
        .sink_to(table.clone())
        .run();
    let err: StoreError = futures::executor::block_on(run).expect_err("3 is odd");
    assert!(err.to_string().contains("\"t\""), "{err}");
    assert_eq!(printed, ["k0", "k2", "k3"]);
    assert_eq!(table.get(&"k4".into())?, None);
    Ok(())
}

/// `sync_async` commits at once and resolves once the disk acknowledged,
/// on a loop whose other tasks keep running.
#[test]
fn sync_async_commits_at_once_and_resolves_on_the_loop() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual());
    let t = store.table::<u8, u8>("t")?;
    t.put(&1, &1)?;
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let other = el.spawn(async { 7 });
    let syncing = store.sync_async();
    assert_eq!(store.pending(), 0); // committed before the future is polled
    el.block_on(syncing)?;
    assert_eq!(el.block_on(other)?, 7);
    assert_eq!(store.commits(), 1);
    Ok(())
}

/// A range reads a snapshot taken when it is made: a commit made while it
/// is read shows no part of itself, whether it removes or adds entries.
#[test]
fn a_range_reads_a_snapshot_that_later_commits_do_not_change() -> Result {
    let store = Store::temporary()?;
    let t = store.table::<u32, u32>("t")?;
    for i in 0..5 {
        t.put(&i, &i)?; // each committed (the default policy)
    }
    let keys = |r: timecast::store::Range<u32, u32>| {
        r.map(|e| e.map(|(k, _)| k))
            .collect::<std::result::Result<Vec<_>, _>>()
    };
    let before_remove = t.range(..)?;
    t.remove(&3)?;
    let before_put = t.range(..)?;
    t.put(&7, &7)?;
    let reversed = t.range(..)?.rev();
    t.put(&8, &8)?;
    assert_eq!(keys(before_remove)?, [0, 1, 2, 3, 4]);
    assert_eq!(keys(before_put)?, [0, 1, 2, 4]);
    let reversed = reversed
        .map(|e| e.map(|(k, _)| k))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    assert_eq!(reversed, [7, 4, 2, 1, 0]);
    Ok(())
}

/// Bounds that hold no key give an empty range, with or without pending
/// writes, never a panic.
#[test]
fn a_range_with_empty_or_inverted_bounds_is_empty() -> Result {
    use std::ops::Bound::{Excluded, Included};
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual());
    let t = store.table::<u32, u32>("t")?;
    for pending in [true, false] {
        t.put(&4, &4)?;
        if !pending {
            store.commit()?;
        }
        assert_eq!(t.range((Included(5), Excluded(3)))?.count(), 0);
        assert_eq!(t.range(4..4)?.count(), 0);
        assert_eq!(t.range((Excluded(4), Excluded(4)))?.count(), 0);
        assert_eq!(t.range((Excluded(4), Included(4)))?.count(), 0);
        assert_eq!(t.range((Included(4), Included(4)))?.count(), 1);
        assert_eq!(t.range((Excluded(3), Excluded(5)))?.rev().count(), 1);
    }
    Ok(())
}

/// A batch begun outside a loop (on the wall clock) and continued on a
/// replay loop (whose virtual time lies long before the wall clock) has an
/// age on no single clock: it is committed at the next write, not left
/// pending forever.
#[test]
fn max_delay_commits_a_batch_begun_on_another_clock() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual().max_delay(Duration::from_secs(10)));
    let t = store.table::<u32, u32>("t")?;
    t.put(&0, &0)?; // outside a loop: the wall clock
    let el = EventLoop::starting_at(Timestamp::from_unix_secs(1_000_000)).simulated();
    let (t2, s2) = (t.clone(), store.clone());
    let pending = el.block_on(async move {
        let mut pending = Vec::new();
        for i in 1..4u32 {
            t2.put(&i, &i).unwrap();
            pending.push(s2.pending());
            sleep(Duration::from_secs(4)).await;
        }
        pending
    });
    // The first write on the loop finds a batch of unknown age and commits
    // it; from then on the loop's clock times the batch (its timer is due
    // at 14 s, after the writes at 4 s and 8 s).
    assert_eq!(pending, [0, 1, 2]);
    Ok(())
}

/// A key the database cannot hold (more than `MAX_KEY_LEN` bytes) is an
/// error naming the table, written nowhere: the batch stays committable,
/// and the store goes on working.
#[test]
fn an_oversized_key_is_refused_and_the_store_goes_on() -> Result {
    let store = Store::temporary()?;
    store.set_commit_policy(CommitPolicy::manual());
    let t = store.table::<String, u8>("t")?;
    t.put(&"ok".into(), &1)?;
    let big = "x".repeat(MAX_KEY_LEN + 1);
    match t.put(&big, &2) {
        Err(StoreError::KeySize { table, len, .. }) => {
            assert_eq!(table, "t");
            assert!(len > MAX_KEY_LEN);
        }
        other => panic!("expected KeySize, got {other:?}"),
    }
    assert!(matches!(t.remove(&big), Err(StoreError::KeySize { .. })));
    store.commit()?;
    assert_eq!(t.get(&"ok".into())?, Some(1));
    assert_eq!(t.get(&big)?, None);
    Ok(())
}

/// A table name must be 1 to `MAX_KEY_LEN` bytes: others are an error,
/// not a panic inside the database.
#[test]
fn a_table_name_that_is_empty_or_too_long_is_refused() -> Result {
    let store = Store::temporary()?;
    assert!(matches!(
        store.table::<u8, u8>(""),
        Err(StoreError::TableName { len: 0, .. })
    ));
    let long = "t".repeat(MAX_KEY_LEN + 1);
    assert!(matches!(
        store.table::<u8, u8>(&long),
        Err(StoreError::TableName { .. })
    ));
    store.table::<u8, u8>("t")?.put(&1, &1)?;
    Ok(())
}

/// Names the store keeps for the tables of its logs and checkpoints are
/// refused, with an error that says why: a table may not take one, nor a
/// log or checkpoint name one of another's (a `/` in its name).
#[test]
fn names_the_store_keeps_for_itself_are_refused() -> Result {
    use timecast::store::{Checkpoint, Dependency};

    let store = Store::temporary()?;
    let log = store.log::<u8>("l")?;
    log.append(Timestamp::UNIX_EPOCH, &1)?;
    log.group("g").commit(1)?;
    for name in [
        "timecast.logs",
        "timecast.log/l",
        "timecast.log/l/groups",
        "timecast.x",
    ] {
        let refused = store.table::<String, u64>(name);
        assert!(
            matches!(refused, Err(StoreError::ReservedName { of: "table", .. })),
            "{name}"
        );
    }
    let refused = store.log::<u8>("l/groups").map(drop).unwrap_err();
    assert!(matches!(
        refused,
        StoreError::ReservedName { of: "log", .. }
    ));
    assert_eq!(
        refused.to_string(),
        "log name \"l/groups\" holds a `/`, which the store keeps to name the log's own \
         tables: use another name"
    );
    let c = Checkpoint::<u8>::new("c/dependencies")
        .store(&store)
        .dependency(Dependency::new("d"));
    assert!(matches!(
        c.state(),
        Err(StoreError::ReservedName {
            of: "checkpoint",
            ..
        })
    ));
    // The log is untouched.
    assert_eq!((log.end(), log.group("g").committed()?), (1, Some(1)));
    assert_eq!(
        store
            .table::<u8, u8>("timecast.")
            .map(drop)
            .unwrap_err()
            .to_string(),
        "table name \"timecast.\" starts with `timecast.`, which the store keeps for the \
         tables of its logs and checkpoints: use another name"
    );
    Ok(())
}

/// A `u64` codec whose name holds a line break.
struct Multiline;

impl Codec<u64> for Multiline {
    fn name(&self) -> String {
        "le64\nv2".into()
    }
    fn encode(
        &self,
        value: &u64,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), timecast::store::codec::CodecError> {
        out.extend_from_slice(&value.to_le_bytes());
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> std::result::Result<u64, timecast::store::codec::CodecError> {
        Ok(u64::from_le_bytes(bytes.try_into()?))
    }
}

/// A codec's name may hold line breaks: its table reopens with it.
#[test]
fn a_table_whose_codec_name_has_a_line_break_reopens() -> Result {
    let dir = scratch("multiline");
    {
        let store = Store::open(&dir)?;
        store
            .table_with::<u8, u64, _>("t", Multiline)?
            .put(&1, &7)?;
    }
    let store = Store::open(&dir)?;
    let value = store.table_with::<u8, u64, _>("t", Multiline)?.get(&1)?;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(value, Some(7));
    Ok(())
}

/// A key type of one's own that encodes to no bytes.
#[derive(Debug, Clone, PartialEq)]
struct Nothing;

impl Key for Nothing {
    fn encode_key(&self, _out: &mut Vec<u8>) {}
    fn decode_key(_bytes: &mut &[u8]) -> Option<Self> {
        Some(Nothing)
    }
}

/// A raw byte key, to put empty and long keys next to stored ones.
#[derive(Debug, Clone, PartialEq)]
struct Raw(Vec<u8>);

impl Key for Raw {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn decode_key(bytes: &mut &[u8]) -> Option<Self> {
        let v = bytes.to_vec();
        *bytes = &[];
        Some(Raw(v))
    }
}

fn raw_values<I: Iterator<Item = std::result::Result<(Raw, u8), StoreError>>>(
    it: I,
) -> Result<Vec<u8>> {
    Ok(it
        .map(|e| e.map(|(_, v)| v))
        .collect::<std::result::Result<_, _>>()?)
}

/// Every read with a key the store cannot hold (empty, or longer than
/// `MAX_KEY_LEN`), over committed and pending writes: no panic, nothing
/// found under it, and as a bound it orders as it would.
#[test]
fn reads_with_empty_and_oversized_keys_order_as_they_would() -> Result {
    for manual in [false, true] {
        let store = Store::temporary()?;
        if manual {
            store.set_commit_policy(CommitPolicy::manual());
        }
        let t = store.table::<Raw, u8>("t")?;
        let max = vec![b'b'; MAX_KEY_LEN];
        t.put(&Raw(vec![0]), &0)?;
        t.put(&Raw(vec![b'a']), &1)?;
        t.put(&Raw(max.clone()), &2)?;
        t.put(&Raw(vec![b'c']), &3)?;
        let empty = Raw(vec![]);
        let big = Raw(vec![b'b'; MAX_KEY_LEN + 5]);
        assert!(matches!(
            t.put(&empty, &9),
            Err(StoreError::KeySize { len: 0, .. })
        ));
        assert_eq!(t.get(&empty)?, None);
        assert_eq!(t.at_or_before(&empty)?, None);
        assert_eq!(t.at_or_before(&big)?.map(|(_, v)| v), Some(2));
        assert_eq!(
            raw_values(t.range(big.clone()..big.clone())?)?,
            Vec::<u8>::new()
        );
        assert_eq!(
            raw_values(t.range(big.clone()..=big.clone())?)?,
            Vec::<u8>::new()
        );
        assert_eq!(
            raw_values(t.range((Bound::Excluded(big.clone()), Bound::Excluded(big.clone())))?)?,
            Vec::<u8>::new()
        );
        assert_eq!(raw_values(t.range(..empty.clone())?)?, Vec::<u8>::new());
        assert_eq!(raw_values(t.range(..=empty.clone())?)?, Vec::<u8>::new());
        assert_eq!(raw_values(t.range(empty.clone()..)?)?, [0, 1, 2, 3]);
        assert_eq!(
            raw_values(t.range((Bound::Excluded(empty.clone()), Bound::Unbounded))?)?,
            [0, 1, 2, 3]
        );
        assert_eq!(
            raw_values(t.range(Raw(vec![b'c'])..empty.clone())?)?,
            Vec::<u8>::new()
        );
        assert_eq!(raw_values(t.range(empty.clone()..big.clone())?)?, [0, 1, 2]);
        assert_eq!(raw_values(t.range(big.clone()..)?.rev())?, [3]);
        assert_eq!(raw_values(t.range(Raw(max.clone())..big.clone())?)?, [2]);
        assert_eq!(
            raw_values(t.range(big.clone()..Raw(max.clone()))?)?,
            Vec::<u8>::new()
        );
        // A store of keys that encode to nothing.
        let n = store.table::<Nothing, u8>("n")?;
        assert!(matches!(
            n.put(&Nothing, &1),
            Err(StoreError::KeySize { .. })
        ));
        assert!(matches!(
            n.remove(&Nothing),
            Err(StoreError::KeySize { .. })
        ));
        assert_eq!(n.get(&Nothing)?, None);
        assert_eq!(n.range(Nothing..=Nothing)?.count(), 0);
        store.commit()?;
    }
    Ok(())
}

/// A log's tables are named after it: a name that makes them too long is
/// an error, not a panic; one just short enough works.
#[test]
fn a_log_name_too_long_for_its_tables_is_an_error() -> Result {
    let store = Store::temporary()?;
    for len in [MAX_KEY_LEN - 19, MAX_KEY_LEN] {
        let name = "l".repeat(len);
        assert!(
            matches!(store.log::<u8>(&name), Err(StoreError::TableName { .. })),
            "{len}"
        );
    }
    let ok = "l".repeat(MAX_KEY_LEN - 20);
    store.log::<u8>(&ok)?.append(Timestamp::UNIX_EPOCH, &1)?;
    Ok(())
}
