//! The ClientHello parser, and record reassembly as the server does it.
//!
//! Input: `[control][k chunk sizes][payload]`.
//! - `control` bits 0-2: `k`, how many chunk-size bytes follow (0: the payload
//!   arrives in reads as large as the capture buffer allows);
//!   bit 3: the peer resets after its last byte instead of closing;
//!   bit 4: the peer is IPv6; bits 5-7: how the handshake ends once the hello
//!   is complete (0: it completes; else an error for `attempt::classify`).
//! - each chunk-size byte `b` is a read of `b + 1` bytes (1 to 240), or for
//!   `b` of 240 and up, of `(b - 239) * 1460` bytes (TCP segments, up to 16);
//!   the sizes repeat.
//! - `payload`: the bytes the client sends.
//!
//! Checks, beyond "no panic":
//! - the payload parsed whole and the same bytes read in chunks by
//!   `capture::read_client_hello` agree (same hello, same error, same `need`);
//! - the read log adds up, and every "incomplete, need N" is a true lower
//!   bound of the hello's size on the wire;
//! - fingerprints have their documented shapes;
//! - the attempt's report (diagnosis, text, HTML, JSON) renders, its text has
//!   no control characters, and its JSON reads back to the same hello.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

use tlsdiag::attempt::{self, Arrival, HandshakeError, Negotiated, TlsAttempt};
use tlsdiag::capture::{self, CaptureEnd, HelloCapture, MAX_CAPTURE_BYTES, MAX_LOGGED_READS};
use tlsdiag::diagnose::{self, IpVersion, Observations};
use tlsdiag::fingerprint::Fingerprints;
use tlsdiag::hello::record::sniff;
use tlsdiag::hello::wire::{AlertDescription, CipherSuite, NamedGroup, ProtocolVersion};
use tlsdiag::hello::{parse_client_hello, ClientHello, ExtensionData, HelloError};
use tlsdiag::report::{AttemptView, ConnectionReport, HelloView, HttpFacts};
use tlsdiag_fuzz::{
    assert_no_peer_commands, defanged, fixed_time, json_diff, local, peer, profile,
    render_and_read_back,
};

fuzz_target!(|data: &[u8]| run(data));

struct Input<'a> {
    chunks: Vec<usize>,
    reset_at_end: bool,
    ipv6: bool,
    handshake: u8,
    payload: &'a [u8],
}

impl<'a> Input<'a> {
    fn split(data: &'a [u8]) -> Option<Self> {
        let (&control, rest) = data.split_first()?;
        let k = usize::from(control & 0x07).min(rest.len());
        let (sizes, payload) = rest.split_at(k);
        Some(Self {
            chunks: sizes.iter().map(|&b| chunk_size(b)).collect(),
            reset_at_end: control & 0x08 != 0,
            ipv6: control & 0x10 != 0,
            handshake: control >> 5,
            payload,
        })
    }
}

fn chunk_size(b: u8) -> usize {
    match b {
        0..=239 => usize::from(b) + 1,
        _ => usize::from(b - 239) * 1460,
    }
}

/// An in-memory peer: each read returns at most one chunk, then EOF (or a reset).
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: &'a [usize],
    next: usize,
    reset_at_end: bool,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let rest = &this.data[this.pos..];
        if rest.is_empty() {
            return Poll::Ready(if this.reset_at_end {
                Err(io::ErrorKind::ConnectionReset.into())
            } else {
                Ok(())
            });
        }
        let chunk = match this.sizes.get(this.next % this.sizes.len().max(1)) {
            Some(&size) => size,
            None => usize::MAX,
        };
        this.next += 1;
        let n = chunk.min(rest.len()).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

/// One `progress` call: bytes so far, this read, the total announced.
type Progress = (usize, usize, Option<usize>);

fn capture(input: &Input<'_>) -> (HelloCapture, Vec<Progress>) {
    let mut peer = Chunked {
        data: input.payload,
        pos: 0,
        sizes: &input.chunks,
        next: 0,
        reset_at_end: input.reset_at_end,
    };
    let mut progress = Vec::new();
    let cap = runtime().block_on(capture::read_client_hello(
        &mut peer,
        tokio::time::Instant::now(),
        // Never reached: every read is ready at once.
        Duration::from_secs(3600),
        |so_far, n, need| progress.push((so_far, n, need)),
    ));
    (cap, progress)
}

fn run(data: &[u8]) {
    let Some(input) = Input::split(data) else {
        return;
    };
    let whole = parse_client_hello(input.payload);
    if let Ok(hello) = &whole {
        check_hello(input.payload, hello);
    }
    let (cap, progress) = capture(&input);
    check_capture(&input, &whole, &cap, &progress);
    render(&input, &cap);
}

/// The hello on its own: re-parsing exactly its bytes gives it back, and the
/// fingerprints and view have their documented shapes.
fn check_hello(payload: &[u8], hello: &ClientHello) {
    assert!(hello.wire_length <= payload.len());
    let again = parse_client_hello(&payload[..hello.wire_length]);
    assert_eq!(
        again.as_ref(),
        Ok(hello),
        "the hello's own wire_length bytes parse differently"
    );
    let record_bytes: usize = hello
        .records
        .iter()
        .map(|r| 5 + usize::from(r.length))
        .sum();
    assert_eq!(record_bytes, hello.wire_length, "records vs wire_length");
    assert!(hello.handshake_length as usize + 4 <= record_bytes);

    let fp = Fingerprints::of(hello);
    assert!(
        fp.ja3_md5.len() == 32 && fp.ja3_md5.bytes().all(|b| b.is_ascii_hexdigit()),
        "ja3_md5 {:?}",
        fp.ja3_md5
    );
    assert_eq!(fp.ja3.matches(',').count(), 4, "ja3 {:?}", fp.ja3);
    assert!(
        fp.ja3.starts_with(&format!("{},", hello.legacy_version.0)),
        "ja3 {:?}",
        fp.ja3
    );
    for hashed in [&fp.ja4, &fp.ja4_o] {
        let parts: Vec<&str> = hashed.split('_').collect();
        assert_eq!(parts.len(), 3, "ja4 {hashed:?}");
        assert!(
            parts[0].len() == 10 && parts[0].bytes().all(|b| b.is_ascii_alphanumeric()),
            "ja4 part a {hashed:?}"
        );
        for part in &parts[1..] {
            assert!(
                part.len() == 12 && part.bytes().all(|b| b.is_ascii_hexdigit()),
                "ja4 hash {hashed:?}"
            );
        }
    }
    let a = &fp.ja4[..10];
    for other in [&fp.ja4_r, &fp.ja4_o, &fp.ja4_ro] {
        assert!(other.starts_with(a), "{other:?} does not start with {a:?}");
    }

    let view = HelloView::of(hello);
    assert_eq!(view.sni.as_deref(), hello.sni());
    assert_eq!(view.cipher_rows().len(), hello.cipher_suites.len());
    assert_eq!(view.extension_rows().len(), hello.extensions.len());
    let _ = view.facts();
    serde_json::to_string(&view).expect("a HelloView serializes");
}

/// The server's reassembly agrees with parsing the same bytes whole.
fn check_capture(
    input: &Input<'_>,
    whole: &Result<ClientHello, HelloError>,
    cap: &HelloCapture,
    progress: &[Progress],
) {
    let payload = input.payload;
    // The read log.
    assert!(cap.bytes.len() <= payload.len());
    assert_eq!(
        cap.bytes,
        payload[..cap.bytes.len()],
        "capture reordered bytes"
    );
    let logged: usize = cap.reads.iter().map(|r| r.bytes).sum();
    if cap.reads_not_logged == 0 {
        assert_eq!(logged, cap.bytes.len(), "read log does not add up");
    } else {
        assert_eq!(
            cap.reads.len(),
            MAX_LOGGED_READS,
            "reads counted before the log was full"
        );
        assert!(logged + cap.reads_not_logged <= cap.bytes.len());
    }
    // Every read but the last reports progress.
    let complete_or_rejected = matches!(cap.end, CaptureEnd::Complete(_) | CaptureEnd::Rejected(_));
    assert_eq!(
        progress.len() + usize::from(complete_or_rejected),
        cap.read_count(),
        "progress calls vs reads"
    );
    assert!(cap.reads.iter().all(|r| r.bytes > 0));
    if !input.chunks.is_empty() {
        for (i, r) in cap.reads.iter().enumerate() {
            assert!(r.bytes <= input.chunks[i % input.chunks.len()]);
        }
    }
    // Every "incomplete" on the way: a true lower bound, above what is in.
    let mut so_far = 0;
    for &(have, n, need) in progress {
        so_far += n;
        assert_eq!(have, so_far, "progress: bytes so far");
        let need = need.expect("progress always knows a need");
        assert!(need > have, "need {need} with {have} in");
        assert!(need <= MAX_CAPTURE_BYTES);
        if let Ok(hello) = whole {
            assert!(
                need <= hello.wire_length,
                "after {have} bytes the capture announced {need}, but the hello is {} bytes on the wire",
                hello.wire_length
            );
        }
    }

    match (&cap.end, whole) {
        (CaptureEnd::Complete(got), Ok(want)) => {
            assert_eq!(**got, *want, "chunked and whole parses differ");
            assert!(cap.bytes.len() >= want.wire_length);
            // The capture stops at the first read that completes the hello.
            if let Some(&(before_last, _, _)) = progress.last() {
                assert!(before_last < want.wire_length);
            }
        }
        (CaptureEnd::Complete(got), Err(err)) => {
            panic!(
                "chunked capture completed ({} bytes) where the whole payload gives {err:?}",
                got.wire_length
            )
        }
        (CaptureEnd::Rejected(got), _) => {
            // The same verdict as the bytes it stopped at...
            let at_stop = parse_client_hello(&cap.bytes);
            match (&at_stop, got) {
                (
                    Err(HelloError::Incomplete { need, .. }),
                    HelloError::TooLarge { length, limit },
                ) => {
                    assert_eq!((need, *limit), (length, MAX_CAPTURE_BYTES));
                    assert!(*need > MAX_CAPTURE_BYTES);
                }
                (Err(e), got) => assert_eq!(e, got, "capture verdict vs its own bytes"),
                (Ok(_), got) => panic!("capture rejected bytes that parse: {got:?}"),
            }
            // ...and as the whole payload, which only adds bytes after them.
            match whole {
                Ok(hello) => assert!(
                    matches!(got, HelloError::TooLarge { .. })
                        && hello.wire_length > MAX_CAPTURE_BYTES,
                    "capture rejected ({got:?}) a payload that parses whole"
                ),
                Err(HelloError::Incomplete { need, .. }) => assert!(
                    matches!(got, HelloError::TooLarge { .. }) && *need > MAX_CAPTURE_BYTES,
                    "capture rejected ({got:?}) a payload that is whole a valid prefix"
                ),
                Err(HelloError::NotTls { kind: want }) => match got {
                    // Bytes that cannot start a handshake are rejected on the
                    // read that brings them, and named from what that read
                    // brought of the record header (at most 5 bytes): a
                    // shorter first read can be named differently than the
                    // whole payload, never other than `sniff` of its bytes.
                    HelloError::NotTls { kind } => {
                        let seen = &cap.bytes[..cap.bytes.len().min(5)];
                        assert_eq!(*kind, sniff(seen), "named other than its first bytes");
                        if seen.len() == payload.len().min(5) {
                            assert_eq!(kind, want, "the same first bytes named differently");
                        }
                    }
                    other => panic!("chunked {other:?}, whole NotTls {want:?}"),
                },
                Err(want) => assert_eq!(got, want, "chunked and whole errors differ"),
            }
        }
        (CaptureEnd::Closed { need } | CaptureEnd::Failed { need, .. }, _) => {
            if let CaptureEnd::Failed { kind, .. } = &cap.end {
                assert!(input.reset_at_end);
                assert_eq!(*kind, io::ErrorKind::ConnectionReset);
            } else {
                assert!(!input.reset_at_end);
            }
            assert_eq!(
                cap.bytes.len(),
                payload.len(),
                "ended before the payload did"
            );
            match whole {
                Err(HelloError::Incomplete { need: want, .. }) if !payload.is_empty() => {
                    assert_eq!(*need, Some(*want))
                }
                Err(HelloError::Incomplete { .. }) => assert_eq!(*need, None),
                other => panic!("capture saw the peer go away; the whole payload gives {other:?}"),
            }
        }
        (CaptureEnd::TimedOut { .. }, _) => panic!("timed out with every read ready"),
    }
}

/// What the handshake did after a complete hello, as `attempt::classify` sees it.
fn handshake_error(selector: u8, cap: &HelloCapture) -> Option<HandshakeError> {
    Some(match selector {
        0 => return None,
        1 => HandshakeError::Alert(AlertDescription(cap.bytes.last().copied().unwrap_or(40))),
        2 => HandshakeError::NoSharedCipher,
        3 => HandshakeError::NoSharedGroup,
        4 => HandshakeError::NoSharedSignatureScheme,
        5 => HandshakeError::UnsupportedVersion("peer is incompatible".into()),
        6 => HandshakeError::Closed,
        _ => HandshakeError::Timeout,
    })
}

/// The hello with its server names [`defanged`].
fn defang_sni(hello: &mut ClientHello) {
    for e in &mut hello.extensions {
        if let ExtensionData::ServerName { names } = &mut e.decoded {
            for n in names {
                n.name = defanged(&n.name);
            }
        }
    }
}

/// The attempt as the server records it, diagnosed and rendered three ways.
fn render(input: &Input<'_>, cap: &HelloCapture) {
    let hello = match &cap.end {
        CaptureEnd::Complete(hello) => Some(hello.as_ref().clone()),
        _ => None,
    };
    let handshake = hello
        .as_ref()
        .and_then(|_| handshake_error(input.handshake, cap));
    let outcome = attempt::classify(&cap.end, &cap.bytes, handshake.as_ref(), profile(), None);
    let negotiated = match (&hello, &handshake) {
        (Some(h), None) => Some(Negotiated {
            version: ProtocolVersion::TLS_1_3,
            cipher_suite: CipherSuite(0x1301),
            key_exchange_group: Some(NamedGroup(0x11ec)),
            alpn: h.alpn().first().map(|p| p.name().into_owned()),
        }),
        _ => None,
    };
    let mut raw = cap.bytes.clone();
    raw.truncate(
        hello
            .as_ref()
            .map_or(attempt::KEPT_BYTES_OF_FAILED_ATTEMPT, |h| h.wire_length),
    );
    let attempt = TlsAttempt {
        id: 1,
        peer: peer(input.ipv6),
        local: local(),
        started_at: fixed_time(),
        arrival: Arrival {
            bytes: cap.bytes.len(),
            read_count: cap.read_count(),
            reads: cap.reads.clone(),
            capture_ms: capture::ms(cap.elapsed),
        },
        raw,
        fingerprint_cache: Default::default(),
        client_hello: hello,
        negotiated,
        handshake_ms: Some(1.5),
        outcome,
        syn: None,
        tcp: None,
        handshake_flight: None,
        after_handshake: Default::default(),
        icmp_probe: None,
        first_request: Default::default(),
        run: Default::default(),
        our_mss: None,
        seen_by: None,
        balancer: None,
    };
    let _ = attempt.outcome.describe();
    let attempts = [Arc::new(attempt.clone())];
    let diagnosis = diagnose::diagnose(
        &Observations {
            ip: IpVersion::of(attempt.peer.ip()),
            attempts: &attempts,
            run: None,
            hello_ladder: &[],
            tls_check: None,
            syn: None,
            how_to_test: "curl -sS http://203.0.113.1:8080/check.sh | sh",
            via: None,
            judged: None,
            client: None,
        },
        profile(),
    );
    let findings = diagnose::attempt(&attempt, profile());
    if let Some(sni) = attempt.client_hello.as_ref().and_then(|h| h.sni()) {
        let mut control = attempt.clone();
        if let Some(h) = &mut control.client_hello {
            defang_sni(h);
        }
        let control = diagnose::attempt(&control, profile());
        assert_no_peer_commands(&findings, &control, &[sni]);
    }
    let host = attempt
        .client_hello
        .as_ref()
        .and_then(|h| h.sni())
        .map(str::to_owned);
    let mut report = ConnectionReport::for_tls(
        &attempt,
        HttpFacts {
            http_version: "HTTP/2".into(),
            user_agent: Some("fuzz/1".into()),
            host,
        },
        diagnosis,
        vec![AttemptView::new(&attempt, findings)],
    );
    report.generated_at = fixed_time();

    // A saved report keeps the hello only as raw bytes and parses it again.
    let mut back = render_and_read_back(&report);
    back.rehydrate();
    let want = serde_json::to_value(&report).expect("serializes");
    let got = serde_json::to_value(&back).expect("serializes");
    if let Some(diff) = json_diff(&want, &got, "report") {
        panic!("report JSON does not read back the same: {diff}");
    }
}
