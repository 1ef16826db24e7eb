//! One connection to the HTTPS port: capture the ClientHello, hand the same bytes
//! to rustls, record the attempt whatever happens, then serve HTTP on success.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::Shared;
use crate::attempt::{self, Arrival, HandshakeError, Negotiated, Outcome, TlsAttempt};
use crate::capture::{self, CaptureEnd, PrefixedIo};
use crate::fingerprint::Fingerprints;
use crate::hello::error::{HelloError, NotTlsKind};
use crate::hello::wire::{CipherSuite, NamedGroup, ProtocolVersion};
use crate::web::ConnectionContext;

pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
) {
    let accepted = Instant::now();
    let started_at = SystemTime::now();
    let _ = stream.set_nodelay(true);
    let tcp = super::tcp_facts(&stream);
    let mut stream = stream;
    let capture =
        capture::read_client_hello(&mut stream, accepted, shared.config.hello_timeout).await;
    // The kernel's view at the moment capture ended: for a stalled hello, the
    // out-of-order and retransmission counters are the black-hole signature.
    let tcp_at_capture = tcp.handle.as_ref().and_then(|h| h.info());

    let hello = match &capture.end {
        CaptureEnd::Complete(hello) => Some(hello.as_ref().clone()),
        _ => None,
    };
    let arrival = Arrival {
        bytes: capture.bytes.len(),
        read_count: capture.read_count(),
        reads: capture.reads.clone(),
        capture_ms: capture::ms(capture.elapsed),
    };

    let (tls_stream, handshake_error) = if hello.is_some() {
        let io = PrefixedIo::new(capture.bytes.clone(), stream);
        match tokio::time::timeout(shared.config.handshake_timeout, shared.acceptor.accept(io))
            .await
        {
            Ok(Ok(tls)) => (Some(tls), None),
            Ok(Err(err)) => (None, Some(HandshakeError::from_io(&err))),
            Err(_) => (None, Some(HandshakeError::Timeout)),
        }
    } else {
        if matches!(
            capture.end,
            CaptureEnd::Rejected(HelloError::NotTls {
                kind: NotTlsKind::PlainHttp
            })
        ) {
            let _ = stream.write_all(plain_http_answer(local).as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        (None, None)
    };
    let handshake_ms = hello.as_ref().map(|_| capture::ms(accepted.elapsed()));
    let outcome = attempt::classify(
        &capture.end,
        &capture.bytes,
        handshake_error.as_ref(),
        &shared.state.profile,
        tcp_at_capture.as_ref(),
    );
    let negotiated = tls_stream
        .as_ref()
        .and_then(|tls| negotiated(tls.get_ref().1));

    let mut raw = capture.bytes;
    let keep = hello
        .as_ref()
        .map_or(attempt::KEPT_BYTES_OF_FAILED_ATTEMPT, |h| h.wire_length);
    raw.truncate(keep);
    let record = TlsAttempt {
        id: shared.next_id(),
        peer,
        local,
        started_at,
        arrival,
        raw,
        fingerprints: hello.as_ref().map(Fingerprints::of),
        client_hello: hello,
        negotiated,
        handshake_ms,
        outcome,
        syn: tcp.syn.as_deref().cloned(),
        tcp: tcp_at_capture,
    };
    log(&record);
    let record = Arc::new(record);
    shared.state.attempts.record(record.clone());

    if let Some(tls) = tls_stream {
        super::http::serve(tls, ConnectionContext::Tls(record), tcp, &shared).await;
    }
}

fn negotiated(conn: &rustls::ServerConnection) -> Option<Negotiated> {
    Some(Negotiated {
        version: ProtocolVersion(u16::from(conn.protocol_version()?)),
        cipher_suite: CipherSuite(u16::from(conn.negotiated_cipher_suite()?.suite())),
        key_exchange_group: conn
            .negotiated_key_exchange_group()
            .map(|g| NamedGroup(u16::from(g.name()))),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    })
}

/// What a browser shows when someone types http:// with the HTTPS port: better
/// than a reset, and it points at the plain-HTTP report.
fn plain_http_answer(local: SocketAddr) -> String {
    let body = format!(
        "This port ({}) speaks HTTPS, and your client sent plain HTTP.\r\n\
         Use https://, or open the plain-HTTP report on the HTTP port.\r\n",
        local.port()
    );
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn log(a: &TlsAttempt) {
    let outcome = match &a.outcome {
        Outcome::Completed => "completed".to_owned(),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    };
    let sni = a.client_hello.as_ref().and_then(|h| h.sni()).unwrap_or("");
    let ja4 = a.fingerprints.as_ref().map_or("", |f| f.ja4.as_str());
    if a.succeeded() {
        tracing::info!(
            target: "tlsdiag::attempt",
            id = a.id, peer = %a.peer, %outcome, sni, ja4,
            hello_bytes = a.arrival.bytes, reads = a.arrival.read_count,
            "TLS attempt"
        );
    } else {
        tracing::warn!(
            target: "tlsdiag::attempt",
            id = a.id, peer = %a.peer, %outcome, sni, ja4,
            bytes = a.arrival.bytes, reads = a.arrival.read_count,
            "TLS attempt failed"
        );
    }
}
