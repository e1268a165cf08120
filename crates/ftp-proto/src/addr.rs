//! Data-connection addresses: PORT (RFC 959), EPRT/EPSV (RFC 2428) and
//! LPRT/LPSV (RFC 1639), parsed from and formatted for the wire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

/// Why an address argument was refused: a syntax error (501) or a network
/// protocol this server does not speak (522, RFC 2428).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrError {
    Syntax,
    UnsupportedProtocol,
}

/// `h1,h2,h3,h4,p1,p2`, each 0-255.
pub fn parse_port(arg: &[u8]) -> Result<SocketAddrV4, AddrError> {
    let text = std::str::from_utf8(arg).map_err(|_| AddrError::Syntax)?;
    let nums = parse_byte_list(text.trim())?;
    if nums.len() != 6 {
        return Err(AddrError::Syntax);
    }
    let ip = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    let port = u16::from(nums[4]) << 8 | u16::from(nums[5]);
    Ok(SocketAddrV4::new(ip, port))
}

fn parse_byte_list(text: &str) -> Result<Vec<u8>, AddrError> {
    text.split(',')
        .map(|n| {
            let n = n.trim();
            if n.is_empty() || n.len() > 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AddrError::Syntax);
            }
            n.parse::<u8>().map_err(|_| AddrError::Syntax)
        })
        .collect()
}

/// `<d>proto<d>address<d>port<d>` where `<d>` is any printable ASCII
/// character (RFC 2428 §2); proto 1 is IPv4 and 2 is IPv6.
pub fn parse_eprt(arg: &[u8]) -> Result<SocketAddr, AddrError> {
    let text = std::str::from_utf8(arg).map_err(|_| AddrError::Syntax)?;
    let delim = text.chars().next().ok_or(AddrError::Syntax)?;
    if !(33..=126).contains(&(delim as u32)) {
        return Err(AddrError::Syntax);
    }
    let fields: Vec<&str> = text.split(delim).collect();
    // "", proto, addr, port, "" — the argument ends with the delimiter.
    if fields.len() != 5 || !fields[0].is_empty() || !fields[4].is_empty() {
        return Err(AddrError::Syntax);
    }
    let port = parse_decimal_port(fields[3])?;
    let ip: IpAddr = match fields[1] {
        "1" => IpAddr::V4(fields[2].parse().map_err(|_| AddrError::Syntax)?),
        "2" => IpAddr::V6(fields[2].parse().map_err(|_| AddrError::Syntax)?),
        p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => return Err(AddrError::UnsupportedProtocol),
        _ => return Err(AddrError::Syntax),
    };
    Ok(SocketAddr::new(ip, port))
}

fn parse_decimal_port(s: &str) -> Result<u16, AddrError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::Syntax);
    }
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(AddrError::Syntax),
    }
}

/// `af,hal,h1,...,hn,pal,p1,p2` (RFC 1639): af 4 with 4 address bytes or af
/// 6 with 16, and a 2-byte port.
pub fn parse_lprt(arg: &[u8]) -> Result<SocketAddr, AddrError> {
    let text = std::str::from_utf8(arg).map_err(|_| AddrError::Syntax)?;
    let nums = parse_byte_list(text.trim())?;
    let (&af, rest) = nums.split_first().ok_or(AddrError::Syntax)?;
    let (&hal, rest) = rest.split_first().ok_or(AddrError::Syntax)?;
    let ip_len = match (af, hal) {
        (4, 4) => 4,
        (6, 16) => 16,
        (4, _) | (6, _) => return Err(AddrError::Syntax),
        _ => return Err(AddrError::UnsupportedProtocol),
    };
    if rest.len() != ip_len + 3 || rest[ip_len] != 2 {
        return Err(AddrError::Syntax);
    }
    let ip = if ip_len == 4 {
        IpAddr::V4(Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]))
    } else {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&rest[..16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let port = u16::from(rest[ip_len + 1]) << 8 | u16::from(rest[ip_len + 2]);
    Ok(SocketAddr::new(ip, port))
}

/// The text of a 227 reply.
pub fn format_pasv(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let port = addr.port();
    format!("Entering Passive Mode ({a},{b},{c},{d},{},{}).", port >> 8, port & 0xFF)
}

/// The text of a 229 reply.
pub fn format_epsv(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// The text of a 228 reply.
pub fn format_lpsv(addr: SocketAddr) -> String {
    let mut fields: Vec<String> = Vec::new();
    match addr.ip() {
        IpAddr::V4(ip) => {
            fields.push("4".into());
            fields.push("4".into());
            fields.extend(ip.octets().iter().map(u8::to_string));
        }
        IpAddr::V6(ip) => {
            fields.push("6".into());
            fields.push("16".into());
            fields.extend(ip.octets().iter().map(u8::to_string));
        }
    }
    fields.push("2".into());
    fields.push((addr.port() >> 8).to_string());
    fields.push((addr.port() & 0xFF).to_string());
    format!("Entering Long Passive Mode ({})", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port() {
        assert_eq!(parse_port(b"127,0,0,1,4,1").unwrap(), "127.0.0.1:1025".parse().unwrap());
        for bad in [
            &b"127,0,0,1,4"[..],
            b"127,0,0,1,4,256",
            b"127,0,0,1,4,-1",
            b"a,b,c,d,e,f",
            b"",
            b"1,2,3,4,5,6,7",
            b"127,0,0,1,4,0001",
        ] {
            assert_eq!(parse_port(bad), Err(AddrError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn eprt() {
        assert_eq!(
            parse_eprt(b"|1|132.235.1.2|6275|").unwrap(),
            "132.235.1.2:6275".parse().unwrap()
        );
        assert_eq!(
            parse_eprt(b"|2|1080::8:800:200C:417A|5282|").unwrap(),
            "[1080::8:800:200C:417A]:5282".parse().unwrap()
        );
        assert_eq!(parse_eprt(b"!1!10.0.0.1!21!").unwrap(), "10.0.0.1:21".parse().unwrap());
        assert_eq!(parse_eprt(b"|3|1.2.3.4|5|"), Err(AddrError::UnsupportedProtocol));
        for bad in [
            &b"|1|1.2.3.4|70000|"[..],
            b"|1|1.2.3.4|0|",
            b"|1|1.2.3.4|5",
            b"|2|1.2.3.4|5|",
            b"|1|::1|5|",
            b"",
            b" 1 1.2.3.4 5 ",
        ] {
            assert_eq!(parse_eprt(bad), Err(AddrError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn lprt() {
        assert_eq!(
            parse_lprt(b"4,4,127,0,0,1,2,4,1").unwrap(),
            "127.0.0.1:1025".parse().unwrap()
        );
        assert_eq!(
            parse_lprt(b"6,16,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,2,0,80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(parse_lprt(b"4,4,127,0,0,1,2,4"), Err(AddrError::Syntax));
        assert_eq!(parse_lprt(b"4,16,127,0,0,1,2,4,1"), Err(AddrError::Syntax));
        assert_eq!(parse_lprt(b"9,4,1,2,3,4,2,0,1"), Err(AddrError::UnsupportedProtocol));
    }

    #[test]
    fn formats() {
        assert_eq!(
            format_pasv("10.1.2.3:1025".parse().unwrap()),
            "Entering Passive Mode (10,1,2,3,4,1)."
        );
        assert_eq!(format_epsv(4242), "Entering Extended Passive Mode (|||4242|)");
        assert_eq!(
            format_lpsv("127.0.0.1:1025".parse().unwrap()),
            "Entering Long Passive Mode (4,4,127,0,0,1,2,4,1)"
        );
        let v6 = format_lpsv("[::1]:80".parse().unwrap());
        assert_eq!(
            parse_lprt(&v6.as_bytes()[v6.find('(').unwrap() + 1..v6.len() - 1]).unwrap(),
            "[::1]:80".parse().unwrap()
        );
    }
}
