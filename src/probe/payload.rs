//! Probe payloads: one buffer of pseudo-random (so incompressible) bytes made at
//! startup, from which every download is sliced. A slice of a static `Bytes` is
//! a pointer and a length: serving a chunk allocates nothing.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// Size of the shared buffer and of the largest chunk handed to hyper. 64 KiB
/// keeps syscalls large without holding much per connection.
const BUFFER: usize = 1 << 20;
const CHUNK: usize = 64 * 1024;

/// The shared incompressible buffer.
#[derive(Debug, Clone)]
pub struct Payload(Bytes);

impl Payload {
    /// xorshift64* output: not cryptographic, but no compressor can shrink it,
    /// which is all a probe needs.
    pub fn generate() -> Self {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        let mut buf = Vec::with_capacity(BUFFER);
        while buf.len() < BUFFER {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            buf.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        // Leaked once per process so every slice is of a `'static` buffer:
        // cloning and slicing then never allocate.
        Self(Bytes::from_static(Box::leak(buf.into_boxed_slice())))
    }

    /// A body of exactly `len` bytes.
    pub fn body(&self, len: u64, progress: Option<Arc<Progress>>) -> PayloadBody {
        PayloadBody {
            buf: self.0.clone(),
            remaining: len,
            offset: 0,
            progress,
        }
    }
}

/// How far a download has got, shared with the watcher.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes handed to hyper (not yet necessarily sent or acknowledged).
    pub handed: AtomicU64,
    /// The last chunk was handed over, or the body was dropped.
    pub done: AtomicBool,
}

/// Streams slices of the payload until `remaining` reaches zero.
#[derive(Debug)]
pub struct PayloadBody {
    buf: Bytes,
    remaining: u64,
    offset: usize,
    progress: Option<Arc<Progress>>,
}

impl Body for PayloadBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            if let Some(p) = &self.progress {
                p.done.store(true, Ordering::Release);
            }
            return Poll::Ready(None);
        }
        let n = (self.remaining.min(CHUNK as u64) as usize).min(self.buf.len() - self.offset);
        let chunk = self.buf.slice(self.offset..self.offset + n);
        self.offset = (self.offset + n) % self.buf.len();
        self.remaining -= n as u64;
        if let Some(p) = &self.progress {
            p.handed.fetch_add(n as u64, Ordering::Relaxed);
            if self.remaining == 0 {
                p.done.store(true, Ordering::Release);
            }
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl Drop for PayloadBody {
    fn drop(&mut self) {
        if let Some(p) = &self.progress {
            p.done.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn streams_exactly_the_requested_length() {
        let payload = Payload::generate();
        for len in [0u64, 1, 1460, BUFFER as u64, BUFFER as u64 * 3 + 17] {
            let body = payload.body(len, None);
            let bytes = body.collect().await.unwrap().to_bytes();
            assert_eq!(bytes.len() as u64, len);
        }
    }

    #[test]
    fn does_not_compress() {
        // Distinct byte values in the first 64 KiB: a compressible buffer would
        // be dominated by a few.
        let payload = Payload::generate();
        let mut seen = [0u32; 256];
        for b in &payload.0[..65536] {
            seen[usize::from(*b)] += 1;
        }
        let max = *seen.iter().max().unwrap();
        assert!(max < 400, "byte distribution too skewed: {max}");
    }
}
