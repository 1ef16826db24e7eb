//! The plain-HTTP port: the same reports without TLS, so a client whose HTTPS is
//! broken can still see what happened to its attempts. Never a blind redirect.
//! Its MSS is clamped so its answers cross a broken path; for the same reason
//! nothing measured over it can speak for full-size packets.

use std::net::SocketAddr;
use std::sync::Arc;

use super::activity::Activity;
use super::socket::Socket;
use super::Shared;
use crate::proxy::Peer;
use crate::web::ConnectionContext;

pub(super) async fn serve(
    stream: Socket,
    peer: Peer,
    local: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) {
    let clamp = shared.config.report_mss;
    serve_clamped(stream, peer, local, activity, shared, clamp).await;
}

/// The optional probe listener: the same application with full-size packets,
/// for a path test when HTTPS fails outright.
pub(super) async fn serve_full_size(
    stream: Socket,
    peer: Peer,
    local: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) {
    serve_clamped(stream, peer, local, activity, shared, None).await;
}

async fn serve_clamped(
    stream: Socket,
    peer: Peer,
    local: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
    clamp: Option<u32>,
) {
    let _ = stream.stream().set_nodelay(true);
    let mut tcp = super::tcp_facts(&stream, clamp, peer.via.is_some());
    // What we announced, before anything this connection carries can teach
    // us a smaller path MTU: a probe upload's packets are only as large as this.
    tcp.our_mss_at_start = tcp
        .handle
        .as_ref()
        .and_then(|h| h.info())
        .map(|t| t.advmss)
        .filter(|&m| m > 0);
    super::http::serve(
        stream,
        ConnectionContext::Plain {
            peer: peer.client,
            local,
            via: peer.via,
        },
        tcp,
        None,
        activity,
        &shared,
    )
    .await;
}
