//! Gathers what the server knows about one client address for a diagnosis:
//! its recorded HTTPS attempts within a window, and the connections still
//! hanging (as provisional attempts), so a stalled ClientHello counts before
//! its timeout ends.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::AppState;
use crate::attempt::TlsAttempt;

/// The address's attempts that started within `within` of now, newest first:
/// connections still stuck right now come first.
pub(super) fn attempts(state: &AppState, ip: IpAddr, within: Duration) -> Vec<Arc<TlsAttempt>> {
    let cutoff = SystemTime::now()
        .checked_sub(within)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut out: Vec<Arc<TlsAttempt>> = state
        .inflight
        .snapshots(ip)
        .iter()
        .filter_map(|s| s.as_stalled_attempt())
        .map(Arc::new)
        .collect();
    out.extend(
        state
            .attempts
            .recent(ip)
            .into_iter()
            .filter(|a| a.started_at >= cutoff),
    );
    out
}

/// What to run for a test with full-size packets in both directions.
pub(super) fn how_to_test(plain_base: &str) -> String {
    format!(
        "Open {plain_base}/ in a browser, or run: curl -s {plain_base}/check.sh | sh \
         (both test over HTTPS, with full-size packets, in both directions)"
    )
}
