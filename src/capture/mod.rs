//! Reads the raw ClientHello off a fresh connection, exactly as it arrived.
//!
//! [`read_client_hello`] buffers inbound bytes until they hold a complete
//! ClientHello (or prove they never will), recording the size and arrival time of
//! every read: "1,460 bytes, then nothing" is the seed incident, and only the
//! read log shows it. The bytes are then handed back through [`PrefixedIo`], so
//! rustls sees the identical stream and the handshake proceeds normally
//! (linkerd2-proxy's prefixed-I/O idea). `LazyConfigAcceptor` is not enough here:
//! it exposes a parsed hello, not the raw bytes, read boundaries or extension order.
//!
//! Owns: the capture buffer cap, the read log, the capture deadline. Leaves
//! parsing to [`crate::hello`] and classification to [`crate::attempt`].

mod prefixed;

pub use prefixed::PrefixedIo;

use std::io;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::hello::{self, ClientHello, HelloError};

/// Most bytes we buffer before the hello is complete: the largest hello we
/// accept ([`hello::MAX_HELLO_BYTES`]) plus the record headers it may be
/// fragmented into (one per 16 KiB) and the handshake header.
pub const MAX_CAPTURE_BYTES: usize = hello::MAX_HELLO_BYTES + 5 * 5 + 4;

/// Reads recorded individually; beyond this only a count is kept, so a client
/// that trickles one byte per read cannot grow the log past ~64 KiB.
pub const MAX_LOGGED_READS: usize = 4096;

/// One `read()` that returned data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct ReadEvent {
    /// Milliseconds since the connection was accepted.
    pub at_ms: f64,
    pub bytes: usize,
}

/// How capturing ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CaptureEnd {
    /// A complete, parseable ClientHello.
    Complete(Box<ClientHello>),
    /// The bytes can never become a ClientHello (not TLS, malformed, too large).
    Rejected(HelloError),
    /// The deadline passed first. `need` is what the headers announced (None when
    /// no byte arrived at all).
    TimedOut { need: Option<usize> },
    /// The client closed its side (FIN) before the hello was complete.
    Closed { need: Option<usize> },
    /// The connection failed (usually a reset) before the hello was complete.
    Failed {
        need: Option<usize>,
        kind: io::ErrorKind,
        message: String,
    },
}

/// Everything the capture saw.
#[derive(Debug, Clone)]
pub struct HelloCapture {
    /// The inbound bytes, in order, up to the end of the hello (or of the attempt).
    pub bytes: Vec<u8>,
    pub reads: Vec<ReadEvent>,
    /// Reads beyond [`MAX_LOGGED_READS`], counted but not logged.
    pub reads_not_logged: usize,
    pub end: CaptureEnd,
    /// From accept to the end of capture.
    pub elapsed: Duration,
}

impl HelloCapture {
    pub fn read_count(&self) -> usize {
        self.reads.len() + self.reads_not_logged
    }
}

/// Capacity of the capture buffer before anything has arrived: the first read
/// takes up to this much. Most ClientHellos fit (Chromium's with a
/// post-quantum key share and ECH is ~2 KB); a larger one grows the buffer to
/// the length its headers announce, never more.
const FIRST_READ: usize = 2048;

/// The least a read asks for while the handshake header (the hello's length)
/// is not in yet and what the bytes so far announce is only a lower bound.
const MIN_READ: usize = 256;

/// Reads from `io` until the buffered bytes are a complete ClientHello, cannot
/// become one, `deadline` passes, or the peer goes away. `accepted` is the
/// instant the connection was accepted; read times are relative to it.
/// `progress` hears of every read that leaves the hello incomplete (bytes so
/// far, this read's size, the total announced), so a stall is visible while
/// it lasts.
///
/// Reads go straight into the capture buffer, sized to what the headers
/// announce (about 2 KiB for a typical hello, stalled or not), and each read
/// costs work in proportion to its own bytes: the record framing is followed
/// incrementally ([`hello::Framing`]) and the hello is parsed once, when whole.
pub async fn read_client_hello<S>(
    io: &mut S,
    accepted: Instant,
    deadline: Duration,
    mut progress: impl FnMut(usize, usize, Option<usize>),
) -> HelloCapture
where
    S: AsyncRead + Unpin,
{
    let mut bytes = Vec::with_capacity(FIRST_READ);
    let mut reads = Vec::new();
    let mut reads_not_logged = 0;
    let mut framing = hello::Framing::new();
    // What the bytes so far announce (as parsing them would say), once any
    // have arrived.
    let mut need: Option<usize> = None;
    let mut grown = false;
    // One timer for the whole capture, not one per read.
    let timer = tokio::time::sleep_until(accepted + deadline);
    tokio::pin!(timer);

    let end = loop {
        let want = reserve(&mut bytes, need, framing.announced().is_some(), &mut grown);
        // Straight into the buffer's spare capacity, no more than `want`.
        let mut limited = (&mut *io).take(want as u64);
        let read = tokio::select! {
            biased;
            read = limited.read_buf(&mut bytes) => read,
            () = &mut timer => break CaptureEnd::TimedOut { need },
        };
        let n = match read {
            Ok(0) => break CaptureEnd::Closed { need },
            Err(err) => {
                break CaptureEnd::Failed {
                    need,
                    kind: err.kind(),
                    message: err.to_string(),
                }
            }
            Ok(n) => n,
        };
        if reads.len() < MAX_LOGGED_READS {
            reads.push(ReadEvent {
                at_ms: ms(accepted.elapsed()),
                bytes: n,
            });
        } else {
            reads_not_logged += 1;
        }
        // Only once the framing says the hello is whole is it parsed; until
        // then `Framing` answers what parsing would, in O(this read).
        let verdict = match framing.advance(&bytes) {
            Ok(_) => hello::parse_client_hello(&bytes),
            Err(err) => Err(err),
        };
        match verdict {
            Ok(hello) => break CaptureEnd::Complete(Box::new(hello)),
            Err(HelloError::Incomplete { need: more, .. }) if more <= MAX_CAPTURE_BYTES => {
                need = Some(more);
                progress(bytes.len(), n, need);
            }
            Err(HelloError::Incomplete { need: more, .. }) => {
                break CaptureEnd::Rejected(HelloError::TooLarge {
                    length: more,
                    limit: MAX_CAPTURE_BYTES,
                })
            }
            Err(other) => break CaptureEnd::Rejected(other),
        }
    };
    HelloCapture {
        bytes,
        reads,
        reads_not_logged,
        end,
        elapsed: accepted.elapsed(),
    }
}

/// Makes room in `bytes` for the next read and returns how much it may take:
/// everything up to the announced `need`, into whatever spare capacity there
/// already is, never past [`MAX_CAPTURE_BYTES`]. While the handshake header
/// is not in (`announced` false), `need` is a guess, so only [`MIN_READ`]
/// more is made room for. The first growth is exact (usually to
/// the hello's announced length); later ones, which only a hello in many
/// small records causes, are geometric so the copying stays linear.
fn reserve(bytes: &mut Vec<u8>, need: Option<usize>, announced: bool, grown: &mut bool) -> usize {
    let len = bytes.len();
    let target = match need {
        Some(need) if announced => need,
        _ => len + MIN_READ,
    }
    .min(MAX_CAPTURE_BYTES);
    let capacity = bytes.capacity();
    if target > capacity {
        let new_capacity = if *grown {
            target.max(capacity + capacity / 2).min(MAX_CAPTURE_BYTES)
        } else {
            target
        };
        *grown = true;
        bytes.reserve_exact(new_capacity - len);
    }
    bytes.capacity().min(MAX_CAPTURE_BYTES) - len
}

/// Milliseconds with microsecond resolution, for reports.
pub fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn hello_bytes() -> Vec<u8> {
        include_bytes!("../../tests/fixtures/hellos/chromium_pq.bin").to_vec()
    }

    /// An always-ready reader handing out `piece` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        piece: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let this = &mut *self;
            let n = this
                .piece
                .min(this.data.len() - this.pos)
                .min(buf.remaining());
            buf.put_slice(&this.data[this.pos..this.pos + n]);
            this.pos += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    async fn trickle(
        data: Vec<u8>,
        piece: usize,
    ) -> (HelloCapture, Vec<(usize, usize, Option<usize>)>) {
        let mut io = Trickle {
            data,
            pos: 0,
            piece,
        };
        let mut calls = Vec::new();
        let cap = read_client_hello(
            &mut io,
            Instant::now(),
            Duration::from_secs(5),
            |have, read, need| calls.push((have, read, need)),
        )
        .await;
        (cap, calls)
    }

    /// The Chromium hello's handshake message, re-framed in records of `size`.
    fn reframed(size: usize) -> Vec<u8> {
        hello_bytes()[5..]
            .chunks(size)
            .flat_map(|fragment| {
                let mut record = vec![22, 3, 1];
                record.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
                record.extend_from_slice(fragment);
                record
            })
            .collect()
    }

    /// The Chromium hello with `padding` more bytes in a padding extension
    /// (it has none), framed in full-size records.
    fn padded(padding: usize) -> Vec<u8> {
        let wire = hello_bytes();
        let hello = hello::parse_client_hello(&wire).unwrap();
        assert!(hello
            .extensions
            .iter()
            .all(|e| e.kind != hello::wire::ExtensionType::PADDING));
        // The extensions block ends the body; its length sits right before
        // the first extension.
        let extensions: usize = hello.extensions.iter().map(|e| 4 + e.length).sum();
        let mut body = wire[9..].to_vec();
        let at = body.len() - extensions - 2;
        let grown = (extensions + 4 + padding) as u16;
        body[at..at + 2].copy_from_slice(&grown.to_be_bytes());
        body.extend_from_slice(&[0, 21]);
        body.extend_from_slice(&(padding as u16).to_be_bytes());
        body.resize(body.len() + padding, 0);
        let mut handshake = vec![1];
        handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend_from_slice(&body);
        let mut out = Vec::new();
        for fragment in handshake.chunks(hello::record::MAX_RECORD_LEN) {
            out.extend_from_slice(&[22, 3, 3]);
            out.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
            out.extend_from_slice(fragment);
        }
        out
    }

    #[tokio::test]
    async fn completes_on_a_hello_sent_one_byte_per_read() {
        let wire = hello_bytes();
        let (cap, calls) = trickle(wire.clone(), 1).await;
        assert!(matches!(cap.end, CaptureEnd::Complete(_)), "{:?}", cap.end);
        assert_eq!(cap.bytes, wire);
        assert_eq!(cap.read_count(), wire.len());
        assert!(cap.reads.iter().all(|r| r.bytes == 1));
        // Progress on every read but the last, with what parsing would say.
        assert_eq!(calls.len(), wire.len() - 1);
        for (i, &(have, read, need)) in calls.iter().enumerate() {
            assert_eq!((have, read), (i + 1, 1));
            match hello::parse_client_hello(&wire[..have]) {
                Err(HelloError::Incomplete { need: want, .. }) => assert_eq!(need, Some(want)),
                other => panic!("{have}: {other:?}"),
            }
        }
        assert!(
            cap.bytes.capacity() <= FIRST_READ,
            "{}",
            cap.bytes.capacity()
        );
    }

    #[tokio::test]
    async fn completes_on_a_hello_in_many_small_records() {
        for (size, piece) in [(1, 1), (1, 1000), (7, 3), (7, 4096), (100, 1)] {
            let wire = reframed(size);
            let (cap, _) = trickle(wire.clone(), piece).await;
            let CaptureEnd::Complete(hello) = &cap.end else {
                panic!("records of {size}, reads of {piece}: {:?}", cap.end);
            };
            assert_eq!(
                hello.records.len(),
                (hello_bytes().len() - 5).div_ceil(size)
            );
            assert_eq!(hello.wire_length, wire.len());
            assert_eq!(cap.bytes, wire);
            assert_eq!(
                hello.as_ref(),
                &hello::parse_client_hello(&wire).unwrap(),
                "records of {size}"
            );
        }
    }

    #[tokio::test]
    async fn completes_on_large_hellos_with_a_buffer_of_their_size() {
        for padding in [6_000, 14_500, 40_000, 63_000] {
            let wire = padded(padding);
            for piece in [1, 1460, usize::MAX] {
                let (cap, _) = trickle(wire.clone(), piece).await;
                assert!(
                    matches!(cap.end, CaptureEnd::Complete(_)),
                    "{} bytes in reads of {piece}: {:?}",
                    wire.len(),
                    cap.end
                );
                assert_eq!(cap.bytes, wire);
                // Grown once, to the length the headers announced.
                assert_eq!(cap.bytes.capacity(), wire.len());
            }
        }
    }

    #[tokio::test]
    async fn rejects_a_hello_whose_tiny_records_outgrow_the_capture() {
        // 20,000 handshake bytes in 1-byte records: six bytes on the wire each.
        let mut handshake = vec![1, 0, 0x4e, 0x20];
        handshake.resize(20_004, 0);
        let wire: Vec<u8> = handshake
            .iter()
            .flat_map(|&b| [22, 3, 1, 0, 1, b])
            .collect();
        for piece in [1, 1460, 16 * 1024] {
            let (cap, _) = trickle(wire.clone(), piece).await;
            let CaptureEnd::Rejected(HelloError::TooLarge { length, limit }) = cap.end else {
                panic!("{:?}", cap.end);
            };
            assert_eq!(limit, MAX_CAPTURE_BYTES);
            assert!(length > MAX_CAPTURE_BYTES);
            assert!(cap.bytes.len() <= MAX_CAPTURE_BYTES);
            assert!(cap.bytes.capacity() <= MAX_CAPTURE_BYTES);
            match hello::parse_client_hello(&cap.bytes) {
                Err(HelloError::Incomplete { need, .. }) => assert_eq!(need, length),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn completes_on_a_hello_split_over_reads() {
        let wire = hello_bytes();
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for piece in wire.chunks(100) {
                client.write_all(piece).await.unwrap();
            }
            client
        });
        let cap = read_client_hello(
            &mut server,
            Instant::now(),
            Duration::from_secs(5),
            |_, _, _| {},
        )
        .await;
        let _client = writer.await.unwrap();
        assert!(matches!(cap.end, CaptureEnd::Complete(_)), "{:?}", cap.end);
        assert_eq!(cap.bytes, hello_bytes());
        assert!(cap.read_count() >= 2);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_on_a_stalled_hello_and_says_what_was_missing() {
        let wire = hello_bytes();
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&wire[..1460]).await.unwrap();
        let cap = read_client_hello(
            &mut server,
            Instant::now(),
            Duration::from_secs(10),
            |_, _, _| {},
        )
        .await;
        assert_eq!(
            cap.end,
            CaptureEnd::TimedOut {
                need: Some(wire.len())
            }
        );
        assert_eq!(cap.bytes.len(), 1460);
        // About the hello's size held while it stalls, not 16 KiB + 4 KiB.
        assert!(
            cap.bytes.capacity() <= FIRST_READ,
            "{}",
            cap.bytes.capacity()
        );
        assert_eq!(cap.elapsed, Duration::from_secs(10));
        drop(client);
    }

    #[tokio::test]
    async fn reports_a_close_before_completion() {
        let wire = hello_bytes();
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&wire[..700]).await.unwrap();
        drop(client);
        let cap = read_client_hello(
            &mut server,
            Instant::now(),
            Duration::from_secs(5),
            |_, _, _| {},
        )
        .await;
        assert_eq!(
            cap.end,
            CaptureEnd::Closed {
                need: Some(wire.len())
            }
        );
    }

    #[tokio::test]
    async fn rejects_plain_http_at_once() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let cap = read_client_hello(
            &mut server,
            Instant::now(),
            Duration::from_secs(5),
            |_, _, _| {},
        )
        .await;
        assert!(matches!(
            cap.end,
            CaptureEnd::Rejected(HelloError::NotTls {
                kind: hello::NotTlsKind::PlainHttp
            })
        ));
    }
}
