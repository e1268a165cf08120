//! MODE B, block mode (RFC 959 §3.4.2): each block is a one-byte
//! descriptor, a two-byte big-endian count and that many bytes. Descriptor
//! bits mark the end of a record (128), the end of the file (64), suspected
//! errors (32) and restart markers (16, RFC 959 §3.5), whose data is the
//! marker text.

/// Descriptor bit: the block ends a record.
pub const END_OF_RECORD: u8 = 128;
/// Descriptor bit: the block ends the file.
pub const END_OF_FILE: u8 = 64;
/// Descriptor bit: the sender suspects errors in the block.
pub const SUSPECTED_ERRORS: u8 = 32;
/// Descriptor bit: the block is a restart marker.
pub const RESTART_MARKER: u8 = 16;

/// Largest payload of one block.
pub const MAX_BLOCK: usize = u16::MAX as usize;

/// The three-byte header of a block.
pub fn header(descriptor: u8, len: u16) -> [u8; 3] {
    let [hi, lo] = len.to_be_bytes();
    [descriptor, hi, lo]
}

/// A restart-marker block carrying `marker` (printable ASCII, at most
/// [`MAX_BLOCK`] bytes).
pub fn marker_block(marker: &[u8]) -> Vec<u8> {
    let len = marker.len().min(MAX_BLOCK);
    let mut out = Vec::with_capacity(3 + len);
    out.extend_from_slice(&header(RESTART_MARKER, len as u16));
    out.extend_from_slice(&marker[..len]);
    out
}

/// What the decoder found.
#[derive(Debug, PartialEq, Eq)]
pub enum BlockEvent<'a> {
    /// File data, borrowed from the input.
    Data(&'a [u8]),
    /// A restart marker from the sender.
    RestartMarker(Vec<u8>),
    /// The end-of-file block: the transfer is complete.
    EndOfFile,
}

#[derive(Debug)]
enum State {
    Header { buf: [u8; 3], have: usize },
    Data { remaining: usize, eof_after: bool },
    Marker { remaining: usize, eof_after: bool },
    Done,
}

/// Decodes a block-mode stream incrementally. Memory is bounded by one
/// marker (at most 64 KiB); data is passed through without copying.
#[derive(Debug)]
pub struct BlockDecoder {
    state: State,
    marker: Vec<u8>,
}

impl Default for BlockDecoder {
    fn default() -> Self {
        BlockDecoder {
            state: State::Header { buf: [0; 3], have: 0 },
            marker: Vec::new(),
        }
    }
}

impl BlockDecoder {
    /// True once the end-of-file block has been decoded, including when
    /// the last bytes of an end-of-file block that carries data were just
    /// returned: no further input (which a MODE B sender never sends) is
    /// needed to know the file is complete.
    pub fn is_done(&self) -> bool {
        matches!(
            self.state,
            State::Done
                | State::Data {
                    remaining: 0,
                    eof_after: true
                }
        )
    }

    /// Decodes from `input`, returning how many bytes were consumed and at
    /// most one event. Call again with the rest of the input until it
    /// consumes nothing.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> (usize, Option<BlockEvent<'a>>) {
        let mut used = 0;
        loop {
            match &mut self.state {
                State::Done => return (used, None),
                State::Header { buf, have } => {
                    if used == input.len() {
                        return (used, None);
                    }
                    let take = (3 - *have).min(input.len() - used);
                    buf[*have..*have + take].copy_from_slice(&input[used..used + take]);
                    *have += take;
                    used += take;
                    if *have < 3 {
                        return (used, None);
                    }
                    let descriptor = buf[0];
                    let count = u16::from_be_bytes([buf[1], buf[2]]) as usize;
                    let eof_after = descriptor & END_OF_FILE != 0;
                    if descriptor & RESTART_MARKER != 0 {
                        self.marker.clear();
                        self.state = State::Marker {
                            remaining: count,
                            eof_after,
                        };
                    } else {
                        self.state = State::Data {
                            remaining: count,
                            eof_after,
                        };
                    }
                }
                State::Data { remaining, eof_after } => {
                    if *remaining == 0 {
                        let eof = *eof_after;
                        self.state = if eof {
                            State::Done
                        } else {
                            State::Header { buf: [0; 3], have: 0 }
                        };
                        if eof {
                            return (used, Some(BlockEvent::EndOfFile));
                        }
                        continue;
                    }
                    if used == input.len() {
                        return (used, None);
                    }
                    let take = (*remaining).min(input.len() - used);
                    *remaining -= take;
                    let data = &input[used..used + take];
                    return (used + take, Some(BlockEvent::Data(data)));
                }
                State::Marker { remaining, eof_after } => {
                    let take = (*remaining).min(input.len() - used);
                    self.marker.extend_from_slice(&input[used..used + take]);
                    *remaining -= take;
                    used += take;
                    if *remaining > 0 {
                        return (used, None);
                    }
                    // A marker block may carry the EOF bit too: the next
                    // call reports EndOfFile, as for a data block.
                    self.state = if *eof_after {
                        State::Data {
                            remaining: 0,
                            eof_after: true,
                        }
                    } else {
                        State::Header { buf: [0; 3], have: 0 }
                    };
                    return (used, Some(BlockEvent::RestartMarker(std::mem::take(&mut self.marker))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> (Vec<u8>, Vec<Vec<u8>>, bool) {
        let mut d = BlockDecoder::default();
        let (mut data, mut markers, mut eof) = (Vec::new(), Vec::new(), false);
        for chunk in input.chunks(step) {
            let mut rest = chunk;
            loop {
                let (n, ev) = d.decode(rest);
                rest = &rest[n..];
                match ev {
                    Some(BlockEvent::Data(b)) => data.extend_from_slice(b),
                    Some(BlockEvent::RestartMarker(m)) => markers.push(m),
                    Some(BlockEvent::EndOfFile) => eof = true,
                    None if n == 0 || rest.is_empty() => break,
                    None => {}
                }
                if rest.is_empty() && !matches!(d.state, State::Data { remaining: 0, .. }) {
                    break;
                }
            }
        }
        (data, markers, eof)
    }

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&header(0, 5));
        s.extend_from_slice(b"hello");
        s.extend_from_slice(&marker_block(b"5"));
        s.extend_from_slice(&header(END_OF_FILE, 6));
        s.extend_from_slice(b" world");
        s
    }

    #[test]
    fn decodes_in_any_chunking() {
        for step in [1, 2, 3, 7, 1000] {
            let (data, markers, eof) = decode_all(&stream(), step);
            assert_eq!(data, b"hello world", "step {step}");
            assert_eq!(markers, vec![b"5".to_vec()]);
            assert!(eof);
        }
    }

    #[test]
    fn empty_eof_block() {
        let (data, _, eof) = decode_all(&header(END_OF_FILE, 0), 10);
        assert!(data.is_empty());
        assert!(eof);
    }

    /// Found by the `modeb` fuzz target: a restart marker carrying the EOF
    /// bit finished the decoder (`is_done`) without an EndOfFile event.
    #[test]
    fn marker_with_eof_bit_reports_end_of_file() {
        let (_, markers, eof) = decode_all(&header(RESTART_MARKER | END_OF_FILE, 0), 1);
        assert_eq!(markers, vec![Vec::<u8>::new()]);
        assert!(eof);
        let mut d = BlockDecoder::default();
        let mut s = header(RESTART_MARKER | END_OF_FILE, 2).to_vec();
        s.extend_from_slice(b"42");
        assert_eq!(d.decode(&s), (5, Some(BlockEvent::RestartMarker(b"42".to_vec()))));
        assert!(d.is_done());
        assert_eq!(d.decode(&[]), (0, Some(BlockEvent::EndOfFile)));
        assert_eq!(d.decode(b"x"), (0, None));
    }

    #[test]
    fn truncated_stream_is_not_done() {
        let s = stream();
        let mut d = BlockDecoder::default();
        let mut rest = &s[..s.len() - 1];
        while !rest.is_empty() {
            let (n, _) = d.decode(rest);
            rest = &rest[n..];
        }
        assert!(!d.is_done());
    }
}
