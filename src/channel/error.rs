//! Errors of the channel. Each one that carries a value hands it back.

use std::fmt;

/// The stream is closed: the value was not put, and is handed back.
///
/// Returned by [`AsyncStream::put`](crate::AsyncStream::put) and
/// [`AsyncStream::put_blocking`](crate::AsyncStream::put_blocking).
///
/// # Examples
///
/// ```
/// use timecast::{AsyncStream, Closed};
///
/// let stream = AsyncStream::<u32>::with_capacity(1);
/// let _consumer = stream.subscribe();
/// stream.close();
/// assert_eq!(stream.put_blocking(7), Err(Closed(7)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct Closed<T>(pub T);

impl<T> Closed<T> {
    /// Returns the value that could not be put.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::Closed;
    /// assert_eq!(Closed("x").into_inner(), "x");
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("putting into a closed stream")
    }
}

impl<T> std::error::Error for Closed<T> {}

/// Why [`AsyncStream::try_put`](crate::AsyncStream::try_put) did not put the
/// value; the value is handed back.
///
/// # Examples
///
/// ```
/// use timecast::{AsyncStream, TryPutError};
///
/// let stream = AsyncStream::with_capacity(1);
/// // No consumer yet: nobody could receive the value, so there is no room.
/// assert_eq!(stream.try_put(1), Err(TryPutError::Full(1)));
/// let _consumer = stream.subscribe();
/// assert_eq!(stream.try_put(1), Ok(()));
/// assert_eq!(stream.try_put(2), Err(TryPutError::Full(2)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TryPutError<T> {
    /// There is no room now: the slowest consumer is already `capacity`
    /// values behind, or no consumer is subscribed. Wait with
    /// [`put`](crate::AsyncStream::put) instead.
    Full(T),
    /// The stream is closed; no value will ever be put again.
    Closed(T),
}

impl<T> TryPutError<T> {
    /// Returns the value that could not be put.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::TryPutError;
    /// assert_eq!(TryPutError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(v) | Self::Closed(v) => v,
        }
    }

    /// Whether the put failed for lack of room.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::TryPutError;
    /// assert!(TryPutError::Full(()).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the put failed because the stream is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::TryPutError;
    /// assert!(TryPutError::Closed(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> From<Closed<T>> for TryPutError<T> {
    fn from(Closed(v): Closed<T>) -> Self {
        Self::Closed(v)
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("no room in the stream: a consumer is `capacity` values behind, or none is subscribed"),
            Self::Closed(_) => f.write_str("putting into a closed stream"),
        }
    }
}

impl<T> std::error::Error for TryPutError<T> {}

/// Why [`Consumer::try_recv`](crate::Consumer::try_recv) returned no value.
///
/// # Examples
///
/// ```
/// use timecast::{AsyncStream, TryRecvError};
///
/// let stream = AsyncStream::<u8>::new();
/// let mut consumer = stream.subscribe();
/// assert_eq!(consumer.try_recv(), Err(TryRecvError::Empty));
/// stream.close();
/// assert_eq!(consumer.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
// A whole word, not a byte: in `Result<T, TryRecvError>` the error then
// fills the word beside a value's niche, where a byte would leave the
// compiler to write a value's second word in pieces and read it back
// whole (a store-forwarding stall on every `String` received, when the
// caller's loop inlines `try_recv`).
#[repr(usize)]
pub enum TryRecvError {
    /// No value is waiting for this consumer now.
    Empty,
    /// The stream is closed and this consumer has received every value.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no value is waiting in the stream"),
            Self::Closed => f.write_str("the stream is closed and drained"),
        }
    }
}

impl std::error::Error for TryRecvError {}
