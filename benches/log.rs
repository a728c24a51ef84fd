//! The log: appends (one commit per 1 000, and one per record), reads of
//! a stored log, and the cost of exactly-once (a windowed sum over 100 000
//! records with its state in a table and its outputs in a log, with and
//! without atomic checkpoints every 1 000 records).
//!
//! Run with `cargo bench --bench log`. Without `--bench` (`cargo test
//! --benches`) each function runs once, as a smoke test.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use timecast::store::{CommitPolicy, Log, Offset, Store};
use timecast::Timestamp;

const BATCH: u64 = 1_000;
const EACH: u64 = 100;
const STORED: u64 = 100_000;

fn value(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761) % 1000
}

fn filled(n: u64) -> (Store, Log<u64>) {
    let store = Store::temporary().expect("a store");
    store.set_commit_policy(CommitPolicy::manual());
    let log = store.log::<u64>("in").expect("a log");
    for i in 0..n {
        log.append(Timestamp::from_unix_secs(i as i64), &value(i))
            .expect("append");
    }
    store.commit().expect("commit");
    (store, log)
}

/// The floor under a batched append: fjall alone writing the same keys
/// and values (an 8-byte offset; a 16-byte header and the value's bytes)
/// in one batch per 1 000, as a log's commit does.
fn append_floor(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let dir = std::env::temp_dir().join(format!("timecast-bench-log-raw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = fjall::Database::builder(&dir).open().expect("open fjall");
    let ks = db
        .keyspace("l", fjall::KeyspaceCreateOptions::default)
        .expect("a keyspace");
    let mut offset = 0u64;
    group.bench_function(BenchmarkId::new("fjall-floor", BATCH), |b| {
        b.iter(|| {
            let mut batch = db.batch().durability(Some(fjall::PersistMode::Buffer));
            for i in 0..BATCH {
                let mut v = Vec::with_capacity(24);
                v.extend_from_slice(&(offset as i64).to_be_bytes());
                v.extend_from_slice(&(offset as i64).to_be_bytes());
                v.extend_from_slice(&postcard::to_allocvec(&i).expect("encode"));
                batch.insert(&ks, offset.to_be_bytes(), v);
                offset += 1;
            }
            batch.commit().expect("commit");
        })
    });
    drop((ks, db));
    let _ = std::fs::remove_dir_all(&dir);
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("log/append");
    group.throughput(Throughput::Elements(BATCH));
    append_floor(&mut group);
    let store = Store::temporary().expect("a store");
    store.set_commit_policy(CommitPolicy::manual());
    let log = store.log::<u64>("l").expect("a log");
    let mut ts = 0;
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(BenchmarkId::new("batched", BATCH), |b| {
        b.iter(|| {
            for i in 0..BATCH {
                ts += 1;
                black_box(
                    log.append(Timestamp::from_unix_nanos(ts), &i)
                        .expect("append"),
                );
            }
            store.commit().expect("commit");
        })
    });
    group.throughput(Throughput::Elements(EACH));
    group.bench_function(BenchmarkId::new("commit_each", EACH), |b| {
        b.iter(|| {
            for i in 0..EACH {
                ts += 1;
                black_box(
                    log.append(Timestamp::from_unix_nanos(ts), &i)
                        .expect("append"),
                );
                store.commit().expect("commit");
            }
        })
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let mut group = c.benchmark_group("log/read");
    let (_store, log) = filled(STORED);
    group.throughput(Throughput::Elements(STORED));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("stored", STORED), |b| {
        b.iter(|| {
            let mut reader = log.read(Offset::Start);
            futures::executor::block_on(async {
                for _ in 0..STORED {
                    black_box(reader.next().await.expect("a record").expect("decodes"));
                }
            })
        })
    });
    group.finish();
}

/// The windowed sum: 100 s tumbling windows of event time.
fn pipeline(store: &Store, log: &Log<u64>, exactly_once: bool) {
    let output = store.log::<(i64, u64)>("out").expect("a log");
    let window = store.table::<u8, (i64, u64)>("window").expect("a table");
    let step = |ts: Timestamp, v: u64| {
        let w = ts.unix_secs() / 100;
        let mut acc = window.get(&0).expect("get");
        if let Some(a) = acc.filter(|a| a.0 != w) {
            output.append(ts, &a).expect("append");
            acc = None;
        }
        let mut a = acc.unwrap_or((w, 0));
        a.1 += v;
        window.put(&0, &a).expect("put");
    };
    futures::executor::block_on(async {
        if exactly_once {
            let mut records = log.group("sum").consume().checkpoint_every(1000);
            for _ in 0..STORED {
                let r = records.next().await.expect("a record").expect("decodes");
                step(r.ts, r.value);
            }
            records.commit().expect("commit");
        } else {
            let mut records = log.read(Offset::Start);
            for _ in 0..STORED {
                let r = records.next().await.expect("a record").expect("decodes");
                step(r.ts, r.value);
            }
            store.commit().expect("commit");
        }
    })
}

fn exactly_once(c: &mut Criterion) {
    let mut group = c.benchmark_group("log/windowed_sum");
    group.throughput(Throughput::Elements(STORED));
    group.sample_size(10);
    for (name, atomic, policy) in [
        ("commit_at_end", false, CommitPolicy::manual()),
        (
            "commit_every_2000_writes",
            false,
            CommitPolicy::manual().max_writes(2000),
        ),
        ("exactly_once_every_1000", true, CommitPolicy::manual()),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let (store, log) = filled(STORED);
                    store.set_commit_policy(policy);
                    (store, log)
                },
                |(store, log)| pipeline(&store, &log, atomic),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    append(&mut criterion);
    read(&mut criterion);
    exactly_once(&mut criterion);
    criterion.final_summary();
}
