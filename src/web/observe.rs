//! Gathers what the server knows about one client address for a diagnosis:
//! its recorded HTTPS attempts within a window (this instance's, and with
//! `--database-url` those other instances saw), and the connections still
//! hanging here (as provisional attempts), so a stalled ClientHello counts
//! before its timeout ends.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::AppState;
use crate::attempt::TlsAttempt;
use crate::report::SharedAttemptsView;

/// Attempts other instances saw, as read for one request.
#[derive(Debug, Default)]
pub(super) enum Shared {
    /// No shared store: this instance is the only one.
    #[default]
    Off,
    Read(Vec<Arc<TlsAttempt>>),
    /// The shared store could not be read; why, in a sentence for users.
    Unavailable(&'static str),
}

/// Reads what other instances saw from `ip` in the recent window (one query,
/// under a deadline).
pub(super) async fn shared(state: &AppState, ip: IpAddr) -> Shared {
    let Some(store) = &state.shared_attempts else {
        return Shared::Off;
    };
    let since = SystemTime::now()
        .checked_sub(state.attempts_ttl())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    match store.fetch(ip, since).await {
        Ok(attempts) => Shared::Read(attempts),
        Err(err) => {
            // The writer warns about the database; a line per report would not help.
            tracing::debug!(error = %err, "shared attempts cannot be read");
            Shared::Unavailable(err.public_message())
        }
    }
}

impl Shared {
    /// What a report says about it: `None` without a shared store.
    pub(super) fn view(&self, state: &AppState) -> Option<SharedAttemptsView> {
        let instance = state.instance.to_string();
        match self {
            Shared::Off => None,
            Shared::Read(_) => Some(SharedAttemptsView {
                instance,
                available: true,
                error: None,
            }),
            Shared::Unavailable(why) => Some(SharedAttemptsView {
                instance,
                available: false,
                error: Some((*why).to_owned()),
            }),
        }
    }
}

/// One of the address's attempts (in flight or recorded, within
/// `--attempts-ttl`) by its id: another address's id is not found.
pub(super) fn own_attempt(
    state: &AppState,
    ip: IpAddr,
    id: u64,
    shared: &Shared,
) -> Option<Arc<TlsAttempt>> {
    attempts(state, ip, state.attempts_ttl(), shared)
        .into_iter()
        .find(|a| a.id == id)
}

/// The address's attempts that started within `within` of now, newest first:
/// connections still stuck right now come first, then the recorded attempts
/// of this instance and of the others, by start time.
pub(super) fn attempts(
    state: &AppState,
    ip: IpAddr,
    within: Duration,
    shared: &Shared,
) -> Vec<Arc<TlsAttempt>> {
    seen(state, ip, within, shared).attempts
}

/// An address's attempts as read once, for lists over shorter windows.
pub(super) struct Seen {
    /// Those still in flight first, then the recorded ones, newest first.
    attempts: Vec<Arc<TlsAttempt>>,
    in_flight: usize,
}

impl Seen {
    /// Those that started within `window` of `now`; a connection still stuck
    /// counts however long it has waited.
    pub fn within(
        &self,
        now: SystemTime,
        window: Duration,
    ) -> impl Iterator<Item = Arc<TlsAttempt>> + '_ {
        let cutoff = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        self.attempts
            .iter()
            .enumerate()
            .filter(move |(i, a)| *i < self.in_flight || a.started_at >= cutoff)
            .map(|(_, a)| a.clone())
    }
}

/// As [`attempts`], kept for [`Seen::within`].
pub(super) fn seen(state: &AppState, ip: IpAddr, within: Duration, shared: &Shared) -> Seen {
    let cutoff = SystemTime::now()
        .checked_sub(within)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut out: Vec<Arc<TlsAttempt>> = state
        .inflight
        .snapshots(ip)
        .iter()
        .filter_map(|s| s.as_stalled_attempt())
        .map(|mut a| {
            a.seen_by = Some(state.instance.clone());
            Arc::new(a)
        })
        .collect();
    let in_flight = out.len();
    let mut recorded: Vec<Arc<TlsAttempt>> = state.attempts.recent(ip);
    if let Shared::Read(others) = shared {
        recorded.extend(others.iter().cloned());
        // Stable: this instance's own order holds among equal times.
        recorded.sort_by_key(|a| std::cmp::Reverse(a.started_at));
    }
    out.extend(recorded.into_iter().filter(|a| a.started_at >= cutoff));
    Seen {
        attempts: out,
        in_flight,
    }
}

/// What to run for a test with full-size packets in both directions.
pub(super) fn how_to_test(plain_base: &str) -> String {
    format!(
        "Open {plain_base}/ in a browser, or run: curl -s {plain_base}/check.sh | sh \
         (both test over HTTPS, with full-size packets, in both directions)"
    )
}
