//! The log's and checkpoint's port of the Slipstream cookbook, held to the
//! cookbook's exact output.
#![cfg(feature = "store")]

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/slipstream_sync.rs"]
mod slipstream_sync;

#[test]
fn synchronization_prints_the_cookbooks_output() -> Result<(), timecast::store::StoreError> {
    assert_eq!(
        slipstream_sync::lines()?,
        [
            "The weather during swimming was 🌞",
            "\tKilling weather stream on purpose",
            "The weather during walking home was ⛅",
            "\tThe stream is automatically paused.",
            "\tDowntime detected: 1:30:00, (could cause faulty enrichment)",
            "The weather during shopping was ⛅",
            "\tRecovering the weather stream",
            "\tDowntime resolved, going back to offset {'0': 2} for reprocessing.",
            "The weather during shopping was 🌦️",
            "The weather during lunch was 🌧",
        ]
    );
    Ok(())
}
