//! Consuming a PROXY header from a fresh connection: exactly its bytes, no
//! more, so the capture that follows sees only what the client sent. A v2
//! header announces its length; a v1 line is peeked at and consumed up to
//! its end. Bounded in bytes ([`super::V1_MAX`], [`super::V2_MAX`]) and in
//! time (the caller's deadline; a balancer sends the header at once).

use std::time::Duration;

use tokio::net::TcpStream;

use super::header::{self, Decoded, Frame};
use super::ProxyError;

/// How long a connection may take to deliver its header (capped by
/// `--hello-timeout`): a balancer writes it as soon as it connects.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads and decodes the header at the start of `stream` within `deadline`;
/// returns it and its length in bytes.
pub async fn read_header(
    stream: &TcpStream,
    deadline: Duration,
) -> Result<(Decoded, usize), ProxyError> {
    match tokio::time::timeout(deadline, read(stream)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::Timeout(deadline)),
    }
}

async fn read(stream: &TcpStream) -> Result<(Decoded, usize), ProxyError> {
    let mut have: Vec<u8> = Vec::with_capacity(header::V1_MAX);
    loop {
        let next = match header::frame(&have) {
            Err(ProxyError::Missing(_)) => {
                // Name what the connection does start with, for the log.
                let mut first = [0u8; 16];
                first[..have.len().min(16)].copy_from_slice(&have[..have.len().min(16)]);
                let more = stream
                    .peek(&mut first[have.len().min(16)..])
                    .await
                    .unwrap_or(0);
                let shown = &first[..(have.len() + more).min(16)];
                return Err(ProxyError::Missing(header::describe(shown)));
            }
            other => other?,
        };
        match next {
            Frame::Complete(n) => return header::decode(&have[..n]).map(|d| (d, n)),
            Frame::Exactly(more) => read_exact(stream, &mut have, more).await?,
            Frame::Line { at_most } => {
                let mut window = [0u8; header::V1_MAX];
                let at_most = at_most.min(window.len());
                let peeked = stream
                    .peek(&mut window[..at_most])
                    .await
                    .map_err(|e| ProxyError::Io(e.to_string()))?;
                if peeked == 0 {
                    return Err(ProxyError::Closed(have.len()));
                }
                // Up to the line's end, or all of it: every byte before the
                // end is header. The peeked bytes are already here, so the
                // read below takes them at once.
                let take = window[..peeked]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(peeked, |end| end + 1);
                read_exact(stream, &mut have, take).await?;
            }
        }
    }
}

/// Appends exactly `n` more bytes from `stream` to `buf`.
async fn read_exact(stream: &TcpStream, buf: &mut Vec<u8>, n: usize) -> Result<(), ProxyError> {
    let target = buf.len() + n;
    while buf.len() < target {
        stream
            .readable()
            .await
            .map_err(|e| ProxyError::Io(e.to_string()))?;
        let start = buf.len();
        buf.resize(target, 0);
        match stream.try_read(&mut buf[start..]) {
            Ok(0) => {
                buf.truncate(start);
                return Err(ProxyError::Closed(start));
            }
            Ok(k) => buf.truncate(start + k),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => buf.truncate(start),
            Err(e) => {
                buf.truncate(start);
                return Err(ProxyError::Io(e.to_string()));
            }
        }
    }
    Ok(())
}
