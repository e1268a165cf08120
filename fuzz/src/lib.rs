//! The checks behind the fuzz targets in `fuzz_targets/`, one public
//! function per target. Each takes either raw bytes or a structured input
//! derived with `arbitrary`, drives one `ftp-proto` parser or codec, and
//! panics (which libFuzzer reports as a crash) when an invariant breaks.
//!
//! Inputs that are fed to an incremental decoder carry `cuts`: the sizes of
//! the chunks the bytes arrive in (what TCP segmentation would do). Every
//! decoder is also run on the whole input in one call, and the two results
//! must agree: the server must not answer differently depending on how the
//! network split a stream.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use arbitrary::{Arbitrary, Unstructured};
use ftp_proto::addr::{self, AddrError};
use ftp_proto::ascii::{FromNetwork, ToNetwork};
use ftp_proto::command::{self, ArgRule, Command, ParseError, Verb};
use ftp_proto::glob::NamePattern;
use ftp_proto::line::{LineDecoder, LineTooLong};
use ftp_proto::modeb::{self, BlockDecoder, BlockEvent};
use ftp_proto::page::{self, PageDecoder, PageError, PageEvent};
use ftp_proto::path::{FtpPath, PathError, MAX_NAME_LEN, MAX_PATH_LEN};
use ftp_proto::proxy::{self, Addresses, Progress, ProxyError, Version};

/// Splits `data` into chunks whose sizes are `cuts` in turn; what is left
/// when the cuts run out is the last chunk. Zero-sized chunks are kept: a
/// decoder must accept an empty read.
pub fn chunks<'a>(data: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    for &cut in cuts {
        let n = usize::from(cut).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
        if rest.is_empty() {
            break;
        }
    }
    out.push(rest);
    out
}

// ---------------------------------------------------------------- line

#[derive(Debug, Arbitrary)]
pub struct LineInput {
    /// The cap is 1 + this % 100, small enough that over-long lines are
    /// common.
    pub max_len: u8,
    pub cuts: Vec<u8>,
    pub data: Vec<u8>,
}

type LineResult = Result<Vec<u8>, LineTooLong>;

fn run_line_decoder(max_len: usize, parts: &[&[u8]]) -> Vec<LineResult> {
    let mut dec = LineDecoder::new(max_len);
    let mut out = Vec::new();
    for part in parts {
        dec.feed(part);
        // Memory: what was left after the last drain plus this chunk.
        assert!(
            dec.buffered() <= max_len + 1 + part.len(),
            "holds {} bytes after a {}-byte chunk (cap {max_len})",
            dec.buffered(),
            part.len()
        );
        while let Some(line) = dec.next_line() {
            assert!(dec.buffered() <= max_len + 1 + part.len());
            if let Ok(l) = &line {
                assert!(l.len() <= max_len, "line of {} bytes over the cap {max_len}", l.len());
                assert!(!l.contains(&b'\n'), "line end inside a line");
            }
            out.push(line);
        }
        // Drained: no complete line left, so at most one partial line.
        assert!(dec.buffered() <= max_len + 1, "holds {} after draining", dec.buffered());
    }
    out
}

pub fn line_decoder(input: &LineInput) {
    let max_len = 1 + usize::from(input.max_len % 100);
    let chunked = run_line_decoder(max_len, &chunks(&input.data, &input.cuts));
    let whole = run_line_decoder(max_len, &[&input.data]);
    assert_eq!(chunked, whole, "result depends on chunking (cap {max_len})");
    // An over-long line is reported once, never twice in a row for the
    // same line: there are at most as many results as line ends + 1.
    let newlines = input.data.iter().filter(|&&b| b == b'\n').count();
    assert!(whole.len() <= newlines + 1);
}

// ------------------------------------------------------------- command

/// Command::parse on any line: no panic, and the result agrees with the
/// command table.
pub fn command(line: &[u8]) {
    let result = Command::parse(line);
    let (name, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let arg = arg.filter(|a| !a.is_empty());
    let known = Verb::from_name(name);
    match &result {
        Ok(cmd) => {
            let verb = cmd.verb();
            assert_eq!(known, Some(verb), "parsed as {verb:?} from name {name:?}");
            match verb.spec().arg {
                ArgRule::None => assert!(arg.map_or(true, |a| a.iter().all(|&b| b == b' '))),
                ArgRule::Required => assert!(arg.is_some(), "{verb:?} without its argument"),
                ArgRule::Optional => {}
            }
            check_raw_argument(cmd, arg);
        }
        Err(ParseError::UnknownCommand) => assert_eq!(known, None),
        Err(e) => assert_eq!(e.verb(), known, "{e:?} for name {name:?}"),
    }
    if let Some(verb) = known {
        // Names are case-insensitive and aliases are the same command:
        // the canonical upper-case name parses the same way.
        let mut canonical = verb.name().as_bytes().to_vec();
        canonical.extend_from_slice(&line[name.len()..]);
        assert_eq!(Command::parse(&canonical), result, "alias or case changes the result");
    }
    let _ = command::split_list_options(arg);
    if let Some(a) = arg {
        let (_, path) = command::split_list_options(Some(a));
        if let Some(p) = path {
            assert!(a.ends_with(p), "LIST path is not a suffix of the argument");
        }
    }
}

/// Commands that carry a path or name keep the client's bytes unchanged.
fn check_raw_argument(cmd: &Command, arg: Option<&[u8]>) {
    let raw = match cmd {
        Command::User(a)
        | Command::Pass(a)
        | Command::Acct(a)
        | Command::Cwd(a)
        | Command::Mkd(a)
        | Command::Rmd(a)
        | Command::Dele(a)
        | Command::Rnfr(a)
        | Command::Rnto(a)
        | Command::Retr(a)
        | Command::Stor(a)
        | Command::Appe(a)
        | Command::Smnt(a)
        | Command::Size(a)
        | Command::Mdtm(a) => Some(a.as_slice()),
        Command::Stou(a)
        | Command::List(a)
        | Command::Nlst(a)
        | Command::Stat(a)
        | Command::Mlst(a)
        | Command::Mlsd(a) => {
            assert_eq!(a.as_deref(), arg);
            None
        }
        _ => None,
    };
    if let Some(raw) = raw {
        assert_eq!(raw, arg.unwrap_or_default());
    }
}

// ---------------------------------------------------------------- addr

fn inner(text: &str) -> &str {
    let open = text.find('(').expect("reply text has '('");
    let close = text.rfind(')').expect("reply text has ')'");
    &text[open + 1..close]
}

/// PORT/EPRT/LPRT on any bytes: no panic; what parses formats back (as
/// the 227/228 reply or an EPRT argument) to text that parses to the same
/// address. The same bytes also seed an address for the other direction.
pub fn addr(data: &[u8]) {
    if let Ok(a) = addr::parse_port(data) {
        let text = addr::format_pasv(a);
        assert_eq!(addr::parse_port(inner(&text).as_bytes()), Ok(a), "{text}");
    }
    match addr::parse_eprt(data) {
        Ok(a) => {
            assert_ne!(a.port(), 0);
            let eprt = eprt_argument(a);
            assert_eq!(addr::parse_eprt(eprt.as_bytes()), Ok(a), "{eprt}");
        }
        Err(AddrError::Syntax | AddrError::UnsupportedProtocol) => {}
    }
    if let Ok(a) = addr::parse_lprt(data) {
        let text = addr::format_lpsv(a);
        assert_eq!(addr::parse_lprt(inner(&text).as_bytes()), Ok(a), "{text}");
    }
    // Formatting first: any address survives format -> parse.
    let mut u = Unstructured::new(data);
    if let Ok((v6, octets, port)) = <(bool, [u8; 16], u16)>::arbitrary(&mut u) {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
        };
        let a = SocketAddr::new(ip, port);
        let text = addr::format_lpsv(a);
        assert_eq!(addr::parse_lprt(inner(&text).as_bytes()), Ok(a), "{text}");
        if let IpAddr::V4(v4) = ip {
            let a4 = SocketAddrV4::new(v4, port);
            let text = addr::format_pasv(a4);
            assert_eq!(addr::parse_port(inner(&text).as_bytes()), Ok(a4), "{text}");
        }
        if port != 0 {
            assert_eq!(addr::parse_eprt(eprt_argument(a).as_bytes()), Ok(a));
        }
        let epsv = addr::format_epsv(port);
        assert_eq!(inner(&epsv), format!("|||{port}|"));
    }
}

fn eprt_argument(a: SocketAddr) -> String {
    let proto = if a.is_ipv4() { 1 } else { 2 };
    format!("|{proto}|{}|{}|", a.ip(), a.port())
}

// --------------------------------------------------------------- MODE B

#[derive(Debug, Arbitrary)]
pub enum Block {
    Data(Vec<u8>),
    EndOfRecord(Vec<u8>),
    Suspect(Vec<u8>),
    Marker(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
pub struct ModeBInput {
    pub cuts: Vec<u8>,
    /// Arbitrary bytes decoded as a block stream.
    pub raw: Vec<u8>,
    /// A stream built with the encoder helpers, decoded back.
    pub blocks: Vec<Block>,
    /// The data of the end-of-file block.
    pub last: Vec<u8>,
    /// End the file with a restart marker carrying the EOF bit instead.
    pub eof_on_marker: bool,
    /// Bytes sent after the end-of-file block (never consumed).
    pub trailer: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct BlockOutput {
    data: Vec<u8>,
    markers: Vec<Vec<u8>>,
    eofs: usize,
    done: bool,
    consumed: usize,
}

fn run_block_decoder(parts: &[&[u8]]) -> BlockOutput {
    let mut dec = BlockDecoder::default();
    let mut out = BlockOutput::default();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut calls = 0usize;
    for part in parts {
        let mut rest: &[u8] = part;
        loop {
            calls += 1;
            // Each call consumes input or moves past one event; a header
            // is 3 bytes, so this bounds a decoder that would spin.
            assert!(calls <= 2 * total + 2 * parts.len() + 4, "decoder makes no progress");
            let (used, event) = dec.decode(rest);
            assert!(used <= rest.len(), "consumed {used} of {}", rest.len());
            rest = &rest[used..];
            out.consumed += used;
            match event {
                Some(BlockEvent::Data(d)) => {
                    assert!(!d.is_empty(), "empty data event");
                    out.data.extend_from_slice(d)
                }
                Some(BlockEvent::RestartMarker(m)) => {
                    assert!(m.len() <= modeb::MAX_BLOCK);
                    out.markers.push(m)
                }
                Some(BlockEvent::EndOfFile) => out.eofs += 1,
                None if used == 0 => break,
                None => {}
            }
        }
        // A decoder that stops short of its input is done with it.
        if !rest.is_empty() {
            assert!(dec.is_done(), "left {} bytes unconsumed before the end", rest.len());
        }
    }
    out.done = dec.is_done();
    assert!(out.eofs <= 1, "{} end-of-file events", out.eofs);
    // Driven until it asks for more input, a finished decoder has said so.
    assert_eq!(out.done, out.eofs == 1, "is_done() and the EndOfFile event disagree");
    assert!(out.data.len() <= out.consumed);
    out
}

pub fn modeb(input: &ModeBInput) {
    let chunked = run_block_decoder(&chunks(&input.raw, &input.cuts));
    let whole = run_block_decoder(&[&input.raw]);
    assert_eq!(chunked, whole, "result depends on chunking");
    assert!(whole.data.len() <= input.raw.len());

    // Encode, then decode: exactly what was sent.
    let mut stream = Vec::new();
    let mut data = Vec::new();
    let mut markers = Vec::new();
    for block in &input.blocks {
        let (descriptor, bytes) = match block {
            Block::Data(b) => (0, b),
            Block::EndOfRecord(b) => (modeb::END_OF_RECORD, b),
            Block::Suspect(b) => (modeb::SUSPECTED_ERRORS, b),
            Block::Marker(m) => {
                stream.extend_from_slice(&modeb::marker_block(m));
                markers.push(m[..m.len().min(modeb::MAX_BLOCK)].to_vec());
                continue;
            }
        };
        let bytes = &bytes[..bytes.len().min(modeb::MAX_BLOCK)];
        stream.extend_from_slice(&modeb::header(descriptor, bytes.len() as u16));
        stream.extend_from_slice(bytes);
        data.extend_from_slice(bytes);
    }
    let last = &input.last[..input.last.len().min(modeb::MAX_BLOCK)];
    if input.eof_on_marker {
        stream.extend_from_slice(&modeb::header(
            modeb::RESTART_MARKER | modeb::END_OF_FILE,
            last.len() as u16,
        ));
        stream.extend_from_slice(last);
        markers.push(last.to_vec());
    } else {
        stream.extend_from_slice(&modeb::header(modeb::END_OF_FILE, last.len() as u16));
        stream.extend_from_slice(last);
        data.extend_from_slice(last);
    }
    let body = stream.len();
    stream.extend_from_slice(&input.trailer);
    let out = run_block_decoder(&chunks(&stream, &input.cuts));
    assert_eq!(out.data, data, "data changed in transit");
    assert_eq!(out.markers, markers, "restart markers changed in transit");
    assert!(out.done && out.eofs == 1);
    assert_eq!(out.consumed, body, "bytes after the end-of-file block were consumed");
}

// --------------------------------------------------------------- STRU P

#[derive(Debug, Arbitrary)]
pub enum PageKind {
    Simple,
    Descriptor,
    AccessControlled,
}

#[derive(Debug, Arbitrary)]
pub struct Page {
    pub kind: PageKind,
    pub index: u8,
    pub optional: Vec<u8>,
    pub data: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
pub struct PageInput {
    pub cuts: Vec<u8>,
    pub raw: Vec<u8>,
    pub pages: Vec<Page>,
    pub trailer: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct PageOutput {
    data: Vec<u8>,
    ends: usize,
    error: Option<PageError>,
    consumed: usize,
    done: bool,
}

fn run_page_decoder(parts: &[&[u8]]) -> PageOutput {
    let mut dec = PageDecoder::default();
    let mut out = PageOutput::default();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut calls = 0usize;
    'parts: for part in parts {
        let mut rest: &[u8] = part;
        loop {
            calls += 1;
            assert!(calls <= 2 * total + 2 * parts.len() + 4, "decoder makes no progress");
            let (used, event) = match dec.decode(rest) {
                Ok(r) => r,
                Err(e) => {
                    out.error = Some(e);
                    break 'parts;
                }
            };
            assert!(used <= rest.len());
            rest = &rest[used..];
            out.consumed += used;
            match event {
                Some(PageEvent::Data(d)) => {
                    assert!(!d.is_empty(), "empty data event");
                    out.data.extend_from_slice(d)
                }
                Some(PageEvent::End) => out.ends += 1,
                None if used == 0 => break,
                None => {}
            }
        }
        if !rest.is_empty() {
            assert!(dec.is_done(), "left {} bytes unconsumed before the end", rest.len());
        }
    }
    out.done = dec.is_done();
    assert!(out.ends <= 1);
    if out.error.is_none() {
        assert_eq!(out.done, out.ends == 1);
    }
    assert!(out.data.len() <= out.consumed || out.error.is_some());
    out
}

pub fn page(input: &PageInput) {
    let chunked = run_page_decoder(&chunks(&input.raw, &input.cuts));
    let whole = run_page_decoder(&[&input.raw]);
    // Where an error stops the decoder depends on where the chunk ended;
    // what it returned before, and the error itself, must not.
    assert_eq!(
        (&chunked.data, chunked.ends, &chunked.error, chunked.done),
        (&whole.data, whole.ends, &whole.error, whole.done),
        "result depends on chunking"
    );
    assert!(whole.data.len() <= input.raw.len());

    let mut stream = Vec::new();
    let mut data = Vec::new();
    for p in &input.pages {
        let optional = &p.optional[..p.optional.len().min(usize::from(u8::MAX) - 4)];
        let len = p.data.len().min(page::MAX_PAGE_DATA);
        let kind = match p.kind {
            PageKind::Simple => page::SIMPLE_PAGE,
            PageKind::Descriptor => page::DESCRIPTOR_PAGE,
            PageKind::AccessControlled => page::ACCESS_CONTROLLED_PAGE,
        };
        if optional.is_empty() && kind == page::SIMPLE_PAGE {
            stream.extend_from_slice(&page::simple_page_header(p.index, len as u8));
        } else {
            stream.extend_from_slice(&[4 + optional.len() as u8, p.index, len as u8, kind]);
            stream.extend_from_slice(optional);
        }
        stream.extend_from_slice(&p.data[..len]);
        if kind != page::DESCRIPTOR_PAGE {
            data.extend_from_slice(&p.data[..len]);
        }
    }
    stream.extend_from_slice(&page::last_page_header(input.pages.len() as u8));
    let body = stream.len();
    stream.extend_from_slice(&input.trailer);
    let out = run_page_decoder(&chunks(&stream, &input.cuts));
    assert_eq!(out.error, None);
    assert_eq!(out.data, data, "page data changed in transit");
    assert!(out.done && out.ends == 1);
    assert_eq!(out.consumed, body, "bytes after the last page were consumed");
}

// -------------------------------------------------------------- TYPE A

#[derive(Debug, Arbitrary)]
pub struct AsciiInput {
    pub cuts: Vec<u8>,
    pub cuts_back: Vec<u8>,
    pub text: Vec<u8>,
}

fn to_network(parts: &[&[u8]]) -> Vec<u8> {
    let mut c = ToNetwork::default();
    let mut out = Vec::new();
    for p in parts {
        c.convert(p, &mut out);
    }
    out
}

fn from_network(parts: &[&[u8]]) -> Vec<u8> {
    let mut c = FromNetwork::default();
    let mut out = Vec::new();
    for p in parts {
        c.convert(p, &mut out);
    }
    c.finish(&mut out);
    out
}

pub fn ascii(input: &AsciiInput) {
    let x = &input.text;
    let wire = to_network(&chunks(x, &input.cuts));
    assert_eq!(wire, to_network(&[x]), "ToNetwork depends on chunking");
    // On the wire every LF follows a CR.
    for (i, &b) in wire.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && wire[i - 1] == b'\r', "bare LF at {i} of the network form");
        }
    }
    let back = from_network(&chunks(&wire, &input.cuts_back));
    assert_eq!(back, from_network(&[&wire]), "FromNetwork depends on chunking");
    // Only CR LF pairs in the original are not restored (they come back
    // as LF), and that is exactly what FromNetwork does to the original.
    assert_eq!(back, from_network(&[x]));
    if !x.windows(2).any(|w| w == b"\r\n") {
        assert_eq!(&back, x, "FromNetwork(ToNetwork(x)) != x");
    }
    let direct = from_network(&chunks(x, &input.cuts_back));
    assert!(direct.len() <= x.len());
}

// ---------------------------------------------------------------- path

#[derive(Debug, Arbitrary)]
pub struct PathInput {
    pub cwd: Vec<u8>,
    pub arg: Vec<u8>,
}

fn check_normal(p: &FtpPath) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "{s:?} is not absolute");
    assert!(s.len() <= MAX_PATH_LEN);
    if s != "/" {
        assert!(!s.ends_with('/'), "{s:?} ends with '/'");
        for c in s[1..].split('/') {
            assert!(!c.is_empty() && c != "." && c != "..", "{s:?} has component {c:?}");
            assert!(c.len() <= MAX_NAME_LEN);
        }
    }
    assert!(
        !s.bytes().any(|b| b < 0x20 || b == 0x7F),
        "{s:?} has a control character"
    );
    // Normal form: resolving it again changes nothing, from anywhere.
    assert_eq!(FtpPath::root().resolve(s.as_bytes()).as_ref(), Ok(p));
    assert_eq!(p.resolve(b"").as_ref(), Ok(p));
    assert_eq!(p.resolve(b"..").as_ref(), Ok(&p.parent()));
    if let Some(name) = p.file_name() {
        assert_eq!(&p.parent().join(name), p);
    }
}

pub fn path(input: &PathInput) {
    let cwd = FtpPath::root().resolve(&input.cwd).unwrap_or_else(|_| FtpPath::root());
    check_normal(&cwd);
    let arg = &input.arg;
    let result = cwd.resolve(arg);
    match &result {
        Ok(p) => {
            check_normal(p);
            // An absolute argument does not depend on the directory.
            if arg.first() == Some(&b'/') {
                assert_eq!(FtpPath::root().resolve(arg).as_ref(), Ok(p));
            }
            // A relative argument without `..` stays below the directory.
            let text = std::str::from_utf8(arg).unwrap();
            if !text.starts_with('/') && !text.split('/').any(|c| c == "..") {
                let prefix = if cwd.is_root() {
                    "/".to_string()
                } else {
                    format!("{cwd}/")
                };
                assert!(p == &cwd || p.as_str().starts_with(&prefix), "{p} not below {cwd}");
            }
            // Every name in the result is one the client wrote or one the
            // directory had.
            for c in p.components() {
                assert!(text.split('/').any(|n| n == c) || cwd.components().any(|n| n == c));
            }
        }
        Err(PathError::ControlCharacter) => assert!(arg.iter().any(|&b| b < 0x20 || b == 0x7F)),
        Err(PathError::InvalidUtf8) => assert!(std::str::from_utf8(arg).is_err()),
        Err(PathError::TooLong) => {}
        Err(PathError::Empty) => panic!("resolve never says Empty"),
    }
    match cwd.resolve_name(arg) {
        Ok(p) => {
            assert!(!p.is_root());
            assert_eq!(Ok(p), result);
        }
        Err(PathError::Empty) => assert_eq!(result, Ok(FtpPath::root())),
        Err(e) => assert_eq!(Err(e), result),
    }
}

// --------------------------------------------------------------- PROXY

/// Reads the header the way the server does: never more bytes than the
/// parser asked for, arriving in `cuts`-sized pieces, parsed again after
/// each. `None`: the bytes ended before the header did.
fn read_proxy(data: &[u8], cuts: &[u8], max: usize) -> Option<Result<proxy::Header, ProxyError>> {
    let mut have = 0;
    let mut pieces = cuts.iter().map(|&c| usize::from(c)).filter(|&c| c > 0);
    loop {
        match proxy::parse(&data[..have], max) {
            Ok(Progress::Done(h)) => {
                assert_eq!(h.len, have, "a header of {} bytes in {have}: read past it", h.len);
                return Some(Ok(h));
            }
            Err(e) => return Some(Err(e)),
            Ok(Progress::NeedMore(n)) => {
                assert!(n > have, "asks for {n} bytes with {have} there: no progress");
                assert!(n <= proxy::V1_MAX_LEN.max(max), "asks for {n} bytes, over every bound");
                if n > data.len() {
                    return None;
                }
                have = pieces.next().map_or(n, |p| (have + p).min(n));
            }
        }
    }
}

/// The PROXY header parser on any bytes (raw, so the seeds and the
/// dictionary are plain headers), under a tight, the default and the
/// protocol's largest v2 bound, read whole-as-asked, a byte at a time and
/// in uneven pieces.
pub fn proxy_header(data: &[u8]) {
    for max in [
        proxy::V2_FIXED_LEN + 12,
        proxy::DEFAULT_MAX_V2_LEN,
        proxy::V2_FIXED_LEN + 0xffff,
    ] {
        for cuts in [&[][..], &[1], &[7, 3, 50]] {
            proxy_header_with(data, cuts, max);
        }
    }
}

/// Read incrementally the parser never asks for a byte past the header,
/// agrees with a parse of all the bytes at once, stays within its bounds,
/// and what it accepts encodes back to a header with the same addresses.
fn proxy_header_with(data: &[u8], cuts: &[u8], max: usize) {
    let result = read_proxy(data, cuts, max);
    match proxy::parse(data, max) {
        Ok(Progress::Done(whole)) => assert_eq!(result, Some(Ok(whole)), "incremental and whole parses disagree"),
        Ok(Progress::NeedMore(n)) => {
            assert!(n > data.len());
            assert_eq!(result, None, "an incomplete header was decided");
        }
        // Read piece by piece, the bytes may end before the error shows.
        Err(e) => assert!(
            matches!(result, None | Some(Err(_))) && result.map_or(true, |r| r == Err(e)),
            "incremental and whole parses disagree"
        ),
    }
    let Some(Ok(h)) = result else { return };
    match h.version {
        Version::V1 => assert!(h.len <= proxy::V1_MAX_LEN && data.starts_with(b"PROXY ")),
        Version::V2 => assert!(h.len <= max && h.len >= proxy::V2_FIXED_LEN),
    }
    for encoded in [proxy::encode_v1(&h.addresses), proxy::encode_v2(&h.addresses)] {
        match proxy::parse(&encoded, proxy::DEFAULT_MAX_V2_LEN) {
            Ok(Progress::Done(again)) => {
                assert_eq!(again.addresses, h.addresses);
                assert_eq!(again.len, encoded.len());
            }
            other => panic!("{:?} does not parse back: {other:?}", encoded),
        }
    }
    if let Addresses::Tcp { source, destination } = h.addresses {
        if h.version == Version::V1 {
            assert_eq!(source.is_ipv4(), destination.is_ipv4(), "v1 mixes families");
        }
    }
}

// ---------------------------------------------------------------- glob

#[derive(Debug, Arbitrary)]
pub struct GlobInput {
    pub pattern: String,
    pub name: String,
}

/// The obvious recursive matcher, exponential but right; inputs are cut
/// short enough for it.
fn naive_glob(p: &[char], n: &[char]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some(('*', rest)) => (0..=n.len()).any(|k| naive_glob(rest, &n[k..])),
        Some((c, rest)) => {
            !n.is_empty() && (*c == '?' || c.eq_ignore_ascii_case(&n[0])) && naive_glob(rest, &n[1..])
        }
    }
}

/// A denied-names pattern against a client's name: never a panic, and the
/// same answer as the naive matcher (a star-heavy pattern must not be
/// slow either: libFuzzer reports timeouts).
pub fn glob(input: &GlobInput) {
    let pattern: String = input.pattern.chars().take(12).collect();
    let name: String = input.name.chars().take(24).collect();
    let Ok(compiled) = NamePattern::new(&pattern) else {
        return;
    };
    // Collapsed stars keep the naive matcher polynomial here.
    let mut p: Vec<char> = Vec::new();
    for c in pattern.chars() {
        if !(c == '*' && p.last() == Some(&'*')) {
            p.push(c);
        }
    }
    let n: Vec<char> = name.chars().collect();
    assert_eq!(compiled.matches(&name), naive_glob(&p, &n), "{pattern:?} against {name:?}");
}
