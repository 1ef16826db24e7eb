//! Fix steps that several rules recommend, worded once so the page, the text
//! report and check.sh's answer give the same commands everywhere, and named
//! for the client's IP version: IPv6 has no "fragmentation needed", only
//! ICMPv6 "packet too big".

use std::net::IpAddr;

use super::Finding;

/// The IP version of the client's path, for wording and header sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The ICMP message path-MTU discovery depends on, as people search for it.
    pub fn too_big_message(self) -> &'static str {
        match self {
            Self::V4 => "ICMP \"fragmentation needed\"",
            Self::V6 => "ICMPv6 \"packet too big\"",
        }
    }

    /// IP + TCP header bytes (no options) around a segment.
    pub fn headers(self) -> u32 {
        match self {
            Self::V4 => 40,
            Self::V6 => 60,
        }
    }

    fn allow_icmp(self) -> &'static str {
        match self {
            Self::V4 => ALLOW_ICMP_V4,
            Self::V6 => ALLOW_ICMP_V6,
        }
    }

    fn clamp_mss(self) -> &'static str {
        match self {
            Self::V4 => CLAMP_MSS,
            Self::V6 => CLAMP_MSS_V6,
        }
    }

    fn find_path_mtu(self) -> &'static str {
        match self {
            Self::V4 => FIND_PATH_MTU,
            Self::V6 => FIND_PATH_MTU_V6,
        }
    }
}

/// The fixes for packets that vanish on their way to the client.
pub fn for_black_hole_toward_client(f: Finding, ip: IpVersion) -> Finding {
    f.fix(ip.allow_icmp())
        .fix(ip.clamp_mss())
        .fix(ip.find_path_mtu())
}

/// The fixes for packets that vanish on their way from the client to us.
pub fn for_black_hole_toward_server(f: Finding, ip: IpVersion) -> Finding {
    f.fix(ip.allow_icmp())
        .fix(ip.clamp_mss())
        .fix(FIX_TUNNEL_MTU)
        .fix(ip.find_path_mtu())
}

/// Commands that let "packet too big" signals through and keep TCP segments
/// under the path MTU: the fixes for the seed incident.
pub(super) const ALLOW_ICMP_V4: &str =
    "Allow ICMP \"fragmentation needed\" (type 3 code 4) through every firewall on the path: \
     iptables -I INPUT -p icmp --icmp-type fragmentation-needed -j ACCEPT \
     (and the same in the FORWARD chain on routers)";
pub(super) const ALLOW_ICMP_V6: &str =
    "Allow ICMPv6 \"packet too big\" (type 2) through every firewall on the path: \
     ip6tables -I INPUT -p icmpv6 --icmpv6-type packet-too-big -j ACCEPT \
     (and the same in the FORWARD chain on routers)";
pub(super) const CLAMP_MSS: &str = "On the VPN/tunnel router, clamp TCP MSS to the path MTU: \
     iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu";
pub(super) const CLAMP_MSS_V6: &str = "On the VPN/tunnel router, clamp TCP MSS to the path MTU: \
     ip6tables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu";
pub(super) const FIX_TUNNEL_MTU: &str =
    "Set the tunnel interface's MTU to what the path really carries \
     (e.g. ip link set dev tun0 mtu 1400), and do not drop IP fragments as a blanket rule.";
pub(super) const FIND_PATH_MTU: &str =
    "Find the largest packet that passes from the client's network: \
     ping -M do -s 1372 SERVER (1372 + 28 = 1400 bytes; lower -s until replies come back)";
pub(super) const FIND_PATH_MTU_V6: &str =
    "Find the largest packet that passes from the client's network: \
     ping -6 -M do -s 1352 SERVER (1352 + 48 = 1400 bytes; lower -s until replies come back)";
