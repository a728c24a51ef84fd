//! Codecs: how a [`Table`](super::Table)'s values become bytes and back.
//!
//! - [`Binary`] (the default): compact, fast, [postcard], behind a format
//!   version byte;
//! - [`Json`]: readable and self-describing, [serde_json];
//! - your own format: implement [`Codec`] (the Avro example in
//!   `examples/slipstream_store_avro.rs` does).
//!
//! [postcard]: https://docs.rs/postcard
//! [serde_json]: https://docs.rs/serde_json

use std::error::Error;
use std::fmt;

use serde::{de::DeserializeOwned, Serialize};

/// The error a [`Codec`] returns: any error type, boxed.
pub type CodecError = Box<dyn Error + Send + Sync + 'static>;

/// Turns values of type `V` into bytes and back.
///
/// A store records each table's codec [`name`](Codec::name) when the table
/// is created, and refuses to open the table later with another codec.
///
/// # Examples
///
/// A codec of your own, for `u32` values as 4 little-endian bytes:
///
/// ```
/// use timecast::store::{codec::{Codec, CodecError}, Store};
///
/// #[derive(Clone, Copy, Debug)]
/// struct Le32;
///
/// impl Codec<u32> for Le32 {
///     fn name(&self) -> String {
///         "le32".into()
///     }
///     fn encode(&self, value: &u32, out: &mut Vec<u8>) -> Result<(), CodecError> {
///         out.extend_from_slice(&value.to_le_bytes());
///         Ok(())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<u32, CodecError> {
///         Ok(u32::from_le_bytes(bytes.try_into()?))
///     }
/// }
///
/// let store = Store::temporary()?;
/// let table = store.table_with::<String, u32, _>("counts", Le32)?;
/// table.put(&"🏆".to_string(), &2)?;
/// assert_eq!(table.get(&"🏆".to_string())?, Some(2));
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
pub trait Codec<V>: Send + Sync + 'static {
    /// The codec's name, recorded with each table that uses it; include a
    /// version if the format may change (`"avro:weather-v1"`).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::codec::{Binary, Codec, Json};
    /// assert_eq!(Codec::<u8>::name(&Json), "json");
    /// assert_eq!(Codec::<u8>::name(&Binary), "postcard-v1");
    /// ```
    fn name(&self) -> String;

    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// If `value` cannot be encoded in this format.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::codec::{Codec, Json};
    ///
    /// let mut out = Vec::new();
    /// Json.encode(&vec![1, 2], &mut out)?;
    /// assert_eq!(out, b"[1,2]");
    /// # Ok::<_, timecast::store::codec::CodecError>(())
    /// ```
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes a value.
    ///
    /// # Errors
    ///
    /// If `bytes` is not a valid encoding of a `V`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::codec::{Codec, Json};
    ///
    /// let v: Vec<i32> = Json.decode(b"[1,2]")?;
    /// assert_eq!(v, [1, 2]);
    /// assert!(Codec::<Vec<i32>>::decode(&Json, b"{").is_err());
    /// # Ok::<_, timecast::store::codec::CodecError>(())
    /// ```
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// JSON through serde: readable with any tool, self-describing, larger and
/// slower than [`Binary`].
///
/// # Examples
///
/// ```
/// use timecast::store::{codec::Json, Store};
///
/// let store = Store::temporary()?;
/// let weather = store.table_with::<i64, serde_json::Value, _>("weather", Json)?;
/// weather.put(&1, &serde_json::json!({"value": "🌞"}))?;
/// assert_eq!(weather.get(&1)?.unwrap()["value"], "🌞");
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Json;

impl<V: Serialize + DeserializeOwned> Codec<V> for Json {
    fn name(&self) -> String {
        "json".into()
    }
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        Ok(serde_json::to_writer(out, value)?)
    }
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// The compact binary codec, the default of
/// [`Store::table`](super::Store::table): postcard (varints, no field names),
/// behind one format version byte so that a later format can read what
/// this one wrote.
///
/// postcard is not self-describing: a value decodes only as the type it was
/// written as (the store records that type with the table). For values
/// that need a self-describing format (`serde_json::Value`, untagged
/// enums), use [`Json`].
///
/// # Examples
///
/// ```
/// use timecast::store::codec::{Binary, Codec};
///
/// let mut out = Vec::new();
/// Binary.encode(&(300u32, "🏆".to_string()), &mut out)?;
/// assert_eq!(out[0], Binary::VERSION);
/// let back: (u32, String) = Binary.decode(&out)?;
/// assert_eq!(back, (300, "🏆".to_string()));
/// # Ok::<_, timecast::store::codec::CodecError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Binary;

impl Binary {
    /// The format version byte written before each value.
    pub const VERSION: u8 = 1;
}

/// A version byte the binary codec does not know.
#[derive(Debug)]
struct UnknownVersion(Option<u8>);

impl fmt::Display for UnknownVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(
                f,
                "binary format version {v}, this timecast reads version {}: \
                 written by a newer timecast, or not by the binary codec",
                Binary::VERSION
            ),
            None => f.write_str("empty value: no binary format version byte"),
        }
    }
}

impl Error for UnknownVersion {}

impl<V: Serialize + DeserializeOwned> Codec<V> for Binary {
    fn name(&self) -> String {
        format!("postcard-v{}", Self::VERSION)
    }
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.push(Self::VERSION);
        postcard::to_io(value, out)?;
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        match bytes.split_first() {
            Some((&Self::VERSION, rest)) => {
                let (value, extra) = postcard::take_from_bytes(rest)?;
                if extra.is_empty() {
                    Ok(value)
                } else {
                    Err(format!("{} bytes left over after the value", extra.len()).into())
                }
            }
            Some((&v, _)) => Err(Box::new(UnknownVersion(Some(v)))),
            None => Err(Box::new(UnknownVersion(None))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_rejects_other_versions_and_trailing_bytes() {
        let err = Codec::<u8>::decode(&Binary, &[9, 1]).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        assert!(Codec::<u8>::decode(&Binary, &[]).is_err());
        assert!(Codec::<u8>::decode(&Binary, &[1, 1, 1]).is_err());
    }
}
