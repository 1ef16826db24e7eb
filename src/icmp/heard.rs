//! ICMP "fragmentation needed" / ICMPv6 "packet too big" that reached us from
//! a router toward a client: who said it, what MTU, when. The kernel keeps
//! the path MTU such a message teaches it (`route`), not who sent it; reports
//! that say our kernel learned a path MTU toward a client name the router
//! from here.
//!
//! Anyone can send us such a message, naming any client. So a record is only
//! ever shown beside the kernel's own: when a report reads a path MTU our
//! kernel learned toward a client, a record for that client with the same MTU
//! names its router. A message the kernel did not take (it checks the quoted
//! TCP segment against a live connection) is never shown. The table is
//! bounded ([`MAX_CLIENTS`]), one record per client, newest wins.
//!
//! Parsing is pure ([`parse_v4`], [`parse_v6`]); [`listen`] reads the raw
//! sockets (`CAP_NET_RAW`, as our own ICMP test needs).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Clients whose latest message is kept; past it, records older than the
/// kernel keeps what they taught (ten minutes) make room, else new ones wait.
pub const MAX_CLIENTS: usize = 16_384;
/// How long the kernel keeps a learned path MTU, and so a record.
const KEPT: std::time::Duration = std::time::Duration::from_secs(600);

/// One message, as far as reports need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    /// The router that sent it.
    pub router: IpAddr,
    /// The client whose packets it is about (the quoted destination).
    pub client: IpAddr,
    pub mtu: u32,
}

/// A message and when it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub told: Told,
    pub at: SystemTime,
}

/// An IPv4 packet (header included, as a raw socket reads it) that is a
/// "fragmentation needed" quoting a TCP segment of ours.
pub fn parse_v4(packet: &[u8]) -> Option<Told> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if packet.first()? >> 4 != 4 || ihl < 20 || *packet.get(9)? != 1 {
        return None;
    }
    let router = Ipv4Addr::from(<[u8; 4]>::try_from(packet.get(12..16)?).ok()?);
    let icmp = packet.get(ihl..)?;
    // Type 3 (destination unreachable), code 4 (fragmentation needed).
    if icmp.get(..2)? != [3, 4] {
        return None;
    }
    let mtu = u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]);
    let quoted = icmp.get(8..)?;
    // The quoted header: IPv4 carrying TCP.
    if quoted.first()? >> 4 != 4 || *quoted.get(9)? != 6 {
        return None;
    }
    let client = Ipv4Addr::from(<[u8; 4]>::try_from(quoted.get(16..20)?).ok()?);
    (mtu >= 68).then_some(Told {
        router: IpAddr::V4(router),
        client: IpAddr::V4(client),
        mtu: u32::from(mtu),
    })
}

/// An ICMPv6 message (a raw ICMPv6 socket reads no IPv6 header) from
/// `router` that is a "packet too big" quoting a TCP segment of ours.
pub fn parse_v6(message: &[u8], router: Ipv6Addr) -> Option<Told> {
    // Type 2 (packet too big), code 0.
    if message.get(..2)? != [2, 0] {
        return None;
    }
    let mtu = u32::from_be_bytes(message.get(4..8)?.try_into().ok()?);
    let quoted = message.get(8..)?;
    // The quoted header: IPv6 whose next header is TCP.
    if quoted.first()? >> 4 != 6 || *quoted.get(6)? != 6 {
        return None;
    }
    let client = Ipv6Addr::from(<[u8; 16]>::try_from(quoted.get(24..40)?).ok()?);
    (mtu >= 1280).then_some(Told {
        router: IpAddr::V6(router),
        client: IpAddr::V6(client),
        mtu,
    })
}

/// The latest message per client.
#[derive(Debug, Default)]
pub struct HeardTable(Mutex<Table>);

#[derive(Debug, Default)]
struct Table {
    by_client: HashMap<IpAddr, Heard>,
    /// When a full table last dropped its stale records: at most once a
    /// second, so a flood of messages naming new clients costs a lookup
    /// each, not a sweep each.
    swept: Option<SystemTime>,
}

/// How often a full table may sweep.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl HeardTable {
    pub fn record(&self, told: Told, at: SystemTime) {
        let client = told.client.to_canonical();
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if table.by_client.len() >= MAX_CLIENTS && !table.by_client.contains_key(&client) {
            let due = table
                .swept
                .is_none_or(|t| at.duration_since(t).unwrap_or_default() >= SWEEP_EVERY);
            if due {
                table.swept = Some(at);
                table
                    .by_client
                    .retain(|_, h| at.duration_since(h.at).unwrap_or_default() < KEPT);
            }
            if table.by_client.len() >= MAX_CLIENTS {
                return;
            }
        }
        table.by_client.insert(client, Heard { told, at });
    }

    /// The message that taught our kernel `mtu` toward `client`, if one came.
    pub fn told(&self, client: IpAddr, mtu: u32) -> Option<Heard> {
        let table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        table
            .by_client
            .get(&client.to_canonical())
            .filter(|h| h.told.mtu == mtu)
            .copied()
    }
}

/// Reads the raw ICMP and ICMPv6 sockets for as long as the runtime lives,
/// into `table`. Without `CAP_NET_RAW` it returns why, and reports name no
/// router.
pub fn listen(table: Arc<HeardTable>) -> Result<(), String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = |domain, protocol| -> Result<Socket, String> {
        let socket = Socket::new(domain, Type::from(libc::SOCK_RAW), Some(protocol))
            .map_err(|e| format!("cannot read ICMP here ({e}): it needs CAP_NET_RAW"))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("ICMP socket: {e}"))?;
        Ok(socket)
    };
    let v4 = open(Domain::IPV4, Protocol::ICMPV4)?;
    let v6 = open(Domain::IPV6, Protocol::ICMPV6)?;
    for socket in [v4, v6] {
        let fd = crate::sys::async_fd(socket).map_err(|e| format!("ICMP socket: {e}"))?;
        let table = table.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    return;
                };
                let read = ready.try_io(|s| crate::sys::recv_from(s.get_ref(), &mut buffer));
                let Ok(Ok((n, from))) = read else {
                    continue;
                };
                let bytes = &buffer[..n];
                let told = match from.as_socket().map(|a| a.ip()) {
                    Some(IpAddr::V6(router)) => parse_v6(bytes, router),
                    _ => parse_v4(bytes),
                };
                if let Some(told) = told {
                    table.record(told, SystemTime::now());
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::packet::{fragmentation_needed, packet_too_big, Quoted};

    #[test]
    fn reads_the_messages_we_build_as_a_router_would_send_them() {
        // Our own builder makes exactly what a router sends a server: the
        // client 198.18.1.1 is the quoted destination when the server is
        // the one told.
        let server: Ipv4Addr = [198, 18, 3, 2].into();
        let client: Ipv4Addr = [198, 18, 1, 1].into();
        let router: Ipv4Addr = [198, 18, 3, 1].into();
        let icmp = fragmentation_needed(&Quoted::new(server, client, (8443, 40000), 1, 1500), 1400);
        // What a raw IPv4 socket reads: an IP header from the router first.
        let mut packet = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        packet.extend(router.octets());
        packet.extend(server.octets());
        packet.extend(&icmp);
        assert_eq!(
            parse_v4(&packet),
            Some(Told {
                router: router.into(),
                client: client.into(),
                mtu: 1400
            })
        );
        let server6: Ipv6Addr = "fd00::2".parse().unwrap();
        let client6: Ipv6Addr = "fd00::1:1".parse().unwrap();
        let router6: Ipv6Addr = "fd00::3:1".parse().unwrap();
        let message = packet_too_big(&Quoted::new(server6, client6, (8443, 40000), 1, 1500), 1400);
        assert_eq!(
            parse_v6(&message, router6),
            Some(Told {
                router: router6.into(),
                client: client6.into(),
                mtu: 1400
            })
        );
    }

    #[test]
    fn anything_else_is_not_a_message_and_never_panics() {
        assert_eq!(parse_v4(&[]), None);
        assert_eq!(parse_v4(&[0x45; 64]), None);
        assert_eq!(parse_v6(&[2, 0, 0, 0], Ipv6Addr::LOCALHOST), None);
        for n in 0..80 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            let _ = parse_v4(&junk);
            let _ = parse_v6(&junk, Ipv6Addr::LOCALHOST);
        }
    }

    #[test]
    fn a_flood_of_new_clients_stays_within_the_bound() {
        let table = HeardTable::default();
        let at = SystemTime::now();
        for i in 0..(MAX_CLIENTS as u32 + 5_000) {
            let told = Told {
                router: [198, 18, 3, 1].into(),
                client: std::net::Ipv6Addr::from(u128::from(i)).into(),
                mtu: 1400,
            };
            table.record(told, at);
        }
        let held = table.0.lock().unwrap().by_client.len();
        assert_eq!(held, MAX_CLIENTS);
    }

    #[test]
    fn a_record_is_shown_only_for_the_mtu_the_kernel_learned() {
        let table = HeardTable::default();
        let told = Told {
            router: [198, 18, 3, 1].into(),
            client: [198, 18, 1, 1].into(),
            mtu: 1400,
        };
        table.record(told, SystemTime::now());
        assert!(table.told([198, 18, 1, 1].into(), 1400).is_some());
        assert!(table.told([198, 18, 1, 1].into(), 1300).is_none());
        assert!(table.told([198, 18, 1, 2].into(), 1400).is_none());
    }
}
