//! Shell-style patterns over one file name (`*.exe`, `.ht*`, `core.?`),
//! for the names a site denies.

use std::fmt;

/// A pattern over one name: `*` matches any run of characters (none
/// included), `?` any one character, anything else itself, ASCII letters in
/// either case: a site that denies `*.exe` denies `SETUP.EXE` too, as a
/// case-insensitive file system (or a client's) would take it for the
/// same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    text: String,
    chars: Vec<char>,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    Empty,
    /// Patterns match one name, never a path.
    Slash,
    ControlCharacter,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternError::Empty => "empty pattern",
            PatternError::Slash => "a pattern matches one name and cannot hold '/'",
            PatternError::ControlCharacter => "a pattern cannot hold control characters",
        })
    }
}

impl std::error::Error for PatternError {}

impl NamePattern {
    pub fn new(text: &str) -> Result<NamePattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.contains('/') {
            return Err(PatternError::Slash);
        }
        if text.chars().any(char::is_control) {
            return Err(PatternError::ControlCharacter);
        }
        Ok(NamePattern {
            text: text.to_string(),
            chars: text.chars().collect(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches. Linear in the name for each star tried, so
    /// at most the name's length times the pattern's: a backtrack returns
    /// only to the last star, which is enough for `*` (any later match of
    /// the rest also fits after an earlier star).
    pub fn matches(&self, name: &str) -> bool {
        let p = &self.chars;
        let n: Vec<char> = name.chars().collect();
        let (mut pi, mut ni) = (0, 0);
        // The last star seen, and where in the name its run ends now.
        let mut star: Option<(usize, usize)> = None;
        while ni < n.len() {
            if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ni));
                pi += 1;
            } else if pi < p.len() && (p[pi] == '?' || p[pi].eq_ignore_ascii_case(&n[ni])) {
                pi += 1;
                ni += 1;
            } else if let Some((star_at, run_end)) = star {
                // Let the star take one more character and try again.
                pi = star_at + 1;
                ni = run_end + 1;
                star = Some((star_at, run_end + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        NamePattern::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn stars_questions_and_case() {
        assert!(m("*.exe", "setup.exe"));
        assert!(m("*.exe", "SETUP.EXE"));
        assert!(m("*.exe", ".exe"));
        assert!(!m("*.exe", "setup.exe.txt"));
        assert!(m(".ht*", ".htaccess"));
        assert!(!m(".ht*", "x.htaccess"));
        assert!(m("core.?", "core.1"));
        assert!(!m("core.?", "core.12"));
        assert!(m("*", ""));
        assert!(!m("a", ""));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("**x", "x"));
        assert!(m("é*", "été"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(NamePattern::new(""), Err(PatternError::Empty));
        assert_eq!(NamePattern::new("a/b"), Err(PatternError::Slash));
        assert_eq!(NamePattern::new("a\u{0}"), Err(PatternError::ControlCharacter));
    }

    /// The obvious recursive matcher, for comparison.
    fn naive(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|k| naive(rest, &n[k..])),
            Some((c, rest)) => !n.is_empty() && (*c == '?' || c.eq_ignore_ascii_case(&n[0])) && naive(rest, &n[1..]),
        }
    }

    #[test]
    fn agrees_with_the_naive_matcher() {
        let alphabet = ['a', 'B', 'b', '*', '?'];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |limit: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % limit as u64) as usize
        };
        for _ in 0..20_000 {
            let p: String = (0..1 + next(6)).map(|_| alphabet[next(5)]).collect();
            let n: String = (0..next(8)).map(|_| alphabet[next(3)]).collect();
            let pattern = NamePattern::new(&p).unwrap();
            let pc: Vec<char> = p.chars().collect();
            let nc: Vec<char> = n.chars().collect();
            assert_eq!(pattern.matches(&n), naive(&pc, &nc), "{p:?} against {n:?}");
        }
    }
}
