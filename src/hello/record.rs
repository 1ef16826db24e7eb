//! Reassembles the ClientHello handshake message from TLS records (RFC 8446 §5.1).
//!
//! A ClientHello may be split across TCP segments (any number of reads) and across
//! TLS records (a handshake message may be fragmented over several). This module
//! turns "the bytes that have arrived so far" into either the complete handshake
//! body, a precise *need more bytes* answer (how many the headers announce), or a
//! reason the bytes are not a ClientHello at all.

use std::borrow::Cow;

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
pub(crate) struct Reassembled<'a> {
    pub records: Vec<RecordHeader>,
    /// The ClientHello body, without its 4-byte handshake header: borrowed
    /// from the input when one record carried it all.
    pub body: Cow<'a, [u8]>,
    /// Offset just past the record that completed the hello.
    pub wire_length: usize,
}

/// Walks the records in `bytes`. `limit` caps the handshake message size we
/// accept, so a peer cannot make us wait for (or buffer) more than that.
pub(crate) fn reassemble(bytes: &[u8], limit: usize) -> Result<Reassembled<'_>, HelloError> {
    let mut framing = Framing::with_limit(limit);
    let wire_length = framing.advance(bytes)?;
    // Complete: every record header up to `wire_length` has been checked, and
    // the handshake header is in.
    let total = framing.announced().unwrap_or(HANDSHAKE_HEADER_LEN);
    let mut records = Vec::with_capacity(1);
    let mut pos = 0;
    while pos < wire_length {
        let header = &bytes[pos..pos + RECORD_HEADER_LEN];
        let length = u16::from_be_bytes([header[3], header[4]]);
        records.push(RecordHeader {
            version: ProtocolVersion(u16::from_be_bytes([header[1], header[2]])),
            length,
        });
        pos += RECORD_HEADER_LEN + usize::from(length);
    }
    let body = if let [_] = records[..] {
        // The usual case: one record, so the body is one slice of the input.
        Cow::Borrowed(&bytes[RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN..RECORD_HEADER_LEN + total])
    } else {
        // Fragments joined without the record headers between them.
        let mut handshake = Vec::with_capacity(total);
        let mut pos = 0;
        for record in &records {
            let start = pos + RECORD_HEADER_LEN;
            pos = start + usize::from(record.length);
            let take = (total - handshake.len()).min(pos - start);
            handshake.extend_from_slice(&bytes[start..start + take]);
        }
        handshake.drain(..HANDSHAKE_HEADER_LEN);
        Cow::Owned(handshake)
    };
    Ok(Reassembled {
        records,
        body,
        wire_length,
    })
}

/// Follows the record framing of a ClientHello as its bytes arrive, with
/// O(new bytes) work per call (in fact O(new record headers): record bodies
/// are skipped, only the 4-byte handshake header is looked at).
///
/// Feed it everything received so far, each call extending the bytes of the
/// last; it answers exactly what the full reassembly (and so
/// [`parse_client_hello`](super::parse_client_hello)) would on those bytes,
/// except that a complete hello is `Ok(wire_length)` (the body is not parsed):
/// `Err(Incomplete { need })` with the same `need`, the same error for bytes
/// that are not TLS or are framed wrong.
#[derive(Debug, Clone)]
pub struct Framing {
    limit: usize,
    /// Offset of the current record's header.
    record: usize,
    /// End of the current record's body, once its header is in and checked.
    record_end: Option<usize>,
    /// Offset up to which handshake bytes have been counted.
    counted: usize,
    /// Handshake bytes so far (across records).
    handshake: usize,
    /// The first [`HANDSHAKE_HEADER_LEN`] of them.
    head: [u8; HANDSHAKE_HEADER_LEN],
}

impl Default for Framing {
    fn default() -> Self {
        Self::new()
    }
}

impl Framing {
    /// For a hello of at most [`MAX_HELLO_BYTES`](super::MAX_HELLO_BYTES), as
    /// [`parse_client_hello`](super::parse_client_hello) accepts.
    pub fn new() -> Self {
        Self::with_limit(super::MAX_HELLO_BYTES)
    }

    pub(crate) fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            record: 0,
            record_end: None,
            counted: 0,
            handshake: 0,
            head: [0; HANDSHAKE_HEADER_LEN],
        }
    }

    /// `bytes` is everything received so far, from the first record header;
    /// it must start with the bytes of the previous call. `Ok` is the offset
    /// just past the record that completed the hello. Once the answer is not
    /// `Incomplete` it stays the same for longer inputs.
    pub fn advance(&mut self, bytes: &[u8]) -> Result<usize, HelloError> {
        if bytes.is_empty() {
            return Err(HelloError::Incomplete {
                have: 0,
                need: RECORD_HEADER_LEN,
            });
        }
        debug_assert!(bytes.len() >= self.counted, "input shrank");
        loop {
            let Some(body_end) = self.record_end else {
                let pos = self.record;
                let header = &bytes[pos..bytes.len().min(pos + RECORD_HEADER_LEN)];
                check_header_prefix(header, pos == 0)?;
                if header.len() < RECORD_HEADER_LEN {
                    return Err(self.incomplete_between_records(bytes.len())?);
                }
                let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
                if length > MAX_RECORD_LEN {
                    return Err(HelloError::RecordOverflow { length });
                }
                if length == 0 {
                    // RFC 8446 §5.1: zero-length handshake fragments MUST NOT be sent.
                    return Err(
                        Malformed::new("record length", "zero-length handshake record").into(),
                    );
                }
                self.counted = pos + RECORD_HEADER_LEN;
                self.record_end = Some(self.counted + length);
                continue;
            };
            let available_end = body_end.min(bytes.len());
            if available_end > self.counted {
                let new = &bytes[self.counted..available_end];
                if self.handshake < HANDSHAKE_HEADER_LEN {
                    let n = (HANDSHAKE_HEADER_LEN - self.handshake).min(new.len());
                    self.head[self.handshake..self.handshake + n].copy_from_slice(&new[..n]);
                }
                self.handshake += new.len();
                self.counted = available_end;
            }
            let total = self.total()?;
            if let Some(total) = total {
                if self.handshake >= total && available_end == body_end {
                    return Ok(body_end);
                }
            }
            if available_end < body_end {
                let in_this_record = self.handshake + (body_end - available_end);
                return Err(HelloError::Incomplete {
                    have: bytes.len(),
                    need: body_end + more_records_needed(total, in_this_record),
                });
            }
            self.record = body_end;
            self.record_end = None;
        }
    }

    /// The handshake message's full size (header included) as its header
    /// announces it, once that is in.
    pub fn announced(&self) -> Option<usize> {
        (self.handshake >= HANDSHAKE_HEADER_LEN).then(|| {
            HANDSHAKE_HEADER_LEN
                + u32::from_be_bytes([0, self.head[1], self.head[2], self.head[3]]) as usize
        })
    }

    /// [`Self::announced`], checked: a ClientHello within the limit.
    fn total(&self) -> Result<Option<usize>, HelloError> {
        if self.handshake < HANDSHAKE_HEADER_LEN {
            return Ok(None);
        }
        let head = self.head;
        if head[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(HelloError::NotClientHello { msg_type: head[0] });
        }
        let length = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
        if length > self.limit {
            return Err(HelloError::TooLarge {
                length,
                limit: self.limit,
            });
        }
        Ok(Some(HANDSHAKE_HEADER_LEN + length))
    }

    /// Between records (or before the first): we know what the handshake
    /// header announced, if it has arrived.
    fn incomplete_between_records(&self, have: usize) -> Result<HelloError, HelloError> {
        let need = if self.record == 0 {
            RECORD_HEADER_LEN
        } else {
            self.record + more_records_needed(self.total()?, self.handshake)
        };
        Ok(HelloError::Incomplete {
            have,
            need: need.max(have + 1),
        })
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

/// Bytes beyond the current record: the rest of the handshake message, framed
/// in full-size records (the least a client could send).
fn more_records_needed(total: Option<usize>, have_after_record: usize) -> usize {
    match total {
        Some(total) if total > have_after_record => {
            let rest = total - have_after_record;
            rest + RECORD_HEADER_LEN * rest.div_ceil(MAX_RECORD_LEN)
        }
        Some(_) => 0,
        // The handshake header is not in, but this record is long enough to
        // hold it and the whole hello: nothing more can be promised.
        None if have_after_record >= HANDSHAKE_HEADER_LEN => 0,
        // Header not in yet, and this record ends inside it: at least one
        // more record header and the rest of it.
        None => RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN - have_after_record,
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
    // Before the HTTP methods: "P" alone could be POST, "PRO" cannot.
    if (is_prefix_of(b"PROXY ") && bytes.len() >= 3)
        || (is_prefix_of(b"\r\n\r\n\0\r\nQUIT\n") && bytes.len() >= 4)
    {
        NotTlsKind::ProxyProtocol
    } else if is_prefix_of(b"PRI * HTTP/2.0") && bytes.len() >= 4 {
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

    // The reassembly as it was before `Framing`: it re-walked every byte on
    // each call. Kept to check that the incremental walk answers exactly as
    // it did, for every prefix of every input below.
    #[derive(Debug)]
    struct Reference {
        records: Vec<RecordHeader>,
        body: Vec<u8>,
        wire_length: usize,
    }

    fn reference(bytes: &[u8], limit: usize) -> Result<Reference, HelloError> {
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
                return Err(reference_incomplete(bytes.len(), pos, &handshake));
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
                    return Ok(Reference {
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

    fn reference_incomplete(have: usize, pos: usize, handshake: &[u8]) -> HelloError {
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
    fn never_announces_more_than_a_record_that_can_hold_the_hello() {
        // Found by the fuzzer (fuzz/regressions/hello/need-overshoot-*): with
        // the record header in but not the 4-byte handshake header, the whole
        // hello may still fit this record; announcing one more record header
        // overstated the hello by 5 bytes.
        let wire = record(&handshake(38)); // 47 bytes on the wire
        for cut in 1..wire.len() {
            match reassemble(&wire[..cut], LIMIT).unwrap_err() {
                HelloError::Incomplete { need, .. } => {
                    assert!(need <= wire.len(), "{need} after {cut} bytes")
                }
                other => panic!("{other:?} after {cut} bytes"),
            }
        }
        // A record too short for the handshake header needs another record.
        let mut split = record(&handshake(38)[..2]);
        assert_eq!(
            reassemble(&split, LIMIT).unwrap_err(),
            HelloError::Incomplete {
                have: 7,
                need: 7 + 5 + 2
            }
        );
        split.extend_from_slice(&record(&handshake(38)[2..]));
        assert!(reassemble(&split, LIMIT).is_ok());
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
        assert_eq!(
            sniff(b"PROXY TCP4 198.51.100.7 203.0.113.1 51000 443\r\n"),
            NotTlsKind::ProxyProtocol
        );
        assert_eq!(
            sniff(b"\r\n\r\n\0\r\nQUIT\n\x21\x11"),
            NotTlsKind::ProxyProtocol
        );
        assert_eq!(sniff(b"POST / HTTP/1.1"), NotTlsKind::PlainHttp);
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

    const FIXTURES: &[&[u8]] = &[
        include_bytes!("../../tests/fixtures/hellos/chromium_pq.bin"),
        include_bytes!("../../tests/fixtures/hellos/curl_openssl3.bin"),
        include_bytes!("../../tests/fixtures/hellos/openssl_s_client_tls1_legacy.bin"),
    ];

    /// A handshake message of any size (a 3-byte length), `msg_type` first.
    fn message(msg_type: u8, body_len: usize) -> Vec<u8> {
        let mut out = vec![msg_type];
        out.extend_from_slice(&(body_len as u32).to_be_bytes()[1..]);
        out.extend(std::iter::repeat_n(0xab, body_len));
        out
    }

    /// `handshake` framed in records of `size` bytes.
    fn framed(handshake: &[u8], size: usize) -> Vec<u8> {
        handshake.chunks(size).flat_map(record).collect()
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 as usize
        }
    }

    /// Real hellos and synthetic ones: re-framed in records from 1 byte to
    /// 16 KiB, fragmented giants, too-large ones, trailing bytes, not TLS.
    fn inputs() -> Vec<Vec<u8>> {
        let mut inputs = Vec::new();
        for wire in FIXTURES {
            assert_eq!(
                usize::from(u16::from_be_bytes([wire[3], wire[4]])),
                wire.len() - 5
            );
            inputs.push(wire.to_vec());
            for size in [1, 2, 3, 5, 7, 100, 1000] {
                inputs.push(framed(&wire[5..], size));
            }
            let mut followed = wire.to_vec();
            followed.extend_from_slice(b"GET / HTTP/1.1\r\n");
            inputs.push(followed);
        }
        inputs.push(framed(&message(1, 20_000), MAX_RECORD_LEN));
        inputs.push(framed(&message(1, LIMIT), MAX_RECORD_LEN));
        inputs.push(framed(&message(1, LIMIT), 4000));
        inputs.push(framed(&message(1, LIMIT + 1), MAX_RECORD_LEN));
        inputs.push(framed(&message(1, 3000), 9));
        inputs.push(framed(&message(2, 300), 100));
        let mut trailing = message(1, 300);
        trailing.extend_from_slice(&[0; 10]);
        inputs.push(record(&trailing));
        let mut interleaved = framed(&message(1, 300), 100);
        interleaved[105] = 23;
        inputs.push(interleaved);
        inputs.push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
        inputs.push(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec());
        inputs.push(vec![22, 3, 1, 0x40, 1, 1, 0, 0]);
        inputs.push(vec![22, 3, 1, 0, 0, 1, 0, 0]);
        inputs.push(vec![22, 2, 1, 0, 9, 1, 0, 0]);
        inputs
    }

    /// At each cut (increasing): the one-shot reassembly answers as the
    /// reference does, and a single `Framing` fed the growing prefix does too.
    fn agree(input: &[u8], cuts: impl IntoIterator<Item = usize>) {
        let mut framing = Framing::with_limit(LIMIT);
        for cut in cuts {
            let prefix = &input[..cut];
            let expected = reference(prefix, LIMIT);
            match (&expected, reassemble(prefix, LIMIT)) {
                (Ok(want), Ok(got)) => {
                    assert_eq!(want.records, got.records, "cut {cut}");
                    assert_eq!(want.body, &got.body[..], "cut {cut}");
                    assert_eq!(want.wire_length, got.wire_length, "cut {cut}");
                }
                (Err(want), Err(got)) => assert_eq!(want, &got, "cut {cut}"),
                (want, got) => panic!("cut {cut}: want {want:?}, got {got:?}"),
            }
            let expected = expected.map(|r| r.wire_length);
            assert_eq!(framing.advance(prefix), expected, "incremental, cut {cut}");
        }
    }

    /// Cuts from 0 to the whole, in random steps of 1 to `max_step` bytes.
    fn random_cuts(len: usize, max_step: usize, rng: &mut XorShift) -> Vec<usize> {
        let mut cuts = vec![0];
        let mut at = 0;
        while at < len {
            at = (at + 1 + rng.next() % max_step).min(len);
            cuts.push(at);
        }
        cuts
    }

    #[test]
    fn framing_answers_as_the_full_reassembly_at_every_byte() {
        for input in inputs() {
            if input.len() <= 3000 {
                agree(&input, 0..=input.len());
            } else {
                // The reference is quadratic over all cuts: every byte around
                // each record header and the handshake header, steps between.
                let cuts: Vec<usize> = (0..=input.len())
                    .filter(|&c| {
                        c < 64
                            || c % 97 == 0
                            || c % (MAX_RECORD_LEN + 5) < 12
                            || c + 2 > input.len()
                    })
                    .collect();
                agree(&input, cuts);
            }
        }
    }

    #[test]
    fn framing_answers_as_the_full_reassembly_on_mutated_inputs() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for input in inputs() {
            // The reference is quadratic over all cuts: fewer, coarser ones
            // for the large inputs.
            let (mutations, max_step) = match input.len() {
                ..=3000 => (150, 40),
                _ => (10, input.len() / 50),
            };
            for _ in 0..mutations {
                let mut m = input.clone();
                for _ in 0..(rng.next() % 3 + 1) {
                    // Headers are where framing decisions live: hit them often.
                    let i = match rng.next() % 3 {
                        0 => rng.next() % m.len().min(16),
                        _ => rng.next() % m.len(),
                    };
                    m[i] = rng.next() as u8;
                }
                let cuts = random_cuts(m.len(), max_step, &mut rng);
                agree(&m, cuts);
            }
            for step in [1, 3, 700, 20_000] {
                let cuts = random_cuts(input.len(), step.max(max_step / 2), &mut rng);
                agree(&input, cuts);
            }
        }
    }

    #[test]
    fn framing_of_a_hello_in_one_byte_records_grows_past_the_capture_limit() {
        // 6 bytes on the wire per handshake byte: the need it announces keeps
        // growing by a record header per byte, as the full reassembly's does.
        let wire = framed(&message(1, 20_000), 1);
        let mut framing = Framing::new();
        let mut last = 0;
        for cut in (1..wire.len()).step_by(6) {
            match framing.advance(&wire[..cut]) {
                Err(HelloError::Incomplete { need, .. }) => {
                    assert!(need >= last, "cut {cut}");
                    last = need;
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert!(last > 100_000, "{last}");
        assert_eq!(framing.advance(&wire), Ok(wire.len()));
        assert_eq!(framing.announced(), Some(20_004));
    }
}
