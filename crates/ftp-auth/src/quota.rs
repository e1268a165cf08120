//! Storage limits of a user: [`QuotaLimits`], and [`Size`], how a limit is
//! written in the users file and the server configuration.
//!
//! A size is a non-negative integer of bytes, or a string: digits with an
//! optional binary unit (`"512K"`, `"10 MiB"`, `"2G"`, `"1T"`; K, M, G, T
//! and their `KiB`/`KB` spellings are all powers of 1024), or
//! `"unlimited"`. Counts (`quota_files`) take the same forms.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The value that stands for "no limit" (written `"unlimited"`).
pub const UNLIMITED: u64 = u64::MAX;

/// A user's storage limits; `None` means not set (the server's default
/// applies), `Some(UNLIMITED)` means explicitly unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaLimits {
    /// Bytes of regular files under the user's home.
    pub bytes: Option<u64>,
    /// Regular files under the user's home (directories do not count).
    pub files: Option<u64>,
    /// The largest file the user may upload (also by APPE or REST+STOR).
    pub max_file_size: Option<u64>,
}

impl QuotaLimits {
    /// These limits where set, `defaults` elsewhere; an explicit
    /// "unlimited" becomes `None`.
    #[must_use]
    pub fn or(self, defaults: QuotaLimits) -> QuotaLimits {
        let pick = |own: Option<u64>, default: Option<u64>| own.or(default).filter(|&v| v != UNLIMITED);
        QuotaLimits {
            bytes: pick(self.bytes, defaults.bytes),
            files: pick(self.files, defaults.files),
            max_file_size: pick(self.max_file_size, defaults.max_file_size),
        }
    }

    /// True when no limit is set at all.
    pub fn is_unlimited(&self) -> bool {
        [self.bytes, self.files, self.max_file_size]
            .iter()
            .all(|v| v.is_none_or(|v| v == UNLIMITED))
    }
}

/// A size or count as written in a TOML file (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// Parses the string form of a [`Size`].
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Ok(UNLIMITED);
    }
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let bad =
        || format!("{text:?} is not a size (bytes, e.g. 1048576, \"512K\", \"10 MiB\", \"2G\", or \"unlimited\")");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_uppercase();
    let shift = match unit.as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(1u64 << shift)
        .filter(|&v| v != UNLIMITED)
        .ok_or_else(|| format!("{text:?} is too large"))
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(self.0) {
            _ if self.0 == UNLIMITED => s.serialize_str("unlimited"),
            Ok(v) => s.serialize_i64(v),
            Err(_) => s.serialize_str(&self.0.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes, a size such as \"10 MiB\", or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("10 MiB"), Ok(10 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("3GB"), Ok(3 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("Unlimited"), Ok(UNLIMITED));
        for bad in ["", "-1", "1.5G", "10 apples", "M", "1BB", "5IB", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn toml_forms() {
        #[derive(Deserialize, Serialize)]
        struct T {
            a: Size,
            b: Size,
            c: Size,
        }
        let t: T = toml::from_str("a = 5\nb = \"1 KiB\"\nc = \"unlimited\"").unwrap();
        assert_eq!((t.a, t.b, t.c), (Size(5), Size(1024), Size(UNLIMITED)));
        assert_eq!(toml::to_string(&t).unwrap(), "a = 5\nb = 1024\nc = \"unlimited\"\n");
        assert!(toml::from_str::<T>("a = -5\nb = 1\nc = 1").is_err());
        assert!(toml::from_str::<T>("a = 1.5\nb = 1\nc = 1").is_err());
    }

    #[test]
    fn user_limits_over_defaults() {
        let defaults = QuotaLimits {
            bytes: Some(100),
            files: Some(10),
            max_file_size: None,
        };
        let own = QuotaLimits {
            bytes: Some(UNLIMITED),
            files: None,
            max_file_size: Some(50),
        };
        let effective = own.or(defaults);
        assert_eq!(
            effective,
            QuotaLimits {
                bytes: None,
                files: Some(10),
                max_file_size: Some(50)
            }
        );
        assert!(!effective.is_unlimited());
        assert!(QuotaLimits::default().is_unlimited());
        assert!(own.or(QuotaLimits::default()).files.is_none());
    }
}
