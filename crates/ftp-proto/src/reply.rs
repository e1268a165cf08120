//! Reply codes and their wire encoding (RFC 959 §4.2).

use std::fmt;

/// Every reply code ferroftp sends. The names follow RFC 959 §4.2.1 and the
/// RFCs that added codes (2228, 2428, 1639, 4217, 7151).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    RestartMarker = 110,
    ServiceReadyInMinutes = 120,
    DataConnectionAlreadyOpen = 125,
    FileStatusOkay = 150,
    CommandOkay = 200,
    CommandSuperfluous = 202,
    SystemStatus = 211,
    DirectoryStatus = 212,
    FileStatus = 213,
    HelpMessage = 214,
    SystemType = 215,
    ServiceReady = 220,
    ClosingControlConnection = 221,
    DataConnectionOpenNoTransfer = 225,
    ClosingDataConnection = 226,
    EnteringPassiveMode = 227,
    EnteringLongPassiveMode = 228,
    EnteringExtendedPassiveMode = 229,
    UserLoggedIn = 230,
    UserLoggedOut = 231,
    LogoutAfterTransfer = 232,
    SecurityDataExchangeComplete = 234,
    /// RFC 2228: ADAT finished the security data exchange.
    SecurityDataExchangeDone = 235,
    RequestedFileActionOkay = 250,
    PathCreated = 257,
    UserNameOkayNeedPassword = 331,
    NeedAccountForLogin = 332,
    /// RFC 2228: AUTH mechanism accepted; ADAT must follow.
    SecurityMechanismAccepted = 334,
    /// RFC 2228: ADAT data accepted; more is needed.
    SecurityDataNeedMore = 335,
    RequestedFileActionPending = 350,
    ServiceNotAvailable = 421,
    CantOpenDataConnection = 425,
    ConnectionClosedTransferAborted = 426,
    InvalidUsernameOrPassword = 430,
    RequestedHostUnavailable = 434,
    FileActionNotTaken = 450,
    LocalError = 451,
    InsufficientStorage = 452,
    SyntaxError = 500,
    ArgumentSyntaxError = 501,
    CommandNotImplemented = 502,
    BadSequence = 503,
    ParameterNotImplemented = 504,
    ProtectionPolicyRefused = 521,
    /// RFC 2428's "network protocol not supported"; RFC 4217 reuses 522
    /// for "TLS required on the data connection".
    NetworkProtocolNotSupported = 522,
    CommandProtectionLevelDenied = 533,
    RequestDeniedForPolicy = 534,
    ProtectionLevelNotSupported = 536,
    NotLoggedIn = 530,
    /// RFC 2228: failed security check (a token that does not verify).
    FailedSecurityCheck = 535,
    NeedAccountForStoring = 532,
    FileUnavailable = 550,
    PageTypeUnknown = 551,
    ExceededStorageAllocation = 552,
    FileNameNotAllowed = 553,
    IntegrityProtectedReply = 631,
    ConfidentialityAndIntegrityProtectedReply = 632,
    ConfidentialityProtectedReply = 633,
}

impl ReplyCode {
    /// RFC 2228's 232 for USER, "User logged in, authorized by security
    /// data exchange" (a client certificate): the same number RFC 959 gives
    /// QUIT during a transfer.
    pub const USER_LOGGED_IN_BY_SECURITY_DATA: ReplyCode = ReplyCode::LogoutAfterTransfer;

    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// 1xx: a preliminary reply; another reply follows for the same command.
    pub fn is_preliminary(self) -> bool {
        self.as_u16() < 200
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// One reply: a code and one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: ReplyCode,
    /// The first line follows the code; middle lines stand alone; the last
    /// line follows the code again. A single line gives a one-line reply.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: `first`, then `body` (each line sent as given,
    /// with a space put in front of any that starts with a digit so it cannot
    /// be taken for the end of the reply), then `last`.
    pub fn multiline(
        code: ReplyCode,
        first: impl Into<String>,
        body: impl IntoIterator<Item = String>,
        last: impl Into<String>,
    ) -> Self {
        let mut lines = vec![first.into()];
        lines.extend(body);
        lines.push(last.into());
        Reply { code, lines }
    }

    /// Appends the wire form of the reply to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let code = self.code.as_u16();
        let n = self.lines.len();
        if n <= 1 {
            let text = self.lines.first().map(String::as_str).unwrap_or("");
            push_line(out, &format!("{code} "), text);
            return;
        }
        push_line(out, &format!("{code}-"), &self.lines[0]);
        for middle in &self.lines[1..n - 1] {
            let prefix = if middle.starts_with(|c: char| c.is_ascii_digit()) {
                " "
            } else {
                ""
            };
            push_line(out, prefix, middle);
        }
        push_line(out, &format!("{code} "), &self.lines[n - 1]);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// Writes one line, turning CR and LF inside the text into spaces: a name
/// with a line end in it must never be able to forge a second reply.
fn push_line(out: &mut Vec<u8>, prefix: &str, text: &str) {
    out.extend_from_slice(prefix.as_bytes());
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// Quotes a path for a 257 reply: the path in double quotes, each quote
/// inside doubled (RFC 959 appendix II).
pub fn quote_path(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        let r = Reply::new(ReplyCode::CommandOkay, "OK");
        assert_eq!(r.encode(), b"200 OK\r\n");
    }

    #[test]
    fn multi_line_escapes_leading_digits() {
        let r = Reply::multiline(
            ReplyCode::SystemStatus,
            "Features:",
            vec![" SIZE".to_string(), "226 not an end".to_string()],
            "End",
        );
        assert_eq!(r.encode(), b"211-Features:\r\n SIZE\r\n 226 not an end\r\n211 End\r\n");
    }

    #[test]
    fn line_ends_in_text_cannot_forge_replies() {
        let r = Reply::new(ReplyCode::PathCreated, "\"/a\r\n230 x\" created");
        assert_eq!(r.encode(), b"257 \"/a  230 x\" created\r\n");
    }

    #[test]
    fn quotes_doubled() {
        assert_eq!(quote_path("/a\"b"), "\"/a\"\"b\"");
    }

    #[test]
    fn codes_are_numbers() {
        assert_eq!(ReplyCode::RestartMarker.as_u16(), 110);
        assert_eq!(ReplyCode::ConfidentialityProtectedReply.as_u16(), 633);
        assert!(ReplyCode::FileStatusOkay.is_preliminary());
        assert!(!ReplyCode::CommandOkay.is_preliminary());
    }
}
