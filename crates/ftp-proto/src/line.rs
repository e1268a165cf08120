//! The control-connection line decoder.
//!
//! RFC 959 §4.1.3 makes the control connection a Telnet stream ending each
//! command with CR LF. Real clients also send a bare LF, and Python's ftplib
//! sends `ABOR` with Telnet IP/DM sequences in front (RFC 959 §4.1.3, "Telnet
//! Synch"). The decoder accepts both line ends, drops Telnet commands, and
//! caps the length of a line so that a client can never grow server memory by
//! withholding the newline.

/// A line that was longer than the cap. The decoder has already discarded its
/// bytes and will keep discarding until the next line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

const IAC: u8 = 255;
const WILL: u8 = 251;
const DONT: u8 = 254;

/// Splits a byte stream into command lines, each at most `max_len` bytes
/// as received (Telnet commands counted, the line end not).
#[derive(Debug)]
pub struct LineDecoder {
    /// Bytes received but not yet returned as a line.
    pending: Vec<u8>,
    /// Where the search for the next LF resumes in `pending`.
    scanned: usize,
    max_len: usize,
    /// True after an over-long line was reported and until its LF arrives.
    discarding: bool,
}

impl LineDecoder {
    pub fn new(max_len: usize) -> Self {
        LineDecoder {
            pending: Vec::new(),
            scanned: 0,
            max_len,
            discarding: false,
        }
    }

    /// Appends bytes read from the connection. Call [`next_line`] until it
    /// returns `None` before feeding more, so that at most one over-long line
    /// worth of bytes is ever held.
    ///
    /// [`next_line`]: LineDecoder::next_line
    pub fn feed(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    /// True when the decoder holds no unreturned bytes.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// How many received bytes the decoder holds: at most `max_len + 1`
    /// once [`next_line`](LineDecoder::next_line) has returned `None`
    /// (checked by the fuzz target `line_decoder`).
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Returns the next complete line without its line end and with Telnet
    /// commands removed, `Some(Err(LineTooLong))` once for a line over the
    /// cap, or `None` when more input is needed.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineTooLong>> {
        loop {
            let newline = self.pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| i + self.scanned);
            match newline {
                Some(end) => {
                    let mut raw: Vec<u8> = self.pending.drain(..=end).collect();
                    self.scanned = 0;
                    raw.pop(); // LF
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    // The cap counts the bytes received (Telnet commands
                    // included, the CR of the line end not), as the check
                    // on a partial line below must: so the verdict on a
                    // line does not depend on how TCP split it.
                    let received = raw.len() - usize::from(raw.last() == Some(&b'\r'));
                    if received > self.max_len {
                        return Some(Err(LineTooLong));
                    }
                    let mut line = strip_telnet(&raw);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Some(Ok(line));
                }
                None => {
                    self.scanned = self.pending.len();
                    if self.pending.len() > self.max_len + 1 {
                        // +1 leaves room for the CR of a line exactly at the cap.
                        self.pending.clear();
                        self.scanned = 0;
                        if self.discarding {
                            return None;
                        }
                        self.discarding = true;
                        return Some(Err(LineTooLong));
                    }
                    return None;
                }
            }
        }
    }
}

/// Removes Telnet command sequences (RFC 854): `IAC IAC` is a literal 0xFF,
/// `IAC WILL/WONT/DO/DONT x` is an option negotiation (three bytes), and any
/// other `IAC x` (IP, DM, ...) is a two-byte command.
fn strip_telnet(raw: &[u8]) -> Vec<u8> {
    if !raw.contains(&IAC) {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != IAC {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        match raw.get(i + 1) {
            Some(&IAC) => {
                out.push(IAC);
                i += 2;
            }
            Some(&c) if (WILL..=DONT).contains(&c) => i += 3,
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dec: &mut LineDecoder) -> Vec<Result<Vec<u8>, LineTooLong>> {
        std::iter::from_fn(|| dec.next_line()).collect()
    }

    #[test]
    fn crlf_and_bare_lf() {
        let mut d = LineDecoder::new(100);
        d.feed(b"USER a\r\nPASS b\nNOOP");
        assert_eq!(lines(&mut d), vec![Ok(b"USER a".to_vec()), Ok(b"PASS b".to_vec())]);
        d.feed(b"\r\n");
        assert_eq!(lines(&mut d), vec![Ok(b"NOOP".to_vec())]);
        assert!(d.is_empty());
    }

    #[test]
    fn byte_at_a_time() {
        let mut d = LineDecoder::new(100);
        let mut got = Vec::new();
        for b in b"LIST /x\r\n" {
            d.feed(&[*b]);
            got.extend(lines(&mut d));
        }
        assert_eq!(got, vec![Ok(b"LIST /x".to_vec())]);
    }

    #[test]
    fn over_long_line_reported_once_then_resync() {
        let mut d = LineDecoder::new(8);
        d.feed(&[b'A'; 20]);
        assert_eq!(lines(&mut d), vec![Err(LineTooLong)]);
        d.feed(&[b'A'; 20]);
        assert_eq!(lines(&mut d), vec![]);
        d.feed(b"AAA\r\nNOOP\r\n");
        assert_eq!(lines(&mut d), vec![Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn over_long_complete_line() {
        let mut d = LineDecoder::new(4);
        d.feed(b"ABCDE\r\nQUIT\r\n");
        assert_eq!(lines(&mut d), vec![Err(LineTooLong), Ok(b"QUIT".to_vec())]);
    }

    #[test]
    fn line_exactly_at_cap_is_accepted() {
        let mut d = LineDecoder::new(4);
        d.feed(b"ABCD\r");
        assert_eq!(lines(&mut d), vec![]);
        d.feed(b"\n");
        assert_eq!(lines(&mut d), vec![Ok(b"ABCD".to_vec())]);
    }

    #[test]
    fn memory_stays_bounded_without_newline() {
        let mut d = LineDecoder::new(64);
        for _ in 0..10_000 {
            d.feed(&[b'x'; 50]);
            let _ = lines(&mut d);
            assert!(d.pending.len() <= 64 + 51);
        }
    }

    #[test]
    fn telnet_synch_before_abor() {
        let mut d = LineDecoder::new(100);
        d.feed(&[IAC, 244, IAC, 242, b'A', b'B', b'O', b'R', b'\r', b'\n']);
        assert_eq!(lines(&mut d), vec![Ok(b"ABOR".to_vec())]);
    }

    /// Found by the `line_decoder` fuzz target: Telnet commands made a
    /// line over the cap acceptable when it arrived in one read but not
    /// when split, because only a partial line counted them.
    #[test]
    fn telnet_bytes_count_against_the_cap_in_any_chunking() {
        let line = [IAC, 11, IAC, b'\n'];
        let mut whole = LineDecoder::new(1);
        whole.feed(&line);
        let mut split = LineDecoder::new(1);
        let mut got = Vec::new();
        for b in line {
            split.feed(&[b]);
            got.extend(lines(&mut split));
        }
        assert_eq!(lines(&mut whole), vec![Err(LineTooLong)]);
        assert_eq!(got, vec![Err(LineTooLong)]);
    }

    #[test]
    fn telnet_escaped_iac_and_negotiation() {
        let mut d = LineDecoder::new(100);
        d.feed(&[b'a', IAC, IAC, b'b', IAC, 253, 1, b'c', b'\n']);
        assert_eq!(lines(&mut d), vec![Ok(vec![b'a', 0xFF, b'b', b'c'])]);
    }
}
