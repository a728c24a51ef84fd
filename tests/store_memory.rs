//! A table's memory follows its memtable size, not what it holds: the same
//! writes, 160 MB of them, to a table created with the smallest memtable
//! and to one created with 256 MiB, measured by a counting allocator.
//!
//! The allocator counts the whole process (the store flushes on its own
//! threads), so this file holds one test.
#![cfg(feature = "store")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use timecast::store::Store;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded unchanged (above).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded unchanged (above).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: forwarded unchanged (above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        // SAFETY: forwarded unchanged (above).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

const VALUE: usize = 1_000;
/// 160 MB of values, every key distinct: less than a 256 MiB memtable holds.
const WRITES: u64 = 160_000;

/// Puts `WRITES` values into a new table of `store` created with a memtable
/// of `memtable` bytes, each write its own commit. Returns the bytes live
/// before, and the most live at once while writing.
///
/// The store flushes full memtables on its own threads, while the writes go
/// on: a writer that keeps a core to itself outruns them on a machine with
/// one core (or a busy one), and the memtable being written grows past its
/// size until they catch up. A pause of a millisecond after each 1 MB gives
/// them their turn, as a pipeline's pauses for input do.
fn write(store: &Store, name: &str, memtable: u64) -> (usize, usize) {
    store.set_memtable_size(memtable);
    let table = store.table::<u64, String>(name).unwrap();
    let value = "x".repeat(VALUE);
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    for key in 0..WRITES {
        table.put(&key, &value).unwrap();
        if key % 1_000 == 999 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    (before, PEAK.load(Relaxed))
}

#[test]
fn a_tables_memory_follows_its_memtable_size_not_its_contents() {
    let data = VALUE * WRITES as usize;
    let store = Store::temporary().unwrap();

    // At 1 MiB the writes leave memory as they come: the store holds the
    // memtable being written and those waiting for a flush (on the store's
    // threads), a few at most.
    let (before, peak) = write(&store, "small", Store::MIN_MEMTABLE_SIZE);
    let peak = peak - before;
    eprintln!("{data} bytes written at 1 MiB: at most {peak} live");
    assert!(
        peak < data / 3,
        "{peak} bytes live at once for {data} written"
    );

    // At 256 MiB they all stay in memory (less what the first table's
    // last flushes free meanwhile): the setting is what bounds it.
    let (before, _) = write(&store, "large", 256 << 20);
    let held = LIVE.load(Relaxed) - before;
    eprintln!("{data} bytes written at 256 MiB: {held} live");
    assert!(held > data / 2, "{held} bytes live for {data} written");

    // Reading them back checks the writes; it fills the block cache, which
    // is not the memtables' memory, so it comes last.
    for name in ["small", "large"] {
        let table = store.table::<u64, String>(name).unwrap();
        assert_eq!(table.len().unwrap(), WRITES as usize);
    }
}
