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

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/slipstream_store_endpoint.rs"]
mod slipstream_store_endpoint;

/// Starts the endpoint on a free loopback port, with a 50 ms timer, and
/// reads three events with curl.
#[test]
fn endpoint_streams_table_updates_to_an_http_client() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let store = Store::temporary()?;
    let addr = slipstream_store_endpoint::start(
        &store,
        "127.0.0.1:0",
        std::time::Duration::from_millis(50),
        false,
    )?;
    let mut curl = Command::new("curl")
        .args(["-sN", "--max-time", "20", "-D", "-"])
        .arg(format!("http://{addr}/updates"))
        .stdout(Stdio::piped())
        .spawn()?;
    let out = BufReader::new(curl.stdout.take().expect("piped"));
    let mut headers = Vec::new();
    let mut events = Vec::new();
    for line in out.lines() {
        let line = line?;
        match line.strip_prefix("data: ") {
            Some(event) => events.push(event.to_string()),
            None if events.is_empty() && !line.is_empty() => headers.push(line),
            None => {}
        }
        if events.len() == 3 {
            break;
        }
    }
    curl.kill()?;
    curl.wait()?;
    assert!(headers[0].starts_with("HTTP/1.1 200"), "{headers:?}");
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: text/event-stream")),
        "{headers:?}"
    );
    assert_eq!(events.len(), 3, "{events:?}");
    for event in &events {
        // HH:MM:SS
        let parts: Vec<&str> = event.split(':').collect();
        assert_eq!(parts.len(), 3, "{event}");
        assert!(
            parts
                .iter()
                .all(|p| p.len() == 2 && p.parse::<u8>().is_ok()),
            "{event}"
        );
    }
    Ok(())
}

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/slipstream_store_avro.rs"]
mod slipstream_store_avro;

#[test]
fn avro_codec_stores_and_reads_back_the_weather() -> Result<(), timecast::store::codec::CodecError>
{
    assert_eq!(
        slipstream_store_avro::lines()?,
        [
            "2023-01-01T10:00:00Z 1672567200 🌞",
            "2023-01-01T11:00:00Z 1672570800 ⛅",
            "2023-01-01T12:00:00Z 1672574400 🌦️",
            "2023-01-01T13:00:00Z 1672578000 🌧",
            "one message is 10 bytes of Avro",
            "the table refuses another codec",
        ]
    );
    Ok(())
}
