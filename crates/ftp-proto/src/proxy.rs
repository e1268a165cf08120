//! The PROXY protocol (HAProxy's `send-proxy` / `send-proxy-v2`), versions
//! 1 and 2: the header a TCP load balancer writes before the client's first
//! byte, carrying the client's real address.
//!
//! [`parse`] looks at the bytes received so far and says either what the
//! header is and how long it was, how many bytes in total it needs before
//! it can say more, or why this is not a valid header. "How many bytes"
//! never reaches past the end of the header, so a reader that reads exactly
//! that many never consumes the client's own first bytes (an implicit-TLS
//! ClientHello can follow the header in the same segment): no bytes need to
//! be handed back.
//!
//! Bounds: a v1 line is at most 107 bytes with its CR LF (the spec's own
//! worst case); a v2 header is at most the caller's `max_v2_len`, checked
//! against its length field before any of the rest is read. The spec
//! designs both to fit in 536 bytes ([`DEFAULT_MAX_V2_LEN`]), the smallest
//! TCP segment every host must accept.
//!
//! Strictness follows the spec: exactly one space between v1 fields, no
//! leading zeros, a lone CR or LF ends nothing, version 2 only, commands
//! LOCAL and PROXY only. What the spec says to treat as "use the real
//! connection's addresses" (v1 `UNKNOWN`, v2 `LOCAL`, v2 `UNSPEC`, `AF_UNIX`
//! and datagram headers) is [`Addresses::Unknown`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 line, CR LF included.
pub const V1_MAX_LEN: usize = 107;
/// The fixed part of a v2 header: signature, version and command, family
/// and transport, length.
pub const V2_FIXED_LEN: usize = 16;
/// The spec's size for "any header fits in one segment".
pub const DEFAULT_MAX_V2_LEN: usize = 536;
/// The shortest valid header of either version (`PROXY UNKNOWN\r\n`).
pub const MIN_LEN: usize = 15;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

const V2_LOCAL: u8 = 0x0;
const V2_PROXY: u8 = 0x1;
const AF_INET: u8 = 0x1;
const AF_INET6: u8 = 0x2;
const AF_UNIX: u8 = 0x3;
const TRANSPORT_STREAM: u8 = 0x1;
const TRANSPORT_DGRAM: u8 = 0x2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What the header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    /// A relayed TCP connection: the client's address as the proxy saw it,
    /// and the address the client connected to (the proxy's frontend).
    Tcp {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// No client address: a health check (v2 `LOCAL`) or a connection the
    /// proxy could not describe (v1 `UNKNOWN`, v2 `UNSPEC`/`AF_UNIX`/UDP).
    /// The connection's own endpoints apply.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    pub addresses: Addresses,
    /// Bytes the header took, from the first byte of the connection.
    pub len: usize,
}

/// What the bytes so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Done(Header),
    /// The header is not complete: call again once this many bytes (in
    /// total, from the start) are there. Never more than the header holds.
    NeedMore(usize),
}

/// Why a connection's first bytes are not a PROXY header. Each one means
/// the connection must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither the v1 `PROXY ` prefix nor the v2 signature.
    NoSignature,
    /// No CR LF within the first 107 bytes.
    V1TooLong,
    /// A v1 line that does not match the grammar (fields, spaces,
    /// addresses, ports, a lone CR or LF, a non-ASCII byte).
    V1Syntax,
    /// A v2 version nibble other than 2.
    V2Version(u8),
    /// A v2 command other than LOCAL (0) and PROXY (1).
    V2Command(u8),
    /// A v2 address family above 3 or transport above 2.
    V2Family(u8),
    /// The v2 length field does not cover the addresses of its family.
    V2AddressTooShort { family: u8, len: usize },
    /// The v2 header (16 + its length field) is over the bound.
    V2TooLong { len: usize, max: usize },
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NoSignature => f.write_str("no PROXY protocol header"),
            ProxyError::V1TooLong => write!(f, "PROXY v1 line without CR LF in {V1_MAX_LEN} bytes"),
            ProxyError::V1Syntax => f.write_str("malformed PROXY v1 line"),
            ProxyError::V2Version(v) => write!(f, "PROXY v2 header with version {v}"),
            ProxyError::V2Command(c) => write!(f, "PROXY v2 header with unknown command {c}"),
            ProxyError::V2Family(b) => write!(f, "PROXY v2 header with unknown family/transport 0x{b:02x}"),
            ProxyError::V2AddressTooShort { family, len } => {
                write!(f, "PROXY v2 length {len} too short for address family {family}")
            }
            ProxyError::V2TooLong { len, max } => write!(f, "PROXY v2 header of {len} bytes (at most {max})"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Parses the header at the start of `buf` (the connection's first bytes,
/// as many as have arrived). `max_v2_len` bounds a v2 header, fixed part
/// included.
pub fn parse(buf: &[u8], max_v2_len: usize) -> Result<Progress, ProxyError> {
    match buf.first() {
        None => Ok(Progress::NeedMore(MIN_LEN)),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf, max_v2_len),
        Some(_) => Err(ProxyError::NoSignature),
    }
}

fn parse_v1(buf: &[u8]) -> Result<Progress, ProxyError> {
    let prefix = buf.len().min(V1_PREFIX.len());
    if buf[..prefix] != V1_PREFIX[..prefix] {
        return Err(ProxyError::NoSignature);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    for (i, &b) in window.iter().enumerate() {
        match b {
            b'\r' => match window.get(i + 1) {
                Some(b'\n') => {
                    let addresses = parse_v1_line(&window[..i])?;
                    return Ok(Progress::Done(Header {
                        version: Version::V1,
                        addresses,
                        len: i + 2,
                    }));
                }
                Some(_) => return Err(ProxyError::V1Syntax),
                None => {}
            },
            // A LF not after a CR (that case returned above).
            b'\n' => return Err(ProxyError::V1Syntax),
            0x20..=0x7E => {}
            _ => return Err(ProxyError::V1Syntax),
        }
    }
    if buf.len() >= V1_MAX_LEN {
        return Err(ProxyError::V1TooLong);
    }
    // The line can end no sooner than after a CR LF that is not here yet:
    // one byte on when the last one is the CR, two otherwise.
    let next = if buf.last() == Some(&b'\r') {
        buf.len() + 1
    } else {
        buf.len() + 2
    };
    Ok(Progress::NeedMore(next.clamp(MIN_LEN, V1_MAX_LEN)))
}

/// The line without its CR LF, all printable ASCII.
fn parse_v1_line(line: &[u8]) -> Result<Addresses, ProxyError> {
    let text = std::str::from_utf8(line).map_err(|_| ProxyError::V1Syntax)?;
    let rest = text.strip_prefix("PROXY ").ok_or(ProxyError::V1Syntax)?;
    if rest == "UNKNOWN" || rest.starts_with("UNKNOWN ") {
        // The spec: whatever follows UNKNOWN is ignored.
        return Ok(Addresses::Unknown);
    }
    let fields: Vec<&str> = rest.split(' ').collect();
    let [family, src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::V1Syntax);
    };
    let (source, destination) = match family {
        "TCP4" => (IpAddr::V4(v1_ipv4(src)?), IpAddr::V4(v1_ipv4(dst)?)),
        "TCP6" => (IpAddr::V6(v1_ipv6(src)?), IpAddr::V6(v1_ipv6(dst)?)),
        _ => return Err(ProxyError::V1Syntax),
    };
    Ok(Addresses::Tcp {
        source: SocketAddr::new(source, v1_port(sport)?),
        destination: SocketAddr::new(destination, v1_port(dport)?),
    })
}

/// Four decimal numbers 0-255, no leading zeros (they could be read as
/// octal), separated by single dots.
fn v1_ipv4(s: &str) -> Result<Ipv4Addr, ProxyError> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        *octet = v1_decimal(parts.next().ok_or(ProxyError::V1Syntax)?, 3)?
            .try_into()
            .map_err(|_| ProxyError::V1Syntax)?;
    }
    if parts.next().is_some() {
        return Err(ProxyError::V1Syntax);
    }
    Ok(Ipv4Addr::from(octets))
}

fn v1_ipv6(s: &str) -> Result<Ipv6Addr, ProxyError> {
    // The standard text forms; a scope ("%eth0") or brackets are not.
    if !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
        return Err(ProxyError::V1Syntax);
    }
    s.parse().map_err(|_| ProxyError::V1Syntax)
}

fn v1_port(s: &str) -> Result<u16, ProxyError> {
    v1_decimal(s, 5)?.try_into().map_err(|_| ProxyError::V1Syntax)
}

/// Up to `max_digits` decimal digits, no sign, no leading zero.
fn v1_decimal(s: &str, max_digits: usize) -> Result<u32, ProxyError> {
    let ok = !s.is_empty()
        && s.len() <= max_digits
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(ProxyError::V1Syntax);
    }
    s.parse().map_err(|_| ProxyError::V1Syntax)
}

fn parse_v2(buf: &[u8], max_v2_len: usize) -> Result<Progress, ProxyError> {
    let sig = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig] != V2_SIGNATURE[..sig] {
        return Err(ProxyError::NoSignature);
    }
    // Each field is checked as soon as it is there.
    if let Some(&ver_cmd) = buf.get(12) {
        if ver_cmd >> 4 != 2 {
            return Err(ProxyError::V2Version(ver_cmd >> 4));
        }
        if !matches!(ver_cmd & 0xF, V2_LOCAL | V2_PROXY) {
            return Err(ProxyError::V2Command(ver_cmd & 0xF));
        }
    }
    if buf.len() < V2_FIXED_LEN {
        return Ok(Progress::NeedMore(V2_FIXED_LEN));
    }
    let local = buf[12] & 0xF == V2_LOCAL;
    let fam = buf[13];
    let (family, transport) = (fam >> 4, fam & 0xF);
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = V2_FIXED_LEN + len;
    if total > max_v2_len {
        return Err(ProxyError::V2TooLong {
            len: total,
            max: max_v2_len,
        });
    }
    // LOCAL: the spec says the family is ignored, whatever it is.
    if !local {
        if family > AF_UNIX || transport > TRANSPORT_DGRAM {
            return Err(ProxyError::V2Family(fam));
        }
        let needed = match family {
            AF_INET => 12,
            AF_INET6 => 36,
            AF_UNIX => 216,
            _ => 0,
        };
        if len < needed {
            return Err(ProxyError::V2AddressTooShort { family, len });
        }
    }
    if buf.len() < total {
        return Ok(Progress::NeedMore(total));
    }
    let block = &buf[V2_FIXED_LEN..total];
    let addresses = match (local, family, transport) {
        (false, AF_INET, TRANSPORT_STREAM) => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]));
            Addresses::Tcp {
                source: SocketAddr::new(ip(0), port_at(block, 8)),
                destination: SocketAddr::new(ip(4), port_at(block, 10)),
            }
        }
        (false, AF_INET6, TRANSPORT_STREAM) => {
            let ip = |at: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            Addresses::Tcp {
                source: SocketAddr::new(ip(0), port_at(block, 32)),
                destination: SocketAddr::new(ip(16), port_at(block, 34)),
            }
        }
        // LOCAL, UNSPEC, AF_UNIX and UDP: the spec's fallback is the
        // connection's own endpoints. (TLVs after the addresses are
        // skipped: nothing here needs them.)
        _ => Addresses::Unknown,
    };
    Ok(Progress::Done(Header {
        version: Version::V2,
        addresses,
        len: total,
    }))
}

fn port_at(block: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([block[at], block[at + 1]])
}

/// The v1 line for `addresses` (for tests and tools that play the proxy).
/// Mixed families are sent as TCP6 with the IPv4 one mapped.
pub fn encode_v1(addresses: &Addresses) -> Vec<u8> {
    match addresses {
        Addresses::Unknown => b"PROXY UNKNOWN\r\n".to_vec(),
        Addresses::Tcp { source, destination } => {
            let line = match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => format!("PROXY TCP4 {s} {d}"),
                (s, d) => format!("PROXY TCP6 {} {}", as_v6(s), as_v6(d)),
            };
            format!("{line} {} {}\r\n", source.port(), destination.port()).into_bytes()
        }
    }
}

/// The v2 header for `addresses`: PROXY over TCP, or LOCAL for `Unknown`.
pub fn encode_v2(addresses: &Addresses) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    match addresses {
        Addresses::Unknown => out.extend_from_slice(&[0x20 | V2_LOCAL, 0x00, 0, 0]),
        Addresses::Tcp { source, destination } => {
            match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.extend_from_slice(&[0x20 | V2_PROXY, AF_INET << 4 | TRANSPORT_STREAM, 0, 12]);
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.extend_from_slice(&[0x20 | V2_PROXY, AF_INET6 << 4 | TRANSPORT_STREAM, 0, 36]);
                    out.extend_from_slice(&as_v6(s).octets());
                    out.extend_from_slice(&as_v6(d).octets());
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
        }
    }
    out
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = DEFAULT_MAX_V2_LEN;

    fn tcp(source: &str, destination: &str) -> Addresses {
        Addresses::Tcp {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    /// Reads the way a server does: exactly as many bytes as asked for,
    /// from a stream where `header` is followed by the client's data.
    fn read_like_a_server(header: &[u8]) -> Result<Header, ProxyError> {
        let mut stream = header.to_vec();
        stream.extend_from_slice(b"USER client data that must not be read\r\n");
        let mut have = 0;
        loop {
            match parse(&stream[..have], MAX)? {
                Progress::Done(h) => return Ok(h),
                Progress::NeedMore(n) => {
                    assert!(n > have, "no progress at {have}");
                    assert!(
                        n <= header.len(),
                        "asks for {n} bytes of a {}-byte header",
                        header.len()
                    );
                    have = n;
                }
            }
        }
    }

    fn done(buf: &[u8]) -> Header {
        match parse(buf, MAX) {
            Ok(Progress::Done(h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let h = done(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nUSER x\r\n");
        assert_eq!(h.version, Version::V1);
        assert_eq!(h.addresses, tcp("192.168.0.1:56324", "192.168.0.11:443"));
        assert_eq!(h.len, 47);
        let h = done(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
        assert_eq!(h.addresses, tcp("[2001:db8::1]:65535", "[::1]:0"));
        let worst = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(done(worst).len, 56);
        let v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let line = format!("PROXY TCP6 {v6} {v6} 65535 65535\r\n");
        assert_eq!(done(line.as_bytes()).len, 104);
    }

    #[test]
    fn v1_unknown() {
        let h = done(b"PROXY UNKNOWN\r\n");
        assert_eq!((h.addresses, h.len), (Addresses::Unknown, 15));
        // Whatever follows UNKNOWN is ignored, even the longest form.
        let v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let line = format!("PROXY UNKNOWN {v6} {v6} 65535 65535\r\n");
        assert_eq!(line.len(), V1_MAX_LEN);
        assert_eq!(done(line.as_bytes()).addresses, Addresses::Unknown);
        assert_eq!(done(b"PROXY UNKNOWN garbage!\r\n").addresses, Addresses::Unknown);
    }

    #[test]
    fn v1_malformed() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
            b"PROXY TCP6 [::1] ::1 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n",
            b"PROXY UNKNOWN \xff\r\n",
        ] {
            assert_eq!(
                parse(bad, MAX),
                Err(ProxyError::V1Syntax),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn v1_bounded_at_107_bytes() {
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN, b'a');
        assert_eq!(parse(&long, MAX), Err(ProxyError::V1TooLong));
        long.extend_from_slice(b"\r\n");
        assert_eq!(parse(&long, MAX), Err(ProxyError::V1TooLong));
        // 106 bytes and no CR: one more byte can only prove it too long.
        assert_eq!(parse(&long[..106], MAX), Ok(Progress::NeedMore(107)));
        assert_eq!(parse(&long[..107], MAX), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn no_signature() {
        for bad in [
            &b"USER anonymous\r\n"[..],
            b"PROXX",
            b"\x16\x03\x01",
            b"\r\n\r\n\x01",
            b"proxy ",
            b"PROXY\r\n",
        ] {
            assert_eq!(parse(bad, MAX), Err(ProxyError::NoSignature), "{bad:?}");
        }
    }

    #[test]
    fn incomplete_headers_ask_for_no_more_than_the_header() {
        for header in [
            encode_v1(&tcp("10.1.2.3:40000", "10.0.0.1:21")),
            encode_v1(&tcp("[2001:db8::7]:1", "[2001:db8::1]:21")),
            encode_v1(&Addresses::Unknown),
            b"PROXY UNKNOWN 1\r\n".to_vec(),
            encode_v2(&tcp("10.1.2.3:40000", "10.0.0.1:21")),
            encode_v2(&tcp("[2001:db8::7]:1", "[2001:db8::1]:21")),
            encode_v2(&Addresses::Unknown),
        ] {
            let h = read_like_a_server(&header).unwrap();
            assert_eq!(h.len, header.len());
            // Every strict prefix is incomplete, none an error.
            for cut in 0..header.len() {
                assert!(matches!(parse(&header[..cut], MAX), Ok(Progress::NeedMore(_))), "{cut}");
            }
        }
    }

    #[test]
    fn encoders_round_trip() {
        for a in [
            tcp("192.0.2.1:65535", "198.51.100.2:21"),
            tcp("[2001:db8::1]:5", "[::]:0"),
            Addresses::Unknown,
        ] {
            assert_eq!(done(&encode_v1(&a)).addresses, a);
            assert_eq!(done(&encode_v2(&a)).addresses, a);
        }
        // Mixed families go as TCP6, the IPv4 address mapped.
        let mixed = tcp("192.0.2.1:1", "[2001:db8::1]:21");
        let Addresses::Tcp { source, .. } = done(&encode_v2(&mixed)).addresses else {
            panic!()
        };
        assert_eq!(source.ip().to_canonical(), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    fn v2(ver_cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(ver_cmd);
        h.push(fam);
        h.extend_from_slice(&(block.len() as u16).to_be_bytes());
        h.extend_from_slice(block);
        h
    }

    #[test]
    fn v2_tcp4_tcp6_with_tlvs() {
        let mut block = vec![10, 1, 2, 3, 10, 0, 0, 1, 0x9c, 0x40, 0, 21];
        // A TLV (PP2_TYPE_AUTHORITY "ftp") is skipped.
        block.extend_from_slice(&[0x02, 0, 3, b'f', b't', b'p']);
        let h = done(&v2(0x21, 0x11, &block));
        assert_eq!(h.version, Version::V2);
        assert_eq!(h.addresses, tcp("10.1.2.3:40000", "10.0.0.1:21"));
        assert_eq!(h.len, 16 + 18);
        let mut block = [0u8; 36];
        block[15] = 1;
        block[31] = 2;
        block[32..].copy_from_slice(&[0, 7, 0, 21]);
        assert_eq!(done(&v2(0x21, 0x21, &block)).addresses, tcp("[::1]:7", "[::2]:21"));
    }

    #[test]
    fn v2_local_and_fallbacks() {
        // LOCAL: addresses and family ignored, whatever the length says.
        assert_eq!(done(&v2(0x20, 0x00, &[])).addresses, Addresses::Unknown);
        assert_eq!(done(&v2(0x20, 0xff, &[1, 2, 3])).addresses, Addresses::Unknown);
        assert_eq!(done(&v2(0x20, 0x11, &[0; 12])).len, 28);
        // PROXY with UNSPEC, UNIX or UDP: the connection's endpoints.
        assert_eq!(done(&v2(0x21, 0x00, &[])).addresses, Addresses::Unknown);
        assert_eq!(done(&v2(0x21, 0x31, &[0; 216])).addresses, Addresses::Unknown);
        assert_eq!(done(&v2(0x21, 0x12, &[0; 12])).addresses, Addresses::Unknown);
        assert_eq!(done(&v2(0x21, 0x10, &[0; 12])).addresses, Addresses::Unknown);
    }

    #[test]
    fn v2_malformed() {
        assert_eq!(parse(&v2(0x11, 0x11, &[0; 12]), MAX), Err(ProxyError::V2Version(1)));
        assert_eq!(parse(&v2(0x31, 0x11, &[0; 12]), MAX), Err(ProxyError::V2Version(3)));
        assert_eq!(parse(&v2(0x22, 0x11, &[0; 12]), MAX), Err(ProxyError::V2Command(2)));
        assert_eq!(parse(&v2(0x21, 0x41, &[0; 12]), MAX), Err(ProxyError::V2Family(0x41)));
        assert_eq!(parse(&v2(0x21, 0x13, &[0; 12]), MAX), Err(ProxyError::V2Family(0x13)));
        assert_eq!(
            parse(&v2(0x21, 0x11, &[0; 11]), MAX),
            Err(ProxyError::V2AddressTooShort { family: 1, len: 11 })
        );
        assert_eq!(
            parse(&v2(0x21, 0x21, &[0; 12]), MAX),
            Err(ProxyError::V2AddressTooShort { family: 2, len: 12 })
        );
        assert_eq!(
            parse(&v2(0x21, 0x31, &[0; 36]), MAX),
            Err(ProxyError::V2AddressTooShort { family: 3, len: 36 })
        );
        // A bad version is refused from the 13th byte, before the rest.
        assert_eq!(parse(&v2(0x11, 0x11, &[])[..13], MAX), Err(ProxyError::V2Version(1)));
        let mut sig = V2_SIGNATURE;
        sig[11] = b'X';
        assert_eq!(parse(&sig, MAX), Err(ProxyError::NoSignature));
    }

    #[test]
    fn v2_length_field_bounded() {
        // Refused from the fixed 16 bytes alone: nothing more is read.
        let mut head = v2(0x21, 0x11, &[]);
        head[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(
            parse(&head, MAX),
            Err(ProxyError::V2TooLong {
                len: 16 + 0xffff,
                max: MAX
            })
        );
        let at_max = v2(0x21, 0x11, &vec![0; MAX - 16]);
        assert_eq!(done(&at_max).len, MAX);
        let over = v2(0x21, 0x11, &vec![0; MAX - 15]);
        assert_eq!(parse(&over, MAX), Err(ProxyError::V2TooLong { len: MAX + 1, max: MAX }));
        assert_eq!(parse(&at_max, 100), Err(ProxyError::V2TooLong { len: MAX, max: 100 }));
    }

    #[test]
    fn truncated_headers_wait() {
        let full = encode_v2(&tcp("10.1.2.3:40000", "10.0.0.1:21"));
        assert_eq!(parse(&full[..5], MAX), Ok(Progress::NeedMore(16)));
        assert_eq!(parse(&full[..16], MAX), Ok(Progress::NeedMore(28)));
        assert_eq!(parse(&full[..27], MAX), Ok(Progress::NeedMore(28)));
        assert_eq!(parse(b"", MAX), Ok(Progress::NeedMore(MIN_LEN)));
        assert_eq!(parse(b"PRO", MAX), Ok(Progress::NeedMore(MIN_LEN)));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 ", MAX), Ok(Progress::NeedMore(21)));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", MAX),
            Ok(Progress::NeedMore(32))
        );
    }
}
