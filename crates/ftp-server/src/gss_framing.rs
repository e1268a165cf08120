//! RFC 2228 framing over an established GSSAPI context: protected commands
//! (`MIC`, `CONF`, `ENC`) and their `631`/`632`/`633` replies on the control
//! connection, and the length-prefixed blocks of a protected data
//! connection (`PROT S`, `PROT P`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::gssapi::{GssError, SecurityContext};

/// The protection of one command, and so of its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommandLevel {
    /// `MIC`: integrity only; replies as `631`.
    Integrity,
    /// `CONF`: confidentiality; replies as `633`. GSSAPI has no
    /// confidentiality without integrity, so a CONF command's token must
    /// be encrypted, and its replies are encrypted and integrity-protected
    /// alike (more than CONF asks, never less).
    Confidential,
    /// `ENC`: confidentiality and integrity; replies as `632`.
    Private,
}

impl CommandLevel {
    fn reply_code(self) -> &'static str {
        match self {
            CommandLevel::Integrity => "631",
            CommandLevel::Private => "632",
            CommandLevel::Confidential => "633",
        }
    }

    fn encrypted(self) -> bool {
        self != CommandLevel::Integrity
    }
}

/// Why a protected command cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommandError {
    /// Not base64 (501).
    NotBase64,
    /// The token did not verify (535).
    Verify(GssError),
    /// CONF or ENC whose token was not encrypted (535).
    NotEncrypted,
    /// MIC whose token was encrypted (535): the verb is outside the token,
    /// so an ENC turned into a MIC on the way would have its replies sent
    /// without encryption.
    EncryptedMic,
    /// A token wrapped before one already seen (535): a replay.
    OutOfOrder,
    /// What it carried is not one command line (501).
    NotALine,
}

/// Opens the argument of a protected command: the command line inside,
/// without its line end. Its token must have been wrapped after every
/// token numbered up to `after` (the last command's, or the highest of
/// all when no transfer runs: see `commands::gss`).
pub(crate) fn open_command(
    context: &SecurityContext,
    level: CommandLevel,
    argument: &[u8],
    after: Option<u64>,
) -> Result<(Vec<u8>, u64), CommandError> {
    let token = BASE64
        .decode(argument.trim_ascii())
        .map_err(|_| CommandError::NotBase64)?;
    let opened = context.unwrap(&token).map_err(CommandError::Verify)?;
    if after.is_some_and(|after| opened.sequence <= after) {
        return Err(CommandError::OutOfOrder);
    }
    if level.encrypted() && !opened.encrypted {
        return Err(CommandError::NotEncrypted);
    }
    if !level.encrypted() && opened.encrypted {
        return Err(CommandError::EncryptedMic);
    }
    let mut line = opened.message;
    // MIT's and Solaris's clients wrap the command with its C string's
    // NUL and no line end.
    if line.last() == Some(&0) {
        line.pop();
    }
    if line.ends_with(b"\r\n") {
        line.truncate(line.len() - 2);
    } else if line.ends_with(b"\n") {
        line.truncate(line.len() - 1);
    }
    if line.is_empty() || line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(CommandError::NotALine);
    }
    Ok((line, opened.sequence))
}

/// Replies protected at the level of the command they answer.
#[derive(Debug, Clone)]
pub(crate) struct ReplyProtection {
    pub context: Arc<SecurityContext>,
    pub level: CommandLevel,
}

impl ReplyProtection {
    /// Turns encoded reply lines (each ending in CRLF) into protected ones:
    /// each line wrapped alone and sent base64 after the level's code, with
    /// `-` on every line but a reply's last (a line that starts with three
    /// digits and a space, as `Reply::encode_into` writes only last lines).
    pub fn protect(&self, encoded: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let code = self.level.reply_code();
        for (text, last) in reply_lines(encoded) {
            let token = self
                .context
                .wrap(text, self.level.encrypted())
                .map_err(io::Error::other)?;
            out.extend_from_slice(code.as_bytes());
            out.push(if last { b' ' } else { b'-' });
            out.extend_from_slice(BASE64.encode(&token).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }
}

/// The lines of encoded replies, without their line ends, each with
/// whether it is the last line of its reply.
fn reply_lines(encoded: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    encoded
        .split_inclusive(|&b| b == b'\n')
        .map(|line| {
            line.strip_suffix(b"\r\n")
                .or_else(|| line.strip_suffix(b"\n"))
                .unwrap_or(line)
        })
        .filter(|text| !text.is_empty())
        .map(|text| {
            let last = text.len() >= 4 && text[..3].iter().all(u8::is_ascii_digit) && text[3] == b' ';
            (text, last)
        })
}

/// The data connection's protection under GSSAPI.
#[derive(Debug, Clone)]
pub(crate) struct DataProtection {
    pub context: Arc<SecurityContext>,
    /// PROT P (encrypted) rather than PROT S (integrity only).
    pub confidential: bool,
    /// The buffer size agreed with PBSZ: the longest token either side
    /// sends.
    pub buffer_size: u32,
    /// The highest sequence number of the client's tokens when the
    /// transfer started (its own command's, at least): every block of an
    /// upload must come after it, and after the block before it, so no
    /// block of an earlier transfer, nor a repeated one, can be slipped in.
    pub after: Option<u64>,
}

/// Room above the agreed buffer size allowed for a client's tokens: a
/// client that cuts its uploads into messages of the buffer size (curl
/// did) sends tokens that exceed it by the wrap overhead (tens of bytes).
const TOKEN_SLACK: usize = 4096;

/// A data connection whose bytes go as RFC 2228 protected blocks: each a
/// four-byte big-endian length and a wrapped token; an empty message ends
/// the stream. A connection that closes without that last block, even at
/// a block boundary, is an error: otherwise whoever can cut the TCP
/// connection could cut a protected upload short unnoticed.
pub(crate) struct GssStream {
    tcp: TcpStream,
    protection: DataProtection,
    max_message: usize,
    /// A block being sent, and how much of it has gone.
    out: Vec<u8>,
    out_sent: usize,
    end_sent: bool,
    header: [u8; 4],
    header_read: usize,
    token: Vec<u8>,
    token_read: usize,
    /// An opened block not yet read by the caller.
    message: Vec<u8>,
    message_read: usize,
    ended: bool,
    /// Blocks came from the client: an upload, whose end the client marks
    /// (the server's shutdown sends no last block of its own).
    received: bool,
}

impl GssStream {
    pub fn new(tcp: TcpStream, protection: DataProtection) -> io::Result<GssStream> {
        let max_message = protection
            .context
            .max_message(protection.confidential, protection.buffer_size)
            .map_err(io::Error::other)?
            .max(1) as usize;
        Ok(GssStream {
            tcp,
            protection,
            max_message,
            out: Vec::new(),
            out_sent: 0,
            end_sent: false,
            header: [0; 4],
            header_read: 0,
            token: Vec::new(),
            token_read: 0,
            message: Vec::new(),
            message_read: 0,
            ended: false,
            received: false,
        })
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn queue_block(&mut self, message: &[u8]) -> io::Result<()> {
        let p = &self.protection;
        let token = p.context.wrap(message, p.confidential).map_err(io::Error::other)?;
        self.out.clear();
        self.out_sent = 0;
        self.out.extend_from_slice(&(token.len() as u32).to_be_bytes());
        self.out.extend_from_slice(&token);
        Ok(())
    }

    fn poll_send_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.out[self.out_sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_sent += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads into `buf[*filled..]`; false at end of stream.
    fn poll_fill(
        tcp: &mut TcpStream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        filled: &mut usize,
    ) -> Poll<io::Result<bool>> {
        let mut read = ReadBuf::new(&mut buf[*filled..]);
        ready!(Pin::new(tcp).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        *filled += n;
        Poll::Ready(Ok(n > 0))
    }

    /// Reads and opens the next block; false at the end of the stream.
    fn poll_next_block(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        while self.header_read < 4 {
            if !ready!(Self::poll_fill(
                &mut self.tcp,
                cx,
                &mut self.header,
                &mut self.header_read
            ))? {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "data connection closed before the protected stream's last (empty) block",
                )));
            }
            if self.header_read == 4 {
                let len = u32::from_be_bytes(self.header) as usize;
                if len > self.protection.buffer_size as usize + TOKEN_SLACK {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("protected block of {len} bytes exceeds the buffer size"),
                    )));
                }
                self.token.clear();
                self.token.resize(len, 0);
                self.token_read = 0;
            }
        }
        while self.token_read < self.token.len() {
            if !ready!(Self::poll_fill(
                &mut self.tcp,
                cx,
                &mut self.token,
                &mut self.token_read
            ))? {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        self.header_read = 0;
        self.received = true;
        let opened = self
            .protection
            .context
            .unwrap(&self.token)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // `after` moves up with each block: the next must exceed it.
        if self.protection.after.is_some_and(|after| opened.sequence <= after) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a protected block out of order (replayed or from an earlier transfer)",
            )));
        }
        self.protection.after = Some(opened.sequence);
        if self.protection.confidential && !opened.encrypted {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "PROT P, but a block was not encrypted",
            )));
        }
        if opened.message.is_empty() {
            return Poll::Ready(Ok(false));
        }
        self.message = opened.message;
        self.message_read = 0;
        Poll::Ready(Ok(true))
    }
}

impl AsyncRead for GssStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.message_read == this.message.len() {
            if this.ended || !ready!(this.poll_next_block(cx))? {
                this.ended = true;
                return Poll::Ready(Ok(()));
            }
        }
        let n = buf.remaining().min(this.message.len() - this.message_read);
        buf.put_slice(&this.message[this.message_read..this.message_read + n]);
        this.message_read += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GssStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send_queued(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(this.max_message);
        this.queue_block(&buf[..n])?;
        // Start sending now; what the socket does not take goes with the
        // next write or the flush.
        match this.poll_send_queued(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(n)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_queued(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    /// Sends the empty block that ends the stream (unless the stream was
    /// an upload's), then closes the sending side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_queued(cx))?;
        if !this.end_sent && !this.received {
            this.queue_block(&[])?;
            this.end_sent = true;
            ready!(this.poll_send_queued(cx))?;
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftp_proto::{Reply, ReplyCode};

    #[test]
    fn only_the_closing_line_of_each_reply_is_last() {
        let mut encoded = Reply::multiline(
            ReplyCode::SystemStatus,
            "Extensions supported:",
            vec![" MDTM".to_string(), "211 looks like an end".to_string()],
            "End",
        )
        .encode();
        Reply::new(ReplyCode::CommandOkay, "NOOP ok").encode_into(&mut encoded);
        let lines: Vec<(String, bool)> = reply_lines(&encoded)
            .map(|(t, last)| (String::from_utf8(t.to_vec()).unwrap(), last))
            .collect();
        assert_eq!(
            lines,
            [
                ("211-Extensions supported:".to_string(), false),
                (" MDTM".to_string(), false),
                (" 211 looks like an end".to_string(), false),
                ("211 End".to_string(), true),
                ("200 NOOP ok".to_string(), true),
            ]
        );
    }
}
