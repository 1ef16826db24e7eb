//! The packet capture's pure half: captured IP packets (any bytes a remote
//! host can put on the wire) filed into the flow table, then written out as
//! pcapng.
//!
//! The input is a sequence of packets, each a 2-byte big-endian length and
//! that many bytes; each arrives 1 ms after the one before. Checks, beyond
//! "no panic": the table never holds more than its bounds, every connection
//! it hands out keeps at most its packet bound and no packet longer than it
//! was, and the pcapng file's blocks tile it exactly within its size limit.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use tlsdiag::packets::flows::{FlowTable, Limits};
use tlsdiag::packets::{file, ip, Part};

const LIMITS: Limits = Limits {
    total_bytes: 64 * 1024,
    per_address_bytes: 16 * 1024,
    per_connection_bytes: 8 * 1024,
    per_connection_packets: 16,
};
const FILE_LIMIT: usize = 32 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut table = FlowTable::new(&[443, 8443], LIMITS);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut rest = data;
    let mut seen: Vec<(SocketAddr, SocketAddr)> = Vec::new();
    let mut at = start;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let packet = &rest[2..2 + len];
        rest = &rest[2 + len..];
        at += Duration::from_millis(1);
        if let Some(ip::Parsed::Tcp { from, to, .. }) = ip::parse(packet) {
            seen.push((from.socket(), to.socket()));
        }
        table.add(at, packet, len as u32);
        assert!(table.bytes() <= LIMITS.total_bytes, "{} held", table.bytes());
    }
    let mut parts = Vec::new();
    for (from, to) in seen {
        for (client, server) in [(from, to), (to, from)] {
            let Some(connection) = table.connection(client, server, at) else {
                continue;
            };
            assert!(connection.packets.len() <= LIMITS.per_connection_packets);
            for p in &connection.packets {
                assert!(p.data.len() as u32 <= p.original_len);
            }
            parts.push(Part {
                comment: "tlsdiag attempt 1".into(),
                connection,
            });
        }
    }
    let written = file(&parts, "fuzz", FILE_LIMIT);
    let mut offset = 0;
    while offset < written.len() {
        let word = |o: usize| u32::from_le_bytes(written[o..o + 4].try_into().unwrap()) as usize;
        let len = word(offset + 4);
        assert!(len >= 12 && len % 4 == 0, "block length {len}");
        assert_eq!(word(offset + len - 4), len, "trailing length");
        offset += len;
    }
    assert_eq!(offset, written.len());
    assert!(written.len() <= FILE_LIMIT + 1024, "{} bytes", written.len());
});
