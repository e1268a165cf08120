//! TYPE A line-end conversion (RFC 959 §3.1.1.1): files are stored with the
//! server's LF line ends and sent as CR LF; uploads arrive as CR LF and are
//! stored as LF. Both directions carry one byte of state across chunks.

/// Converts stored bytes to the network form: a LF not already preceded by
/// CR becomes CR LF.
#[derive(Debug, Default)]
pub struct ToNetwork {
    last_was_cr: bool,
}

impl ToNetwork {
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &b in input {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}

/// Converts network bytes to the stored form: CR LF becomes LF; a CR not
/// followed by LF is kept.
#[derive(Debug, Default)]
pub struct FromNetwork {
    pending_cr: bool,
}

impl FromNetwork {
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// Flushes a CR held back at the very end of the upload.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_network() {
        let mut c = ToNetwork::default();
        let mut out = Vec::new();
        c.convert(b"a\nb\r", &mut out);
        c.convert(b"\nc\n", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn from_network_across_chunks() {
        let mut c = FromNetwork::default();
        let mut out = Vec::new();
        c.convert(b"a\r", &mut out);
        c.convert(b"\nb\rc\r", &mut out);
        c.finish(&mut out);
        assert_eq!(out, b"a\nb\rc\r");
    }

    #[test]
    fn round_trip() {
        let text = b"one\ntwo\n\nthree";
        let mut wire = Vec::new();
        ToNetwork::default().convert(text, &mut wire);
        let mut back = Vec::new();
        let mut f = FromNetwork::default();
        f.convert(&wire, &mut back);
        f.finish(&mut back);
        assert_eq!(back, text);
    }
}
