//! One connection to the HTTPS port: capture the ClientHello, hand the same bytes
//! to rustls, record the attempt whatever happens, then serve HTTP on success.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::activity::Activity;
use super::http::Follow;
use super::socket::Socket;
use super::Shared;
use crate::attempt::{
    self, AfterHandshake, Arrival, Balancer, HandshakeError, Negotiated, Outcome, SentData,
    TlsAttempt,
};
use crate::capture::{self, CaptureEnd, PrefixedIo};
use crate::hello::error::{HelloError, NotTlsKind};
use crate::hello::wire::{CipherSuite, NamedGroup, ProtocolVersion};
use crate::inflight::Stage;
use crate::proxy::{Peer, Via};
use crate::web::ConnectionContext;

/// The TLS stream rustls hands back, over the replayed capture.
type TlsStream = tokio_rustls::server::TlsStream<PrefixedIo<Socket>>;

/// One connection: its handshake (capture, rustls, the attempt record), then,
/// if it completed, its HTTP.
///
/// Two phases in two futures, the first boxed and freed when it ends: an
/// idle keep-alive connection holds only the (much smaller) HTTP phase.
pub(super) async fn serve(
    stream: Socket,
    peer: Peer,
    local: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) {
    let http = Box::pin(establish(stream, peer, local, activity, &shared)).await;
    if let Some(http) = http {
        http.await;
    }
}

/// A completed handshake's HTTP, ready to run.
type Http = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Capture → handshake → record; the HTTP phase to run next, if the
/// handshake completed.
async fn establish(
    stream: Socket,
    who: Peer,
    local: SocketAddr,
    activity: Arc<Activity>,
    shared: &Shared,
) -> Option<Http> {
    let accepted = Instant::now();
    let started_at = SystemTime::now();
    let _ = stream.stream().set_nodelay(true);
    let peer = who.client;
    // Behind a balancer there are no TCP facts of the client's: no SYN, no
    // `TCP_INFO` handle, hence no ICMP test and no stall signature.
    let tcp = super::tcp_facts(&stream, None, who.via.is_some());
    let id = shared.next_id();
    // Visible to reports while it lasts; gone once the attempt is recorded.
    let pending = shared.state.inflight.register(
        id,
        (peer, local),
        (tcp.handle.clone(), tcp.syn.clone()),
        (accepted, started_at),
    );
    let mut stream = stream;
    let connection = super::rescue::Connection {
        accepted,
        peer,
        local,
        handle: tcp.handle.as_ref(),
        syn: tcp.syn.as_deref(),
    };
    let (mut capture, icmp_probe) =
        super::rescue::capture_hello(&mut stream, connection, shared, &pending).await;
    // The kernel's view at the moment capture ended: for a stalled hello, the
    // out-of-order and retransmission counters are the black-hole signature.
    let tcp_at_capture = tcp.handle.as_ref().and_then(|h| h.info());
    // What we asked the client to send at most, and whether a path MTU our
    // kernel learned toward it earlier is why it was less than it offered.
    let our_mss = tcp_at_capture.as_ref().and_then(|info| {
        crate::attempt::OurMss::of(
            info,
            tcp.syn.as_deref(),
            peer.ip().to_canonical().is_ipv4(),
            || shared.state.path_memory.link_mtu(peer.ip()),
        )
    });
    // The balancer's, shown as such and judged by no rule.
    let balancer = who.via.map(|via| {
        Box::new(Balancer {
            via: Via::clone(&via),
            tcp_at_capture: stream.handle().info(),
        })
    });

    let complete = matches!(capture.end, CaptureEnd::Complete(_));
    let received = capture.bytes.len();
    // What the attempt keeps: the hello as it arrived, or the first bytes of
    // what did not become one.
    let keep = match &capture.end {
        CaptureEnd::Complete(hello) => hello.wire_length,
        _ => attempt::KEPT_BYTES_OF_FAILED_ATTEMPT,
    }
    .min(received);
    let mut captured = std::mem::take(&mut capture.bytes);
    let judge = |raw: &[u8], handshake: Option<&HandshakeError>| {
        attempt::classify(
            &capture.end,
            raw,
            handshake,
            &shared.state.profile(),
            tcp_at_capture.as_ref(),
        )
    };
    let (tls, outcome, raw, handshake_ms) = if complete {
        // rustls replays the capture buffer itself; the record keeps its own
        // copy of the hello, at the hello's size.
        let raw = captured[..keep].to_vec();
        pending.pending().set_stage(Stage::Handshaking);
        let (tls, error) = handshake(captured, stream, shared).await;
        let handshake_ms = capture::ms(accepted.elapsed());
        (tls, judge(&raw, error.as_ref()), raw, Some(handshake_ms))
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
        // Judged on everything received (a stalled hello's size), then kept
        // within its bound and at its size, not the capture buffer's.
        let outcome = judge(&captured, None);
        captured.truncate(keep);
        captured.shrink_to_fit();
        (None, outcome, captured, None)
    };
    // Our flight as the handshake ended: for a client that went silent, how
    // much of our ServerHello and certificate it ever acknowledged.
    let handshake_flight = tcp
        .handle
        .as_ref()
        .filter(|_| complete)
        .and_then(|h| h.info())
        .map(|info| SentData::from_tcp(&info));
    let negotiated = tls.as_ref().and_then(|tls| negotiated(tls.get_ref().1));
    let arrival = Arrival {
        bytes: received,
        read_count: capture.read_count(),
        reads: capture.reads,
        capture_ms: capture::ms(capture.elapsed),
    };
    let hello = match capture.end {
        CaptureEnd::Complete(hello) => Some(*hello),
        _ => None,
    };
    let record = TlsAttempt {
        id,
        peer,
        local,
        started_at,
        arrival,
        raw,
        fingerprint_cache: Default::default(),
        client_hello: hello,
        negotiated,
        handshake_ms,
        outcome,
        syn: tcp.syn.clone(),
        tcp: tcp_at_capture,
        our_mss,
        handshake_flight,
        after_handshake: AfterHandshake::default(),
        icmp_probe,
        first_request: Default::default(),
        run: Default::default(),
        seen_by: Some(shared.state.instance.clone()),
        balancer,
    };
    // A balancer's health check (PROXY v2 LOCAL) that sent nothing more is
    // the balancer probing the port, not a client's attempt.
    let health_probe = record.balancer.as_ref().is_some_and(|b| {
        b.via.kind == crate::proxy::ViaKind::HealthCheck && record.arrival.bytes == 0
    });
    let record = Arc::new(record);
    if health_probe {
        tracing::debug!(balancer = %record.peer, "load balancer health check (PROXY LOCAL), not recorded");
    } else {
        log(&record);
        shared.state.metrics.attempt(&record);
        shared.state.attempts.record(record.clone());
        if let Some(store) = &shared.state.shared_attempts {
            // A queue push, never a wait: the writer task does the database work.
            store.offer(&record);
        }
    }
    drop(pending);

    let tls = tls?;
    // Behind a balancer there is no handle of the client's, and nothing to follow.
    let follow = tcp.handle.clone().map(|handle| Follow {
        after: record.after_handshake.clone(),
        handle,
    });
    let context = ConnectionContext::Tls(record);
    Some(super::http::serve(
        tls, context, tcp, follow, activity, shared,
    ))
}

/// Hands rustls the captured bytes, then the rest of the connection.
async fn handshake(
    captured: Vec<u8>,
    stream: Socket,
    shared: &Shared,
) -> (Option<TlsStream>, Option<HandshakeError>) {
    let io = PrefixedIo::new(captured, stream);
    match tokio::time::timeout(shared.config.handshake_timeout, shared.acceptor.accept(io)).await {
        Ok(Ok(tls)) => (Some(tls), None),
        Ok(Err(err)) => (None, Some(HandshakeError::from_io(&err))),
        Err(_) => (None, Some(HandshakeError::Timeout)),
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
    use tracing::Level;
    let succeeded = a.succeeded();
    // A completed handshake logs at debug: the common case, and a line per
    // handshake would cost a busy server more than the capture itself (the
    // attempt is in the store and the reports either way). The fields are
    // worked out only when the line is written: JA4 alone is a hash of the
    // whole hello.
    let enabled = if succeeded {
        tracing::enabled!(target: "tlsdiag::attempt", Level::DEBUG)
    } else {
        tracing::enabled!(target: "tlsdiag::attempt", Level::WARN)
    };
    if !enabled {
        return;
    }
    let outcome = match &a.outcome {
        Outcome::Completed => "completed".to_owned(),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    };
    let sni = a.client_hello.as_ref().and_then(|h| h.sni()).unwrap_or("");
    let ja4 = a.fingerprints().map_or("", |f| f.ja4.as_str());
    let balancer = a.balancer.as_ref().map(|b| b.via.balancer.to_string());
    let balancer = balancer.as_deref().unwrap_or("");
    if succeeded {
        tracing::debug!(
            target: "tlsdiag::attempt",
            id = a.id, peer = %a.peer, balancer, %outcome, sni, ja4,
            hello_bytes = a.arrival.bytes, reads = a.arrival.read_count,
            "TLS attempt"
        );
    } else {
        tracing::warn!(
            target: "tlsdiag::attempt",
            id = a.id, peer = %a.peer, balancer, %outcome, sni, ja4,
            bytes = a.arrival.bytes, reads = a.arrival.read_count,
            "TLS attempt failed"
        );
    }
}
