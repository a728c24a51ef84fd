//! [`Pairwise`]: each item with the one before it.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};

/// The stream returned by [`StreamOps::pairwise`](super::StreamOps::pairwise):
/// `(previous, current)` pairs.
///
/// # Examples
///
/// ```
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::ops::{Pairwise, StreamOps};
///
/// let pairs: Pairwise<_> = stream::iter("abc".chars()).pairwise();
/// assert_eq!(block_on(pairs.collect::<Vec<_>>()), [('a', 'b'), ('b', 'c')]);
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Pairwise<S: Stream> {
    stream: S,
    previous: Option<S::Item>,
}

/// The state is the previous item: `None` before the first.
impl<S> super::Stateful for Pairwise<S>
where
    S: Stream,
    S::Item: Clone,
{
    type State = Option<S::Item>;

    fn state(&self) -> Option<S::Item> {
        self.previous.clone()
    }

    fn restore(&mut self, state: Option<S::Item>) {
        self.previous = state;
    }
}

impl<S: Stream> Pairwise<S> {
    pub(super) fn new(stream: S) -> Self {
        Self {
            stream,
            previous: None,
        }
    }

    /// The input stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream;
    /// use timecast::ops::StreamOps;
    ///
    /// let pairs = stream::iter([1, 2]).pairwise();
    /// let _inner: &stream::Iter<_> = pairs.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Unwraps the input stream (an item kept for the next pair is lost).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::{executor::block_on, stream, StreamExt};
    /// use timecast::ops::StreamOps;
    ///
    /// let rest = stream::iter([1, 2]).pairwise().into_inner();
    /// assert_eq!(block_on(rest.collect::<Vec<_>>()), [1, 2]);
    /// ```
    pub fn into_inner(self) -> S {
        self.stream
    }
}

// The items are never pinned: only the input stream could need it.
impl<S: Stream + Unpin> Unpin for Pairwise<S> {}

impl<S> Stream for Pairwise<S>
where
    S: Stream + Unpin,
    S::Item: Clone,
{
    type Item = (S::Item, S::Item);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            // At the end, the last item stays: it is the state that a
            // pipeline resumed with more input pairs with its next item.
            let Some(current) = ready!(Pin::new(&mut this.stream).poll_next(cx)) else {
                return Poll::Ready(None);
            };
            match this.previous.replace(current.clone()) {
                Some(previous) => return Poll::Ready(Some((previous, current))),
                None => continue,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (low, high) = self.stream.size_hint();
        let held = usize::from(self.previous.is_some());
        // n more items after a held one make n pairs; without one, n - 1.
        let pairs = |n: usize| n.saturating_add(held).saturating_sub(1);
        (pairs(low), high.map(pairs))
    }
}

impl<S> FusedStream for Pairwise<S>
where
    S: FusedStream + Unpin,
    S::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

impl<S: Stream + fmt::Debug> fmt::Debug for Pairwise<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pairwise")
            .field("stream", &self.stream)
            .field("holds_previous", &self.previous.is_some())
            .finish()
    }
}
