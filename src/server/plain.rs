//! The plain-HTTP port: the same reports without TLS, so a client whose HTTPS is
//! broken can still see what happened to its attempts. Never a blind redirect.
//! Its MSS is clamped so its answers cross a broken path; for the same reason
//! nothing measured over it can speak for full-size packets.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::Shared;
use crate::web::ConnectionContext;

pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let tcp = super::tcp_facts(&stream, shared.config.report_mss);
    super::http::serve(
        stream,
        ConnectionContext::Plain { peer, local },
        tcp,
        &shared,
    )
    .await;
}
