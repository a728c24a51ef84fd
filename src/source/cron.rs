//! [`cron`]: ticks on a cron schedule, on the loop's clock (aiopype's
//! `CronJob`). Behind the `cron` feature.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures_core::{FusedStream, Stream};

use crate::time::{now, sleep_until, Sleep, Timestamp};

/// A stream of the times a cron schedule fires, on the loop's clock, in
/// UTC: aiopype's `CronJob`, virtual in replay (a year of a daily job
/// replays instantly in [`simulated`](crate::EventLoop::simulated) time).
///
/// `spec` is a cron pattern of 5 fields (`minute hour day-of-month month
/// day-of-week`) or 6 with seconds first, with lists (`1,15`), ranges
/// (`1-5`), steps (`*/15`), names (`MON`, `JAN`) and `L`, `W`, `#`; parsed
/// by the [`croner`](https://docs.rs/croner) crate. With both the day of
/// month and the day of week restricted, either one fires it (as in Vixie
/// cron); a `+` before the day of week asks for both (`0 0 13 * +FRI`).
///
/// The first tick is the first occurrence strictly after the clock when
/// the stream is first polled (or after [`Cron::starting_at`]); each tick
/// is yielded when the clock reaches it. [`Cron::until`] ends it, as does
/// the end of [`Timestamp`]'s range (in 2262).
///
/// # Errors
///
/// [`CronError`] if `spec` is not a valid pattern, or one that never fires
/// (`0 0 30 2 *`).
///
/// # Examples
///
/// Every weekday at 09:30, over a week of virtual time:
///
/// ```
/// use futures::StreamExt;
/// use timecast::source::cron;
/// use timecast::{EventLoop, Timestamp};
///
/// let monday = Timestamp::from_ymd_hms(2025, 1, 6, 0, 0, 0).unwrap();
/// let sunday = Timestamp::from_ymd_hms(2025, 1, 12, 0, 0, 0).unwrap();
/// let opens = cron("30 9 * * MON-FRI")?.until(sunday);
/// let el = EventLoop::starting_at(monday).simulated();
/// let ticks: Vec<_> = el.block_on(opens.map(|t| t.to_string()).collect());
/// assert_eq!(ticks.len(), 5);
/// assert_eq!(ticks[0], "2025-01-06T09:30:00Z");
/// assert_eq!(ticks[4], "2025-01-10T09:30:00Z");
/// # Ok::<_, timecast::source::CronError>(())
/// ```
pub fn cron(spec: &str) -> Result<Cron, CronError> {
    // First what the parser lets through (an empty list entry, a field
    // that matches nothing; a seventh field), naming the field at fault
    // better than the parser does.
    check_fields(spec)?;
    let error = |reason: String| CronError {
        spec: spec.to_owned(),
        reason,
    };
    let schedule = croner::Cron::from_str(spec)
        .map_err(|e| error(e.to_string().trim_end_matches('.').to_owned()))?;
    // A pattern that never fires (the 30th of February) would end the
    // stream at once, as if its end were reached.
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    if schedule.find_next_occurrence(&epoch, false).is_err() {
        return Err(error("it never fires (a date that does not exist?)".into()));
    }
    Ok(Cron {
        schedule,
        after: None,
        until: None,
        sleep: None,
        done: false,
    })
}

/// A cron pattern that does not parse.
///
/// # Examples
///
/// ```
/// let err = timecast::source::cron("61 * * * *").unwrap_err();
/// assert!(err.to_string().starts_with("invalid cron pattern `61 * * * *`"), "{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    spec: String,
    reason: String,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cron pattern `{}`: {}", self.spec, self.reason)
    }
}

/// The fields a pattern has, for error messages.
const FIELDS: &str = "a pattern has 5 fields (minute hour day-of-month month day-of-week), \
                      or 6 with seconds first";

/// Checks what the parser does not, and names the field at fault: the
/// number of fields, empty list entries, numbers out of a field's range.
/// A pattern starting with `@` (`@daily`) is left to the parser.
fn check_fields(spec: &str) -> Result<(), CronError> {
    let error = |reason: String| {
        Err(CronError {
            spec: spec.to_owned(),
            reason,
        })
    };
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.first().is_some_and(|f| f.starts_with('@')) {
        return Ok(());
    }
    const NAMES: [(&str, u64, u64); 6] = [
        ("second", 0, 59),
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day-of-month", 1, 31),
        ("month", 1, 12),
        ("day-of-week", 0, 7),
    ];
    let names = match fields.len() {
        5 => &NAMES[1..],
        6 => &NAMES[..],
        n => return error(format!("it has {n} fields; {FIELDS}")),
    };
    for (&field, &(name, low, high)) in fields.iter().zip(names) {
        // `+` before the day of week: both days must match.
        for entry in field.strip_prefix('+').unwrap_or(field).split(',') {
            if entry.is_empty() {
                return error(format!("the {name} field `{field}` has an empty entry"));
            }
            // The values: not a step (after `/`), nor an nth weekday
            // (after `#`).
            let values = entry.split(['/', '#']).next().unwrap_or_default();
            for digits in values.split(|c: char| !c.is_ascii_digit()) {
                if digits.is_empty() {
                    continue;
                }
                if digits.parse::<u64>().map_or(true, |n| n < low || n > high) {
                    return error(format!("{name} {digits} is outside {low}-{high}"));
                }
            }
        }
    }
    Ok(())
}

impl std::error::Error for CronError {}

/// The stream returned by [`cron`].
///
/// # Cancel safety
///
/// Dropping a pending `next()` loses no tick: the wait stays in the
/// stream.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use timecast::source::cron;
/// use timecast::{EventLoop, Timestamp};
///
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let every_15s = cron("*/15 * * * * *")?;
/// let ticks: Vec<_> = el.block_on(every_15s.take(3).collect());
/// assert_eq!(ticks, [15, 30, 45].map(Timestamp::from_unix_secs));
/// # Ok::<_, timecast::source::CronError>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Cron {
    schedule: croner::Cron,
    /// The last tick (or the start): the next is strictly after it.
    after: Option<Timestamp>,
    until: Option<Timestamp>,
    sleep: Option<Sleep>,
    done: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cron")
            .field("pattern", &self.schedule.as_str())
            .field("after", &self.after)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl Cron {
    /// Fires from the first occurrence after `start` instead of after the
    /// clock at first poll. A start in the past replays the missed ticks
    /// first, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use timecast::source::cron;
    /// use timecast::{EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::from_unix_secs(3600)).simulated();
    /// let hourly = cron("0 * * * *")?.starting_at(Timestamp::UNIX_EPOCH);
    /// let ticks: Vec<_> = el.block_on(hourly.take(2).collect());
    /// assert_eq!(ticks, [3600, 7200].map(Timestamp::from_unix_secs));
    /// # Ok::<_, timecast::source::CronError>(())
    /// ```
    pub fn starting_at(mut self, start: Timestamp) -> Self {
        self.after = Some(start);
        self
    }

    /// Ends the stream after the last tick at or before `until`.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use timecast::source::cron;
    /// use timecast::{EventLoop, Timestamp};
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let daily = cron("0 0 * * *")?.until(Timestamp::from_unix_secs(7 * 86_400));
    /// assert_eq!(el.block_on(daily.count()), 7);
    /// # Ok::<_, timecast::source::CronError>(())
    /// ```
    pub fn until(mut self, until: Timestamp) -> Self {
        self.until = Some(until);
        self
    }

    /// The next occurrence strictly after `after`, if any (and not past
    /// `until`).
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let nanos = after.unix_nanos();
        let from = DateTime::<Utc>::from_timestamp(
            nanos.div_euclid(1_000_000_000),
            nanos.rem_euclid(1_000_000_000) as u32,
        )?;
        let next = self.schedule.find_next_occurrence(&from, false).ok()?;
        let next = Timestamp::from_unix_nanos(next.timestamp_nanos_opt()?);
        match self.until {
            Some(until) if next > until => None,
            _ => Some(next),
        }
    }
}

impl Stream for Cron {
    type Item = Timestamp;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Timestamp>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.sleep.is_none() {
            let after = *this.after.get_or_insert_with(now);
            match this.next_after(after) {
                Some(next) => this.sleep = Some(sleep_until(next)),
                None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
        let sleep = this.sleep.as_mut().expect("armed above");
        if Pin::new(&mut *sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let tick = sleep.deadline();
        this.sleep = None;
        this.after = Some(tick);
        Poll::Ready(Some(tick))
    }
}

impl FusedStream for Cron {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
