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
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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

/// Reads from `io` until the buffered bytes are a complete ClientHello, cannot
/// become one, `deadline` passes, or the peer goes away. `accepted` is the
/// instant the connection was accepted; read times are relative to it.
/// `progress` hears of every read that leaves the hello incomplete (bytes so
/// far, this read's size, the total announced), so a stall is visible while
/// it lasts.
pub async fn read_client_hello<S>(
    io: &mut S,
    accepted: Instant,
    deadline: Duration,
    mut progress: impl FnMut(usize, usize, Option<usize>),
) -> HelloCapture
where
    S: AsyncRead + Unpin,
{
    let mut bytes = Vec::with_capacity(4096);
    let mut reads = Vec::new();
    let mut reads_not_logged = 0;
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline_at = accepted + deadline;

    let end = loop {
        let room = MAX_CAPTURE_BYTES - bytes.len();
        let want = room.min(chunk.len());
        let read = tokio::time::timeout_at(deadline_at, io.read(&mut chunk[..want])).await;
        let need = || needed(&bytes);
        match read {
            Err(_elapsed) => break CaptureEnd::TimedOut { need: need() },
            Ok(Ok(0)) => break CaptureEnd::Closed { need: need() },
            Ok(Err(err)) => {
                break CaptureEnd::Failed {
                    need: need(),
                    kind: err.kind(),
                    message: err.to_string(),
                }
            }
            Ok(Ok(n)) => {
                bytes.extend_from_slice(&chunk[..n]);
                if reads.len() < MAX_LOGGED_READS {
                    reads.push(ReadEvent {
                        at_ms: ms(accepted.elapsed()),
                        bytes: n,
                    });
                } else {
                    reads_not_logged += 1;
                }
                match hello::parse_client_hello(&bytes) {
                    Ok(hello) => break CaptureEnd::Complete(Box::new(hello)),
                    Err(HelloError::Incomplete { need, .. }) if need <= MAX_CAPTURE_BYTES => {
                        progress(bytes.len(), n, Some(need));
                        continue;
                    }
                    Err(HelloError::Incomplete { need, .. }) => {
                        break CaptureEnd::Rejected(HelloError::TooLarge {
                            length: need,
                            limit: MAX_CAPTURE_BYTES,
                        })
                    }
                    Err(other) => break CaptureEnd::Rejected(other),
                }
            }
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

fn needed(bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() {
        return None;
    }
    match hello::parse_client_hello(bytes) {
        Err(HelloError::Incomplete { need, .. }) => Some(need),
        _ => None,
    }
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
