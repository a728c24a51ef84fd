//! [`Timestamp`]: a point in time, nanoseconds since the Unix epoch.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A point in time: nanoseconds since the Unix epoch (1970-01-01T00:00:00Z),
/// covering the years 1677 to 2262.
///
/// The clock of an [`EventLoop`](crate::EventLoop) and every event time is a
/// `Timestamp`. It is `Copy`, totally ordered and hashable; it displays in
/// RFC 3339 form, in UTC.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::Timestamp;
///
/// let t = Timestamp::from_unix_secs(1_735_689_600);
/// assert_eq!(t.to_string(), "2025-01-01T00:00:00Z");
/// assert_eq!((t + Duration::from_millis(1500)).to_string(), "2025-01-01T00:00:01.500Z");
/// assert_eq!(Timestamp::from_ymd_hms(2025, 1, 1, 0, 0, 0), Some(t));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(
    feature = "store",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::Timestamp;
    /// assert_eq!(Timestamp::UNIX_EPOCH.unix_nanos(), 0);
    /// assert_eq!(Timestamp::UNIX_EPOCH, std::time::SystemTime::UNIX_EPOCH.into());
    /// ```
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);
    /// The earliest representable time (in 1677): `i64::MIN` nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use timecast::Timestamp;
    ///
    /// assert_eq!(Timestamp::MIN.to_string(), "1677-09-21T00:12:43.145224192Z");
    /// assert_eq!(Timestamp::from(SystemTime::from(Timestamp::MIN)), Timestamp::MIN);
    /// ```
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable time (in 2262): `i64::MAX` nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use timecast::Timestamp;
    ///
    /// assert_eq!(Timestamp::MAX.to_string(), "2262-04-11T23:47:16.854775807Z");
    /// assert_eq!(Timestamp::from(SystemTime::from(Timestamp::MAX)), Timestamp::MAX);
    /// ```
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// The time `nanos` nanoseconds after the Unix epoch (before it if
    /// negative).
    ///
    /// # Examples
    ///
    /// ```
    /// let t = timecast::Timestamp::from_unix_nanos(1_500_000_000);
    /// assert_eq!(t.unix_millis(), 1_500);
    /// ```
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// The time `millis` milliseconds after the Unix epoch, saturating at
    /// [`MIN`](Self::MIN) and [`MAX`](Self::MAX).
    ///
    /// # Examples
    ///
    /// ```
    /// let t = timecast::Timestamp::from_unix_millis(2_500);
    /// assert_eq!(t.unix_nanos(), 2_500_000_000);
    /// ```
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis.saturating_mul(1_000_000))
    }

    /// The time `secs` seconds after the Unix epoch, saturating at
    /// [`MIN`](Self::MIN) and [`MAX`](Self::MAX).
    ///
    /// # Examples
    ///
    /// ```
    /// let t = timecast::Timestamp::from_unix_secs(60);
    /// assert_eq!(t.to_string(), "1970-01-01T00:01:00Z");
    /// ```
    pub const fn from_unix_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// The time at the given UTC calendar date and time of day, or `None` if
    /// it does not exist (month 13, February 30th, hour 24, …) or is out of
    /// range.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::Timestamp;
    ///
    /// let t = Timestamp::from_ymd_hms(2023, 1, 1, 10, 30, 0).unwrap();
    /// assert_eq!(t.to_string(), "2023-01-01T10:30:00Z");
    /// assert_eq!(Timestamp::from_ymd_hms(2023, 2, 29, 0, 0, 0), None);
    /// ```
    pub fn from_ymd_hms(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        min: u32,
        sec: u32,
    ) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || min > 59 || sec > 59 {
            return None;
        }
        let days = days_from_civil(i64::from(year), month, day);
        let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec);
        secs.checked_mul(NANOS_PER_SEC).map(Self)
    }

    /// The wall-clock time now, read from [`SystemTime`].
    ///
    /// Inside an [`EventLoop`](crate::EventLoop), the loop's clock is
    /// [`timecast::now()`](crate::now); this is the machine's.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(timecast::Timestamp::now() > timecast::Timestamp::from_unix_secs(1_700_000_000));
    /// ```
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// Nanoseconds since the Unix epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(timecast::Timestamp::from_unix_secs(2).unix_nanos(), 2_000_000_000);
    /// ```
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// Milliseconds since the Unix epoch, rounded towards minus infinity.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(timecast::Timestamp::from_unix_nanos(-1).unix_millis(), -1);
    /// ```
    pub const fn unix_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Seconds since the Unix epoch, rounded towards minus infinity.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(timecast::Timestamp::from_unix_millis(1_999).unix_secs(), 1);
    /// ```
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    /// `self + duration`, or `None` past [`MAX`](Self::MAX).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::Timestamp;
    ///
    /// assert_eq!(Timestamp::MAX.checked_add(Duration::from_nanos(1)), None);
    /// ```
    pub fn checked_add(self, duration: Duration) -> Option<Self> {
        let nanos = i64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_add(nanos).map(Self)
    }

    /// `self - duration`, or `None` before [`MIN`](Self::MIN).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::Timestamp;
    ///
    /// assert_eq!(Timestamp::MIN.checked_sub(Duration::from_nanos(1)), None);
    /// ```
    pub fn checked_sub(self, duration: Duration) -> Option<Self> {
        let nanos = i64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_sub(nanos).map(Self)
    }

    /// `self + duration`, clamped to [`MAX`](Self::MAX).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::Timestamp;
    ///
    /// assert_eq!(Timestamp::MAX.saturating_add(Duration::from_secs(1)), Timestamp::MAX);
    /// ```
    pub fn saturating_add(self, duration: Duration) -> Self {
        self.checked_add(duration).unwrap_or(Self::MAX)
    }

    /// `self - duration`, clamped to [`MIN`](Self::MIN).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::Timestamp;
    ///
    /// assert_eq!(Timestamp::MIN.saturating_sub(Duration::from_secs(1)), Timestamp::MIN);
    /// ```
    pub fn saturating_sub(self, duration: Duration) -> Self {
        self.checked_sub(duration).unwrap_or(Self::MIN)
    }

    /// The time elapsed from `earlier` to `self`, or `None` if `earlier` is
    /// later than `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::Timestamp;
    ///
    /// let (a, b) = (Timestamp::from_unix_secs(1), Timestamp::from_unix_secs(3));
    /// assert_eq!(b.checked_duration_since(a), Some(Duration::from_secs(2)));
    /// assert_eq!(a.checked_duration_since(b), None);
    /// ```
    pub fn checked_duration_since(self, earlier: Timestamp) -> Option<Duration> {
        let nanos = i128::from(self.0) - i128::from(earlier.0);
        u64::try_from(nanos).ok().map(Duration::from_nanos)
    }

    /// The time elapsed from `earlier` to `self`, zero if `earlier` is later.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::Timestamp;
    ///
    /// let (a, b) = (Timestamp::from_unix_secs(1), Timestamp::from_unix_secs(3));
    /// assert_eq!(a.duration_since(b), Duration::ZERO);
    /// ```
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        self.checked_duration_since(earlier).unwrap_or_default()
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// # Panics
    ///
    /// On overflow past [`Timestamp::MAX`]; see
    /// [`checked_add`](Timestamp::checked_add).
    fn add(self, rhs: Duration) -> Timestamp {
        self.checked_add(rhs)
            .expect("overflow when adding a duration to a timestamp (past the year 2262)")
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;

    /// # Panics
    ///
    /// On overflow before [`Timestamp::MIN`]; see
    /// [`checked_sub`](Timestamp::checked_sub).
    fn sub(self, rhs: Duration) -> Timestamp {
        self.checked_sub(rhs)
            .expect("overflow when subtracting a duration from a timestamp (before the year 1677)")
    }
}

impl SubAssign<Duration> for Timestamp {
    fn sub_assign(&mut self, rhs: Duration) {
        *self = *self - rhs;
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;

    /// The time elapsed from `rhs` to `self`, zero if `rhs` is later; see
    /// [`duration_since`](Timestamp::duration_since).
    fn sub(self, rhs: Timestamp) -> Duration {
        self.duration_since(rhs)
    }
}

impl From<SystemTime> for Timestamp {
    /// Converts, saturating at [`Timestamp::MIN`] and [`Timestamp::MAX`]:
    /// a `SystemTime` before 1677 becomes `MIN`, one after 2262 `MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use timecast::Timestamp;
    ///
    /// let before = SystemTime::UNIX_EPOCH - Duration::from_millis(1_500);
    /// assert_eq!(Timestamp::from(before), Timestamp::from_unix_millis(-1_500));
    /// let long_ago = SystemTime::UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400);
    /// assert_eq!(Timestamp::from(long_ago), Timestamp::MIN);
    /// ```
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(i64::try_from(after.as_nanos()).unwrap_or(i64::MAX)),
            Err(before) => {
                // Negated in i128: `MIN` is 2^63 ns before the epoch, one
                // more than `i64::MAX`.
                let nanos = -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX);
                Timestamp(i64::try_from(nanos).unwrap_or(i64::MIN))
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    /// Converts exactly: every `Timestamp` is a `SystemTime`, and converting
    /// back gives the same `Timestamp`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use timecast::Timestamp;
    ///
    /// let t = Timestamp::from_unix_nanos(-1);
    /// assert_eq!(SystemTime::from(t), SystemTime::UNIX_EPOCH - Duration::from_nanos(1));
    /// assert_eq!(Timestamp::from(SystemTime::from(t)), t);
    /// ```
    fn from(t: Timestamp) -> Self {
        let magnitude = Duration::from_nanos(t.0.unsigned_abs());
        if t.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC: `2025-01-01T00:00:00Z`, with `.mmm`, `.uuuuuu` or
    /// `.nnnnnnnnn` when the time is not a whole second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let tod = secs.rem_euclid(86_400);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            tod / 3600,
            tod / 60 % 60,
            tod % 60
        )?;
        if nanos == 0 {
        } else if nanos % 1_000_000 == 0 {
            write!(f, ".{:03}", nanos / 1_000_000)?;
        } else if nanos % 1_000 == 0 {
            write!(f, ".{:06}", nanos / 1_000)?;
        } else {
            write!(f, ".{nanos:09}")?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the "days from
/// civil" algorithm: eras of 400 years, years starting in March).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_over_a_long_span() {
        for days in (-800_000..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn displays_rfc3339() {
        assert_eq!(Timestamp::UNIX_EPOCH.to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_unix_nanos(-1).to_string(),
            "1969-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(1_000).to_string(),
            "1970-01-01T00:00:00.000001Z"
        );
        assert_eq!(
            Timestamp::from_unix_secs(951_782_400).to_string(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(Timestamp::MAX.to_string(), "2262-04-11T23:47:16.854775807Z");
        assert_eq!(Timestamp::MIN.to_string(), "1677-09-21T00:12:43.145224192Z");
    }

    #[test]
    fn calendar_validation() {
        assert!(Timestamp::from_ymd_hms(2024, 2, 29, 0, 0, 0).is_some());
        assert!(Timestamp::from_ymd_hms(2100, 2, 29, 0, 0, 0).is_none());
        assert!(Timestamp::from_ymd_hms(2024, 4, 31, 0, 0, 0).is_none());
        assert!(Timestamp::from_ymd_hms(2024, 1, 1, 24, 0, 0).is_none());
        assert!(Timestamp::from_ymd_hms(3000, 1, 1, 0, 0, 0).is_none());
    }

    #[test]
    fn system_time_round_trips() {
        for nanos in [0, 1, -1, 1_735_689_600_123_456_789, -86_400_000_000_001] {
            let t = Timestamp::from_unix_nanos(nanos);
            assert_eq!(Timestamp::from(SystemTime::from(t)), t);
        }
    }

    #[test]
    fn system_time_round_trips_at_both_ends_and_around_the_epoch() {
        let nanos = [
            i64::MIN,
            i64::MIN + 1,
            i64::MIN + 999_999_999,
            -1_000_000_001,
            -1_000_000_000,
            -999_999_999,
            -500_000_000,
            -1,
            0,
            1,
            999_999_999,
            1_000_000_000,
            i64::MAX - 1,
            i64::MAX,
        ];
        for n in nanos {
            let t = Timestamp::from_unix_nanos(n);
            assert_eq!(Timestamp::from(SystemTime::from(t)), t, "{n} ns");
        }
    }

    #[test]
    fn system_times_out_of_range_saturate() {
        let far = Duration::from_secs(400 * 365 * 86_400);
        assert_eq!(Timestamp::from(UNIX_EPOCH + far), Timestamp::MAX);
        assert_eq!(Timestamp::from(UNIX_EPOCH - far), Timestamp::MIN);
        let just_before_min = UNIX_EPOCH - Duration::from_nanos(1 << 63) - Duration::from_nanos(1);
        assert_eq!(Timestamp::from(just_before_min), Timestamp::MIN);
        let just_after_max = UNIX_EPOCH + Duration::from_nanos(i64::MAX as u64 + 1);
        assert_eq!(Timestamp::from(just_after_max), Timestamp::MAX);
    }
}
