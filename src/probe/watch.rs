//! Watches a download drain through `TCP_INFO`: completed when everything handed
//! over is acknowledged, stalled when acknowledgements stop while data is
//! outstanding (the server keeps retransmitting full-size segments that never
//! arrive: a black hole toward the client).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::model::{TcpSample, WatchResult};
use super::Progress;
use crate::tcp::{TcpHandle, TcpInfo};

const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Samples kept per probe; beyond it every other one is dropped.
const MAX_SAMPLES: usize = 64;

/// Samples until the transfer completes, stalls, or `deadline` passes.
/// `before` must be taken before the body is handed to hyper: on a fast path
/// the whole transfer is acknowledged before this task first runs.
pub async fn download(
    handle: TcpHandle,
    before: Option<TcpInfo>,
    progress: Arc<Progress>,
    stall_after: Duration,
    deadline: Duration,
) -> WatchResult {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut last_acked = 0u64;
    // Samples start at once: on a fast path the first is also the last.
    let mut first = true;
    let mut last_progress = start;
    let mut after = before;
    let (completed, stalled) = loop {
        if !first {
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        first = false;
        let Some(now) = handle.info() else {
            break (false, false);
        };
        after = Some(now);
        let acked = delta(before.as_ref(), &now, |t| t.bytes_acked);
        if acked > last_acked {
            last_acked = acked;
            last_progress = Instant::now();
        }
        push(&mut samples, start, acked, &now);
        let handed_all = progress.done.load(Ordering::Acquire);
        if handed_all && now.unacked == 0 && now.notsent_bytes == 0 {
            break (true, false);
        }
        if now.unacked > 0 && last_progress.elapsed() >= stall_after {
            break (false, true);
        }
        if start.elapsed() >= deadline {
            break (false, false);
        }
    };
    let handed = progress.handed.load(Ordering::Relaxed);
    WatchResult {
        completed,
        stalled,
        // A completed transfer had everything acknowledged, whatever else the
        // connection carried meanwhile.
        acked: if completed {
            handed
        } else {
            last_acked.min(handed)
        },
        handed,
        duration_ms: crate::capture::ms(start.elapsed()),
        before,
        after,
        samples,
    }
}

fn delta(before: Option<&TcpInfo>, now: &TcpInfo, field: impl Fn(&TcpInfo) -> u64) -> u64 {
    field(now).saturating_sub(before.map_or(0, &field))
}

fn push(samples: &mut Vec<TcpSample>, start: Instant, acked: u64, now: &TcpInfo) {
    if samples.len() >= MAX_SAMPLES {
        // Halve the resolution rather than stop recording the tail.
        let mut keep = false;
        samples.retain(|_| {
            keep = !keep;
            keep
        });
    }
    samples.push(TcpSample {
        at_ms: crate::capture::ms(start.elapsed()),
        acked,
        unacked: now.unacked,
        retransmits: now.retransmits,
        total_retrans: now.total_retrans,
    });
}
