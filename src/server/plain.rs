//! The plain-HTTP port: the same reports without TLS, so a client whose HTTPS is
//! broken can still see what happened to its attempts. Never a blind redirect.

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
    let tcp = super::tcp_facts(&stream);
    super::http::serve(
        stream,
        ConnectionContext::Plain { peer, local },
        tcp,
        &shared,
    )
    .await;
}
