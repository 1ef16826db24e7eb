//! Path probes: transfers of stepped sizes in both directions that reveal MTU
//! black holes, watched from the server's side through `TCP_INFO`.
//!
//! - [`payload`]: the incompressible bytes downloads are cut from, streamed
//!   without an allocation per chunk.
//! - [`watch`]: samples `TCP_INFO` while a download drains, and decides whether
//!   it completed or stalled.
//! - [`model`]: what was observed (server side) and reported (client side),
//!   merged per step; pure data the diagnosis reads.
//!
//! The HTTP handlers live in `web::probe`; the API is documented in
//! `docs/probes.md`.

pub mod model;
pub mod payload;
pub mod watch;

pub use model::{
    ClientResults, ClientStep, Direction, HttpsTry, PacketLimits, ProbeObservation, ProbeRun,
    StepView, TlsCheck, MAX_HTTPS_TRIES, MAX_RUN_MS,
};
pub use payload::{Payload, PayloadBody, Progress};

use std::time::Duration;

/// The default ladder: around the sizes where real paths break (1,200–1,500
/// for tunnels and PPPoE, 9,000 for jumbo-frame confusion) and a few large
/// ones that need many packets.
pub const LADDER: &[u64] = &[
    512, 1200, 1300, 1400, 1460, 1500, 2000, 4000, 9000, 16384, 65536, 1048576,
];

/// Largest probe in either direction.
pub const MAX_PROBE_BYTES: u64 = 16 * 1024 * 1024;

/// How long a client waits for one step before calling it failed (plus a
/// second per 128 KiB, for slow links): a stall is plain after a few
/// retransmission timeouts, and the whole run must end within seconds.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// No acknowledged progress for this long, with data outstanding, is a stall:
/// several retransmission timeouts, far beyond any healthy path's RTT.
pub const STALL_AFTER: Duration = Duration::from_secs(3);

/// A client's run id: 8 to 64 of `[A-Za-z0-9_-]`, so it is safe in logs and URLs.
pub fn valid_run_id(run: &str) -> bool {
    (8..=crate::attempt::MAX_RUN_ID_BYTES).contains(&run.len())
        && run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
