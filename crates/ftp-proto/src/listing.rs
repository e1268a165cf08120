//! Listing formats: LIST (Unix `ls -l`, what wget, ftputil and browsers
//! parse), NLST (names), and MLSx facts (RFC 3659 §7).

use std::time::SystemTime;

use crate::time::{unix_seconds, UtcTime, MONTHS};

/// What kind of thing a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// The facts about one file or directory that listings show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub kind: EntryKind,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// Unix permission bits (`0o644`), when the storage has them.
    pub mode: Option<u32>,
}

/// Six months, the age past which `ls -l` shows the year instead of the time.
const HALF_YEAR_SECS: i64 = 182 * 86_400;

/// One `ls -l` line (without line end):
/// `-rw-r--r--    1 ftp      ftp          1234 Nov 25 17:45 name`.
pub fn format_list_line(facts: &Facts, name: &str, now: SystemTime) -> String {
    let mut out = Vec::with_capacity(64 + name.len());
    write_list_line(&mut out, facts, name, unix_seconds(now));
    ascii_and_name(out)
}

/// Appends the `ls -l` line of [`format_list_line`] to `out`, `now` in Unix
/// seconds. Listings of tens of thousands of entries call this per entry,
/// so it writes digits by hand instead of going through `format!` (which
/// allocated two strings per line and showed as a tenth of a LIST's CPU).
pub fn write_list_line(out: &mut Vec<u8>, facts: &Facts, name: &str, now: i64) {
    let type_char = match facts.kind {
        EntryKind::File => b'-',
        EntryKind::Dir => b'd',
        EntryKind::Symlink => b'l',
    };
    let mode = facts.mode.unwrap_or(match facts.kind {
        EntryKind::Dir => 0o755,
        _ => 0o644,
    });
    out.push(type_char);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { b'r' } else { b'-' });
        out.push(if bits & 2 != 0 { b'w' } else { b'-' });
        out.push(if bits & 1 != 0 { b'x' } else { b'-' });
    }
    out.push(b' ');
    push_padded(out, if facts.kind == EntryKind::Dir { 2 } else { 1 }, 4, b' ');
    out.extend_from_slice(b" ftp      ftp      ");
    push_padded(out, facts.size, 12, b' ');
    out.push(b' ');
    match facts.modified {
        Some(t) => write_ls_date(out, unix_seconds(t), now),
        None => out.extend_from_slice(b"Jan  1  1970"),
    }
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
}

/// `Mon dd HH:MM` for times within six months of now, `Mon dd  YYYY`
/// otherwise (as `ls -l` does).
fn write_ls_date(out: &mut Vec<u8>, secs: i64, now: i64) {
    let t = UtcTime::from_unix(secs);
    out.extend_from_slice(MONTHS[(t.month - 1) as usize].as_bytes());
    out.push(b' ');
    push_padded(out, t.day.into(), 2, b' ');
    out.push(b' ');
    if (now - secs).abs() < HALF_YEAR_SECS {
        push_padded(out, t.hour.into(), 2, b'0');
        out.push(b':');
        push_padded(out, t.minute.into(), 2, b'0');
    } else if t.year >= 0 {
        push_padded(out, t.year as u64, 5, b' ');
    } else {
        // Before year 0: no fast path needed, only correctness.
        out.extend_from_slice(format!("{:>5}", t.year).as_bytes());
    }
}

/// Appends `value` in decimal, right-aligned in `width` columns filled
/// with `fill` (wider values take the room they need, as `{:>width}` does).
fn push_padded(out: &mut Vec<u8>, mut value: u64, width: usize, fill: u8) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let len = digits.len() - start;
    out.extend(std::iter::repeat_n(fill, width.saturating_sub(len)));
    out.extend_from_slice(&digits[start..]);
}

/// A line built by the writers above: ASCII around a name that was a
/// `&str`, so it is always UTF-8.
fn ascii_and_name(line: Vec<u8>) -> String {
    String::from_utf8(line).expect("listing lines are built from ASCII and UTF-8 names")
}

/// The MLSx facts a client may select with `OPTS MLST` (RFC 3659 §7.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactSet {
    pub kind: bool,
    pub size: bool,
    pub modify: bool,
    pub perm: bool,
    pub unix_mode: bool,
}

impl Default for FactSet {
    fn default() -> Self {
        FactSet {
            kind: true,
            size: true,
            modify: true,
            perm: true,
            unix_mode: true,
        }
    }
}

impl FactSet {
    /// The FEAT line's fact list, selected ones marked with `*`.
    pub fn feat_line(&self) -> String {
        let mut out = String::from("MLST ");
        for (name, on) in self.named() {
            out.push_str(name);
            if on {
                out.push('*');
            }
            out.push(';');
        }
        out
    }

    /// Selects the facts named in `OPTS MLST a;b;` and returns the reply
    /// text listing the selected ones. Unknown names are ignored as RFC 3659
    /// §7.9 says.
    pub fn select(spec: &str) -> FactSet {
        let mut set = FactSet {
            kind: false,
            size: false,
            modify: false,
            perm: false,
            unix_mode: false,
        };
        for name in spec.split(';').map(|n| n.trim().to_ascii_lowercase()) {
            match name.as_str() {
                "type" => set.kind = true,
                "size" => set.size = true,
                "modify" => set.modify = true,
                "perm" => set.perm = true,
                "unix.mode" => set.unix_mode = true,
                _ => {}
            }
        }
        set
    }

    /// The selected names joined as `a;b;`.
    pub fn selected_names(&self) -> String {
        self.named()
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| format!("{n};"))
            .collect()
    }

    fn named(&self) -> [(&'static str, bool); 5] {
        [
            ("type", self.kind),
            ("size", self.size),
            ("modify", self.modify),
            ("perm", self.perm),
            ("UNIX.mode", self.unix_mode),
        ]
    }
}

/// One MLSx line without its leading space or line end:
/// `type=file;size=12;modify=20261125174500;perm=adfrw; name`.
/// `perm` is the RFC 3659 §7.5.5 perm fact the server computed for the user.
pub fn format_mlsx(facts: &Facts, name: &str, perm: &str, set: &FactSet) -> String {
    let mut out = Vec::with_capacity(96 + name.len());
    write_mlsx(&mut out, facts, name, perm, set);
    ascii_and_name(out)
}

/// Appends the MLSx line of [`format_mlsx`] to `out` (MLSD calls it per
/// entry).
pub fn write_mlsx(out: &mut Vec<u8>, facts: &Facts, name: &str, perm: &str, set: &FactSet) {
    if set.kind {
        out.extend_from_slice(match facts.kind {
            EntryKind::Dir => b"type=dir;".as_slice(),
            EntryKind::File => b"type=file;",
            EntryKind::Symlink => b"type=OS.unix=symlink;",
        });
    }
    if set.size && facts.kind != EntryKind::Dir {
        out.extend_from_slice(b"size=");
        push_padded(out, facts.size, 0, b'0');
        out.push(b';');
    }
    if set.modify {
        if let Some(t) = facts.modified {
            let t = UtcTime::from_system(t);
            out.extend_from_slice(b"modify=");
            if (0..=9999).contains(&t.year) {
                push_padded(out, t.year as u64, 4, b'0');
                for field in [t.month, t.day, t.hour, t.minute, t.second] {
                    push_padded(out, field.into(), 2, b'0');
                }
            } else {
                out.extend_from_slice(t.to_time_val().as_bytes());
            }
            out.push(b';');
        }
    }
    if set.perm {
        out.extend_from_slice(b"perm=");
        out.extend_from_slice(perm.as_bytes());
        out.push(b';');
    }
    if set.unix_mode {
        if let Some(mode) = facts.mode {
            let mode = mode & 0o7777;
            out.extend_from_slice(b"UNIX.mode=");
            for shift in [9, 6, 3, 0] {
                out.push(b'0' + ((mode >> shift) & 7) as u8);
            }
            out.push(b';');
        }
    }
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn list_line_recent_and_old() {
        let now = at(1_764_094_924); // 2025-11-25
        let f = Facts {
            kind: EntryKind::File,
            size: 1234,
            modified: Some(at(1_764_090_000)),
            mode: Some(0o644),
        };
        assert_eq!(
            format_list_line(&f, "a.txt", now),
            "-rw-r--r--    1 ftp      ftp              1234 Nov 25 17:00 a.txt"
        );
        let d = Facts {
            kind: EntryKind::Dir,
            size: 4096,
            modified: Some(at(951_782_400)),
            mode: Some(0o755),
        };
        assert_eq!(
            format_list_line(&d, "old", now),
            "drwxr-xr-x    2 ftp      ftp              4096 Feb 29  2000 old"
        );
    }

    /// The hand-written digits against `format!`, over sizes of every
    /// width, dates on both sides of the six-month cut and every mode.
    #[test]
    fn writers_match_format_macros() {
        let now_secs = 1_764_094_924i64;
        let now = at(now_secs as u64);
        let mut sizes = vec![0u64, 9, 10, 99, 100, u64::MAX];
        sizes.extend((0..20).map(|p| 10u64.pow(p) - 1));
        sizes.extend((0..20).map(|p| 10u64.pow(p)));
        let times = [
            0i64,
            59,
            3_600 * 23 + 59 * 60,
            now_secs - HALF_YEAR_SECS,
            now_secs - HALF_YEAR_SECS + 1,
            now_secs,
            now_secs + HALF_YEAR_SECS,
            253_402_300_799,
        ];
        for (i, &size) in sizes.iter().enumerate() {
            for &secs in &times {
                let mode = (i as u32 * 0o1234567) & 0o7777;
                let kind = [EntryKind::File, EntryKind::Dir, EntryKind::Symlink][i % 3];
                let f = Facts {
                    kind,
                    size,
                    modified: Some(at(secs as u64)),
                    mode: Some(mode),
                };
                let t = UtcTime::from_unix(secs);
                let month = MONTHS[(t.month - 1) as usize];
                let date = if (now_secs - secs).abs() < HALF_YEAR_SECS {
                    format!("{month} {:>2} {:02}:{:02}", t.day, t.hour, t.minute)
                } else {
                    format!("{month} {:>2} {:>5}", t.day, t.year)
                };
                let mut perms = String::from(match kind {
                    EntryKind::File => "-",
                    EntryKind::Dir => "d",
                    EntryKind::Symlink => "l",
                });
                for shift in [6, 3, 0] {
                    let bits = (mode >> shift) & 7;
                    perms.push(if bits & 4 != 0 { 'r' } else { '-' });
                    perms.push(if bits & 2 != 0 { 'w' } else { '-' });
                    perms.push(if bits & 1 != 0 { 'x' } else { '-' });
                }
                let links = if kind == EntryKind::Dir { 2 } else { 1 };
                assert_eq!(
                    format_list_line(&f, "n \u{e9}", now),
                    format!("{perms} {links:>4} ftp      ftp      {size:>12} {date} n \u{e9}")
                );
                let size_fact = if kind == EntryKind::Dir {
                    String::new()
                } else {
                    format!("size={size};")
                };
                let kind_fact = match kind {
                    EntryKind::File => "file",
                    EntryKind::Dir => "dir",
                    EntryKind::Symlink => "OS.unix=symlink",
                };
                assert_eq!(
                    format_mlsx(&f, "x", "r", &FactSet::default()),
                    format!(
                        "type={kind_fact};{size_fact}modify={};perm=r;UNIX.mode={mode:04o}; x",
                        t.to_time_val()
                    )
                );
            }
        }
    }

    #[test]
    fn mlsx_facts_and_selection() {
        let f = Facts {
            kind: EntryKind::File,
            size: 5,
            modified: Some(at(0)),
            mode: Some(0o640),
        };
        assert_eq!(
            format_mlsx(&f, "x y", "adfrw", &FactSet::default()),
            "type=file;size=5;modify=19700101000000;perm=adfrw;UNIX.mode=0640; x y"
        );
        let set = FactSet::select("type;size;bogus;");
        assert_eq!(set.selected_names(), "type;size;");
        assert_eq!(format_mlsx(&f, "x", "r", &set), "type=file;size=5; x");
        assert_eq!(
            FactSet::default().feat_line(),
            "MLST type*;size*;modify*;perm*;UNIX.mode*;"
        );
    }
}
