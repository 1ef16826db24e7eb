//! `TCP_INFO` snapshots (Linux tcp(7)), reduced to the counters a path diagnosis
//! needs, and a handle to take them during a connection's life.

use std::sync::Arc;

use serde::Serialize;

/// The counters that tell a healthy path from a black hole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TcpInfo {
    /// Largest segment we send / the largest the client sent us.
    pub snd_mss: u32,
    pub rcv_mss: u32,
    /// The kernel's path MTU toward the client (lowered by ICMP "too big").
    pub pmtu: u32,
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u32,
    /// Retransmissions of the current unacknowledged segment (backoff count).
    pub retransmits: u8,
    pub total_retrans: u32,
    pub lost: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    pub bytes_acked: u64,
    /// In-order bytes received.
    pub bytes_received: u64,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    /// Packets received out of order: a later segment arrived before an earlier one.
    pub rcv_ooopack: u32,
    pub bytes_retrans: u64,
    /// Bytes written by us that the kernel has not sent yet.
    pub notsent_bytes: u32,
    /// The MSS we announced in our SYN-ACK: what the client may send us per
    /// segment (a listener clamp shows here).
    pub advmss: u32,
    /// Bytes we put on the wire, retransmissions included.
    pub bytes_sent: u64,
    /// Milliseconds since we last sent data / last received an ACK / last
    /// received data: a single snapshot tells a stall from a quiet connection.
    pub last_data_sent_ms: u32,
    pub last_ack_recv_ms: u32,
    pub last_data_recv_ms: u32,
}

impl TcpInfo {
    /// Bytes we wrote that left our buffer at least once (retransmissions not
    /// counted twice), plus those still waiting to be sent.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_sent.saturating_sub(self.bytes_retrans) + u64::from(self.notsent_bytes)
    }

    /// Bytes written and not acknowledged yet.
    pub fn bytes_outstanding(&self) -> u64 {
        self.bytes_written().saturating_sub(self.bytes_acked)
    }

    #[cfg(target_os = "linux")]
    fn from_raw(raw: &libc::tcp_info) -> Self {
        Self {
            snd_mss: raw.tcpi_snd_mss,
            rcv_mss: raw.tcpi_rcv_mss,
            pmtu: raw.tcpi_pmtu,
            rtt_us: raw.tcpi_rtt,
            retransmits: raw.tcpi_retransmits,
            total_retrans: raw.tcpi_total_retrans,
            lost: raw.tcpi_lost,
            unacked: raw.tcpi_unacked,
            bytes_acked: raw.tcpi_bytes_acked,
            bytes_received: raw.tcpi_bytes_received,
            data_segs_in: raw.tcpi_data_segs_in,
            data_segs_out: raw.tcpi_data_segs_out,
            rcv_ooopack: raw.tcpi_rcv_ooopack,
            bytes_retrans: raw.tcpi_bytes_retrans,
            notsent_bytes: raw.tcpi_notsent_bytes,
            advmss: raw.tcpi_advmss,
            bytes_sent: raw.tcpi_bytes_sent,
            last_data_sent_ms: raw.tcpi_last_data_sent,
            last_ack_recv_ms: raw.tcpi_last_ack_recv,
            last_data_recv_ms: raw.tcpi_last_data_recv,
        }
    }
}

/// A way to read a connection's `TCP_INFO` from any task while it lives, on the
/// connection's own descriptor (no duplicate). Once the connection has closed,
/// [`info`](Self::info) answers `None`.
#[derive(Debug, Clone)]
pub struct TcpHandle(Arc<crate::sys::SharedFd>);

impl TcpHandle {
    pub(crate) fn new(fd: Arc<crate::sys::SharedFd>) -> Self {
        Self(fd)
    }

    /// A snapshot, or `None` where the platform has no `TCP_INFO`.
    pub fn info(&self) -> Option<TcpInfo> {
        #[cfg(target_os = "linux")]
        {
            self.0
                .with(crate::sys::tcp_info)?
                .ok()
                .map(|raw| TcpInfo::from_raw(&raw))
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}
