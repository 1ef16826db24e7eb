//! What the flow table needs to know of one captured IP packet: the TCP
//! connection it belongs to, or, for an ICMP "fragmentation needed" / ICMPv6
//! "packet too big", the connection of the packet it quotes. Pure; reads the
//! bytes exactly as the packet socket delivered them (from the IP header on)
//! and never trusts a length it has not checked.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The TCP flags the flow table cares about.
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

/// An address (in IPv6 form, IPv4 mapped) and a port, as the bytes the
/// packet carried: what the flow table hashes and compares for every packet,
/// cheaper than `SocketAddr` in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct End {
    pub address: [u8; 16],
    pub port: u16,
}

impl End {
    fn v4(address: &[u8], port: u16) -> Option<Self> {
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(address.get(..4)?);
        Some(Self {
            address: mapped,
            port,
        })
    }

    fn v6(address: &[u8], port: u16) -> Option<Self> {
        Some(Self {
            address: address.get(..16)?.try_into().ok()?,
            port,
        })
    }

    /// The same end, from a socket's view of it.
    pub fn of(socket: SocketAddr) -> Self {
        let address = match socket.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        Self {
            address,
            port: socket.port(),
        }
    }

    /// The address as the packet carried it (IPv4 shown as IPv4).
    pub fn ip(&self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self.address)).to_canonical()
    }

    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }
}

/// One packet, as far as deciding where it belongs goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Tcp {
        from: End,
        to: End,
        flags: u8,
    },
    /// An ICMP too-big message from `sender` (an address, port 0), quoting
    /// a TCP packet that went `from` → `to`.
    TooBig {
        from: End,
        to: End,
        sender: End,
    },
}

/// The addresses and ports of a TCP packet starting at `ip` (also a quoted
/// one inside ICMP, which carries only the first 8 bytes of TCP).
fn tcp_ends(ip: &[u8]) -> Option<(End, End, &[u8], u8)> {
    match ip.first()? >> 4 {
        4 => {
            let header = usize::from(ip.first()? & 0x0f) * 4;
            if header < 20 {
                return None;
            }
            let next = ip.get(header..)?;
            Some((
                End::v4(ip.get(12..16)?, port(next, 0)?)?,
                End::v4(ip.get(16..20)?, port(next, 2)?)?,
                next,
                *ip.get(9)?,
            ))
        }
        6 => {
            let next = ip.get(40..)?;
            Some((
                End::v6(ip.get(8..24)?, port(next, 0)?)?,
                End::v6(ip.get(24..40)?, port(next, 2)?)?,
                next,
                *ip.get(6)?,
            ))
        }
        _ => None,
    }
}

fn port(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// Reads one packet; `None` for anything that is neither TCP nor a too-big
/// message quoting TCP (the filter lets little else through).
pub fn parse(ip: &[u8]) -> Option<Parsed> {
    let version = ip.first()? >> 4;
    let (protocol, payload) = match version {
        4 => {
            let header = usize::from(ip.first()? & 0x0f) * 4;
            (*ip.get(9)?, ip.get(header.max(20)..)?)
        }
        6 => (*ip.get(6)?, ip.get(40..)?),
        _ => return None,
    };
    match (version, protocol) {
        (_, 6) => {
            let (from, to, tcp, _) = tcp_ends(ip)?;
            Some(Parsed::Tcp {
                from,
                to,
                flags: *tcp.get(13)?,
            })
        }
        (4, 1) if payload.first() == Some(&3) && payload.get(1) == Some(&4) => {
            quoted(payload, End::v4(ip.get(12..16)?, 0)?)
        }
        (6, 58) if payload.first() == Some(&2) => quoted(payload, End::v6(ip.get(8..24)?, 0)?),
        _ => None,
    }
}

/// The TCP packet an ICMP error quotes after its 8-byte header.
fn quoted(icmp: &[u8], sender: End) -> Option<Parsed> {
    let (from, to, _, protocol) = tcp_ends(icmp.get(8..)?)?;
    (protocol == 6).then_some(Parsed::TooBig { from, to, sender })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN as `tcpdump -x` shows one: 198.18.0.1:50000 → 198.18.0.2:443,
    /// IHL 5, flags SYN.
    const SYN_V4: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 198, 18, 0, 1, 198,
        18, 0, 2, 0xc3, 0x50, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0,
        0,
    ];

    #[test]
    fn reads_a_tcp_packet() {
        let Some(Parsed::Tcp { from, to, flags }) = parse(&SYN_V4) else {
            panic!("not TCP")
        };
        assert_eq!(from.socket(), "198.18.0.1:50000".parse().unwrap());
        assert_eq!(to.socket(), "198.18.0.2:443".parse().unwrap());
        assert_eq!(flags, SYN);
        assert_eq!(from, End::of("[::ffff:198.18.0.1]:50000".parse().unwrap()));
        assert_eq!(from, End::of("198.18.0.1:50000".parse().unwrap()));
    }

    #[test]
    fn reads_the_connection_an_icmp_message_quotes() {
        // Our "fragmentation needed" toward the client, quoting its segment.
        let mut icmp = vec![
            0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
        ];
        icmp.extend_from_slice(&[3, 4, 0, 0, 0, 0, 0x05, 0x78]);
        icmp.extend_from_slice(&SYN_V4[..28]);
        let Some(Parsed::TooBig { from, to, sender }) = parse(&icmp) else {
            panic!("not a too-big message")
        };
        assert_eq!(from.socket(), "198.18.0.1:50000".parse().unwrap());
        assert_eq!(to.socket(), "198.18.0.2:443".parse().unwrap());
        assert_eq!(sender.ip(), "198.18.0.2".parse::<IpAddr>().unwrap());
        icmp[21] = 3; // port unreachable: not ours to keep
        assert_eq!(parse(&icmp), None);
    }

    #[test]
    fn reads_ipv6_and_its_packet_too_big() {
        let client: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let server: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let header = |next: u8, src: Ipv6Addr, dst: Ipv6Addr| {
            let mut p = vec![0x60, 0, 0, 0, 0, 20, next, 64];
            p.extend_from_slice(&src.octets());
            p.extend_from_slice(&dst.octets());
            p
        };
        let mut tcp = header(6, client, server);
        tcp.extend_from_slice(&[0xc3, 0x50, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x12]);
        let Some(Parsed::Tcp { from, flags, .. }) = parse(&tcp) else {
            panic!("not TCP")
        };
        assert_eq!((from.ip(), flags), (IpAddr::V6(client), SYN | ACK));
        let mut too_big = header(58, server, client);
        too_big.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0x05, 0x00]);
        too_big.extend_from_slice(&tcp);
        assert!(matches!(parse(&too_big), Some(Parsed::TooBig { to, .. }) if to.port == 443));
    }

    #[test]
    fn truncated_or_strange_bytes_are_nothing() {
        for cut in 0..SYN_V4.len() {
            let _ = parse(&SYN_V4[..cut]);
        }
        assert_eq!(parse(&SYN_V4[..20]), None);
        let mut bad_ihl = SYN_V4;
        bad_ihl[0] = 0x41;
        assert_eq!(parse(&bad_ihl), None);
        assert_eq!(parse(&[0x70; 60]), None);
    }
}
