//! The FTP protocol with no I/O, no clock and no async runtime.
//!
//! Layout:
//! - [`line`](mod@line): the control-connection line decoder (length cap, Telnet
//!   filtering, CR LF or bare LF).
//! - [`command`]: [`Command`] parsed from one line, and the one command table
//!   ([`command::VerbSpec`]) that drives login, argument and transfer rules.
//! - [`reply`]: [`ReplyCode`] and [`Reply`], single- and multi-line encoding.
//! - [`path`]: [`FtpPath`], an absolute, normalised path that cannot climb
//!   above `/`.
//! - [`addr`]: PORT/EPRT/LPRT parsing and PASV/EPSV/LPSV formatting.
//! - [`listing`]: LIST, NLST and MLSx line formatting; MDTM timestamps.
//! - [`modeb`]: MODE B (block mode) framing with restart markers.
//! - [`page`]: STRU P (page structure) framing.
//! - [`proxy`]: the PROXY protocol header (v1 and v2) a TCP load balancer
//!   sends before the client's bytes.
//! - [`ascii`]: TYPE A end-of-line conversion.
//! - [`glob`]: `*`/`?` patterns over one file name (the names a site
//!   denies).
//! - [`time`]: UTC calendar arithmetic without a clock.

pub mod addr;
pub mod ascii;
pub mod command;
pub mod glob;
pub mod line;
pub mod listing;
pub mod modeb;
pub mod page;
pub mod path;
pub mod proxy;
pub mod reply;
pub mod time;

pub use command::{Command, ParseError, Verb};
pub use line::LineDecoder;
pub use path::{FtpPath, PathError};
pub use reply::{Reply, ReplyCode};
