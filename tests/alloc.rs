//! Serving a probe allocates nothing per chunk: streaming 16 MiB costs the same
//! number of allocations as streaming 64 KiB (a counting global allocator).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use hyper::body::Body;
use tlsdiag::probe::{Payload, Progress};

mod counting_alloc;

/// Allocations made while draining a body of `len` bytes; returns (allocs, chunks).
fn drain(payload: &Payload, len: u64) -> (usize, usize) {
    let progress = Arc::new(Progress::default());
    let mut body = payload.body(len, Some(progress));
    let mut cx = Context::from_waker(Waker::noop());
    let before = counting_alloc::allocations();
    let mut chunks = 0;
    let mut total = 0u64;
    while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
        let frame = frame.unwrap();
        total += frame.data_ref().map_or(0, |d| d.len() as u64);
        chunks += 1;
    }
    let after = counting_alloc::allocations();
    assert_eq!(total, len);
    (after - before, chunks)
}

#[test]
fn streaming_a_probe_allocates_nothing_per_chunk() {
    let payload = Payload::generate();
    let (small_allocs, small_chunks) = drain(&payload, 64 * 1024);
    let (big_allocs, big_chunks) = drain(&payload, 16 * 1024 * 1024);
    assert!(
        big_chunks >= 256 * small_chunks,
        "{big_chunks} vs {small_chunks} chunks"
    );
    assert_eq!(
        big_allocs, small_allocs,
        "allocations grew with the number of chunks"
    );
    assert_eq!(big_allocs, 0, "a chunk is a slice of the shared buffer");
}
