//! Our own ICMP "fragmentation needed" / ICMPv6 "packet too big", sent toward
//! a client whose ClientHello is stuck behind a path-MTU black hole: the
//! message its tunnel router should have sent. If its computer then resends
//! smaller packets and the handshake completes, ICMP from the internet does
//! reach it and only the router's own message is missing; if nothing changes,
//! something near the client filters these messages — the seed incident's root
//! cause, proven in seconds instead of a site visit.
//!
//! # Why this is safe to send
//!
//! - Only toward an address with a live TCP connection to us that shows the
//!   black-hole signature (a ClientHello whose later segments arrived, held
//!   out of order, while an earlier one never did), and only quoting that
//!   connection: its own addresses, ports and a sequence number inside the
//!   bytes it is still waiting for us to acknowledge. A computer applies it to
//!   that connection's path to us and nothing else.
//! - The MTU we announce is at least 1,280 bytes (the IPv6 minimum, and above
//!   anything a real path needs), so it can only make packets smaller, never
//!   break a working path.
//! - At most [`PER_CONNECTION`] messages per connection and [`PER_ADDRESS`]
//!   per address per minute, each under 100 bytes, one per connection the
//!   address itself opened: no amplification, no flood.
//! - It needs `CAP_NET_RAW`. Without it nothing is sent and reports say the
//!   test could not run, and why.
//!
//! [`packet`] builds the bytes (pure); this module owns the raw sockets and
//! the limits.

pub mod heard;
pub mod packet;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::time::Instant;

use packet::Quoted;

use crate::tcp::SynInfo;

/// Messages per connection.
pub const PER_CONNECTION: u32 = 1;
/// Messages per client address per minute ([`WINDOW`]).
pub const PER_ADDRESS: usize = 6;
/// The window [`PER_ADDRESS`] counts over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose recent messages are remembered; beyond it no new address
/// gets one until the oldest expire (so the memory stays bounded).
const MAX_ADDRESSES: usize = 16_384;
/// The smallest MTU we announce.
pub const MIN_MTU: u32 = 1280;

/// Why no message was sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IcmpError {
    #[error("{0}")]
    Unavailable(String),
    #[error("already {PER_ADDRESS} messages toward this address in the last minute")]
    RateLimited,
    #[error("too many addresses got a message in the last minute")]
    Busy,
    #[error("the client's SYN was not kept, so the sequence number to quote is unknown")]
    NoSyn,
    #[error("sending failed: {0}")]
    Send(String),
}

/// The raw sockets (when we may have them) and the per-address limit.
#[derive(Debug)]
pub struct Prober {
    v4: Result<Socket, String>,
    v6: Result<Socket, String>,
    mtu: u32,
    sent: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Prober {
    /// Opens the raw sockets; an error is kept as the reason the test cannot
    /// run (usually a missing `CAP_NET_RAW`).
    pub fn open(mtu: u32) -> Self {
        let raw = |domain, protocol| {
            Socket::new(domain, Type::from(libc::SOCK_RAW), Some(protocol))
                .map_err(|e| format!("tlsdiag cannot send ICMP here ({e}): it needs CAP_NET_RAW"))
        };
        Self {
            v4: raw(Domain::IPV4, Protocol::ICMPV4),
            v6: raw(Domain::IPV6, Protocol::ICMPV6),
            mtu: mtu.max(MIN_MTU),
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// A prober that never sends, for tests and platforms without raw sockets.
    pub fn disabled(why: &str) -> Self {
        Self {
            v4: Err(why.to_owned()),
            v6: Err(why.to_owned()),
            mtu: MIN_MTU,
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// The MTU our messages announce.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Why nothing can be sent toward `peer`, if so.
    pub fn unavailable(&self, peer: IpAddr) -> Option<&str> {
        match peer.to_canonical() {
            IpAddr::V4(_) => self.v4.as_ref().err().map(String::as_str),
            IpAddr::V6(_) => self.v6.as_ref().err().map(String::as_str),
        }
    }

    /// Sends one message toward `peer`, within the per-address limit, quoting
    /// its segment to `local`: the first byte it is still waiting to have
    /// acknowledged (its ISN from `syn`, plus one, plus the `received` bytes
    /// we have in order), in a packet as large as its MSS allows. Returns the
    /// sequence number quoted.
    pub fn send(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
        syn: Option<&SynInfo>,
        received: u64,
    ) -> Result<u32, IcmpError> {
        if let Some(why) = self.unavailable(peer.ip()) {
            return Err(IcmpError::Unavailable(why.to_owned()));
        }
        let syn = syn.ok_or(IcmpError::NoSyn)?;
        // Sequence numbers wrap at 2^32: the truncation is the arithmetic.
        let sequence = syn.sequence.wrapping_add(1).wrapping_add(received as u32);
        let (client, server) = (peer.ip().to_canonical(), local.ip().to_canonical());
        // The MSS counts TCP options in: a full-size segment with timestamps
        // carries 12 bytes less data, in a packet of the same length.
        let headers = if client.is_ipv4() { 40 } else { 60 };
        let packet_len =
            u16::try_from(u32::from(syn.mss.unwrap_or(1460)) + headers).unwrap_or(u16::MAX);
        let ports = (peer.port(), local.port());
        let (socket, bytes) = match (client, server) {
            (IpAddr::V4(client), IpAddr::V4(server)) => (
                &self.v4,
                packet::fragmentation_needed(
                    &Quoted::new(client, server, ports, sequence, packet_len),
                    u16::try_from(self.mtu).unwrap_or(u16::MAX),
                ),
            ),
            (IpAddr::V6(client), IpAddr::V6(server)) => (
                &self.v6,
                packet::packet_too_big(
                    &Quoted::new(client, server, ports, sequence, packet_len),
                    self.mtu,
                ),
            ),
            _ => return Err(IcmpError::Send("mixed IPv4 and IPv6 addresses".into())),
        };
        let socket = socket
            .as_ref()
            .map_err(|why| IcmpError::Unavailable(why.clone()))?;
        self.take_slot(client)?;
        // Raw sockets take no port.
        let to = SockAddr::from(SocketAddr::new(client, 0));
        socket
            .send_to(&bytes, &to)
            .map(|_| sequence)
            .map_err(|e| IcmpError::Send(e.to_string()))
    }

    fn take_slot(&self, address: IpAddr) -> Result<(), IcmpError> {
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() >= MAX_ADDRESSES && !sent.contains_key(&address) {
            sent.retain(|_, times| times.back().is_some_and(|t| now - *t < WINDOW));
            if sent.len() >= MAX_ADDRESSES {
                return Err(IcmpError::Busy);
            }
        }
        let times = sent.entry(address).or_default();
        while times.front().is_some_and(|t| now - *t >= WINDOW) {
            times.pop_front();
        }
        if times.len() >= PER_ADDRESS {
            return Err(IcmpError::RateLimited);
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_a_few_messages_a_minute() {
        let p = Prober::disabled("test");
        let a: IpAddr = [198, 18, 1, 1].into();
        for _ in 0..PER_ADDRESS {
            assert_eq!(p.take_slot(a), Ok(()));
        }
        assert_eq!(p.take_slot(a), Err(IcmpError::RateLimited));
        assert_eq!(p.take_slot([198, 18, 1, 2].into()), Ok(()));
    }

    #[test]
    fn without_raw_sockets_it_says_why() {
        let p = Prober::disabled("no CAP_NET_RAW");
        let peer = SocketAddr::from(([198, 18, 1, 1], 40000));
        let local = SocketAddr::from(([198, 18, 3, 2], 443));
        assert_eq!(
            p.send(peer, local, None, 0),
            Err(IcmpError::Unavailable("no CAP_NET_RAW".into()))
        );
    }

    #[test]
    fn never_announces_less_than_the_ipv6_minimum() {
        assert_eq!(Prober::disabled("x").mtu(), 1280);
    }
}
