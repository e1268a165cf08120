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
    let type_char = match facts.kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
    };
    let mode = facts.mode.unwrap_or(match facts.kind {
        EntryKind::Dir => 0o755,
        _ => 0o644,
    });
    let mut perms = String::with_capacity(10);
    perms.push(type_char);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let date = match facts.modified {
        Some(t) => ls_date(unix_seconds(t), unix_seconds(now)),
        None => "Jan  1  1970".to_string(),
    };
    format!(
        "{perms} {:>4} ftp      ftp      {:>12} {date} {name}",
        if facts.kind == EntryKind::Dir { 2 } else { 1 },
        facts.size
    )
}

/// `Mon dd HH:MM` for times within six months of now, `Mon dd  YYYY`
/// otherwise (as `ls -l` does).
fn ls_date(secs: i64, now: i64) -> String {
    let t = UtcTime::from_unix(secs);
    let month = MONTHS[(t.month - 1) as usize];
    if (now - secs).abs() < HALF_YEAR_SECS {
        format!("{month} {:>2} {:02}:{:02}", t.day, t.hour, t.minute)
    } else {
        format!("{month} {:>2} {:>5}", t.day, t.year)
    }
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
    let mut out = String::with_capacity(96 + name.len());
    if set.kind {
        out.push_str(match facts.kind {
            EntryKind::Dir => "type=dir;",
            EntryKind::File => "type=file;",
            EntryKind::Symlink => "type=OS.unix=symlink;",
        });
    }
    if set.size && facts.kind != EntryKind::Dir {
        out.push_str(&format!("size={};", facts.size));
    }
    if set.modify {
        if let Some(t) = facts.modified {
            out.push_str(&format!("modify={};", UtcTime::from_system(t).to_time_val()));
        }
    }
    if set.perm {
        out.push_str(&format!("perm={perm};"));
    }
    if set.unix_mode {
        if let Some(mode) = facts.mode {
            out.push_str(&format!("UNIX.mode={:04o};", mode & 0o7777));
        }
    }
    out.push(' ');
    out.push_str(name);
    out
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
