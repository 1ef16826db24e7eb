//! The bytes of an ICMP "fragmentation needed" (RFC 792, type 3 code 4, with
//! the next-hop MTU of RFC 1191) or ICMPv6 "packet too big" (RFC 4443 §3.2)
//! that quotes one of the client's own TCP segments to us. Pure: addresses,
//! ports and sequence number in, message bytes out.
//!
//! The client's kernel accepts such a message only for a connection it has
//! (the quoted addresses and ports) and a sequence number inside what it is
//! waiting to have acknowledged (Linux `tcp_v4_err`/`tcp_v6_err`): we quote
//! exactly the bytes it keeps resending.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The client's segment to quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted<A> {
    pub client: A,
    pub server: A,
    pub client_port: u16,
    pub server_port: u16,
    /// A sequence number in the client's unacknowledged window.
    pub sequence: u32,
    /// The length of the segment's IP packet as sent (for the quoted header).
    pub packet_len: u16,
}

impl<A> Quoted<A> {
    /// `ports` are (client, server).
    pub fn new(client: A, server: A, ports: (u16, u16), sequence: u32, packet_len: u16) -> Self {
        Self {
            client,
            server,
            client_port: ports.0,
            server_port: ports.1,
            sequence,
            packet_len,
        }
    }
}

/// ICMP type 3 code 4 with `mtu` as the next-hop MTU; the IP header (20
/// bytes) and the first 8 bytes of TCP header of the quoted segment follow,
/// as RFC 792 requires. The kernel adds our IP header.
pub fn fragmentation_needed(q: &Quoted<Ipv4Addr>, mtu: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 20 + 8);
    out.extend([3, 4, 0, 0, 0, 0]);
    out.extend(mtu.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&q.packet_len.to_be_bytes());
    ip[6] = 0x40; // don't fragment: why the router could not forward it
    ip[8] = 64;
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&q.client.octets());
    ip[16..20].copy_from_slice(&q.server.octets());
    let checksum = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    out.extend(ip);
    out.extend(tcp_start(q.client_port, q.server_port, q.sequence));
    let checksum = internet_checksum(&out);
    out[2..4].copy_from_slice(&checksum.to_be_bytes());
    out
}

/// ICMPv6 type 2 code 0 with `mtu`; the quoted IPv6 header (40 bytes) and
/// the first 8 bytes of TCP header follow. The checksum covers a
/// pseudo-header, so the kernel fills it in (raw ICMPv6 sockets always do).
pub fn packet_too_big(q: &Quoted<Ipv6Addr>, mtu: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 40 + 8);
    out.extend([2, 0, 0, 0]);
    out.extend(mtu.to_be_bytes());
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&q.packet_len.saturating_sub(40).to_be_bytes());
    ip[6] = 6; // next header: TCP
    ip[7] = 64;
    ip[8..24].copy_from_slice(&q.client.octets());
    ip[24..40].copy_from_slice(&q.server.octets());
    out.extend(ip);
    out.extend(tcp_start(q.client_port, q.server_port, q.sequence));
    out
}

/// Ports and sequence number: the first 8 bytes of the TCP header.
fn tcp_start(source: u16, destination: u16, sequence: u32) -> [u8; 8] {
    let mut tcp = [0u8; 8];
    tcp[0..2].copy_from_slice(&source.to_be_bytes());
    tcp[2..4].copy_from_slice(&destination.to_be_bytes());
    tcp[4..8].copy_from_slice(&sequence.to_be_bytes());
    tcp
}

/// The one's-complement sum of RFC 1071.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted_v4() -> Quoted<Ipv4Addr> {
        Quoted {
            client: Ipv4Addr::new(198, 18, 1, 1),
            server: Ipv4Addr::new(198, 18, 3, 2),
            client_port: 40000,
            server_port: 443,
            sequence: 0x0102_0304,
            packet_len: 1500,
        }
    }

    #[test]
    fn rfc_1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2; the checksum is its complement.
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn fragmentation_needed_quotes_the_clients_segment() {
        let m = fragmentation_needed(&quoted_v4(), 1280);
        assert_eq!(m.len(), 36);
        assert_eq!((m[0], m[1]), (3, 4));
        assert_eq!(u16::from_be_bytes([m[6], m[7]]), 1280);
        // The quoted header is from the client to us, TCP, with DF.
        assert_eq!(&m[8 + 12..8 + 16], &[198, 18, 1, 1]);
        assert_eq!(&m[8 + 16..8 + 20], &[198, 18, 3, 2]);
        assert_eq!((m[8 + 6], m[8 + 9]), (0x40, 6));
        assert_eq!(u16::from_be_bytes([m[28], m[29]]), 40000);
        assert_eq!(u16::from_be_bytes([m[30], m[31]]), 443);
        assert_eq!(&m[32..36], &[1, 2, 3, 4]);
        // Both checksums verify: a sum over a checksummed block is zero.
        assert_eq!(internet_checksum(&m), 0);
        assert_eq!(internet_checksum(&m[8..28]), 0);
    }

    #[test]
    fn packet_too_big_quotes_the_ipv6_segment() {
        let q = Quoted {
            client: "2001:2:0:1::1".parse().unwrap(),
            server: "2001:2:0:3::2".parse().unwrap(),
            client_port: 40000,
            server_port: 443,
            sequence: 7,
            packet_len: 1500,
        };
        let m = packet_too_big(&q, 1280);
        assert_eq!(m.len(), 56);
        assert_eq!((m[0], m[1]), (2, 0));
        assert_eq!(u32::from_be_bytes([m[4], m[5], m[6], m[7]]), 1280);
        assert_eq!(m[8] >> 4, 6);
        assert_eq!(u16::from_be_bytes([m[12], m[13]]), 1460);
        assert_eq!(m[14], 6);
        assert_eq!(&m[52..56], &[0, 0, 0, 7]);
    }
}
