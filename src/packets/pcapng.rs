//! Packets as a pcapng file (RFC draft-ietf-opsawg-pcapng), the format
//! Wireshark, tshark and tcpdump open: one section, one interface of link
//! type `RAW` (IP packets, as the packet socket hands them over),
//! nanosecond timestamps, each packet's direction, and comments naming the
//! attempt and what tlsdiag concluded. Pure, and bounded: a packet that would
//! take the file past its limit is left out and counted, and the section's
//! comment says so.

use std::time::UNIX_EPOCH;

use super::filter::SNAP_LENGTH;
use super::flows::Captured;

const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const INTERFACE: u32 = 0x0000_0001;
const ENHANCED_PACKET: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// `LINKTYPE_RAW`: the packet begins with its IPv4 or IPv6 header.
const LINKTYPE_RAW: u16 = 101;

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;
const INBOUND: u32 = 0b01;
const OUTBOUND: u32 = 0b10;

/// A file being written: packets first, the section header (whose comment
/// counts what was left out) when it is finished.
#[derive(Debug)]
pub struct Pcapng {
    body: Vec<u8>,
    limit: usize,
    written: usize,
    left_out: usize,
}

impl Pcapng {
    /// A file of at most `limit` bytes (beyond its section header).
    pub fn new(limit: usize) -> Self {
        let mut body = Vec::new();
        block(&mut body, INTERFACE, |b| {
            b.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&SNAP_LENGTH.to_le_bytes());
            option(b, IF_NAME, b"tlsdiag");
            option(b, IF_TSRESOL, &[9]);
            option(b, OPT_END, &[]);
        });
        Self {
            body,
            limit,
            written: 0,
            left_out: 0,
        }
    }

    /// Packets written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Packets left out to stay within the limit.
    pub fn left_out(&self) -> usize {
        self.left_out
    }

    /// Appends `packet` with an optional comment; `false` (and counted)
    /// when it would take the file past its limit.
    pub fn packet(&mut self, packet: &Captured, comment: Option<&str>) -> bool {
        let comment = comment.map(printable);
        let size = 32
            + padded(packet.data.len())
            + comment.as_ref().map_or(0, |c| 4 + padded(c.len()))
            + 8
            + 4;
        if self.body.len() + size > self.limit {
            self.left_out += 1;
            return false;
        }
        let nanos = packet
            .at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        block(&mut self.body, ENHANCED_PACKET, |b| {
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&((nanos >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(nanos as u32).to_le_bytes());
            b.extend_from_slice(&(packet.data.len() as u32).to_le_bytes());
            b.extend_from_slice(&packet.original_len.to_le_bytes());
            b.extend_from_slice(&packet.data);
            pad(b);
            if let Some(comment) = &comment {
                option(b, OPT_COMMENT, comment.as_bytes());
            }
            let direction = if packet.inbound { INBOUND } else { OUTBOUND };
            option(b, EPB_FLAGS, &direction.to_le_bytes());
            option(b, OPT_END, &[]);
        });
        self.written += 1;
        true
    }

    /// The file, its section header first, carrying `comment` (and a line
    /// counting the packets left out, if any).
    pub fn finish(self, comment: &str) -> Vec<u8> {
        let mut comment = printable(comment);
        if self.left_out > 0 {
            comment.push_str(&format!(
                "\n{} packets left out: the file is kept under {} bytes",
                self.left_out, self.limit
            ));
        }
        let mut out = Vec::with_capacity(self.body.len() + 64 + comment.len());
        block(&mut out, SECTION_HEADER, |b| {
            b.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            // Section length unknown (-1): allowed, and readers skip by block.
            b.extend_from_slice(&u64::MAX.to_le_bytes());
            option(b, OPT_COMMENT, comment.as_bytes());
            let app = concat!("tlsdiag ", env!("CARGO_PKG_VERSION"));
            option(b, SHB_USERAPPL, app.as_bytes());
            option(b, OPT_END, &[]);
        });
        out.extend_from_slice(&self.body);
        out
    }
}

/// A comment as text a terminal or a dissector shows safely: control
/// characters but newline become spaces.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

fn pad(b: &mut Vec<u8>) {
    while b.len() % 4 != 0 {
        b.push(0);
    }
}

/// One block: type, total length, body (padded), total length again.
fn block(out: &mut Vec<u8>, kind: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    body(out);
    pad(out);
    let total = (out.len() - start + 4) as u32;
    out[start + 4..start + 8].copy_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
}

fn option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(value);
    pad(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::flows::Kind;
    use std::time::{Duration, SystemTime};

    fn captured(len: usize, inbound: bool) -> Captured {
        Captured {
            at: SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789),
            data: vec![0x45; len].into(),
            original_len: len as u32 + 10,
            inbound,
            kind: Kind::Tcp,
        }
    }

    /// Walks the blocks as a reader does: every block's two lengths agree and
    /// the blocks tile the file exactly.
    fn blocks(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = vec![];
        let mut at = 0;
        while at < file.len() {
            let word = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap());
            let (kind, len) = (word(at), word(at + 4) as usize);
            assert_eq!(len % 4, 0);
            assert_eq!(word(at + len - 4) as usize, len, "trailing length");
            out.push((kind, file[at + 8..at + len - 4].to_vec()));
            at += len;
        }
        out
    }

    #[test]
    fn writes_section_interface_and_packets_in_order() {
        let mut file = Pcapng::new(1 << 20);
        assert!(file.packet(&captured(41, true), Some("tlsdiag attempt 7: completed")));
        assert!(file.packet(&captured(40, false), None));
        let bytes = file.finish("packets of attempt 7");
        let b = blocks(&bytes);
        let kinds: Vec<u32> = b.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [SECTION_HEADER, INTERFACE, ENHANCED_PACKET, ENHANCED_PACKET]
        );
        assert_eq!(&b[0].1[..4], &BYTE_ORDER_MAGIC.to_le_bytes());
        assert_eq!(&b[1].1[..2], &LINKTYPE_RAW.to_le_bytes());
        let epb = &b[2].1;
        let word = |o: usize| u32::from_le_bytes(epb[o..o + 4].try_into().unwrap());
        let nanos = (u64::from(word(4)) << 32) | u64::from(word(8));
        assert_eq!(nanos, 1_800_000_000_123_456_789);
        assert_eq!(
            (word(12), word(16)),
            (41, 51),
            "captured and original length"
        );
        let text = String::from_utf8_lossy(epb);
        assert!(text.contains("tlsdiag attempt 7: completed"));
    }

    #[test]
    fn stays_within_its_limit_and_says_what_it_left_out() {
        let mut file = Pcapng::new(4096);
        let kept = (0..10)
            .filter(|_| file.packet(&captured(1000, true), None))
            .count();
        assert_eq!(kept, 3);
        assert_eq!(file.left_out(), 7);
        let bytes = file.finish("run r1");
        assert!(bytes.len() < 4096 + 256);
        assert!(String::from_utf8_lossy(&bytes).contains("7 packets left out"));
        assert_eq!(blocks(&bytes).len(), 2 + 3);
    }

    #[test]
    fn comments_carry_no_control_characters() {
        let mut file = Pcapng::new(1 << 20);
        file.packet(&captured(20, true), Some("a\u{1b}[31mb\r"));
        let bytes = file.finish("x\u{7}y");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains("a [31mb ") && text.contains("x y"),
            "{text:?}"
        );
    }
}
