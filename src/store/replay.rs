//! A log as a [`process_stream`](crate::process_stream) source: the stored
//! records are the past, replayed in virtual time; later appends are the
//! live part.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use super::codec::Codec;
use super::{ExactlyOnce, LogReader, Record, StoreError};
use crate::source::Source;
use crate::sync::{Arc, Mutex};
use crate::time::Timestamp;

/// A reader of a log, as the parts of a source see it (sealed: public in
/// this private module, implemented here only).
pub trait Reader: Stream<Item = Result<Record<Self::Value>, StoreError>> + Unpin {
    type Value;
    /// The offset of the next record.
    fn position(&self) -> u64;
    /// The log's end now.
    fn end(&self) -> u64;
}

impl<T, C: Codec<T>> Reader for LogReader<T, C> {
    type Value = T;

    fn position(&self) -> u64 {
        LogReader::position(self)
    }

    fn end(&self) -> u64 {
        self.log().end()
    }
}

impl<T, C: Codec<T>> Reader for ExactlyOnce<T, C> {
    type Value = T;

    fn position(&self) -> u64 {
        self.reader().position()
    }

    fn end(&self) -> u64 {
        self.reader().log().end()
    }
}

/// What the reader yielded, for a part: a record, or the end of the part.
/// An error stops the pipeline, naming the log and the offset.
fn yielded<T>(
    polled: Poll<Option<Result<Record<T>, StoreError>>>,
) -> Option<(Timestamp, Record<T>)> {
    match polled {
        Poll::Ready(Some(Ok(record))) => Some((record.ts, record)),
        Poll::Ready(Some(Err(e))) => panic!("the log source stopped: {e}"),
        Poll::Ready(None) | Poll::Pending => None,
    }
}

/// The past of a log read as a source: the records stored when the source
/// started, in offset order. See [`LogReader`]'s [`Source`] implementation.
#[must_use = "iterators do nothing unless iterated"]
pub struct LogPast<R> {
    reader: Arc<Mutex<R>>,
    /// The log's end when the source started.
    until: u64,
}

/// The live part of a log read as a source: the records appended after
/// the source started, each woken by its append.
#[must_use = "streams do nothing unless polled"]
pub struct LogLive<R> {
    reader: Arc<Mutex<R>>,
}

impl<R> fmt::Debug for LogPast<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogPast")
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Debug for LogLive<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLive").finish_non_exhaustive()
    }
}

impl<R: Reader> Iterator for LogPast<R> {
    type Item = (Timestamp, Record<R::Value>);

    fn next(&mut self) -> Option<Self::Item> {
        let mut reader = self.reader.lock();
        if reader.position() >= self.until {
            return None;
        }
        // Stored records are ready at once; `Pending` means the log lost
        // them to a rollback, and the live part takes over.
        let mut cx = Context::from_waker(Waker::noop());
        yielded(Pin::new(&mut *reader).poll_next(&mut cx))
    }
}

impl<R: Reader> Stream for LogLive<R> {
    type Item = (Timestamp, Record<R::Value>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut reader = self.reader.lock();
        match Pin::new(&mut *reader).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            polled => Poll::Ready(yielded(polled)),
        }
    }
}

fn parts<R: Reader>(reader: R) -> (LogPast<R>, LogLive<R>) {
    let until = reader.end();
    let reader = Arc::new(Mutex::new(reader));
    (
        LogPast {
            reader: reader.clone(),
            until,
        },
        LogLive { reader },
    )
}

/// A reader is a [`process_stream`](crate::process_stream) source: the
/// records stored when the source starts are its past, replayed as fast as
/// the loop goes, each at its event time; the records appended later are
/// its live part. The handler gets each [`Record`], with its offset.
///
/// # Panics
///
/// A record that does not decode (under [`DecodeErrors::Stop`], the
/// default), or one removed by retention before it was read, stops the
/// source with a panic that names the log and the offset: the loop
/// reports it as the task's error ([`TaskError`](crate::TaskError)), and a
/// [`Flow`](crate::flow::Flow) restarts the pipeline by its policy. Read
/// with [`DecodeErrors::Skip`] to skip such records instead.
///
/// [`DecodeErrors::Stop`]: super::DecodeErrors::Stop
/// [`DecodeErrors::Skip`]: super::DecodeErrors::Skip
///
/// # Examples
///
/// Two stored records replayed in virtual time, then one appended live:
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use timecast::{process_stream, store::{Offset, Record, Store}, EventLoop, Timestamp};
///
/// let store = Store::temporary()?;
/// let log = store.log::<String>("activity")?;
/// log.append(Timestamp::from_unix_secs(10), &"swimming".into())?;
/// log.append(Timestamp::from_unix_secs(20), &"lunch".into())?;
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let task = el.spawn(
///     process_stream(move |ts: Timestamp, r: Record<String>| {
///         s.borrow_mut().push((ts.unix_secs(), r.offset, r.value));
///     })
///     .source(log.read(Offset::Start)),
/// );
/// let live = log.clone();
/// el.spawn(async move {
///     timecast::sleep_until(Timestamp::from_unix_secs(30)).await;
///     live.append(timecast::now(), &"reading".into()).expect("an append");
/// });
/// el.spawn(async move {
///     timecast::sleep_until(Timestamp::from_unix_secs(40)).await;
///     task.abort(); // the live part tails the log forever
/// });
/// el.run()?;
/// let expected = [(10, 0, "swimming"), (20, 1, "lunch"), (30, 2, "reading")];
/// assert_eq!(*seen.borrow(), expected.map(|(t, o, v)| (t, o, v.to_string())));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
impl<T: 'static, C: Codec<T>> Source for LogReader<T, C> {
    type Item = Record<T>;
    type Past = LogPast<LogReader<T, C>>;
    type Live = LogLive<LogReader<T, C>>;

    fn into_parts(self) -> (Self::Past, Self::Live) {
        parts(self)
    }
}

/// An exactly-once reader is a [`process_stream`](crate::process_stream)
/// source too, with its checkpoints: every `n` records, and when the
/// replay catches up with the log's end, the group's offset is committed
/// with the store's pending batch. As [`LogReader`]'s source otherwise
/// (its `# Panics` included).
///
/// # Examples
///
/// ```
/// use timecast::{process_stream, store::{Record, Store}, EventLoop, Timestamp};
///
/// let store = Store::temporary()?;
/// let (input, sum) = (store.log::<u64>("in")?, store.table::<u8, u64>("sum")?);
/// for i in 1..=4 {
///     input.append(Timestamp::from_unix_secs(i as i64), &i)?;
/// }
/// let total = sum.clone();
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let task = el.spawn(
///     process_stream(move |_ts: Timestamp, r: Record<u64>| {
///         let s = total.get(&0).expect("a get").unwrap_or(0);
///         total.put(&0, &(s + r.value)).expect("a put");
///     })
///     .source(input.group("sum").consume().checkpoint_every(2)),
/// );
/// el.spawn(async move {
///     timecast::sleep_until(Timestamp::from_unix_secs(60)).await;
///     task.abort();
/// });
/// el.run()?;
/// assert_eq!(input.group("sum").committed()?, Some(4)); // caught up, committed
/// assert_eq!((sum.get(&0)?, store.pending()), (Some(10), 0));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
impl<T: 'static, C: Codec<T>> Source for ExactlyOnce<T, C> {
    type Item = Record<T>;
    type Past = LogPast<ExactlyOnce<T, C>>;
    type Live = LogLive<ExactlyOnce<T, C>>;

    fn into_parts(self) -> (Self::Past, Self::Live) {
        parts(self)
    }
}
