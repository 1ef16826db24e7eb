//! The MSS our SYN-ACK announced to the client, and why it was lower than
//! the client's own: a path MTU our kernel had cached toward the client's
//! address (`route`). A connection we shrank that way never carries the
//! client's full-size packets, so nothing that passed on it is evidence that
//! full-size packets cross the path from the client to us.

use serde::{Deserialize, Serialize};

/// What we asked the client to send at most, per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OurMss {
    /// The MSS in our SYN-ACK (`TCP_INFO`'s `advmss`, plus the 12 bytes of
    /// timestamps it leaves out when they were negotiated).
    pub announced: u32,
    /// What our interface toward the client allows (its MTU less the IP and
    /// TCP headers): looked up only when we announced less than the client
    /// offered.
    #[serde(default)]
    pub full: Option<u32>,
    /// The path MTU our kernel had learned toward the client when it answered
    /// the SYN, when that is why `announced` was smaller.
    #[serde(default)]
    pub cached_path_mtu: Option<u32>,
}

impl OurMss {
    /// From `TCP_INFO` as the connection began and the client's SYN.
    /// `link_mtu` is asked only when we announced less than the client
    /// offered (one netlink round trip, off the common path).
    pub fn of(
        info: &crate::tcp::TcpInfo,
        syn: Option<&crate::tcp::SynInfo>,
        ipv4: bool,
        link_mtu: impl FnOnce() -> Option<u32>,
    ) -> Option<Self> {
        if info.advmss == 0 {
            return None;
        }
        let timestamps = syn.is_some_and(|s| s.timestamps);
        let announced = info.advmss + if timestamps { 12 } else { 0 };
        let offered = syn.and_then(|s| s.mss).map(u32::from);
        if offered.is_none_or(|o| announced >= o) {
            return Some(Self {
                announced,
                full: None,
                cached_path_mtu: None,
            });
        }
        let headers = if ipv4 { 40 } else { 60 };
        let link = link_mtu();
        Some(Self {
            announced,
            full: link.map(|mtu| mtu.saturating_sub(headers)),
            cached_path_mtu: link
                .filter(|&mtu| info.pmtu > 0 && info.pmtu < mtu)
                .map(|_| info.pmtu),
        })
    }

    /// We asked the client for smaller packets than it offered, because our
    /// kernel remembered a smaller path MTU toward it.
    pub fn shrunk(&self) -> bool {
        self.cached_path_mtu.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::TcpInfo;

    fn info(advmss: u32, pmtu: u32) -> TcpInfo {
        TcpInfo {
            advmss,
            pmtu,
            ..TcpInfo::default()
        }
    }

    #[test]
    fn a_cached_path_mtu_is_why_we_asked_for_less() {
        let syn = crate::tcp::syn::parse(&crate::tcp::syn::linux_syn_v4()).unwrap();
        // The research's numbers: advmss 1348 with timestamps, PMTU 1400 cached.
        let shrunk = OurMss::of(&info(1348, 1400), Some(&syn), true, || Some(1500)).unwrap();
        assert_eq!(
            shrunk,
            OurMss {
                announced: 1360,
                full: Some(1460),
                cached_path_mtu: Some(1400)
            }
        );
        assert!(shrunk.shrunk());
        let full = OurMss::of(&info(1448, 1500), Some(&syn), true, || unreachable!()).unwrap();
        assert_eq!(full.announced, 1460);
        assert!(!full.shrunk());
        // A small interface of ours is no cache.
        let small_link = OurMss::of(&info(1348, 1400), Some(&syn), true, || Some(1400)).unwrap();
        assert!(!small_link.shrunk());
    }
}
