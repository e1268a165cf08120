//! Commands: the one command table and the parser that uses it.
//!
//! [`VERBS`] is the single place that says, for each command, its names, its
//! argument rule, whether it needs a login, whether it may run while a
//! transfer is in progress, which permission it uses and its HELP text. The
//! server's gate and HELP, and the parser here, all read it.

use std::net::{SocketAddr, SocketAddrV4};

use crate::addr::{self, AddrError};
use crate::time::UtcTime;

/// Every command verb the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    User,
    Pass,
    Acct,
    Rein,
    Quit,
    Cwd,
    Cdup,
    Pwd,
    Mkd,
    Rmd,
    Dele,
    Rnfr,
    Rnto,
    Retr,
    Stor,
    Stou,
    Appe,
    Allo,
    Rest,
    Abor,
    List,
    Nlst,
    Stat,
    Help,
    Noop,
    Syst,
    Site,
    Smnt,
    Port,
    Pasv,
    Eprt,
    Epsv,
    Lprt,
    Lpsv,
    Type,
    Stru,
    Mode,
    Feat,
    Opts,
    Mlst,
    Mlsd,
    Size,
    Mdtm,
    Mfmt,
    Host,
    Auth,
    Adat,
    Pbsz,
    Prot,
    Ccc,
    Mic,
    Conf,
    Enc,
}

/// What a command's argument may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgRule {
    None,
    Required,
    Optional,
}

/// What a user must be allowed to do to run a command (checked by the
/// server against the user's permissions; 550 when denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    List,
    Read,
    Write,
    Append,
    Delete,
    Rename,
    Mkdir,
    Rmdir,
    Chmod,
}

/// One row of the command table.
#[derive(Debug)]
pub struct VerbSpec {
    pub verb: Verb,
    /// The first name is the canonical one; the others are aliases
    /// (RFC 775's X-commands).
    pub names: &'static [&'static str],
    pub arg: ArgRule,
    /// False for the commands RFC 959 and its extensions allow before login.
    pub needs_login: bool,
    /// True for the commands answered at once while a transfer runs; the
    /// others wait until it ends (RFC 959 §4.1.3: "queue any commands").
    pub during_transfer: bool,
    /// True for commands that run over a data connection.
    pub uses_data_connection: bool,
    pub permission: Option<Permission>,
    pub help: &'static str,
}

macro_rules! spec {
    ($verb:ident, [$($name:literal),+], $arg:ident, login=$login:expr, during=$during:expr,
     data=$data:expr, perm=$perm:expr, $help:literal) => {
        VerbSpec {
            verb: Verb::$verb,
            names: &[$($name),+],
            arg: ArgRule::$arg,
            needs_login: $login,
            during_transfer: $during,
            uses_data_connection: $data,
            permission: $perm,
            help: $help,
        }
    };
}

use Permission as P;

/// The command table.
pub static VERBS: &[VerbSpec] = &[
    spec!(
        User,
        ["USER"],
        Required,
        login = false,
        during = false,
        data = false,
        perm = None,
        "USER <name>: identify the user"
    ),
    spec!(
        Pass,
        ["PASS"],
        Optional,
        login = false,
        during = false,
        data = false,
        perm = None,
        "PASS <password>: finish the login"
    ),
    spec!(
        Acct,
        ["ACCT"],
        Required,
        login = false,
        during = false,
        data = false,
        perm = None,
        "ACCT <account>: give the account"
    ),
    spec!(
        Rein,
        ["REIN"],
        None,
        login = false,
        during = false,
        data = false,
        perm = None,
        "REIN: log out and start over"
    ),
    spec!(
        Quit,
        ["QUIT"],
        None,
        login = false,
        during = true,
        data = false,
        perm = None,
        "QUIT: end the session"
    ),
    spec!(
        Cwd,
        ["CWD", "XCWD"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "CWD <dir>: change the working directory"
    ),
    spec!(
        Cdup,
        ["CDUP", "XCUP"],
        None,
        login = true,
        during = false,
        data = false,
        perm = None,
        "CDUP: go to the parent directory"
    ),
    spec!(
        Pwd,
        ["PWD", "XPWD"],
        None,
        login = true,
        during = false,
        data = false,
        perm = None,
        "PWD: print the working directory"
    ),
    spec!(
        Mkd,
        ["MKD", "XMKD"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = Some(P::Mkdir),
        "MKD <dir>: make a directory"
    ),
    spec!(
        Rmd,
        ["RMD", "XRMD"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = Some(P::Rmdir),
        "RMD <dir>: remove an empty directory"
    ),
    spec!(
        Dele,
        ["DELE"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = Some(P::Delete),
        "DELE <file>: delete a file"
    ),
    spec!(
        Rnfr,
        ["RNFR"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = Some(P::Rename),
        "RNFR <path>: name what to rename"
    ),
    spec!(
        Rnto,
        ["RNTO"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = Some(P::Rename),
        "RNTO <path>: rename it to this"
    ),
    spec!(
        Retr,
        ["RETR"],
        Required,
        login = true,
        during = false,
        data = true,
        perm = Some(P::Read),
        "RETR <file>: download a file"
    ),
    spec!(
        Stor,
        ["STOR"],
        Required,
        login = true,
        during = false,
        data = true,
        perm = Some(P::Write),
        "STOR <file>: upload a file"
    ),
    spec!(
        Stou,
        ["STOU"],
        Optional,
        login = true,
        during = false,
        data = true,
        perm = Some(P::Write),
        "STOU: upload under a unique name"
    ),
    spec!(
        Appe,
        ["APPE"],
        Required,
        login = true,
        during = false,
        data = true,
        perm = Some(P::Append),
        "APPE <file>: append to a file"
    ),
    spec!(
        Allo,
        ["ALLO"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "ALLO <bytes>: reserve space (not needed here)"
    ),
    spec!(
        Rest,
        ["REST"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "REST <offset>: restart the next transfer there"
    ),
    spec!(
        Abor,
        ["ABOR"],
        None,
        login = true,
        during = true,
        data = false,
        perm = None,
        "ABOR: abort the transfer"
    ),
    spec!(
        List,
        ["LIST"],
        Optional,
        login = true,
        during = false,
        data = true,
        perm = Some(P::List),
        "LIST [path]: long listing"
    ),
    spec!(
        Nlst,
        ["NLST"],
        Optional,
        login = true,
        during = false,
        data = true,
        perm = Some(P::List),
        "NLST [path]: names only"
    ),
    spec!(
        Stat,
        ["STAT"],
        Optional,
        login = false,
        during = true,
        data = false,
        perm = None,
        "STAT [path]: session, transfer or file status"
    ),
    spec!(
        Help,
        ["HELP"],
        Optional,
        login = false,
        during = true,
        data = false,
        perm = None,
        "HELP [command]: this help"
    ),
    spec!(
        Noop,
        ["NOOP"],
        None,
        login = false,
        during = true,
        data = false,
        perm = None,
        "NOOP: do nothing"
    ),
    spec!(
        Syst,
        ["SYST"],
        None,
        login = false,
        during = false,
        data = false,
        perm = None,
        "SYST: system type"
    ),
    spec!(
        Site,
        ["SITE"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "SITE <command>: site commands (SITE HELP lists them)"
    ),
    spec!(
        Smnt,
        ["SMNT"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "SMNT: not implemented"
    ),
    spec!(
        Port,
        ["PORT"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "PORT h1,h2,h3,h4,p1,p2: active data connection"
    ),
    spec!(
        Pasv,
        ["PASV"],
        None,
        login = true,
        during = false,
        data = false,
        perm = None,
        "PASV: passive data connection (IPv4)"
    ),
    spec!(
        Eprt,
        ["EPRT"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "EPRT |proto|addr|port|: extended active data connection"
    ),
    spec!(
        Epsv,
        ["EPSV"],
        Optional,
        login = true,
        during = false,
        data = false,
        perm = None,
        "EPSV [proto|ALL]: extended passive data connection"
    ),
    spec!(
        Lprt,
        ["LPRT"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "LPRT af,hal,h...,pal,p...: long active data connection"
    ),
    spec!(
        Lpsv,
        ["LPSV"],
        None,
        login = true,
        during = false,
        data = false,
        perm = None,
        "LPSV: long passive data connection"
    ),
    spec!(
        Type,
        ["TYPE"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "TYPE A|I|L 8: representation type"
    ),
    spec!(
        Stru,
        ["STRU"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "STRU F|P: file structure"
    ),
    spec!(
        Mode,
        ["MODE"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "MODE S|B: transfer mode"
    ),
    spec!(
        Feat,
        ["FEAT"],
        None,
        login = false,
        during = false,
        data = false,
        perm = None,
        "FEAT: list extensions"
    ),
    spec!(
        Opts,
        ["OPTS"],
        Required,
        login = false,
        during = false,
        data = false,
        perm = None,
        "OPTS UTF8 ON|OPTS MLST facts: set options"
    ),
    spec!(
        Mlst,
        ["MLST"],
        Optional,
        login = true,
        during = false,
        data = false,
        perm = Some(P::List),
        "MLST [path]: machine-readable facts"
    ),
    spec!(
        Mlsd,
        ["MLSD"],
        Optional,
        login = true,
        during = false,
        data = true,
        perm = Some(P::List),
        "MLSD [dir]: machine-readable listing"
    ),
    spec!(
        Size,
        ["SIZE"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "SIZE <file>: size in bytes"
    ),
    spec!(
        Mdtm,
        ["MDTM"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = None,
        "MDTM <file>: modification time"
    ),
    spec!(
        Mfmt,
        ["MFMT"],
        Required,
        login = true,
        during = false,
        data = false,
        perm = Some(P::Write),
        "MFMT <time> <file>: set the modification time"
    ),
    spec!(
        Host,
        ["HOST"],
        Required,
        login = false,
        during = false,
        data = false,
        perm = None,
        "HOST <name>: choose a virtual host"
    ),
    spec!(
        Auth,
        ["AUTH"],
        Required,
        login = false,
        during = false,
        data = false,
        perm = None,
        "AUTH TLS|GSSAPI: start TLS, or a Kerberos security exchange"
    ),
    spec!(
        Adat,
        ["ADAT"],
        Required,
        login = false,
        during = false,
        data = false,
        perm = None,
        "ADAT <data>: security data exchange"
    ),
    spec!(
        Pbsz,
        ["PBSZ"],
        Required,
        login = false,
        during = false,
        data = false,
        perm = None,
        "PBSZ <size>: protection buffer size (0 under TLS)"
    ),
    spec!(
        Prot,
        ["PROT"],
        Required,
        login = false,
        during = false,
        data = false,
        perm = None,
        "PROT C|S|P: data channel protection (S under GSSAPI only)"
    ),
    spec!(
        Ccc,
        ["CCC"],
        None,
        login = true,
        during = false,
        data = false,
        perm = None,
        "CCC: clear the command channel"
    ),
    spec!(
        Mic,
        ["MIC"],
        Required,
        login = false,
        during = true,
        data = false,
        perm = None,
        "MIC <command>: integrity-protected command"
    ),
    spec!(
        Conf,
        ["CONF"],
        Required,
        login = false,
        during = true,
        data = false,
        perm = None,
        "CONF <command>: confidential command"
    ),
    spec!(
        Enc,
        ["ENC"],
        Required,
        login = false,
        during = true,
        data = false,
        perm = None,
        "ENC <command>: private command"
    ),
];

impl Verb {
    /// This verb's row of [`VERBS`].
    pub fn spec(self) -> &'static VerbSpec {
        // The table is small and in enum order in practice; a linear search
        // keeps it declarative without a second index to keep in sync.
        VERBS
            .iter()
            .find(|s| s.verb == self)
            .expect("every verb has a table row")
    }

    pub fn name(self) -> &'static str {
        self.spec().names[0]
    }

    /// Looks a verb up by name, ignoring ASCII case.
    pub fn from_name(name: &[u8]) -> Option<Verb> {
        VERBS
            .iter()
            .find(|s| s.names.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name)))
            .map(|s| s.verb)
    }
}

/// TYPE: the representation type (RFC 959 §3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// `A` (non-print): line ends converted to CR LF on the wire.
    Ascii,
    /// `I`, or `L 8`: bytes as they are.
    Image,
}

/// STRU: the file structure (RFC 959 §3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    File,
    Page,
}

/// MODE: the transfer mode (RFC 959 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    Stream,
    Block,
}

/// EPSV's argument (RFC 2428 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    Any,
    /// `EPSV ALL`: from now on only EPSV sets up data connections.
    All,
    /// `EPSV 1` (IPv4) or `EPSV 2` (IPv6).
    Ipv4,
    Ipv6,
}

/// PROT's argument (RFC 2228 §3, RFC 4217 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtLevel {
    Clear,
    Safe,
    Confidential,
    Private,
}

/// One parsed command. Paths and names are kept as the raw bytes the client
/// sent; the server resolves them into [`FtpPath`](crate::FtpPath)s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(Vec<u8>),
    Pass(Vec<u8>),
    Acct(Vec<u8>),
    Rein,
    Quit,
    Cwd(Vec<u8>),
    Cdup,
    Pwd,
    Mkd(Vec<u8>),
    Rmd(Vec<u8>),
    Dele(Vec<u8>),
    Rnfr(Vec<u8>),
    Rnto(Vec<u8>),
    Retr(Vec<u8>),
    Stor(Vec<u8>),
    Stou(Option<Vec<u8>>),
    Appe(Vec<u8>),
    Allo(u64),
    Rest(u64),
    Abor,
    List(Option<Vec<u8>>),
    Nlst(Option<Vec<u8>>),
    Stat(Option<Vec<u8>>),
    Help(Option<String>),
    Noop,
    Syst,
    Site { name: String, args: Vec<u8> },
    Smnt(Vec<u8>),
    Port(SocketAddrV4),
    Pasv,
    Eprt(SocketAddr),
    Epsv(EpsvArg),
    Lprt(SocketAddr),
    Lpsv,
    Type(TransferType),
    Stru(Structure),
    Mode(TransferMode),
    Feat,
    Opts { name: String, value: Vec<u8> },
    Mlst(Option<Vec<u8>>),
    Mlsd(Option<Vec<u8>>),
    Size(Vec<u8>),
    Mdtm(Vec<u8>),
    Mfmt { time: UtcTime, path: Vec<u8> },
    Host(String),
    Auth(String),
    Adat(Vec<u8>),
    Pbsz(u32),
    Prot(ProtLevel),
    Ccc,
    Mic(Vec<u8>),
    Conf(Vec<u8>),
    Enc(Vec<u8>),
}

/// Why a line is not a command the server can run, each naming its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// 500: not a known verb.
    UnknownCommand,
    /// 501: the verb needs an argument.
    MissingArgument(Verb),
    /// 501: the verb takes no argument.
    UnexpectedArgument(Verb),
    /// 501: the argument is malformed.
    InvalidArgument(Verb, &'static str),
    /// 504: well-formed, but a parameter this server does not implement.
    UnsupportedParameter(Verb, &'static str),
    /// 522 (RFC 2428): a network protocol this server does not speak.
    UnsupportedProtocol(Verb),
}

impl ParseError {
    /// The verb, when the line named a known one: the server checks the
    /// login rule before reporting an argument error.
    pub fn verb(&self) -> Option<Verb> {
        match self {
            ParseError::UnknownCommand => None,
            ParseError::MissingArgument(v)
            | ParseError::UnexpectedArgument(v)
            | ParseError::InvalidArgument(v, _)
            | ParseError::UnsupportedParameter(v, _)
            | ParseError::UnsupportedProtocol(v) => Some(*v),
        }
    }
}

impl Command {
    /// Parses one line (without its line end).
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let (name, arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        let verb = Verb::from_name(name).ok_or(ParseError::UnknownCommand)?;
        // A command followed by a lone space (sent by some clients) has no
        // argument.
        let arg = arg.filter(|a| !a.is_empty());
        match (verb.spec().arg, arg) {
            (ArgRule::Required, None) => return Err(ParseError::MissingArgument(verb)),
            (ArgRule::None, Some(a)) if !a.iter().all(|&b| b == b' ') => {
                return Err(ParseError::UnexpectedArgument(verb))
            }
            _ => {}
        }
        let raw = || arg.unwrap_or_default().to_vec();
        let opt = || arg.map(<[u8]>::to_vec);
        let text = || String::from_utf8_lossy(arg.unwrap_or_default()).trim().to_string();
        let upper = || text().to_ascii_uppercase();
        let invalid = |why| ParseError::InvalidArgument(verb, why);
        Ok(match verb {
            Verb::User => Command::User(raw()),
            Verb::Pass => Command::Pass(raw()),
            Verb::Acct => Command::Acct(raw()),
            Verb::Rein => Command::Rein,
            Verb::Quit => Command::Quit,
            Verb::Cwd => Command::Cwd(raw()),
            Verb::Cdup => Command::Cdup,
            Verb::Pwd => Command::Pwd,
            Verb::Mkd => Command::Mkd(raw()),
            Verb::Rmd => Command::Rmd(raw()),
            Verb::Dele => Command::Dele(raw()),
            Verb::Rnfr => Command::Rnfr(raw()),
            Verb::Rnto => Command::Rnto(raw()),
            Verb::Retr => Command::Retr(raw()),
            Verb::Stor => Command::Stor(raw()),
            Verb::Stou => Command::Stou(opt()),
            Verb::Appe => Command::Appe(raw()),
            Verb::Allo => Command::Allo(parse_allo(&text()).ok_or(invalid("ALLO <bytes> [R <bytes>]"))?),
            Verb::Rest => Command::Rest(parse_offset(&text()).ok_or(invalid("REST takes a byte offset"))?),
            Verb::Abor => Command::Abor,
            Verb::List => Command::List(opt()),
            Verb::Nlst => Command::Nlst(opt()),
            Verb::Stat => Command::Stat(opt()),
            Verb::Help => Command::Help(arg.map(|_| upper())),
            Verb::Noop => Command::Noop,
            Verb::Syst => Command::Syst,
            Verb::Site => {
                let a = arg.unwrap_or_default();
                let (name, rest) = match a.iter().position(|&b| b == b' ') {
                    Some(i) => (&a[..i], &a[i + 1..]),
                    None => (a, &b""[..]),
                };
                Command::Site {
                    name: String::from_utf8_lossy(name).to_ascii_uppercase(),
                    args: rest.to_vec(),
                }
            }
            Verb::Smnt => Command::Smnt(raw()),
            Verb::Port => Command::Port(addr::parse_port(&raw()).map_err(|_| invalid("PORT h1,h2,h3,h4,p1,p2"))?),
            Verb::Pasv => Command::Pasv,
            Verb::Eprt => Command::Eprt(addr::parse_eprt(&raw()).map_err(|e| match e {
                AddrError::Syntax => invalid("EPRT |proto|address|port|"),
                AddrError::UnsupportedProtocol => ParseError::UnsupportedProtocol(verb),
            })?),
            Verb::Epsv => Command::Epsv(match arg.map(|_| upper()).as_deref() {
                None => EpsvArg::Any,
                Some("ALL") => EpsvArg::All,
                Some("1") => EpsvArg::Ipv4,
                Some("2") => EpsvArg::Ipv6,
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err(ParseError::UnsupportedProtocol(verb))
                }
                Some(_) => return Err(invalid("EPSV [1|2|ALL]")),
            }),
            Verb::Lprt => Command::Lprt(addr::parse_lprt(&raw()).map_err(|e| match e {
                AddrError::Syntax => invalid("LPRT af,hal,h1,...,pal,p1,p2"),
                AddrError::UnsupportedProtocol => ParseError::UnsupportedProtocol(verb),
            })?),
            Verb::Lpsv => Command::Lpsv,
            Verb::Type => Command::Type(parse_type(verb, &upper())?),
            Verb::Stru => Command::Stru(match upper().as_str() {
                "F" => Structure::File,
                "P" => Structure::Page,
                "R" => {
                    return Err(ParseError::UnsupportedParameter(
                        verb,
                        "record structure is not supported",
                    ))
                }
                _ => return Err(invalid("STRU F|P|R")),
            }),
            Verb::Mode => Command::Mode(match upper().as_str() {
                "S" => TransferMode::Stream,
                "B" => TransferMode::Block,
                "C" => {
                    return Err(ParseError::UnsupportedParameter(
                        verb,
                        "compressed mode is not supported",
                    ))
                }
                _ => return Err(invalid("MODE S|B|C")),
            }),
            Verb::Feat => Command::Feat,
            Verb::Opts => {
                let a = text();
                let (name, value) = a.split_once(' ').unwrap_or((&a, ""));
                Command::Opts {
                    name: name.to_ascii_uppercase(),
                    value: value.trim().as_bytes().to_vec(),
                }
            }
            Verb::Mlst => Command::Mlst(opt()),
            Verb::Mlsd => Command::Mlsd(opt()),
            Verb::Size => Command::Size(raw()),
            Verb::Mdtm => Command::Mdtm(raw()),
            Verb::Mfmt => {
                let a = arg.unwrap_or_default();
                let i = a
                    .iter()
                    .position(|&b| b == b' ')
                    .ok_or(invalid("MFMT <YYYYMMDDHHMMSS> <path>"))?;
                let time = std::str::from_utf8(&a[..i])
                    .ok()
                    .and_then(UtcTime::parse_time_val)
                    .ok_or(invalid("MFMT time must be YYYYMMDDHHMMSS"))?;
                let path = a[i + 1..].to_vec();
                if path.is_empty() {
                    return Err(ParseError::MissingArgument(verb));
                }
                Command::Mfmt { time, path }
            }
            Verb::Host => Command::Host(text()),
            Verb::Auth => Command::Auth(upper()),
            Verb::Adat => Command::Adat(raw()),
            Verb::Pbsz => Command::Pbsz(
                text()
                    .parse::<u32>()
                    .ok()
                    .filter(|_| text().bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(invalid("PBSZ takes a decimal number"))?,
            ),
            Verb::Prot => Command::Prot(match upper().as_str() {
                "C" => ProtLevel::Clear,
                "S" => ProtLevel::Safe,
                "E" => ProtLevel::Confidential,
                "P" => ProtLevel::Private,
                _ => return Err(ParseError::UnsupportedParameter(verb, "PROT C|S|E|P")),
            }),
            Verb::Ccc => Command::Ccc,
            Verb::Mic => Command::Mic(raw()),
            Verb::Conf => Command::Conf(raw()),
            Verb::Enc => Command::Enc(raw()),
        })
    }

    pub fn verb(&self) -> Verb {
        match self {
            Command::User(_) => Verb::User,
            Command::Pass(_) => Verb::Pass,
            Command::Acct(_) => Verb::Acct,
            Command::Rein => Verb::Rein,
            Command::Quit => Verb::Quit,
            Command::Cwd(_) => Verb::Cwd,
            Command::Cdup => Verb::Cdup,
            Command::Pwd => Verb::Pwd,
            Command::Mkd(_) => Verb::Mkd,
            Command::Rmd(_) => Verb::Rmd,
            Command::Dele(_) => Verb::Dele,
            Command::Rnfr(_) => Verb::Rnfr,
            Command::Rnto(_) => Verb::Rnto,
            Command::Retr(_) => Verb::Retr,
            Command::Stor(_) => Verb::Stor,
            Command::Stou(_) => Verb::Stou,
            Command::Appe(_) => Verb::Appe,
            Command::Allo(_) => Verb::Allo,
            Command::Rest(_) => Verb::Rest,
            Command::Abor => Verb::Abor,
            Command::List(_) => Verb::List,
            Command::Nlst(_) => Verb::Nlst,
            Command::Stat(_) => Verb::Stat,
            Command::Help(_) => Verb::Help,
            Command::Noop => Verb::Noop,
            Command::Syst => Verb::Syst,
            Command::Site { .. } => Verb::Site,
            Command::Smnt(_) => Verb::Smnt,
            Command::Port(_) => Verb::Port,
            Command::Pasv => Verb::Pasv,
            Command::Eprt(_) => Verb::Eprt,
            Command::Epsv(_) => Verb::Epsv,
            Command::Lprt(_) => Verb::Lprt,
            Command::Lpsv => Verb::Lpsv,
            Command::Type(_) => Verb::Type,
            Command::Stru(_) => Verb::Stru,
            Command::Mode(_) => Verb::Mode,
            Command::Feat => Verb::Feat,
            Command::Opts { .. } => Verb::Opts,
            Command::Mlst(_) => Verb::Mlst,
            Command::Mlsd(_) => Verb::Mlsd,
            Command::Size(_) => Verb::Size,
            Command::Mdtm(_) => Verb::Mdtm,
            Command::Mfmt { .. } => Verb::Mfmt,
            Command::Host(_) => Verb::Host,
            Command::Auth(_) => Verb::Auth,
            Command::Adat(_) => Verb::Adat,
            Command::Pbsz(_) => Verb::Pbsz,
            Command::Prot(_) => Verb::Prot,
            Command::Ccc => Verb::Ccc,
            Command::Mic(_) => Verb::Mic,
            Command::Conf(_) => Verb::Conf,
            Command::Enc(_) => Verb::Enc,
        }
    }
}

/// A byte offset: decimal digits only, at most `i64::MAX` (the largest
/// offset a file can have), so `REST 18446744073709551615` is refused.
fn parse_offset(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&n| n <= i64::MAX as u64)
}

/// `ALLO <decimal> [R <decimal>]` (RFC 959 §4.1.3).
fn parse_allo(s: &str) -> Option<u64> {
    let mut words = s.split_ascii_whitespace();
    let size = parse_offset(words.next()?)?;
    match (words.next(), words.next(), words.next()) {
        (None, _, _) => Some(size),
        (Some(r), Some(rec), None) if r.eq_ignore_ascii_case("R") => parse_offset(rec).map(|_| size),
        _ => None,
    }
}

fn parse_type(verb: Verb, arg: &str) -> Result<TransferType, ParseError> {
    let words: Vec<&str> = arg.split_ascii_whitespace().collect();
    match words.as_slice() {
        ["A"] | ["A", "N"] => Ok(TransferType::Ascii),
        ["A", "T" | "C"] => Err(ParseError::UnsupportedParameter(
            verb,
            "only non-print format is supported",
        )),
        ["I"] | ["L", "8"] => Ok(TransferType::Image),
        ["L", n] if n.parse::<u8>().is_ok() => {
            Err(ParseError::UnsupportedParameter(verb, "only byte size 8 is supported"))
        }
        ["E"] | ["E", _] => Err(ParseError::UnsupportedParameter(verb, "EBCDIC is not supported")),
        _ => Err(ParseError::InvalidArgument(verb, "TYPE A|I|L 8")),
    }
}

/// Splits `ls`-style options off a LIST/NLST argument: `-la dir` gives
/// (`"la"`, `Some("dir")`). Clients send them although RFC 959 has none;
/// `-a` is honoured (dot files), others are ignored.
pub fn split_list_options(arg: Option<&[u8]>) -> (String, Option<&[u8]>) {
    let Some(mut rest) = arg else {
        return (String::new(), None);
    };
    let mut flags = String::new();
    while rest.first() == Some(&b'-') {
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        flags.push_str(&String::from_utf8_lossy(&rest[1..end]));
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    let path = if rest.is_empty() { None } else { Some(rest) };
    (flags, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Command, ParseError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn every_table_name_parses_to_its_verb() {
        for spec in VERBS {
            for name in spec.names {
                let line = match spec.arg {
                    ArgRule::None | ArgRule::Optional => name.to_string(),
                    ArgRule::Required => format!("{name} {}", sample_arg(spec.verb)),
                };
                let cmd = parse(&line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
                assert_eq!(cmd.verb(), spec.verb, "{line}");
                let lower = line.to_ascii_lowercase();
                if spec.verb != Verb::Mfmt && spec.verb != Verb::Port {
                    assert_eq!(parse(&lower).unwrap().verb(), spec.verb, "{lower}");
                }
            }
        }
    }

    fn sample_arg(verb: Verb) -> &'static str {
        match verb {
            Verb::Allo | Verb::Rest | Verb::Pbsz => "0",
            Verb::Port => "127,0,0,1,4,1",
            Verb::Eprt => "|1|127.0.0.1|1025|",
            Verb::Lprt => "4,4,127,0,0,1,2,4,1",
            Verb::Type => "I",
            Verb::Stru => "F",
            Verb::Mode => "S",
            Verb::Prot => "P",
            Verb::Mfmt => "20260101000000 f",
            _ => "x",
        }
    }

    #[test]
    fn unknown_and_arity() {
        assert_eq!(parse("XYZZY"), Err(ParseError::UnknownCommand));
        assert_eq!(parse(""), Err(ParseError::UnknownCommand));
        assert_eq!(parse("RETR"), Err(ParseError::MissingArgument(Verb::Retr)));
        assert_eq!(parse("RETR "), Err(ParseError::MissingArgument(Verb::Retr)));
        assert_eq!(parse("NOOP now"), Err(ParseError::UnexpectedArgument(Verb::Noop)));
        assert_eq!(parse("PWD "), Ok(Command::Pwd));
        assert_eq!(parse("PASS"), Ok(Command::Pass(vec![])));
    }

    #[test]
    fn paths_keep_raw_bytes() {
        assert_eq!(
            Command::parse(b"STOR a b \xff.txt"),
            Ok(Command::Stor(b"a b \xff.txt".to_vec()))
        );
        assert_eq!(Command::parse(b"DELE a\0b"), Ok(Command::Dele(b"a\0b".to_vec())));
    }

    #[test]
    fn rest_numbers() {
        assert_eq!(parse("REST 0"), Ok(Command::Rest(0)));
        assert_eq!(parse("REST 9223372036854775807"), Ok(Command::Rest(i64::MAX as u64)));
        for bad in [
            "REST 18446744073709551615",
            "REST 18446744073709551616",
            "REST -1",
            "REST 1e3",
            "REST abc",
            "REST 0x10",
        ] {
            assert!(
                matches!(parse(bad), Err(ParseError::InvalidArgument(Verb::Rest, _))),
                "{bad}"
            );
        }
    }

    #[test]
    fn type_stru_mode() {
        assert_eq!(parse("TYPE A"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE a n"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE I"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(parse("TYPE L 8"), Ok(Command::Type(TransferType::Image)));
        assert!(matches!(parse("TYPE L 7"), Err(ParseError::UnsupportedParameter(..))));
        assert!(matches!(parse("TYPE E"), Err(ParseError::UnsupportedParameter(..))));
        assert!(matches!(parse("TYPE A T"), Err(ParseError::UnsupportedParameter(..))));
        assert!(matches!(parse("TYPE Q"), Err(ParseError::InvalidArgument(..))));
        assert_eq!(parse("STRU P"), Ok(Command::Stru(Structure::Page)));
        assert!(matches!(parse("STRU R"), Err(ParseError::UnsupportedParameter(..))));
        assert!(matches!(parse("STRU X"), Err(ParseError::InvalidArgument(..))));
        assert_eq!(parse("MODE B"), Ok(Command::Mode(TransferMode::Block)));
        assert!(matches!(parse("MODE C"), Err(ParseError::UnsupportedParameter(..))));
    }

    #[test]
    fn addresses() {
        assert!(matches!(
            parse("PORT 1,2,3"),
            Err(ParseError::InvalidArgument(Verb::Port, _))
        ));
        assert_eq!(parse("EPRT |3|x|1|"), Err(ParseError::UnsupportedProtocol(Verb::Eprt)));
        assert_eq!(parse("EPSV 3"), Err(ParseError::UnsupportedProtocol(Verb::Epsv)));
        assert_eq!(parse("EPSV all"), Ok(Command::Epsv(EpsvArg::All)));
        assert_eq!(parse("EPSV"), Ok(Command::Epsv(EpsvArg::Any)));
        assert!(matches!(parse("EPSV x"), Err(ParseError::InvalidArgument(..))));
    }

    #[test]
    fn allo_opts_site_mfmt_prot() {
        assert_eq!(parse("ALLO 100"), Ok(Command::Allo(100)));
        assert_eq!(parse("ALLO 100 R 10"), Ok(Command::Allo(100)));
        assert!(parse("ALLO x").is_err());
        assert_eq!(
            parse("OPTS utf8 on"),
            Ok(Command::Opts {
                name: "UTF8".into(),
                value: b"on".to_vec()
            })
        );
        assert_eq!(
            parse("SITE chmod 644 a b"),
            Ok(Command::Site {
                name: "CHMOD".into(),
                args: b"644 a b".to_vec()
            })
        );
        assert!(matches!(
            parse("MFMT 20261301000000 f"),
            Err(ParseError::InvalidArgument(..))
        ));
        assert!(matches!(
            parse("MFMT 20261101000000"),
            Err(ParseError::InvalidArgument(..))
        ));
        assert_eq!(parse("PROT S"), Ok(Command::Prot(ProtLevel::Safe)));
        assert!(matches!(parse("PROT X"), Err(ParseError::UnsupportedParameter(..))));
        assert!(matches!(parse("PBSZ -1"), Err(ParseError::InvalidArgument(..))));
        assert_eq!(parse("PBSZ 0"), Ok(Command::Pbsz(0)));
    }

    #[test]
    fn list_options() {
        assert_eq!(
            split_list_options(Some(b"-la dir")),
            ("la".to_string(), Some(&b"dir"[..]))
        );
        assert_eq!(split_list_options(Some(b"-a")), ("a".to_string(), None));
        assert_eq!(split_list_options(Some(b"dir x")), (String::new(), Some(&b"dir x"[..])));
        assert_eq!(split_list_options(None), (String::new(), None));
    }

    #[test]
    fn verb_table_has_each_verb_once() {
        let mut seen = std::collections::HashSet::new();
        for s in VERBS {
            assert!(seen.insert(s.verb), "{:?} twice", s.verb);
        }
    }
}
