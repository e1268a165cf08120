//! STRU P, page structure (RFC 959 §3.1.2.3): each page starts with a header
//! of logical bytes (8-bit here): header length (at least 4, counting
//! itself), page index, data length, page type, then optional fields. Page
//! types are 0 (last page), 1 (simple), 2 (descriptor) and 3 (access
//! controlled); any other type is refused with 551.

/// Page types RFC 959 defines.
pub const LAST_PAGE: u8 = 0;
pub const SIMPLE_PAGE: u8 = 1;
pub const DESCRIPTOR_PAGE: u8 = 2;
pub const ACCESS_CONTROLLED_PAGE: u8 = 3;

/// Largest data length one page header can express.
pub const MAX_PAGE_DATA: usize = u8::MAX as usize;

/// Why a page stream was refused (551).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    UnknownType(u8),
    /// A header length below the 4 fields every header has.
    BadHeaderLength(u8),
}

/// The header of a simple page holding `len` bytes.
pub fn simple_page_header(index: u8, len: u8) -> [u8; 4] {
    [4, index, len, SIMPLE_PAGE]
}

/// The header of the last page, which ends the file.
pub fn last_page_header(index: u8) -> [u8; 4] {
    [4, index, 0, LAST_PAGE]
}

#[derive(Debug, PartialEq, Eq)]
pub enum PageEvent<'a> {
    /// File data of a simple or access-controlled page.
    Data(&'a [u8]),
    /// The last page: the file is complete.
    End,
}

#[derive(Debug)]
enum State {
    /// `fields` holds the four fixed fields; optional fields are skipped.
    Header {
        fields: [u8; 4],
        have: usize,
    },
    Data {
        remaining: usize,
        keep: bool,
    },
    Done,
}

/// Decodes a page stream incrementally, passing file data through and
/// dropping descriptor pages.
#[derive(Debug)]
pub struct PageDecoder {
    state: State,
}

impl Default for PageDecoder {
    fn default() -> Self {
        PageDecoder {
            state: State::Header {
                fields: [0; 4],
                have: 0,
            },
        }
    }
}

impl PageDecoder {
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Decodes from `input`: bytes consumed and at most one event.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<PageEvent<'a>>), PageError> {
        let mut used = 0;
        loop {
            match &mut self.state {
                State::Done => return Ok((used, None)),
                State::Header { fields, have } => {
                    if used == input.len() {
                        return Ok((used, None));
                    }
                    let byte = input[used];
                    used += 1;
                    if *have < 4 {
                        fields[*have] = byte;
                    }
                    *have += 1;
                    if *have == 1 && fields[0] < 4 {
                        return Err(PageError::BadHeaderLength(fields[0]));
                    }
                    // The first byte says how long the header is.
                    if *have < 4 || *have < fields[0] as usize {
                        continue;
                    }
                    let buf = *fields;
                    let (len, kind) = (buf[2] as usize, buf[3]);
                    match kind {
                        LAST_PAGE => {
                            self.state = State::Done;
                            return Ok((used, Some(PageEvent::End)));
                        }
                        SIMPLE_PAGE | ACCESS_CONTROLLED_PAGE => {
                            self.state = State::Data {
                                remaining: len,
                                keep: true,
                            }
                        }
                        DESCRIPTOR_PAGE => {
                            self.state = State::Data {
                                remaining: len,
                                keep: false,
                            }
                        }
                        other => return Err(PageError::UnknownType(other)),
                    }
                }
                State::Data { remaining, keep } => {
                    if *remaining == 0 {
                        self.state = State::Header {
                            fields: [0; 4],
                            have: 0,
                        };
                        continue;
                    }
                    if used == input.len() {
                        return Ok((used, None));
                    }
                    let take = (*remaining).min(input.len() - used);
                    *remaining -= take;
                    let data = &input[used..used + take];
                    used += take;
                    if *keep {
                        return Ok((used, Some(PageEvent::Data(data))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Result<(Vec<u8>, bool), PageError> {
        let mut d = PageDecoder::default();
        let mut out = Vec::new();
        let mut end = false;
        for b in input.chunks(3) {
            let mut rest = b;
            while !rest.is_empty() {
                let (n, ev) = d.decode(rest)?;
                rest = &rest[n..];
                match ev {
                    Some(PageEvent::Data(x)) => out.extend_from_slice(x),
                    Some(PageEvent::End) => end = true,
                    None => {}
                }
                if n == 0 {
                    break;
                }
            }
        }
        Ok((out, end))
    }

    #[test]
    fn pages_with_descriptor_and_optional_fields() {
        let mut s = Vec::new();
        s.extend_from_slice(&[4, 0, 3, DESCRIPTOR_PAGE]);
        s.extend_from_slice(b"xyz");
        s.extend_from_slice(&simple_page_header(1, 5));
        s.extend_from_slice(b"hello");
        s.extend_from_slice(&[6, 2, 1, ACCESS_CONTROLLED_PAGE, 9, 9]);
        s.extend_from_slice(b"!");
        s.extend_from_slice(&last_page_header(3));
        assert_eq!(decode(&s), Ok((b"hello!".to_vec(), true)));
    }

    #[test]
    fn unknown_type_refused() {
        assert_eq!(decode(&[4, 1, 0, 7]), Err(PageError::UnknownType(7)));
        assert_eq!(decode(&[2, 1]), Err(PageError::BadHeaderLength(2)));
    }
}
