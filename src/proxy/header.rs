//! Framing and decoding PROXY protocol headers (pure; no I/O).
//!
//! [`frame`] says, from the bytes of a header consumed so far, how many more
//! to consume: never a byte past the header's end, so whatever follows it is
//! left on the socket for the ClientHello capture. [`decode`] turns a whole
//! header into a [`Decoded`] (the `ppp` crate parses; we check its answer
//! covers exactly the bytes we framed). [`split`] runs both over a buffer,
//! for tests and fuzzing.
//!
//! Specification: HAProxy's `proxy-protocol.txt` (versions 1 and 2).

use std::net::SocketAddr;

use super::{ProxyError, ViaKind};

/// Longest v1 header, CRLF included (specification, section 2.1).
pub const V1_MAX: usize = 107;
/// The v2 signature (section 2.2).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/protocol and the 16-bit length.
const V2_FIXED: usize = 16;
/// Most address and TLV bytes we accept after the fixed part: a UNIX-socket
/// pair (216) plus TLVs (AWS's VPC endpoint id, GCP's connection id, HAProxy's
/// SSL, unique-id and authority TLVs) with room to spare.
pub const V2_MAX_PAYLOAD: usize = 520;
/// Longest v2 header we accept.
pub const V2_MAX: usize = V2_FIXED + V2_MAX_PAYLOAD;
const V1_PREFIX: &[u8] = b"PROXY ";

/// What to consume next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Exactly this many more bytes, all of them header.
    Exactly(usize),
    /// A v1 line: up to and including its `\n`, at most this many more bytes.
    Line { at_most: usize },
    /// The header is the first this-many bytes, all consumed.
    Complete(usize),
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub version: u8,
    pub kind: ViaKind,
    /// The client, when the header names one ([`ViaKind::Proxied`]).
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}

/// From the header bytes consumed so far (`have`), what to consume next.
pub fn frame(have: &[u8]) -> Result<Frame, ProxyError> {
    match have.first() {
        None => Ok(Frame::Exactly(1)),
        Some(b'\r') => frame_v2(have),
        Some(b'P') => frame_v1(have),
        Some(_) => Err(ProxyError::Missing(describe(have))),
    }
}

fn frame_v2(have: &[u8]) -> Result<Frame, ProxyError> {
    let n = have.len().min(V2_SIGNATURE.len());
    if have[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::BadSignature);
    }
    if have.len() < V2_FIXED {
        return Ok(Frame::Exactly(V2_FIXED - have.len()));
    }
    let version_command = have[12];
    if version_command != 0x20 && version_command != 0x21 {
        return Err(ProxyError::BadVersionCommand(version_command));
    }
    let payload = usize::from(u16::from_be_bytes([have[14], have[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError::TooLong { limit: V2_MAX });
    }
    let total = V2_FIXED + payload;
    Ok(match total.checked_sub(have.len()) {
        Some(0) | None => Frame::Complete(total),
        Some(more) => Frame::Exactly(more),
    })
}

fn frame_v1(have: &[u8]) -> Result<Frame, ProxyError> {
    let n = have.len().min(V1_PREFIX.len());
    if have[..n] != V1_PREFIX[..n] {
        return Err(ProxyError::Missing(describe(have)));
    }
    match have.iter().position(|&b| b == b'\n') {
        Some(end) if end + 1 > V1_MAX => Err(ProxyError::TooLong { limit: V1_MAX }),
        Some(end) if end == 0 || have[end - 1] != b'\r' => Err(ProxyError::NoCrlf),
        Some(end) => Ok(Frame::Complete(end + 1)),
        None if have.len() >= V1_MAX => Err(ProxyError::TooLong { limit: V1_MAX }),
        None => Ok(Frame::Line {
            at_most: V1_MAX - have.len(),
        }),
    }
}

/// Decodes one whole header (as [`frame`] delimited it).
pub fn decode(header: &[u8]) -> Result<Decoded, ProxyError> {
    if header.first() == Some(&b'\r') {
        decode_v2(header)
    } else {
        decode_v1(header)
    }
}

fn decode_v2(header: &[u8]) -> Result<Decoded, ProxyError> {
    use ppp::v2::{Addresses, Command, Protocol};
    let invalid = |detail: String| ProxyError::Invalid { version: 2, detail };
    let h = ppp::v2::Header::try_from(header).map_err(|e| invalid(e.to_string()))?;
    if h.header.len() != header.len() {
        return Err(invalid(
            "length field disagrees with the header's end".into(),
        ));
    }
    let (kind, source, destination) = match (h.command, h.addresses) {
        (Command::Local, _) => (ViaKind::HealthCheck, None, None),
        (Command::Proxy, Addresses::IPv4(a)) if h.protocol == Protocol::Stream => (
            ViaKind::Proxied,
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        (Command::Proxy, Addresses::IPv6(a)) if h.protocol == Protocol::Stream => (
            ViaKind::Proxied,
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        (Command::Proxy, Addresses::IPv4(_) | Addresses::IPv6(_)) => {
            return Err(invalid(format!(
                "transport {:?} is not a TCP stream",
                h.protocol
            )))
        }
        (Command::Proxy, Addresses::Unspecified | Addresses::Unix(_)) => {
            (ViaKind::Unnamed, None, None)
        }
    };
    Ok(Decoded {
        version: 2,
        kind,
        source,
        destination,
    })
}

fn decode_v1(header: &[u8]) -> Result<Decoded, ProxyError> {
    use ppp::v1::Addresses;
    let invalid = |detail: String| ProxyError::Invalid { version: 1, detail };
    let h = ppp::v1::Header::try_from(header).map_err(|e| invalid(e.to_string()))?;
    if h.header.len() != header.len() {
        return Err(invalid("carriage return inside the line".into()));
    }
    let (kind, source, destination) = match h.addresses {
        Addresses::Tcp4(a) => (
            ViaKind::Proxied,
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        Addresses::Tcp6(a) => (
            ViaKind::Proxied,
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        Addresses::Unknown => (ViaKind::Unnamed, None, None),
    };
    Ok(Decoded {
        version: 1,
        kind,
        source,
        destination,
    })
}

/// Frames and decodes a header at the start of `bytes`, consuming as the
/// socket reader does: `Ok(None)` when more bytes are needed, else the header
/// and its length.
pub fn split(bytes: &[u8]) -> Result<Option<(Decoded, usize)>, ProxyError> {
    let mut have = 0;
    loop {
        match frame(&bytes[..have])? {
            Frame::Complete(n) => return decode(&bytes[..n]).map(|d| Some((d, n))),
            Frame::Exactly(more) => {
                if have + more > bytes.len() {
                    return Ok(None);
                }
                have += more;
            }
            Frame::Line { at_most } => {
                let window = &bytes[have..bytes.len().min(have + at_most)];
                match window.iter().position(|&b| b == b'\n') {
                    Some(end) => have += end + 1,
                    None if window.len() == at_most => have += at_most,
                    None => return Ok(None),
                }
            }
        }
    }
}

/// What a connection without a header starts with, for the log: the first
/// bytes, escaped, and what they look like.
pub(super) fn describe(first: &[u8]) -> String {
    let shown: String = first
        .iter()
        .take(16)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if first.is_empty() {
        return "nothing".into();
    }
    let looks = match first[0] {
        0x16 => {
            "a TLS handshake: is the balancer configured to send PROXY headers \
                 (HAProxy: send-proxy or send-proxy-v2; AWS NLB: proxy_protocol_v2)?"
        }
        _ => crate::hello::record::sniff(first).describe(),
    };
    format!("\"{shown}\" ({looks})")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values below are the specification's, written out by hand.

    #[test]
    fn v1_tcp4_is_framed_to_its_crlf_and_names_the_client() {
        let line = b"PROXY TCP4 198.51.100.7 203.0.113.1 51000 443\r\n";
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(&[0x16, 3, 1]);
        let (d, n) = split(&bytes).expect("valid").expect("complete");
        assert_eq!(n, line.len());
        assert_eq!(d.version, 1);
        assert_eq!(d.kind, ViaKind::Proxied);
        assert_eq!(d.source, Some("198.51.100.7:51000".parse().unwrap()));
        assert_eq!(d.destination, Some("203.0.113.1:443".parse().unwrap()));
    }

    #[test]
    fn v1_needs_more_until_the_line_ends() {
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
        for cut in 0..line.len() {
            assert_eq!(split(&line[..cut]), Ok(None), "cut at {cut}");
        }
        let (d, _) = split(line).unwrap().unwrap();
        assert_eq!(d.source, Some("[2001:db8::7]:51000".parse().unwrap()));
    }

    #[test]
    fn v1_unknown_keeps_no_client() {
        let (d, n) = split(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!((d.kind, d.source, n), (ViaKind::Unnamed, None, 15));
    }

    #[test]
    fn v1_longer_than_107_bytes_is_refused_after_107() {
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(200, b'x');
        assert_eq!(split(&long), Err(ProxyError::TooLong { limit: 107 }));
        // Not a byte more is needed to say so.
        assert_eq!(split(&long[..107]), Err(ProxyError::TooLong { limit: 107 }));
        assert_eq!(split(&long[..106]), Ok(None));
    }

    #[test]
    fn v2_proxy_ipv4_by_hand() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12]);
        h.extend_from_slice(&[198, 51, 100, 7, 203, 0, 113, 1]);
        h.extend_from_slice(&51000u16.to_be_bytes());
        h.extend_from_slice(&443u16.to_be_bytes());
        let n = h.len();
        h.push(0x16);
        let (d, used) = split(&h).unwrap().unwrap();
        assert_eq!(used, n);
        assert_eq!(d.version, 2);
        assert_eq!(d.source, Some("198.51.100.7:51000".parse().unwrap()));
        for cut in 0..n {
            assert_eq!(split(&h[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn v2_local_is_a_health_check() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x20, 0x00, 0, 0]);
        let (d, n) = split(&h).unwrap().unwrap();
        assert_eq!((d.kind, d.source, n), (ViaKind::HealthCheck, None, 16));
    }

    #[test]
    fn v2_with_tlvs_skips_them_and_bounds_the_length() {
        let mut h = V2_SIGNATURE.to_vec();
        // IPv4 addresses (12) + a NOOP TLV (type 0x04) of 5 bytes = 20.
        h.extend_from_slice(&[0x21, 0x11, 0, 20]);
        h.extend_from_slice(&[10, 0, 0, 9, 10, 0, 0, 1, 0x13, 0x88, 0x01, 0xbb]);
        h.extend_from_slice(&[0x04, 0, 5, 0, 0, 0, 0, 0]);
        let (d, n) = split(&h).unwrap().unwrap();
        assert_eq!(n, 36);
        assert_eq!(d.source, Some("10.0.0.9:5000".parse().unwrap()));

        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0x02, 0x09]); // 521 bytes announced
        assert_eq!(split(&huge), Err(ProxyError::TooLong { limit: 536 }));
    }

    #[test]
    fn v2_udp_and_wrong_versions_are_refused() {
        let mut udp = V2_SIGNATURE.to_vec();
        udp.extend_from_slice(&[0x21, 0x12, 0, 12]);
        udp.extend_from_slice(&[0; 12]);
        assert!(matches!(
            split(&udp),
            Err(ProxyError::Invalid { version: 2, .. })
        ));
        let mut v3 = V2_SIGNATURE.to_vec();
        v3.extend_from_slice(&[0x31, 0x11, 0, 12]);
        assert_eq!(split(&v3), Err(ProxyError::BadVersionCommand(0x31)));
    }

    #[test]
    fn a_tls_hello_or_http_is_not_a_header() {
        assert!(matches!(
            split(&[0x16, 3, 1, 0, 200]),
            Err(ProxyError::Missing(_))
        ));
        assert!(matches!(
            split(b"GET / HTTP/1.1\r\n"),
            Err(ProxyError::Missing(_))
        ));
        // The signature is checked once its 16 bytes are in (read at once).
        assert_eq!(
            split(b"\r\n\r\nHELLO, WORLD!!"),
            Err(ProxyError::BadSignature)
        );
    }
}
