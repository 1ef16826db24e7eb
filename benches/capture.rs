//! Cost of capturing a ClientHello, the capture path alone:
//! `cargo bench --bench capture` (add `-- --quick` for a shorter run).
//!
//! Drives `capture::read_client_hello` over an in-memory reader (no sockets,
//! no rustls) with valid ClientHellos of several sizes: two real ones from
//! `tests/fixtures/hellos/` and synthetic 8 KB, 16 KB and 64 KB ones (the
//! Chromium hello grown with a padding extension and framed in records of at
//! most 16 KiB). Each is delivered
//!
//! - `whole`: every read returns as much as the capture asks for,
//! - `two segments`: the first 1,460 bytes, then the rest,
//! - `byte at a time`: one byte per read,
//!
//! next to `parse only`, `hello::parse_client_hello` on the whole hello with
//! no capture around it: the part of the cost that is parsing, paid once.
//!
//! and the bench prints ns per hello and ns per byte (the best of five rounds),
//! then, per mode, the marginal cost of a byte between the ~2 KB and the 64 KB
//! hello. A capture that is linear in the hello's size shows an ns/byte that
//! stays flat or falls with size (a fixed per-hello part, mostly parsing the
//! extensions, is spread over more bytes) and a small, size-independent
//! marginal cost; a quadratic one shows ns/byte growing with size.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tlsdiag::capture::{self, CaptureEnd};
use tlsdiag::hello::wire::ExtensionType;
use tlsdiag::hello::{self, ClientHello};
use tokio::io::{AsyncRead, ReadBuf};

/// How a reader hands out the hello.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// No capture: `parse_client_hello` on the whole hello, for reference.
    ParseOnly,
    Whole,
    TwoSegments,
    ByteAtATime,
}

impl Mode {
    const ALL: [Mode; 4] = [
        Mode::ParseOnly,
        Mode::Whole,
        Mode::TwoSegments,
        Mode::ByteAtATime,
    ];

    fn label(self) -> &'static str {
        match self {
            Mode::ParseOnly => "parse only",
            Mode::Whole => "whole",
            Mode::TwoSegments => "two segments",
            Mode::ByteAtATime => "byte at a time",
        }
    }
}

/// The first segment of a two-segment delivery: one Ethernet-sized TCP segment.
const FIRST_SEGMENT: usize = 1460;

/// An always-ready reader over `data`, returning it in the pieces `mode` says.
#[derive(Debug)]
struct MemReader<'a> {
    data: &'a [u8],
    pos: usize,
    mode: Mode,
}

impl AsyncRead for MemReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let rest = &this.data[this.pos..];
        let piece = match this.mode {
            Mode::ParseOnly | Mode::Whole => rest.len(),
            Mode::TwoSegments if this.pos < FIRST_SEGMENT => FIRST_SEGMENT - this.pos,
            Mode::TwoSegments => rest.len(),
            Mode::ByteAtATime => 1,
        };
        let n = piece.min(rest.len()).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn put_u16(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u16::try_from(v).unwrap().to_be_bytes());
}

/// The extensions of `raw` (a hello in one record, parsed as `hello`), each
/// as its type and body: the parsed model keeps only their decoded forms.
fn extension_bodies<'a>(hello: &ClientHello, raw: &'a [u8]) -> Vec<(u16, &'a [u8])> {
    let start = 5 + 4 // record and handshake headers
        + 2 + 32
        + 1 + hello.session_id.len()
        + 2 + 2 * hello.cipher_suites.len()
        + 1 + hello.compression_methods.len()
        + 2;
    let mut list = &raw[start..];
    let mut out = Vec::new();
    while list.len() >= 4 {
        let kind = u16::from_be_bytes([list[0], list[1]]);
        let len = usize::from(u16::from_be_bytes([list[2], list[3]]));
        out.push((kind, &list[4..4 + len]));
        list = &list[4 + len..];
    }
    assert_eq!(out.len(), hello.extensions.len());
    out
}

/// The hello's handshake body, serialized back from the parsed model and the
/// raw hello's extension bodies, with any padding extension replaced by one
/// of `padding` bytes (if non-zero).
fn body_of(hello: &ClientHello, raw: &[u8], padding: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&hello.legacy_version.0.to_be_bytes());
    out.extend_from_slice(&hello.random);
    out.push(u8::try_from(hello.session_id.len()).unwrap());
    out.extend_from_slice(&hello.session_id);
    put_u16(&mut out, hello.cipher_suites.len() * 2);
    for suite in &hello.cipher_suites {
        out.extend_from_slice(&suite.0.to_be_bytes());
    }
    out.push(u8::try_from(hello.compression_methods.len()).unwrap());
    out.extend_from_slice(&hello.compression_methods);
    let mut extensions = Vec::new();
    for (kind, data) in extension_bodies(hello, raw)
        .into_iter()
        .filter(|(kind, _)| *kind != ExtensionType::PADDING.0)
    {
        extensions.extend_from_slice(&kind.to_be_bytes());
        put_u16(&mut extensions, data.len());
        extensions.extend_from_slice(data);
    }
    if padding > 0 {
        extensions.extend_from_slice(&ExtensionType::PADDING.0.to_be_bytes());
        put_u16(&mut extensions, padding);
        extensions.resize(extensions.len() + padding, 0);
    }
    put_u16(&mut out, extensions.len());
    out.extend_from_slice(&extensions);
    out
}

/// A ClientHello handshake message around `body`, framed in TLS records of at
/// most 16 KiB.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut handshake = vec![1];
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend_from_slice(body);
    let mut wire = Vec::new();
    for fragment in handshake.chunks(1 << 14) {
        wire.extend_from_slice(&[22, 3, 1]);
        put_u16(&mut wire, fragment.len());
        wire.extend_from_slice(fragment);
    }
    wire
}

/// The Chromium hello grown with padding to about `target` bytes on the wire.
fn synthetic(base: &ClientHello, raw: &[u8], target: usize) -> Vec<u8> {
    let bare = frame(&body_of(base, raw, 0)).len();
    // 4 bytes of extension header, and 5 per record header beyond the first.
    let records = target.div_ceil(1 << 14);
    let padding = target - bare - 4 - 5 * (records - 1);
    let wire = frame(&body_of(base, raw, padding));
    let parsed = hello::parse_client_hello(&wire).unwrap();
    assert_eq!(parsed.wire_length, wire.len());
    wire
}

async fn capture_once(wire: &[u8], mode: Mode) {
    if let Mode::ParseOnly = mode {
        black_box(hello::parse_client_hello(black_box(wire)).unwrap());
        return;
    }
    let mut reader = MemReader {
        data: wire,
        pos: 0,
        mode,
    };
    let cap = capture::read_client_hello(
        &mut reader,
        tokio::time::Instant::now(),
        Duration::from_secs(60),
        |have, read, need| {
            black_box((have, read, need));
        },
    )
    .await;
    assert!(matches!(cap.end, CaptureEnd::Complete(_)), "{:?}", cap.end);
    assert_eq!(cap.bytes.len(), wire.len());
    black_box(cap);
}

/// Runs the capture in `ROUNDS` rounds of about `budget / ROUNDS` each (at
/// least `min_runs` hellos per round) and returns the best round's mean time
/// per hello: the least disturbed by whatever else the machine is doing.
async fn measure(wire: &[u8], mode: Mode, budget: Duration, min_runs: u32) -> Duration {
    const ROUNDS: u32 = 5;
    capture_once(wire, mode).await; // warm-up
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut runs = 0u32;
        while runs < min_runs || start.elapsed() < budget / ROUNDS {
            capture_once(wire, mode).await;
            runs += 1;
        }
        best = best.min(start.elapsed() / runs);
    }
    best
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 100 } else { 500 });

    let chromium: &[u8] = include_bytes!("../tests/fixtures/hellos/chromium_pq.bin");
    let openssl: &[u8] =
        include_bytes!("../tests/fixtures/hellos/openssl_s_client_tls13_default.bin");
    let base = hello::parse_client_hello(chromium).unwrap();
    let hellos: Vec<(&str, Vec<u8>)> = vec![
        ("openssl s_client (real)", openssl.to_vec()),
        ("chromium + PQ (real)", chromium.to_vec()),
        ("synthetic 8 KB", synthetic(&base, chromium, 8 * 1000)),
        ("synthetic 16 KB", synthetic(&base, chromium, 16 * 1000)),
        ("synthetic 64 KB", synthetic(&base, chromium, 64 * 1000)),
    ];

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    println!(
        "{:<24} {:>7}  {:<15} {:>14} {:>9}",
        "hello", "bytes", "delivery", "ns/hello", "ns/byte"
    );
    for mode in Mode::ALL {
        let mut results = Vec::new();
        for (name, wire) in &hellos {
            let per_hello = runtime.block_on(measure(wire, mode, budget, 1));
            let ns = per_hello.as_nanos() as f64;
            println!(
                "{:<24} {:>7}  {:<15} {:>14.0} {:>9.2}",
                name,
                wire.len(),
                mode.label(),
                ns,
                ns / wire.len() as f64
            );
            results.push((wire.len() as f64, ns));
        }
        // The cost of one more byte, from the ~2 KB hello to the 64 KB one:
        // with a fixed per-hello part (parsing the extensions) the ns/byte
        // column falls with size even when the capture is linear; this
        // slope is what would grow with size if it were not.
        let (small, large) = (results[1], results[results.len() - 1]);
        println!(
            "{:<24} {:>7}  {:<15} {:>14} {:>9.2}\n",
            "  marginal, 2 KB..64 KB",
            "",
            mode.label(),
            "",
            (large.1 - small.1) / (large.0 - small.0)
        );
    }
}
