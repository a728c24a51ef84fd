//! The store's ports of the Slipstream cookbook, held to the cookbook's
//! exact output. Each example is included from `examples/`.
#![cfg(feature = "store")]

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/slipstream_store_sink.rs"]
mod slipstream_store_sink;

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/slipstream_store_windows.rs"]
mod slipstream_store_windows;

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/slipstream_store_join.rs"]
mod slipstream_store_join;

use timecast::store::{Store, StoreError};

#[test]
fn sink_counts_emoji_into_a_table() -> Result<(), StoreError> {
    assert_eq!(
        slipstream_store_sink::lines()?,
        ["{'👌': 2, '🏆': 2, '📞': 2, '🐟': 2}"]
    );
    Ok(())
}

#[test]
fn sink_counts_persist_across_a_reopen() -> Result<(), StoreError> {
    let dir = std::env::temp_dir().join(format!("timecast-sink-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for run in 1..=2u32 {
        let store = Store::open(&dir)?;
        let counts = store.table::<String, u32>("emoji")?;
        slipstream_store_sink::count_into(&counts)?;
        // The second run counts on from the first.
        assert_eq!(counts.get(&"🏆".to_string())?, Some(2 * run));
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn aggregations_keep_the_sliding_window_in_a_table() -> Result<(), StoreError> {
    assert_eq!(
        slipstream_store_windows::lines()?,
        [
            "Sliding window ending at 0.0: {'🏆': 1}",
            "Sliding window ending at 0.5: {'🏆': 1, '📞': 1}",
            "Sliding window ending at 1.0: {'🏆': 1, '📞': 1, '🐟': 1}",
            "Sliding window ending at 2.0: {'🏆': 1, '📞': 1, '🐟': 1, '👌': 1}",
            "Sliding window ending at 3.5: {'📞': 1, '🐟': 1, '👌': 1, '🏆': 1}",
            "Sliding window ending at 4.0: {'🐟': 1, '👌': 1, '🏆': 1, '📞': 1}",
            "Sliding window ending at 5.0: {'👌': 1, '🏆': 1, '📞': 1, '🐟': 1}",
            "Sliding window ending at 5.5: {'🏆': 1, '📞': 1, '🐟': 1, '👌': 1}",
        ]
    );
    Ok(())
}

#[test]
fn joins_probe_the_weather_table_at_or_before_each_activity() -> Result<(), StoreError> {
    assert_eq!(
        slipstream_store_join::lines()?,
        [
            "The weather during swimming was 🌞",
            "The weather during walking home was ⛅",
            "The weather during shopping was 🌦️",
            "The weather during lunch was 🌧",
        ]
    );
    Ok(())
}
