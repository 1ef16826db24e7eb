//! Reassembles the ClientHello handshake message from TLS records (RFC 8446 §5.1).
//!
//! A ClientHello may be split across TCP segments (any number of reads) and across
//! TLS records (a handshake message may be fragmented over several). This module
//! turns "the bytes that have arrived so far" into either the complete handshake
//! body, a precise *need more bytes* answer (how many the headers announce), or a
//! reason the bytes are not a ClientHello at all.

use super::error::{HelloError, Malformed, NotTlsKind};
use super::model::RecordHeader;
use super::wire::ProtocolVersion;

const CONTENT_TYPE_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
/// RFC 8446 §5.1: "The length MUST NOT exceed 2^14 bytes."
pub const MAX_RECORD_LEN: usize = 1 << 14;

/// The handshake body of a complete ClientHello, and the framing it came in.
#[derive(Debug)]
pub(crate) struct Reassembled {
    pub records: Vec<RecordHeader>,
    /// The ClientHello body, without its 4-byte handshake header.
    pub body: Vec<u8>,
    /// Offset just past the record that completed the hello.
    pub wire_length: usize,
}

/// Walks the records in `bytes`. `limit` caps the handshake message size we
/// accept, so a peer cannot make us wait for (or buffer) more than that.
pub(crate) fn reassemble(bytes: &[u8], limit: usize) -> Result<Reassembled, HelloError> {
    if bytes.is_empty() {
        return Err(HelloError::Incomplete {
            have: 0,
            need: RECORD_HEADER_LEN,
        });
    }
    let mut pos = 0;
    let mut records = Vec::new();
    let mut handshake: Vec<u8> = Vec::new();
    loop {
        let header = &bytes[pos..bytes.len().min(pos + RECORD_HEADER_LEN)];
        check_header_prefix(header, pos == 0)?;
        if header.len() < RECORD_HEADER_LEN {
            return Err(incomplete(bytes.len(), pos, &handshake));
        }
        let version = ProtocolVersion(u16::from_be_bytes([header[1], header[2]]));
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length > MAX_RECORD_LEN {
            return Err(HelloError::RecordOverflow { length });
        }
        if length == 0 {
            // RFC 8446 §5.1: zero-length handshake fragments MUST NOT be sent.
            return Err(Malformed::new("record length", "zero-length handshake record").into());
        }
        records.push(RecordHeader {
            version,
            length: length as u16,
        });
        let body_start = pos + RECORD_HEADER_LEN;
        let body_end = body_start + length;
        let available_end = body_end.min(bytes.len());
        handshake.extend_from_slice(&bytes[body_start..available_end]);

        if let Some(total) = handshake_total(&handshake, limit)? {
            if handshake.len() >= total && available_end == body_end {
                handshake.truncate(total);
                handshake.drain(..HANDSHAKE_HEADER_LEN);
                return Ok(Reassembled {
                    records,
                    body: handshake,
                    wire_length: body_end,
                });
            }
        }
        if available_end < body_end {
            let known = handshake_total(&handshake, limit)?;
            let in_this_record = handshake.len() + (body_end - available_end);
            let need = body_end + more_records_needed(known, in_this_record);
            return Err(HelloError::Incomplete {
                have: bytes.len(),
                need,
            });
        }
        pos = body_end;
    }
}

/// Rejects a first record that cannot start a TLS handshake, as early as the
/// bytes allow (one byte is enough to tell plain HTTP from TLS).
fn check_header_prefix(header: &[u8], first: bool) -> Result<(), HelloError> {
    if let Some(&content_type) = header.first() {
        if content_type != CONTENT_TYPE_HANDSHAKE {
            return Err(if first {
                HelloError::NotTls {
                    kind: sniff(header),
                }
            } else {
                Malformed::new(
                    "record content type",
                    format!("record of type {content_type} in the middle of the ClientHello"),
                )
                .into()
            });
        }
    }
    if let Some(&major) = header.get(1) {
        if major != 3 {
            return Err(if first {
                HelloError::NotTls {
                    kind: NotTlsKind::Unknown,
                }
            } else {
                Malformed::new(
                    "record version",
                    format!("major version {major}, expected 3"),
                )
                .into()
            });
        }
    }
    Ok(())
}

/// The handshake message's full size (header included), once its header is in.
fn handshake_total(handshake: &[u8], limit: usize) -> Result<Option<usize>, HelloError> {
    if handshake.len() < HANDSHAKE_HEADER_LEN {
        return Ok(None);
    }
    if handshake[0] != HANDSHAKE_CLIENT_HELLO {
        return Err(HelloError::NotClientHello {
            msg_type: handshake[0],
        });
    }
    let length = u32::from_be_bytes([0, handshake[1], handshake[2], handshake[3]]) as usize;
    if length > limit {
        return Err(HelloError::TooLarge { length, limit });
    }
    Ok(Some(HANDSHAKE_HEADER_LEN + length))
}

/// Bytes beyond the current record: the rest of the handshake message, framed
/// in full-size records (the least a client could send).
fn more_records_needed(total: Option<usize>, have_after_record: usize) -> usize {
    match total {
        Some(total) if total > have_after_record => {
            let rest = total - have_after_record;
            rest + RECORD_HEADER_LEN * rest.div_ceil(MAX_RECORD_LEN)
        }
        Some(_) => 0,
        // Header not in yet: at least one more record header and the rest of it.
        None => RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN.saturating_sub(have_after_record),
    }
}

fn incomplete(have: usize, pos: usize, handshake: &[u8]) -> HelloError {
    // Between records (or before the first): we know what the handshake header
    // announced, if it has arrived.
    let total = if handshake.len() >= HANDSHAKE_HEADER_LEN {
        Some(
            HANDSHAKE_HEADER_LEN
                + u32::from_be_bytes([0, handshake[1], handshake[2], handshake[3]]) as usize,
        )
    } else {
        None
    };
    let need = if pos == 0 {
        RECORD_HEADER_LEN
    } else {
        pos + more_records_needed(total, handshake.len())
    };
    HelloError::Incomplete {
        have,
        need: need.max(have + 1),
    }
}

/// Names what non-TLS bytes look like. Works on any prefix, down to one byte.
pub fn sniff(bytes: &[u8]) -> NotTlsKind {
    const HTTP_METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    let is_prefix_of = |pattern: &[u8]| {
        let n = bytes.len().min(pattern.len());
        n > 0 && bytes[..n] == pattern[..n]
    };
    if is_prefix_of(b"PRI * HTTP/2.0") && bytes.len() >= 4 {
        NotTlsKind::PlainHttp2
    } else if HTTP_METHODS.iter().any(|m| is_prefix_of(m)) {
        NotTlsKind::PlainHttp
    } else if is_prefix_of(b"SSH-") {
        NotTlsKind::Ssh
    } else if bytes[0] & 0x80 != 0 && bytes.get(2) == Some(&1) {
        NotTlsKind::Sslv2Hello
    } else if (20..=24).contains(&bytes[0]) && bytes.get(1).is_none_or(|&b| b == 3) {
        NotTlsKind::OtherTlsRecord
    } else {
        NotTlsKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 16;

    fn record(body: &[u8]) -> Vec<u8> {
        let mut out = vec![22, 3, 1];
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn handshake(body_len: usize) -> Vec<u8> {
        let mut out = vec![1, 0, (body_len >> 8) as u8, body_len as u8];
        out.extend(std::iter::repeat_n(0xab, body_len));
        out
    }

    #[test]
    fn reports_how_many_bytes_the_headers_announce() {
        let wire = record(&handshake(1538)); // 1,547 bytes on the wire
        assert_eq!(wire.len(), 1547);
        let err = reassemble(&wire[..1460], LIMIT).unwrap_err();
        assert_eq!(
            err,
            HelloError::Incomplete {
                have: 1460,
                need: 1547
            }
        );
    }

    #[test]
    fn reassembles_a_hello_fragmented_over_records() {
        let hs = handshake(300);
        let mut wire = record(&hs[..100]);
        wire.extend(record(&hs[100..]));
        let got = reassemble(&wire, LIMIT).unwrap();
        assert_eq!(got.records.len(), 2);
        assert_eq!(got.body.len(), 300);
        assert_eq!(got.wire_length, wire.len());
        let err = reassemble(&wire[..110], LIMIT).unwrap_err();
        assert_eq!(
            err,
            HelloError::Incomplete {
                have: 110,
                need: wire.len()
            }
        );
    }

    #[test]
    fn tells_plain_http_from_tls_on_the_first_byte() {
        assert_eq!(
            reassemble(b"G", LIMIT).unwrap_err(),
            HelloError::NotTls {
                kind: NotTlsKind::PlainHttp
            }
        );
        assert_eq!(sniff(b"SSH-2.0-OpenSSH_9.2"), NotTlsKind::Ssh);
        assert_eq!(sniff(b"PRI * HTTP/2.0\r\n"), NotTlsKind::PlainHttp2);
        assert_eq!(
            sniff(&[0x80, 0x2e, 0x01, 0x00, 0x02]),
            NotTlsKind::Sslv2Hello
        );
        assert_eq!(sniff(&[0x15, 0x03, 0x03]), NotTlsKind::OtherTlsRecord);
        assert_eq!(sniff(&[0x00, 0xff]), NotTlsKind::Unknown);
    }

    #[test]
    fn rejects_oversized_records_and_handshakes() {
        assert_eq!(
            reassemble(&[22, 3, 1, 0x40, 0x01], LIMIT).unwrap_err(),
            HelloError::RecordOverflow { length: 16385 }
        );
        let err = reassemble(&record(&[1, 0x10, 0, 0]), LIMIT).unwrap_err();
        assert!(matches!(err, HelloError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn rejects_non_client_hello_handshake() {
        let err = reassemble(&record(&[2, 0, 0, 0]), LIMIT).unwrap_err();
        assert_eq!(err, HelloError::NotClientHello { msg_type: 2 });
    }

    #[test]
    fn rejects_zero_length_record() {
        assert!(matches!(
            reassemble(&[22, 3, 1, 0, 0], LIMIT).unwrap_err(),
            HelloError::Malformed(_)
        ));
    }
}
