//! Parses the client's SYN as `TCP_SAVED_SYN` returns it: the IP header (v4 or
//! v6, RFC 791 / RFC 8200) and the TCP header with its options (RFC 9293 §3.1,
//! RFC 7323 for window scale and timestamps, RFC 2018 for SACK). Pure; no I/O.
//!
//! The SYN is where a client states what it believes about its own link: the MSS
//! it advertises is its interface MTU minus headers. A client behind a tunnel
//! without MSS clamping still advertises 1,460 although the path carries less,
//! which is how black holes start.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One TCP option, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TcpOption {
    pub kind: u8,
    pub name: std::borrow::Cow<'static, str>,
    /// Decoded value where the option has one (MSS, window scale, timestamps).
    pub value: Option<OptionValue>,
}

/// An option's decoded value, kept as numbers (every connection's SYN is
/// parsed, most are never shown) and written as text: `"1460"`,
/// `"2130706433 0"` for timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionValue {
    Number(u32),
    Pair(u32, u32),
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Number(n) => write!(f, "{n}"),
            OptionValue::Pair(a, b) => write!(f, "{a} {b}"),
        }
    }
}

impl Serialize for OptionValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OptionValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let number = |t: &str| t.parse::<u32>().map_err(serde::de::Error::custom);
        match text.split_once(' ') {
            Some((a, b)) => Ok(OptionValue::Pair(number(a)?, number(b)?)),
            None => Ok(OptionValue::Number(number(&text)?)),
        }
    }
}

/// What the SYN says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SynInfo {
    pub ip_version: u8,
    /// TTL (IPv4) or hop limit (IPv6) as it arrived.
    pub ttl: u8,
    /// The smallest common initial TTL (32, 64, 128, 255) at or above `ttl`.
    pub initial_ttl: u8,
    /// `initial_ttl - ttl`: routers crossed, if the guess of the initial TTL holds.
    pub hops: u8,
    /// IPv4 "don't fragment" (always true in effect for IPv6, so `None` there).
    pub dont_fragment: Option<bool>,
    pub window: u16,
    /// The client's initial sequence number: with the bytes we received, it
    /// says which of its bytes it is still waiting to have acknowledged.
    #[serde(default)]
    pub sequence: u32,
    pub options: Vec<TcpOption>,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
    /// The MTU the advertised MSS implies: MSS + 40 (IPv4) or + 60 (IPv6).
    pub implied_mtu: Option<u32>,
    /// The SYN as the kernel saved it (IP and TCP headers), everything above
    /// parsed from it: kept so a shared attempt store can store these bytes
    /// and parse them again on read. Shared, so cloning costs no copy.
    #[serde(skip)]
    pub raw: std::sync::Arc<[u8]>,
}

/// Why the bytes are not a SYN we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SynError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("IP version {0}")]
    UnknownIpVersion(u8),
    #[error("not TCP (protocol {0})")]
    NotTcp(u8),
}

pub fn parse(bytes: &[u8]) -> Result<SynInfo, SynError> {
    let first = *bytes.first().ok_or(SynError::Truncated("IP header"))?;
    let (ip_version, ttl, dont_fragment, tcp) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if bytes.len() < 20 || ihl < 20 || bytes.len() < ihl {
                return Err(SynError::Truncated("IPv4 header"));
            }
            if bytes[9] != 6 {
                return Err(SynError::NotTcp(bytes[9]));
            }
            let df = bytes[6] & 0x40 != 0;
            (4, bytes[8], Some(df), &bytes[ihl..])
        }
        6 => {
            if bytes.len() < 40 {
                return Err(SynError::Truncated("IPv6 header"));
            }
            let (next, rest) = skip_ipv6_extensions(bytes[6], &bytes[40..])?;
            if next != 6 {
                return Err(SynError::NotTcp(next));
            }
            (6, bytes[7], None, rest)
        }
        other => return Err(SynError::UnknownIpVersion(other)),
    };
    if tcp.len() < 20 {
        return Err(SynError::Truncated("TCP header"));
    }
    let data_offset = usize::from(tcp[12] >> 4) * 4;
    if data_offset < 20 || tcp.len() < data_offset {
        return Err(SynError::Truncated("TCP options"));
    }
    let window = u16::from_be_bytes([tcp[14], tcp[15]]);
    let sequence = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let options = parse_options(&tcp[20..data_offset]);
    let value_of = |kind: u8| options.iter().find(|o| o.kind == kind);
    let number = |kind: u8| match value_of(kind)?.value? {
        OptionValue::Number(n) => Some(n),
        OptionValue::Pair(..) => None,
    };
    let mss = number(2).and_then(|n| u16::try_from(n).ok());
    let window_scale = number(3).and_then(|n| u8::try_from(n).ok());
    let initial_ttl = [32u8, 64, 128, 255]
        .into_iter()
        .find(|t| *t >= ttl)
        .unwrap_or(255);
    Ok(SynInfo {
        ip_version,
        ttl,
        initial_ttl,
        hops: initial_ttl - ttl,
        dont_fragment,
        window,
        sequence,
        mss,
        window_scale,
        sack_permitted: value_of(4).is_some(),
        timestamps: value_of(8).is_some(),
        implied_mtu: mss.map(|m: u16| u32::from(m) + if ip_version == 4 { 40 } else { 60 }),
        options,
        raw: std::sync::Arc::from(bytes),
    })
}

/// Follows IPv6 extension headers that share the generic layout (hop-by-hop,
/// routing, destination options) to the upper-layer protocol.
fn skip_ipv6_extensions(mut next: u8, mut rest: &[u8]) -> Result<(u8, &[u8]), SynError> {
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                if rest.len() < 2 {
                    return Err(SynError::Truncated("IPv6 extension header"));
                }
                let len = (usize::from(rest[1]) + 1) * 8;
                if rest.len() < len {
                    return Err(SynError::Truncated("IPv6 extension header"));
                }
                next = rest[0];
                rest = &rest[len..];
            }
            _ => return Ok((next, rest)),
        }
    }
    Ok((next, rest))
}

fn parse_options(bytes: &[u8]) -> Vec<TcpOption> {
    // Counted first, so the list is allocated once at its size (a Linux SYN
    // carries five options; growing from four would copy them).
    let mut out = Vec::with_capacity(Options { bytes }.count());
    out.extend(Options { bytes });
    out
}

/// The options in a TCP header's option bytes, in order.
struct Options<'a> {
    bytes: &'a [u8],
}

impl Iterator for Options<'_> {
    type Item = TcpOption;

    fn next(&mut self) -> Option<TcpOption> {
        let bytes = self.bytes;
        let &kind = bytes.first()?;
        let (len, name) = match kind {
            0 => (1, "eol"),
            1 => (1, "nop"),
            _ => match bytes.get(1) {
                Some(&len) if len >= 2 && usize::from(len) <= bytes.len() => {
                    (usize::from(len), option_name(kind))
                }
                // A length that runs past the header: record what we saw and stop.
                _ => {
                    self.bytes = &[];
                    return Some(TcpOption {
                        kind,
                        name: "malformed".into(),
                        value: None,
                    });
                }
            },
        };
        let body = &bytes[..len];
        let value = match (kind, len) {
            (2, 4) => Some(OptionValue::Number(u32::from(u16::from_be_bytes([
                body[2], body[3],
            ])))),
            (3, 3) => Some(OptionValue::Number(u32::from(body[2]))),
            (8, 10) => Some(OptionValue::Pair(
                u32::from_be_bytes([body[2], body[3], body[4], body[5]]),
                u32::from_be_bytes([body[6], body[7], body[8], body[9]]),
            )),
            _ => None,
        };
        // Nothing after end-of-options is an option.
        self.bytes = if kind == 0 { &[] } else { &bytes[len..] };
        Some(TcpOption {
            kind,
            name: name.into(),
            value,
        })
    }
}

fn option_name(kind: u8) -> &'static str {
    match kind {
        2 => "mss",
        3 => "window_scale",
        4 => "sack_permitted",
        5 => "sack",
        8 => "timestamps",
        28 => "user_timeout",
        29 => "tcp_ao",
        30 => "mptcp",
        34 => "fast_open",
        _ => "unknown",
    }
}

/// For tests across the crate.
#[cfg(test)]
/// A Linux SYN as tcpdump shows it: IPv4, TTL 64, DF, window 64240,
/// options mss 1460, sackOK, TS val 1 ecr 0, nop, wscale 7.
pub(crate) fn linux_syn_v4() -> Vec<u8> {
    let mut ip = vec![
        0x45, 0x00, 0x00, 0x3c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 127, 0, 0, 1, 127,
        0, 0, 1,
    ];
    let tcp = [
        0xc3, 0x50, 0x20, 0xfb, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0,
        0, // header
        0x02, 0x04, 0x05, 0xb4, // mss 1460
        0x04, 0x02, // sackOK
        0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0,    // timestamps
        0x01, // nop
        0x03, 0x03, 0x07, // wscale 7
    ];
    ip.extend(tcp);
    ip
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_linux_ipv4_syn() {
        let syn = parse(&linux_syn_v4()).unwrap();
        assert_eq!(syn.ip_version, 4);
        assert_eq!((syn.ttl, syn.initial_ttl, syn.hops), (64, 64, 0));
        assert_eq!(syn.dont_fragment, Some(true));
        assert_eq!(syn.window, 64240);
        assert_eq!(syn.mss, Some(1460));
        assert_eq!(syn.implied_mtu, Some(1500));
        assert_eq!(syn.window_scale, Some(7));
        assert!(syn.sack_permitted && syn.timestamps);
        let order: Vec<&str> = syn.options.iter().map(|o| &*o.name).collect();
        assert_eq!(
            order,
            ["mss", "sack_permitted", "timestamps", "nop", "window_scale"]
        );
    }

    #[test]
    fn option_values_are_written_as_tcpdump_shows_them_and_read_back() {
        let syn = parse(&linux_syn_v4()).unwrap();
        let json = serde_json::to_value(&syn.options).unwrap();
        let values: Vec<_> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["value"].clone())
            .collect();
        assert_eq!(
            values,
            [
                serde_json::json!("1460"),
                serde_json::Value::Null,
                serde_json::json!("1 0"),
                serde_json::Value::Null,
                serde_json::json!("7"),
            ]
        );
        let back: Vec<TcpOption> = serde_json::from_value(json).unwrap();
        assert_eq!(back, syn.options);
    }

    #[test]
    fn reads_an_ipv6_syn_and_counts_hops() {
        let mut ip = vec![0x60, 0, 0, 0, 0, 24, 6, 57];
        ip.extend([0u8; 32]);
        ip.extend([
            0xc3, 0x50, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        ip.extend([0x02, 0x04, 0x05, 0x8c]); // mss 1420 (a 1,480-byte tunnel)
        let syn = parse(&ip).unwrap();
        assert_eq!(syn.ip_version, 6);
        assert_eq!((syn.ttl, syn.initial_ttl, syn.hops), (57, 64, 7));
        assert_eq!(syn.dont_fragment, None);
        assert_eq!(syn.implied_mtu, Some(1480));
    }

    #[test]
    fn survives_every_truncation_and_a_lying_option_length() {
        let syn = linux_syn_v4();
        for cut in 0..syn.len() {
            let _ = parse(&syn[..cut]);
        }
        let mut bad = syn.clone();
        bad[41] = 0xff; // wscale length runs past the header
        let parsed = parse(&bad).unwrap();
        assert_eq!(parsed.options.last().unwrap().name, "malformed");
    }
}
