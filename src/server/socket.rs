//! A connection's socket as the server holds it: the stream, and its one
//! descriptor lent to `TCP_INFO` readers (reports, samplers, the ICMP test).
//! No duplicate descriptor: a connection costs one. When the connection
//! ends while a reader still holds a handle (a probe download's sampler
//! waiting for the last ACK), the descriptor passes to the handles and
//! closes with the last of them, as a duplicate would have.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::os::fd::AsFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::sys::SharedFd;
use crate::tcp::TcpHandle;

/// An accepted TCP stream whose `TCP_INFO` can be read from other tasks.
#[derive(Debug)]
pub(crate) struct Socket {
    /// Always present until `drop` takes it.
    stream: Option<TcpStream>,
    fd: Arc<SharedFd>,
}

impl Socket {
    pub fn new(stream: TcpStream) -> Self {
        let fd = Arc::new(SharedFd::new(stream.as_fd()));
        Self {
            stream: Some(stream),
            fd,
        }
    }

    /// A handle for `TCP_INFO` that answers `None` once this socket has closed.
    pub fn handle(&self) -> TcpHandle {
        TcpHandle::new(self.fd.clone())
    }

    pub fn stream(&self) -> &TcpStream {
        self.stream.as_ref().expect("present until drop")
    }

    fn io(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.stream.as_mut().expect("present until drop"))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // First, before anything can close the descriptor: from here on no
        // reader uses its number, which the kernel may hand out again.
        self.fd.close();
        let Some(stream) = self.stream.take() else {
            return;
        };
        if Arc::strong_count(&self.fd) > 1 {
            if let Ok(stream) = stream.into_std() {
                self.fd.keep(std::os::fd::OwnedFd::from(stream));
            }
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream().is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}
