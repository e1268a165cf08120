//! UTC calendar arithmetic for listings and MDTM/MFMT, with no clock: callers
//! pass the instants in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds relative to the Unix epoch (negative before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

impl UtcTime {
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    pub fn from_system(t: SystemTime) -> Self {
        Self::from_unix(unix_seconds(t))
    }

    pub fn to_unix(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    pub fn to_system(self) -> SystemTime {
        let s = self.to_unix();
        if s >= 0 {
            UNIX_EPOCH + Duration::from_secs(s as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
        }
    }

    /// `YYYYMMDDHHMMSS`, the RFC 3659 time-val used by MDTM and MLSx.
    pub fn to_time_val(self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Parses an RFC 3659 time-val, `YYYYMMDDHHMMSS` with an optional
    /// fraction (`.sss`, ignored). Fields are range-checked.
    pub fn parse_time_val(s: &str) -> Option<UtcTime> {
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
        }
        let num = |a: usize, b: usize| whole[a..b].parse::<u32>().ok();
        let t = UtcTime {
            year: i64::from(num(0, 4)?),
            month: num(4, 6)?,
            day: num(6, 8)?,
            hour: num(8, 10)?,
            minute: num(10, 12)?,
            second: num(12, 14)?,
        };
        let days_in_month = match t.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0 => 29,
            2 => 28,
            _ => return None,
        };
        // Seconds up to 60 allow a leap second, as RFC 3659 does.
        if t.day == 0 || t.day > days_in_month || t.hour > 23 || t.minute > 59 || t.second > 60 {
            return None;
        }
        Some(t)
    }
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [0i64, 1, 86_399, 951_782_400, 1_764_094_924, -1, -86_401, 4_102_444_800] {
            assert_eq!(UtcTime::from_unix(s).to_unix(), s, "{s}");
        }
    }

    #[test]
    fn known_dates() {
        let t = UtcTime::from_unix(951_782_400); // 2000-02-29
        assert_eq!((t.year, t.month, t.day), (2000, 2, 29));
        assert_eq!(UtcTime::from_unix(0).to_time_val(), "19700101000000");
    }

    #[test]
    fn parse_time_val() {
        let t = UtcTime::parse_time_val("20261125174500").unwrap();
        assert_eq!(t.to_time_val(), "20261125174500");
        assert!(UtcTime::parse_time_val("20261125174500.123").is_some());
        assert!(UtcTime::parse_time_val("20260230000000").is_none());
        assert!(UtcTime::parse_time_val("20261325000000").is_none());
        assert!(UtcTime::parse_time_val("2026112517450").is_none());
        assert!(UtcTime::parse_time_val("2026112517450x").is_none());
        assert!(UtcTime::parse_time_val("20261125174500.").is_none());
    }
}
