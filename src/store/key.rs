//! [`Key`]: typed keys with a byte encoding that keeps their order.
//!
//! The database sorts keys as bytes. Each key type encodes so that the byte
//! order is its natural order, as the FoundationDB tuple layer does:
//!
//! - unsigned integers: big-endian, fixed width;
//! - signed integers: the sign bit flipped, then big-endian, so negative
//!   numbers sort before positive ones;
//! - [`Timestamp`]: as its `i64` of nanoseconds (chronological);
//! - [`String`]: its UTF-8 bytes with each `0x00` written `0x00 0x01`, then
//!   the terminator `0x00 0x00`, so that a string sorts before its extensions
//!   even inside a tuple (`("a", 9)` before `("a\0", 0)` before `("ab", 0)`),
//!   whatever follows it. (The FoundationDB tuple layer escapes `0x00` as
//!   `0x00 0xFF` with a one-byte terminator, which works there because every
//!   element starts with a type code; timecast's tuples carry no type codes.)
//! - tuples: their elements' encodings one after the other
//!   (lexicographic order).
//!
//! # Invariants
//!
//! For keys `a` and `b` of one type, `a.cmp(&b) == enc(a).cmp(&enc(b))`, and
//! decoding an encoding gives the key back with no byte left over.

use std::fmt;

use crate::time::Timestamp;

/// A key of a [`Table`](super::Table): a type whose byte encoding sorts
/// as the keys do.
///
/// Implemented for `u8`..`u64`, `i8`..`i64`, [`String`], [`Timestamp`] and
/// tuples `(A, B)`, `(A, B, C)` of these:
///
/// - unsigned integers: big-endian, fixed width;
/// - signed integers: the sign bit flipped, then big-endian, so negative
///   numbers sort before positive ones;
/// - [`Timestamp`]: as its `i64` of nanoseconds (chronological);
/// - [`String`]: its UTF-8 bytes with each `0x00` written `0x00 0x01`, then
///   the terminator `0x00 0x00`, so that a string sorts before its
///   extensions even inside a tuple (`("a", 9)` before `("a\0", 0)` before
///   `("ab", 0)`), whatever follows it;
/// - tuples: their elements' encodings one after the other (lexicographic
///   order).
///
/// (The FoundationDB tuple layer escapes `0x00` as `0x00 0xFF` with a
/// one-byte terminator, which works there because every element starts
/// with a type code; these tuples carry no type codes.) Implement it for your own key
/// types by delegating to these (a newtype around a `u64`, for example);
/// keep the invariant that byte order is the key order.
///
/// # Examples
///
/// ```
/// use timecast::store::Key;
///
/// let (mut a, mut b) = (Vec::new(), Vec::new());
/// (-5i64).encode_key(&mut a);
/// 3i64.encode_key(&mut b);
/// assert!(a < b);
/// assert_eq!(i64::decode_key(&mut a.as_slice()), Some(-5));
/// ```
pub trait Key: Sized + fmt::Debug {
    /// Appends the encoding of `self` to `out`.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Key;
    ///
    /// let mut out = Vec::new();
    /// 258u16.encode_key(&mut out);
    /// assert_eq!(out, [1, 2]);
    /// ```
    fn encode_key(&self, out: &mut Vec<u8>);

    /// Decodes a key from the front of `bytes` and advances `bytes` past
    /// it; `None` if `bytes` does not start with a valid encoding.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Key;
    ///
    /// let mut bytes: &[u8] = &[0x80, 0x07, 0xAA];
    /// assert_eq!(i16::decode_key(&mut bytes), Some(7));
    /// assert_eq!(bytes, [0xAA]);
    /// ```
    fn decode_key(bytes: &mut &[u8]) -> Option<Self>;
}

/// Encodes `key` into a new buffer.
pub(crate) fn encode<K: Key>(key: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    key.encode_key(&mut out);
    out
}

/// Decodes a whole buffer: `None` if it is not exactly one key.
pub(crate) fn decode<K: Key>(mut bytes: &[u8]) -> Option<K> {
    let key = K::decode_key(&mut bytes)?;
    bytes.is_empty().then_some(key)
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    *bytes = rest;
    Some(*head)
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Key for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn decode_key(bytes: &mut &[u8]) -> Option<Self> {
                take(bytes).map(<$t>::from_be_bytes)
            }
        }
    )*};
}

macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl Key for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                // Flipping the sign bit maps MIN..=MAX onto 0..=unsigned MAX
                // in order.
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
            fn decode_key(bytes: &mut &[u8]) -> Option<Self> {
                let flipped = take(bytes).map(<$u>::from_be_bytes)?;
                Some((flipped ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
    )*};
}

unsigned!(u8, u16, u32, u64);
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64);

impl Key for Timestamp {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.unix_nanos().encode_key(out);
    }
    fn decode_key(bytes: &mut &[u8]) -> Option<Self> {
        i64::decode_key(bytes).map(Timestamp::from_unix_nanos)
    }
}

impl Key for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        for &b in self.as_bytes() {
            out.push(b);
            if b == 0 {
                out.push(1);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
    fn decode_key(bytes: &mut &[u8]) -> Option<Self> {
        let mut raw = Vec::new();
        let mut i = 0;
        loop {
            match *bytes.get(i)? {
                0 => match *bytes.get(i + 1)? {
                    0 => break,
                    1 => {
                        raw.push(0);
                        i += 2;
                    }
                    _ => return None,
                },
                b => {
                    raw.push(b);
                    i += 1;
                }
            }
        }
        *bytes = &bytes[i + 2..];
        String::from_utf8(raw).ok()
    }
}

impl<A: Key, B: Key> Key for (A, B) {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.0.encode_key(out);
        self.1.encode_key(out);
    }
    fn decode_key(bytes: &mut &[u8]) -> Option<Self> {
        Some((A::decode_key(bytes)?, B::decode_key(bytes)?))
    }
}

impl<A: Key, B: Key, C: Key> Key for (A, B, C) {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.0.encode_key(out);
        self.1.encode_key(out);
        self.2.encode_key(out);
    }
    fn decode_key(bytes: &mut &[u8]) -> Option<Self> {
        Some((
            A::decode_key(bytes)?,
            B::decode_key(bytes)?,
            C::decode_key(bytes)?,
        ))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A small xorshift generator: deterministic, no dependency. The
    /// store's other unit tests use it too.
    pub(in crate::store) struct Rng(pub(in crate::store) u64);

    impl Rng {
        pub(in crate::store) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Mostly small and boundary values, where order bugs live.
        fn int(&mut self) -> u64 {
            match self.next() % 4 {
                0 => self.next() % 4,
                1 => u64::MAX - self.next() % 4,
                2 => (1 << 63) - 2 + self.next() % 4,
                _ => self.next(),
            }
        }
        fn string(&mut self) -> String {
            let len = self.next() % 4;
            (0..len)
                .map(|_| ['\0', '\u{1}', 'a', 'b', 'ÿ', '🏆'][(self.next() % 6) as usize])
                .collect()
        }
    }

    fn check_order<K: Key + Ord + PartialEq>(mut gen: impl FnMut(&mut Rng) -> K) {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let (a, b) = (gen(&mut rng), gen(&mut rng));
            let (ea, eb) = (encode(&a), encode(&b));
            assert_eq!(a.cmp(&b), ea.cmp(&eb), "{a:?} vs {b:?}: {ea:?} vs {eb:?}");
            assert_eq!(decode::<K>(&ea).as_ref(), Some(&a));
        }
    }

    #[test]
    fn integers_keep_their_order() {
        check_order(|r| r.int() as u8);
        check_order(|r| r.int() as u16);
        check_order(|r| r.int() as u32);
        check_order(|r| r.int());
        check_order(|r| r.int() as i8);
        check_order(|r| r.int() as i16);
        check_order(|r| r.int() as i32);
        check_order(|r| r.int() as i64);
        check_order(|r| Timestamp::from_unix_nanos(r.int() as i64));
    }

    #[test]
    fn strings_and_tuples_keep_their_order() {
        check_order(Rng::string);
        check_order(|r| (r.string(), r.int() as i32));
        check_order(|r| (r.string(), r.int() as u16));
        check_order(|r| (r.int() as i8, r.string()));
        check_order(|r| (r.string(), r.string(), r.int() as u8));
        check_order(|r| (Timestamp::from_unix_nanos(r.int() as i64), r.string()));
    }

    #[test]
    fn a_prefix_string_sorts_first_inside_a_tuple() {
        let short = encode(&("a".to_string(), 9u8));
        let long = encode(&("ab".to_string(), 0u8));
        let nul = encode(&("a\0".to_string(), 0u8));
        assert!(short < nul && nul < long);
    }

    #[test]
    fn malformed_bytes_do_not_decode() {
        assert_eq!(decode::<u32>(&[1, 2, 3]), None);
        assert_eq!(decode::<u8>(&[1, 2]), None);
        assert_eq!(decode::<String>(b"abc"), None); // no terminator
        assert_eq!(decode::<String>(&[b'a', 0]), None); // half a terminator
        assert_eq!(decode::<String>(&[b'a', 0, 7]), None); // bad escape
        assert_eq!(decode::<String>(&[0xC3, 0x28, 0, 0]), None); // not UTF-8
    }
}
