//! The store against the database it is built on.
//!
//! The same operations through fjall's own API and through timecast's
//! tables, side by side, on `u64` keys (big-endian, as `Key` encodes them)
//! and 100-byte values (a `String`; timecast encodes it with the `Binary`
//! codec, one version byte and a length before the bytes):
//!
//! - `put_batched`: 1 000 puts, then one commit (buffered: survives
//!   `kill -9`);
//! - `put_each`: one commit per put;
//! - `get`: random existing keys of a table of 100 000 entries;
//! - `at_or_before`: random keys between the stored ones (the stored keys
//!   are even, the probes odd), the as-of probe of a temporal join.
//!
//! Run with `cargo bench --bench store`. Without `--bench` (`cargo test
//! --benches`) each function runs once, as a smoke test.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use timecast::store::{CommitPolicy, Store, Table};

const ENTRIES: u64 = 100_000;
const BATCH: u64 = 1_000;
const OPS: u64 = 1_000;

fn value() -> String {
    "x".repeat(100)
}

/// A xorshift step: random keys without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct Raw {
    db: Database,
    ks: fjall::Keyspace,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn raw() -> Raw {
    let dir = std::env::temp_dir().join(format!("timecast-bench-raw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::builder(&dir).open().expect("open fjall");
    let ks = db
        .keyspace("t", || {
            // The memtable size timecast's tables get, so that both sides
            // keep as much in memory.
            KeyspaceCreateOptions::default().max_memtable_size(Store::DEFAULT_MEMTABLE_SIZE)
        })
        .expect("keyspace");
    Raw {
        db,
        ks,
        _dir: TempDir(dir),
    }
}

fn table() -> (Store, Table<u64, String>) {
    let store = Store::temporary().expect("open the store");
    store.set_commit_policy(CommitPolicy::manual());
    let table = store.table::<u64, String>("t").expect("table");
    (store, table)
}

fn fill_raw(raw: &Raw) {
    let v = value();
    for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(BATCH as usize) {
        let mut batch = raw.db.batch().durability(Some(PersistMode::Buffer));
        for &i in chunk {
            batch.insert(&raw.ks, (2 * i).to_be_bytes(), v.as_bytes());
        }
        batch.commit().expect("commit");
    }
}

fn fill_table(store: &Store, table: &Table<u64, String>) {
    let v = value();
    for i in 0..ENTRIES {
        table.put(&(2 * i), &v).expect("put");
        if i % BATCH == BATCH - 1 {
            store.commit().expect("commit");
        }
    }
    store.commit().expect("commit");
}

fn put_batched(c: &mut Criterion) {
    let mut group = c.benchmark_group("put_batched");
    group.throughput(Throughput::Elements(BATCH));
    let v = value();
    // Each contender on a fresh database, the other one closed: the
    // background flushes of one do not slow the other.
    let raw = raw();
    let mut key = 0u64;
    group.bench_function(BenchmarkId::new("fjall", BATCH), |b| {
        b.iter(|| {
            let mut batch = raw.db.batch().durability(Some(PersistMode::Buffer));
            for _ in 0..BATCH {
                key += 1;
                batch.insert(&raw.ks, key.to_be_bytes(), v.as_bytes());
            }
            batch.commit().expect("commit");
        })
    });
    drop(raw);
    let (store, t) = table();
    let mut key = 0u64;
    group.bench_function(BenchmarkId::new("timecast", BATCH), |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                key += 1;
                t.put(&key, &v).expect("put");
            }
            store.commit().expect("commit");
        })
    });
    group.finish();
}

/// One commit per put: fjall's `insert` (journal flushed to the OS on each
/// write) against a table under the default `CommitPolicy::every_write`.
fn put_each(c: &mut Criterion) {
    let mut group = c.benchmark_group("put_each");
    group.throughput(Throughput::Elements(OPS));
    let v = value();
    let raw = raw();
    let mut key = 0u64;
    group.bench_function("fjall", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                key += 1;
                raw.ks
                    .insert(key.to_be_bytes(), v.as_bytes())
                    .expect("insert");
            }
        })
    });
    drop(raw);
    let (store, t) = table();
    store.set_commit_policy(CommitPolicy::every_write());
    let mut key = 0u64;
    group.bench_function("timecast", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                key += 1;
                t.put(&key, &v).expect("put");
            }
        })
    });
    group.finish();
}

fn get(c: &mut Criterion) {
    let mut group = c.benchmark_group("get");
    group.throughput(Throughput::Elements(OPS));
    let raw = raw();
    fill_raw(&raw);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    group.bench_function("fjall", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                let k = 2 * (next(&mut rng) % ENTRIES);
                black_box(raw.ks.get(k.to_be_bytes()).expect("get").expect("present"));
            }
        })
    });
    drop(raw);
    let (store, t) = table();
    fill_table(&store, &t);
    group.bench_function("timecast", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                let k = 2 * (next(&mut rng) % ENTRIES);
                black_box(t.get(&k).expect("get").expect("present"));
            }
        })
    });
    group.finish();
}

fn at_or_before(c: &mut Criterion) {
    let mut group = c.benchmark_group("at_or_before");
    group.throughput(Throughput::Elements(OPS));
    let raw = raw();
    fill_raw(&raw);
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    group.bench_function("fjall", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                let k = 2 * (next(&mut rng) % ENTRIES) + 1;
                let found = raw.ks.range(..=k.to_be_bytes()).next_back();
                black_box(found.expect("present").into_inner().expect("read"));
            }
        })
    });
    drop(raw);
    let (store, t) = table();
    fill_table(&store, &t);
    group.bench_function("timecast", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                let k = 2 * (next(&mut rng) % ENTRIES) + 1;
                black_box(t.at_or_before(&k).expect("probe").expect("present"));
            }
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    put_batched(&mut criterion);
    put_each(&mut criterion);
    get(&mut criterion);
    at_or_before(&mut criterion);
    criterion.final_summary();
}
