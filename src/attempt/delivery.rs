//! What became of the bytes we sent on one HTTPS connection: our handshake
//! flight, and everything after it. A handshake that completes proves only that
//! the small packets got through; the report that follows needs full-size ones,
//! and a path that drops them toward the client is invisible unless someone
//! looks. `TCP_INFO` says how much of what we wrote the client acknowledged,
//! how often we resent it, and how long ago the last acknowledgement came.
//!
//! Pure data and classification; the server takes the snapshots.

use std::sync::{Arc, Mutex};

use serde::{Serialize, Serializer};

use crate::tcp::TcpInfo;

/// No acknowledgement for this long, with data outstanding and resent at least
/// once: stalled. Several retransmission timeouts, far beyond any healthy RTT
/// (the same bar as the probes' [`crate::probe::STALL_AFTER`]).
pub const STALL_AFTER_MS: u32 = 3000;

/// How what we sent has fared so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Everything written was acknowledged.
    Delivered,
    /// Data outstanding, resent, and no acknowledgement for
    /// [`STALL_AFTER_MS`]: the client is not receiving our packets.
    Stalled,
    /// Data outstanding, but not (yet) a stall.
    InFlight,
}

/// One snapshot of our sending side, cumulative from the connection's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SentData {
    /// Bytes we wrote (TLS records, headers included).
    pub written: u64,
    /// Of those, acknowledged by the client.
    pub acknowledged: u64,
    /// Segments we had to send again.
    pub retransmissions: u32,
    /// Our segment size toward the client, and the path MTU the kernel knows
    /// (lowered only if an ICMP "too big" reached us).
    pub segment_bytes: u32,
    pub path_mtu: u32,
    /// Milliseconds since the client last acknowledged anything.
    pub since_last_ack_ms: u32,
    pub fate: Fate,
}

impl SentData {
    pub fn from_tcp(info: &TcpInfo) -> Self {
        let written = info.bytes_written();
        let acknowledged = info.bytes_acked.min(written);
        let outstanding = written - acknowledged;
        let fate = if outstanding == 0 {
            Fate::Delivered
        } else if info.total_retrans > 0 && info.last_ack_recv_ms >= STALL_AFTER_MS {
            Fate::Stalled
        } else {
            Fate::InFlight
        };
        Self {
            written,
            acknowledged,
            retransmissions: info.total_retrans,
            segment_bytes: info.snd_mss,
            path_mtu: info.pmtu,
            since_last_ack_ms: info.last_ack_recv_ms,
            fate,
        }
    }

    /// What was written after `earlier` (bytes and acknowledgements counted
    /// from then; the rest as of this snapshot).
    pub fn since(&self, earlier: &SentData) -> SentData {
        SentData {
            written: self.written.saturating_sub(earlier.written),
            acknowledged: self.acknowledged.saturating_sub(earlier.written),
            retransmissions: self.retransmissions.saturating_sub(earlier.retransmissions),
            ..*self
        }
    }

    pub fn stalled(&self) -> bool {
        self.fate == Fate::Stalled
    }
}

/// What we sent after the handshake, as last seen. Shared between the
/// connection's task, which updates it, and the attempt record that reports
/// read, so a stall shows up while the connection still hangs.
#[derive(Debug, Clone, Default)]
pub struct AfterHandshake(Arc<Mutex<Option<SentData>>>);

impl AfterHandshake {
    pub fn get(&self) -> Option<SentData> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a snapshot. A stall, once seen, is kept until a later snapshot
    /// shows everything delivered: a reset connection's last word is not
    /// allowed to hide why it was reset.
    pub fn update(&self, now: SentData) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let keep_stall = matches!(*slot, Some(old) if old.stalled()) && now.fate != Fate::Delivered;
        if !keep_stall {
            *slot = Some(now);
        }
    }
}

impl Serialize for AfterHandshake {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `written` unique bytes, `retrans` full segments of them resent.
    fn info(written: u64, acked: u64, retrans: u32, last_ack: u32) -> TcpInfo {
        TcpInfo {
            bytes_sent: written + u64::from(retrans) * 1448,
            bytes_retrans: u64::from(retrans) * 1448,
            bytes_acked: acked,
            total_retrans: retrans,
            last_ack_recv_ms: last_ack,
            snd_mss: 1448,
            ..TcpInfo::default()
        }
    }

    #[test]
    fn everything_acknowledged_is_delivered() {
        assert_eq!(
            SentData::from_tcp(&info(5120, 5120, 0, 10)).fate,
            Fate::Delivered
        );
    }

    #[test]
    fn outstanding_resent_and_silent_is_a_stall() {
        // 1,228 of 5,120 acknowledged, the next segment resent 4 times, no ACK for 4 s.
        let s = SentData::from_tcp(&info(5120, 1228, 4, 4000));
        assert_eq!(s.written, 5120);
        assert_eq!(s.acknowledged, 1228);
        assert!(s.stalled());
    }

    #[test]
    fn a_recent_ack_is_not_a_stall() {
        assert_eq!(
            SentData::from_tcp(&info(9000, 4000, 1, 200)).fate,
            Fate::InFlight
        );
    }

    #[test]
    fn a_stall_survives_a_reset_but_not_delivery() {
        let cell = AfterHandshake::default();
        cell.update(SentData::from_tcp(&info(5120, 1228, 1, 3500)));
        cell.update(SentData::from_tcp(&info(5120, 1228, 1, 0)));
        assert!(cell.get().unwrap().stalled());
        cell.update(SentData::from_tcp(&info(5120, 5120, 1, 0)));
        assert_eq!(cell.get().unwrap().fate, Fate::Delivered);
    }

    #[test]
    fn counts_after_the_flight() {
        let flight = SentData::from_tcp(&info(1300, 1300, 0, 0));
        let total = SentData::from_tcp(&info(1300 + 5120, 1300 + 1228, 3, 5000));
        let after = total.since(&flight);
        assert_eq!((after.written, after.acknowledged), (5120, 1228));
        assert_eq!(after.retransmissions, 3);
    }
}
