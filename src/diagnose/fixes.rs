//! Fix steps that several rules recommend, worded once so the page, the text
//! report and check.sh's answer give the same commands everywhere.

/// Commands that let "packet too big" signals through and keep TCP segments
/// under the path MTU: the fixes for the seed incident.
pub(super) const ALLOW_ICMP_V4: &str =
    "Allow ICMP \"fragmentation needed\" (type 3 code 4) through every firewall on the path: \
     iptables -I INPUT -p icmp --icmp-type fragmentation-needed -j ACCEPT \
     (and the same in the FORWARD chain on routers)";
pub(super) const ALLOW_ICMP_V6: &str = "For IPv6, allow ICMPv6 \"packet too big\" (type 2): \
     ip6tables -I INPUT -p icmpv6 --icmpv6-type packet-too-big -j ACCEPT";
pub(super) const CLAMP_MSS: &str = "On the VPN/tunnel router, clamp TCP MSS to the path MTU: \
     iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu";
pub(super) const FIX_TUNNEL_MTU: &str =
    "Set the tunnel interface's MTU to what the path really carries \
     (e.g. ip link set dev tun0 mtu 1400), and do not drop IP fragments as a blanket rule.";
pub(super) const FIND_PATH_MTU: &str =
    "Find the largest packet that passes from the client's network: \
     ping -M do -s 1372 SERVER (1372 + 28 = 1400 bytes; lower -s until replies come back)";
