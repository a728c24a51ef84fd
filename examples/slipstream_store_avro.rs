//! The Slipstream cookbook's `AvroCodec`: a codec of your own, here Apache
//! Avro through the `apache-avro` crate, for the values of a store table.
//! The cookbook reads the schema from a file (`AvroCodec::from_path`);
//! this example keeps it inline.
//!
//! Run with `cargo run --example slipstream_store_avro`.

use apache_avro::{from_avro_datum, from_value, to_avro_datum, to_value, Schema};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use timecast::store::codec::{Codec, CodecError};
use timecast::store::{Store, StoreError};
use timecast::Timestamp;

/// Serializes and deserializes Avro messages with a schema.
#[derive(Debug)]
pub(crate) struct AvroCodec {
    schema: Schema,
}

impl AvroCodec {
    /// A codec for the schema in `json`.
    pub(crate) fn new(json: &str) -> Result<Self, CodecError> {
        Ok(AvroCodec {
            schema: Schema::parse_str(json)?,
        })
    }

    /// A codec for the schema in the file at `path`, as the cookbook's.
    #[allow(
        dead_code,
        reason = "the cookbook's constructor, shown for completeness"
    )]
    pub(crate) fn from_path(path: &str) -> Result<Self, CodecError> {
        Self::new(&std::fs::read_to_string(path)?)
    }
}

impl<V: Serialize + DeserializeOwned> Codec<V> for AvroCodec {
    /// The schema's canonical form: a table refuses to open with another.
    fn name(&self) -> String {
        format!("avro:{}", self.schema.canonical_form())
    }

    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&to_avro_datum(&self.schema, to_value(value)?)?);
        Ok(())
    }

    fn decode(&self, mut bytes: &[u8]) -> Result<V, CodecError> {
        let value = from_avro_datum(&self.schema, &mut bytes, None)?;
        Ok(from_value(&value)?)
    }
}

/// A weather message of the cookbook.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Weather {
    timestamp: i64,
    value: String,
}

const SCHEMA: &str = r#"{
    "type": "record",
    "name": "Weather",
    "fields": [
        {"name": "timestamp", "type": "long"},
        {"name": "value", "type": "string"}
    ]
}"#;

/// What the example prints: each stored message, then one message's size.
pub(crate) fn lines() -> Result<Vec<String>, CodecError> {
    let store = Store::temporary()?;
    let weather = store.table_with::<Timestamp, Weather, _>("weather", AvroCodec::new(SCHEMA)?)?;
    for (hour, value) in [(10, "🌞"), (11, "⛅"), (12, "🌦️"), (13, "🌧")] {
        let ts = Timestamp::from_ymd_hms(2023, 1, 1, hour, 0, 0).expect("a valid date");
        let message = Weather {
            timestamp: ts.unix_secs(),
            value: value.to_string(),
        };
        weather.put(&ts, &message)?;
    }
    let mut lines = Vec::new();
    for entry in weather.range(..)? {
        let (ts, w) = entry?;
        lines.push(format!("{ts} {} {}", w.timestamp, w.value));
    }
    let mut bytes = Vec::new();
    let codec = AvroCodec::new(SCHEMA)?;
    codec.encode(
        &Weather {
            timestamp: 1_672_567_200,
            value: "🌞".into(),
        },
        &mut bytes,
    )?;
    lines.push(format!("one message is {} bytes of Avro", bytes.len()));
    // Opening the table with another codec is refused.
    let json = store.table_with::<Timestamp, Weather, _>("weather", timecast::store::Json);
    if let Err(StoreError::TableTypes { .. }) = json {
        lines.push("the table refuses another codec".into());
    }
    Ok(lines)
}

fn main() -> Result<(), CodecError> {
    for line in lines()? {
        println!("{line}");
    }
    Ok(())
}
