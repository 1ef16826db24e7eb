//! The few rtnetlink messages `route` needs, built and read as bytes (pure):
//! `RTM_GETROUTE` for one destination (what the kernel would use to reach it,
//! with any path MTU it learned), `RTM_DELROUTE` with `RTM_F_CLONED` for one
//! IPv6 destination (forgets that learned MTU, and only that: without the
//! flag the message would delete a real route), and `RTM_GETLINK` for an
//! interface's MTU. Layouts from `linux/netlink.h` and `linux/rtnetlink.h`;
//! integers in host order, addresses in network order, everything padded to
//! four bytes.
//!
//! Hand-written rather than through `netlink-packet-route`: three messages
//! and four attributes, whose exact bytes `tests` below pin against captures
//! of `ip route get` on this kernel (docs/probes.md#what-our-kernel-remembers).

use std::net::IpAddr;

pub const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
pub const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const RTM_F_CLONED: u32 = 0x200;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_METRICS: u16 = 8;
const RTA_CACHEINFO: u16 = 12;
const RTAX_MTU: u16 = 2;
const RTAX_ADVMSS: u16 = 8;
const IFLA_MTU: u16 = 4;
/// Attribute types carry two flag bits above these.
const NLA_TYPE_MASK: u16 = 0x3fff;
const HEADER: usize = 16;
const RTMSG: usize = 12;
const IFINFOMSG: usize = 16;
/// `USER_HZ`: `rta_cacheinfo.rta_expires` counts hundredths of a second.
const CLOCK_TICKS_PER_SECOND: u32 = 100;

/// `RTM_GETROUTE` for `addr` alone (no privilege needed).
pub fn get_route(seq: u32, addr: IpAddr) -> Vec<u8> {
    route_message(RTM_GETROUTE, NLM_F_REQUEST, 0, seq, addr)
}

/// `RTM_DELROUTE` of the cached route (the learned path MTU) toward an IPv6
/// `addr`. `RTM_F_CLONED` is what makes it an exception's removal; IPv4
/// ignores the flag, so there is no IPv4 form.
pub fn forget_v6(seq: u32, addr: std::net::Ipv6Addr) -> Vec<u8> {
    route_message(
        RTM_DELROUTE,
        NLM_F_REQUEST | NLM_F_ACK,
        RTM_F_CLONED,
        seq,
        IpAddr::V6(addr),
    )
}

/// `RTM_GETLINK` for the interface with index `index`.
pub fn get_link(seq: u32, index: u32) -> Vec<u8> {
    let mut out = header(RTM_GETLINK, NLM_F_REQUEST, seq, IFINFOMSG);
    // ifinfomsg: family, pad, type, index, flags, change.
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(index as i32).to_ne_bytes());
    out.extend_from_slice(&[0; 8]);
    finish(out)
}

fn route_message(kind: u16, flags: u16, rtm_flags: u32, seq: u32, addr: IpAddr) -> Vec<u8> {
    let (family, octets): (u8, Vec<u8>) = match addr.to_canonical() {
        IpAddr::V4(v4) => (AF_INET, v4.octets().to_vec()),
        IpAddr::V6(v6) => (AF_INET6, v6.octets().to_vec()),
    };
    let mut out = header(kind, flags, seq, RTMSG);
    let dst_len = (octets.len() * 8) as u8;
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type.
    out.extend_from_slice(&[family, dst_len, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&rtm_flags.to_ne_bytes());
    attribute(&mut out, RTA_DST, &octets);
    finish(out)
}

fn header(kind: u16, flags: u16, seq: u32, body: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body + 24);
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out
}

fn attribute(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align(out.len()), 0);
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = (out.len() as u32).to_ne_bytes();
    out[..4].copy_from_slice(&len);
    out
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// What a reply said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `NLMSG_ERROR` with code 0: done.
    Ack,
    /// `NLMSG_ERROR` with a negative errno, as a positive one.
    Error(i32),
    /// A route the kernel would use.
    Route(Route),
    /// An interface's MTU.
    Link { mtu: Option<u32> },
}

/// The parts of an `RTM_NEWROUTE` reply `route` reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Route {
    /// `RTAX_MTU`: a learned path MTU while it lasts, or a configured one.
    pub mtu: Option<u32>,
    /// `RTAX_ADVMSS`: an MSS the route pins for SYN-ACKs.
    pub advmss: Option<u32>,
    /// `rta_expires`, in seconds: above zero only for a learned value.
    pub expires_secs: u32,
    /// `RTA_OIF`: the interface it leaves by.
    pub interface: Option<u32>,
}

/// The first message of `reply` whose sequence number is `seq`; `None` when
/// the bytes hold none (or are not netlink at all).
pub fn parse(reply: &[u8], seq: u32) -> Option<Reply> {
    let mut rest = reply;
    while rest.len() >= HEADER {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        if len < HEADER || len > rest.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let got = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        let body = &rest[HEADER..len];
        if got == seq {
            return match kind {
                NLMSG_ERROR => {
                    let code = i32::from_ne_bytes(body.get(0..4)?.try_into().ok()?);
                    Some(if code == 0 {
                        Reply::Ack
                    } else {
                        Reply::Error(-code)
                    })
                }
                RTM_NEWROUTE => Some(Reply::Route(route(body.get(RTMSG..)?))),
                RTM_NEWLINK => Some(Reply::Link {
                    mtu: attributes(body.get(IFINFOMSG..)?)
                        .find(|(kind, _)| *kind == IFLA_MTU)
                        .and_then(|(_, v)| u32_of(v)),
                }),
                NLMSG_DONE => None,
                _ => None,
            };
        }
        rest = rest.get(align(len)..)?;
    }
    None
}

fn route(attrs: &[u8]) -> Route {
    let mut out = Route::default();
    for (kind, value) in attributes(attrs) {
        match kind {
            RTA_OIF => out.interface = u32_of(value),
            RTA_METRICS => {
                for (metric, v) in attributes(value) {
                    match metric {
                        RTAX_MTU => out.mtu = u32_of(v),
                        RTAX_ADVMSS => out.advmss = u32_of(v),
                        _ => {}
                    }
                }
            }
            // struct rta_cacheinfo: clntref, lastuse, expires (i32), ...
            RTA_CACHEINFO => {
                out.expires_secs = value
                    .get(8..12)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, |b| i32::from_ne_bytes(b).max(0) as u32)
                    .div_ceil(CLOCK_TICKS_PER_SECOND);
            }
            _ => {}
        }
    }
    out
}

/// `(type, payload)` of each attribute in `bytes`; stops at the first one
/// that does not fit.
fn attributes(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes(rest.get(0..2)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest.get(2..4)?.try_into().ok()?) & NLA_TYPE_MASK;
        if len < 4 {
            return None;
        }
        let value = rest.get(4..len)?;
        rest = rest.get(align(len)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

fn u32_of(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(0..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    //! Byte vectors from `strace ip route get` and raw requests on Linux 6.18
    //! (x86-64, little-endian), sequence number 1.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn requests_are_the_bytes_iproute2_sends() {
        assert_eq!(
            get_route(1, "198.18.2.2".parse().unwrap()),
            hex("240000001a000100010000000000000002200000000000000000000008000100c6120202")
        );
        assert_eq!(
            get_route(1, "fd25:2::2".parse().unwrap()),
            hex(
                "300000001a00010001000000000000000a800000000000000000000014000100\
                 fd250002000000000000000000000002"
            )
        );
        assert_eq!(
            forget_v6(1, "fd25:2::2".parse().unwrap()),
            hex(
                "300000001900050001000000000000000a800000000000000002000014000100\
                 fd250002000000000000000000000002"
            )
        );
        // A v4-mapped client is asked about as the IPv4 address it is.
        assert_eq!(
            get_route(1, "::ffff:198.18.2.2".parse().unwrap()),
            get_route(1, "198.18.2.2".parse().unwrap())
        );
    }

    /// An `RTM_NEWROUTE` reply: table main, oif 2, gateway, a learned MTU of
    /// 1,400 and 588.94 s left.
    fn learned_reply() -> Vec<u8> {
        let mut body = vec![2, 32, 0, 0, 254, 0, 0, 1];
        body.extend_from_slice(&RTM_F_CLONED.to_ne_bytes());
        attribute(&mut body, 15, &254u32.to_ne_bytes());
        attribute(&mut body, RTA_DST, &[198, 18, 2, 2]);
        attribute(&mut body, RTA_OIF, &2u32.to_ne_bytes());
        attribute(&mut body, 5, &[198, 18, 1, 1]);
        let mut metrics = Vec::new();
        attribute(&mut metrics, RTAX_MTU, &1400u32.to_ne_bytes());
        attribute(&mut body, RTA_METRICS, &metrics);
        let mut cache = vec![0u8; 32];
        cache[8..12].copy_from_slice(&58894i32.to_ne_bytes());
        attribute(&mut body, RTA_CACHEINFO, &cache);
        let mut out = header(RTM_NEWROUTE, 0, 1, body.len());
        out.extend(body);
        finish(out)
    }

    #[test]
    fn reads_a_learned_path_mtu() {
        let reply = parse(&learned_reply(), 1).unwrap();
        assert_eq!(
            reply,
            Reply::Route(Route {
                mtu: Some(1400),
                advmss: None,
                expires_secs: 589,
                interface: Some(2),
            })
        );
        // Another request's reply is not this one's.
        assert_eq!(parse(&learned_reply(), 2), None);
    }

    #[test]
    fn reads_acks_errors_and_links() {
        let mut ack = header(NLMSG_ERROR, 0, 7, 20);
        ack.extend_from_slice(&0i32.to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        assert_eq!(parse(&finish(ack), 7), Some(Reply::Ack));
        let mut eperm = header(NLMSG_ERROR, 0, 7, 20);
        eperm.extend_from_slice(&(-1i32).to_ne_bytes());
        eperm.extend_from_slice(&[0; 16]);
        assert_eq!(parse(&finish(eperm), 7), Some(Reply::Error(1)));
        let mut link = header(RTM_NEWLINK, 0, 9, IFINFOMSG);
        link.extend_from_slice(&[0; IFINFOMSG]);
        attribute(&mut link, 3, b"eth0\0");
        attribute(&mut link, IFLA_MTU, &1500u32.to_ne_bytes());
        assert_eq!(
            parse(&finish(link), 9),
            Some(Reply::Link { mtu: Some(1500) })
        );
    }

    #[test]
    fn hostile_bytes_are_no_reply_and_no_panic() {
        let good = learned_reply();
        for cut in 0..good.len() {
            let _ = parse(&good[..cut], 1);
        }
        let mut liar = good.clone();
        liar[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert_eq!(parse(&liar, 1), None);
        assert_eq!(parse(&[0xff; 64], 1), None);
    }
}
