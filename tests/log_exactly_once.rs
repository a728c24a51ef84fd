//! Exactly-once: a windowed aggregation over a log, its window state in a
//! table (or in a durable tumbling-window operator) and its outputs in a
//! log, killed with SIGKILL at random moments and restarted, outputs
//! exactly what an uninterrupted run outputs.
#![cfg(all(feature = "store", unix))]

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use timecast::ops::StreamOps;
use timecast::store::{CommitPolicy, Store};
use timecast::Timestamp;

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

const RECORDS: u64 = 200_000;
/// Tumbling windows of 100 s of event time; one record per second.
const WINDOW_SECS: i64 = 100;
/// Records between atomic checkpoints: small, so that each run between
/// two kills takes several.
const CHECKPOINT_EVERY: u64 = 100;

/// (window, sum, count)
type Output = (i64, u64, u64);

fn value(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761) % 1000
}

/// The aggregation, uninterrupted, in memory: the expected output.
fn expected() -> Vec<(Timestamp, Output)> {
    let mut out = Vec::new();
    let mut acc: Option<Output> = None;
    for i in 0..RECORDS {
        let w = i as i64 / WINDOW_SECS;
        if let Some(a) = acc.filter(|a| a.0 != w) {
            out.push((Timestamp::from_unix_secs((a.0 + 1) * WINDOW_SECS), a));
            acc = None;
        }
        let a = acc.get_or_insert((w, 0, 0));
        a.1 += value(i);
        a.2 += 1;
    }
    if let Some(a) = acc {
        out.push((Timestamp::from_unix_secs((a.0 + 1) * WINDOW_SECS), a));
    }
    out
}

/// Tells the parent how many input records the pipeline has handled, every
/// thousand records, so that it can kill it at a point of its choosing.
fn progress(handled: u64) {
    if handled.is_multiple_of(1000) {
        println!("at {handled}");
    }
}

/// The pipeline: resumes from the group's offset, its window in a table.
fn aggregate(store: &Store) -> Result {
    let input = store.log::<u64>("in")?;
    let output = store.log::<Output>("out")?;
    let window = store.table::<u8, Output>("window")?;
    let group = input.group("aggregate");
    if group.committed()? == Some(RECORDS) {
        return Ok(()); // done: a restart changes nothing
    }
    let mut records = group.consume().checkpoint_every(CHECKPOINT_EVERY);
    futures::executor::block_on(async {
        while let Some(r) = records.next().await {
            let r = r?;
            let w = r.ts.unix_secs() / WINDOW_SECS;
            let mut acc = window.get(&0)?;
            if let Some(a) = acc.filter(|a| a.0 != w) {
                output.append(Timestamp::from_unix_secs((a.0 + 1) * WINDOW_SECS), &a)?;
                acc = None;
            }
            let mut a = acc.unwrap_or((w, 0, 0));
            a.1 += r.value;
            a.2 += 1;
            window.put(&0, &a)?;
            progress(r.offset + 1);
            if r.offset == RECORDS - 1 {
                output.append(Timestamp::from_unix_secs((a.0 + 1) * WINDOW_SECS), &a)?;
                window.remove(&0)?;
                break;
            }
        }
        records.commit()?;
        Ok(())
    })
}

/// The same pipeline with the window in a durable tumbling-window
/// operator: its state saved in the checkpoints, not in a table.
fn aggregate_durable(store: &Store) -> Result {
    let input = store.log::<u64>("in")?;
    let output = store.log::<Output>("out")?;
    let group = input.group("aggregate");
    let done = group.committed()?.unwrap_or(0);
    if done == RECORDS {
        return Ok(());
    }
    let records = group.consume().checkpoint_every(CHECKPOINT_EVERY);
    let scope = records.scope()?;
    let windows = records
        .take((RECORDS - done) as usize)
        .map(|r| r.map(|r| (r.ts, r.value)).expect("the input decodes"))
        .tumbling(Duration::from_secs(WINDOW_SECS as u64));
    let mut windows = scope.durable("windows", windows)?;
    futures::executor::block_on(async {
        while let Some(w) = windows.next().await {
            let w = w?;
            let a = (
                w.start.unix_secs() / WINDOW_SECS,
                w.values().sum::<u64>(),
                w.items.len() as u64,
            );
            output.append(w.end, &a)?;
            progress((a.0 as u64 + 1) * WINDOW_SECS as u64);
        }
        windows.commit()?;
        Ok(())
    })
}

/// Child mode of the tests below.
#[test]
fn child_aggregates() -> Result {
    let Some(dir) = std::env::var_os("TIMECAST_CHILD_AGGREGATE") else {
        return Ok(());
    };
    let store = Store::open(dir)?;
    if std::env::var_os("TIMECAST_CHILD_DURABLE").is_some_and(|v| !v.is_empty()) {
        aggregate_durable(&store)?;
    } else {
        aggregate(&store)?;
    }
    println!("done");
    Ok(())
}

fn outputs(store: &Store) -> Result<Vec<(Timestamp, Output)>> {
    let output = store.log::<Output>("out")?;
    let end = output.end();
    let mut reader = output.read(timecast::store::Offset::Start);
    let mut all = Vec::new();
    futures::executor::block_on(async {
        while (all.len() as u64) < end {
            let r = reader.next().await.expect("a record")?;
            assert_eq!(r.offset, all.len() as u64, "dense offsets");
            all.push((r.ts, r.value));
        }
        Ok::<_, timecast::store::StoreError>(())
    })?;
    Ok(all)
}

#[test]
fn a_pipeline_killed_at_random_outputs_exactly_an_uninterrupted_run() -> Result {
    killed_at_random(false)
}

#[test]
fn a_pipeline_with_durable_windows_killed_at_random_outputs_exactly_an_uninterrupted_run() -> Result
{
    killed_at_random(true)
}

/// The pipeline (`durable`: its window a durable operator) killed with
/// SIGKILL at random moments at least ten times, then run to the end.
fn killed_at_random(durable: bool) -> Result {
    let dir = std::env::temp_dir().join(format!(
        "timecast-exactly-once-{durable}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = Store::open(&dir)?;
        store.set_commit_policy(CommitPolicy::manual());
        let input = store.log::<u64>("in")?;
        for i in 0..RECORDS {
            input.append(Timestamp::from_unix_secs(i as i64), &value(i))?;
        }
        store.commit()?;
    }
    let run_child = || {
        Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "child_aggregates",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TIMECAST_CHILD_AGGREGATE", &dir)
            .env("TIMECAST_CHILD_DURABLE", if durable { "1" } else { "" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    };
    // Waits until the child reports having handled at least `target`
    // records; false if it ended first.
    let reached = |child: &mut std::process::Child, target: u64| -> Result<bool> {
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next().transpose()? {
            let handled = line.strip_prefix("at ").and_then(|n| n.parse::<u64>().ok());
            if handled.is_some_and(|n| n >= target) {
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(true);
            }
        }
        Ok(false)
    };
    // Kills at pseudo-random points of the input, at most 16 000 records
    // apart so that twelve kills happen before the end whatever the
    // machine's speed; the kill lands while the child goes on, a random
    // fraction of a few milliseconds after it passed the point.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut target = 0;
    let mut kills = 0;
    let mut progress = Vec::new();
    while kills < 12 {
        target += 4_000 + next() % 12_000;
        let mut child = run_child()?;
        let kill_now = reached(&mut child, target)?;
        std::thread::sleep(Duration::from_micros(next() % 3_000));
        if !kill_now || child.try_wait()?.is_some() {
            break; // finished before the kill
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        kills += 1;
        let store = Store::open(&dir)?;
        progress.push(store.log::<u64>("in")?.group("aggregate").committed()?);
    }
    assert!(
        kills >= 10,
        "only {kills} kills before the run finished: {progress:?}"
    );
    // Killed mid-run: not finished yet, and progress was made between kills.
    assert!(progress.iter().all(|p| *p != Some(RECORDS)), "{progress:?}");
    assert!(
        progress.windows(2).filter(|w| w[1] > w[0]).count() >= 8,
        "too little progress between kills: {progress:?}"
    );
    let status = run_child()?.wait()?;
    assert!(status.success());
    let want = expected();
    assert_eq!(want.len(), 2000);
    {
        let store = Store::open(&dir)?;
        assert_eq!(outputs(&store)?, want, "after {kills} kills: {progress:?}");
    }
    // A restart that changes nothing: nothing is output again.
    assert!(run_child()?.wait()?.success());
    let store = Store::open(&dir)?;
    assert_eq!(outputs(&store)?, want);
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
