//! What our kernel remembers about the path toward a client, read and
//! forgotten per address.
//!
//! When a router on the way to a client tells us (ICMP "fragmentation
//! needed" / "packet too big") that our packets must be smaller, the kernel
//! caches that path MTU for the client's address for ten minutes. Every
//! SYN-ACK we send that client meanwhile announces a smaller MSS, so its
//! computer never sends us full-size packets: the next test run passes on
//! shrunk connections and proves nothing. This module reads what the kernel
//! cached (`RTM_GETROUTE`: no privilege), the MTU of the interface a client
//! is reached by (`RTM_GETLINK`), and forgets the cached value when a run
//! starts, so the run's own connections are announced the full MSS again:
//!
//! - IPv6: per address, `RTM_DELROUTE` with `RTM_F_CLONED` (`ip -6 route
//!   flush cache ADDR`).
//! - IPv4: the kernel has no per-address form (it ignores `RTM_F_CLONED` on
//!   a delete, which then removes a real route). Writing
//!   `/proc/sys/net/ipv4/route/flush` forgets every IPv4 value learned in
//!   this network namespace; other clients' connections re-learn theirs with
//!   one retransmission. It runs only when the run's address has a value
//!   cached, at most once a second.
//! - A route with an `advmss` metric already announces its full MSS whatever
//!   was learned: nothing to forget.
//!
//! Forgetting needs `CAP_NET_ADMIN` (and, for IPv4, a writable
//! `/proc/sys`); without it reports say why a run's connections were shrunk.
//! Verified on Linux 6.18: docs/probes.md#what-our-kernel-remembers.

pub mod netlink;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use netlink::Reply;

/// Where IPv4's learned path MTUs are forgotten, all at once.
const IPV4_FLUSH: &str = "/proc/sys/net/ipv4/route/flush";
/// At most one IPv4 flush this often: it forgets every client's value.
const IPV4_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// A netlink answer comes in microseconds; this only bounds a broken kernel.
const REPLY_TIMEOUT: Duration = Duration::from_millis(500);
/// `CAP_NET_ADMIN`'s bit in `/proc/self/status`'s `CapEff`.
const CAP_NET_ADMIN: u32 = 12;

/// A path MTU our kernel learned toward an address, while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    pub mtu: u32,
    /// Seconds until the kernel forgets it by itself.
    pub expires_in_secs: u32,
}

/// What forgetting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forgot {
    /// Nothing was cached toward the address.
    Nothing,
    /// The cached value is gone: the next SYN-ACK announces the full MSS.
    Forgot { mtu: u32 },
    /// The route pins the MSS its SYN-ACKs announce (`advmss`): nothing to do.
    Pinned { advmss: u32 },
    /// An IPv4 flush ran less than a second ago; this one waits for the next.
    Soon,
    /// It could not be forgotten; why, for users.
    Unavailable(String),
}

/// The kernel's route cache, as far as tests of one client need it.
#[derive(Debug)]
pub struct PathMemory {
    socket: Result<Mutex<Socket>, String>,
    /// Why forgetting is off or impossible, per family.
    forget_v4: Result<(), String>,
    forget_v6: Result<(), String>,
    seq: AtomicU32,
    last_v4_flush: Mutex<Option<Instant>>,
    /// Interface index to MTU: interfaces are few and their MTU rarely moves.
    links: Mutex<HashMap<u32, u32>>,
}

impl PathMemory {
    /// Opens the netlink socket and checks what this process may do.
    /// `forget` off (`--no-forget-path-mtu`) reads but never forgets.
    pub fn open(forget: bool) -> Self {
        let socket = Socket::new(
            Domain::from(libc::AF_NETLINK),
            Type::RAW.cloexec(),
            Some(Protocol::from(libc::NETLINK_ROUTE)),
        )
        .and_then(|s| {
            s.set_read_timeout(Some(REPLY_TIMEOUT))?;
            Ok(s)
        })
        .map(Mutex::new)
        .map_err(|e| format!("the kernel's route table cannot be read here ({e})"));
        let (forget_v4, forget_v6) = if forget {
            (v4_permission(), v6_permission())
        } else {
            let off = "forgetting is turned off (--no-forget-path-mtu)".to_owned();
            (Err(off.clone()), Err(off))
        };
        Self {
            socket,
            forget_v4,
            forget_v6,
            seq: AtomicU32::new(1),
            last_v4_flush: Mutex::new(None),
            links: Mutex::new(HashMap::new()),
        }
    }

    /// Reads nothing and forgets nothing (tests, other platforms).
    pub fn disabled(why: &str) -> Self {
        Self {
            socket: Err(why.to_owned()),
            forget_v4: Err(why.to_owned()),
            forget_v6: Err(why.to_owned()),
            seq: AtomicU32::new(1),
            last_v4_flush: Mutex::new(None),
            links: Mutex::new(HashMap::new()),
        }
    }

    /// Why a value learned toward `addr` cannot be forgotten, if so.
    pub fn cannot_forget(&self, addr: IpAddr) -> Option<&str> {
        let may = match addr.to_canonical() {
            IpAddr::V4(_) => &self.forget_v4,
            IpAddr::V6(_) => &self.forget_v6,
        };
        may.as_ref().err().map(String::as_str)
    }

    /// The route toward `addr` as the kernel would use it now.
    pub fn route(&self, addr: IpAddr) -> Result<netlink::Route, String> {
        let seq = self.next_seq();
        match self.ask(&netlink::get_route(seq, addr), seq)? {
            Reply::Route(route) => Ok(route),
            Reply::Error(errno) => Err(std::io::Error::from_raw_os_error(errno).to_string()),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// The path MTU our kernel learned toward `addr`, while it lasts.
    pub fn learned(&self, addr: IpAddr) -> Option<Learned> {
        let route = self.route(addr).ok()?;
        learned(&route)
    }

    /// The MTU of the interface `addr` is reached by.
    pub fn link_mtu(&self, addr: IpAddr) -> Option<u32> {
        let index = self.route(addr).ok()?.interface?;
        if let Some(&mtu) = self.lock_links().get(&index) {
            return Some(mtu);
        }
        let seq = self.next_seq();
        let Ok(Reply::Link { mtu: Some(mtu) }) = self.ask(&netlink::get_link(seq, index), seq)
        else {
            return None;
        };
        self.lock_links().insert(index, mtu);
        Some(mtu)
    }

    /// Forgets the path MTU our kernel learned toward `addr`, so the next
    /// SYN-ACK toward it announces the full MSS.
    pub fn forget(&self, addr: IpAddr) -> Forgot {
        let addr = addr.to_canonical();
        let route = match self.route(addr) {
            Ok(route) => route,
            Err(why) => return Forgot::Unavailable(why),
        };
        if let Some(advmss) = route.advmss {
            return Forgot::Pinned { advmss };
        }
        let Some(Learned { mtu, .. }) = learned(&route) else {
            return Forgot::Nothing;
        };
        if let Some(why) = self.cannot_forget(addr) {
            return Forgot::Unavailable(why.to_owned());
        }
        let done = match addr {
            IpAddr::V6(v6) => {
                let seq = self.next_seq();
                match self.ask(&netlink::forget_v6(seq, v6), seq) {
                    Ok(Reply::Ack) => Ok(()),
                    Ok(Reply::Error(errno)) => {
                        Err(std::io::Error::from_raw_os_error(errno).to_string())
                    }
                    Ok(other) => Err(format!("unexpected answer {other:?}")),
                    Err(why) => Err(why),
                }
            }
            IpAddr::V4(_) => {
                let mut last = self.last_v4_flush.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some_and(|t| t.elapsed() < IPV4_FLUSH_EVERY) {
                    return Forgot::Soon;
                }
                *last = Some(Instant::now());
                flush_v4()
            }
        };
        match done {
            Ok(()) => {
                tracing::info!(target: "tlsdiag::route", %addr, mtu, "forgot the path MTU learned toward a client before its test");
                Forgot::Forgot { mtu }
            }
            Err(why) => Forgot::Unavailable(why),
        }
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn lock_links(&self) -> std::sync::MutexGuard<'_, HashMap<u32, u32>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `request` and reads until the answer numbered `seq`.
    fn ask(&self, request: &[u8], seq: u32) -> Result<Reply, String> {
        let socket = self.socket.as_ref().map_err(Clone::clone)?;
        let mut socket = socket.lock().unwrap_or_else(|p| p.into_inner());
        socket
            .write_all(request)
            .map_err(|e| format!("netlink: {e}"))?;
        let mut buffer = vec![0u8; 16 * 1024];
        // Answers to an earlier request that timed out may come first.
        for _ in 0..8 {
            let n = socket
                .read(&mut buffer)
                .map_err(|e| format!("netlink: {e}"))?;
            if let Some(reply) = netlink::parse(&buffer[..n], seq) {
                return Ok(reply);
            }
        }
        Err("netlink: no answer to our request".to_owned())
    }
}

/// A learned value, as opposed to one configured on the route: only a
/// learned one expires.
fn learned(route: &netlink::Route) -> Option<Learned> {
    let mtu = route.mtu?;
    (route.expires_secs > 0).then_some(Learned {
        mtu,
        expires_in_secs: route.expires_secs,
    })
}

fn flush_v4() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(IPV4_FLUSH)
        .and_then(|mut f| f.write_all(b"1"))
        .map_err(|e| format!("{IPV4_FLUSH}: {e}"))
}

/// Whether this process may write the IPv4 flush file (opening it does not
/// flush).
fn v4_permission() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(IPV4_FLUSH)
        .map(drop)
        .map_err(|e| {
            format!("{IPV4_FLUSH} cannot be written ({e}): forgetting needs CAP_NET_ADMIN and a writable /proc/sys")
        })
}

/// Whether this process has `CAP_NET_ADMIN`, which `RTM_DELROUTE` needs.
fn v6_permission() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or("/proc/self/status has no CapEff line")?;
    if effective & (1 << CAP_NET_ADMIN) != 0 {
        Ok(())
    } else {
        Err("this process lacks CAP_NET_ADMIN, which forgetting a learned path MTU needs".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_mtu_is_not_a_learned_one() {
        let learned_one = netlink::Route {
            mtu: Some(1400),
            expires_secs: 580,
            ..Default::default()
        };
        assert_eq!(
            learned(&learned_one),
            Some(Learned {
                mtu: 1400,
                expires_in_secs: 580
            })
        );
        let configured = netlink::Route {
            mtu: Some(1400),
            expires_secs: 0,
            ..Default::default()
        };
        assert_eq!(learned(&configured), None);
    }

    #[test]
    fn loopback_has_nothing_learned_and_a_link_mtu() {
        let memory = PathMemory::open(false);
        if memory.socket.is_err() {
            return; // no netlink on this platform
        }
        let lo: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(memory.learned(lo), None);
        assert!(memory.link_mtu(lo).is_some_and(|mtu| mtu >= 1280));
        assert_eq!(memory.forget(lo), Forgot::Nothing);
        assert!(memory.cannot_forget(lo).is_some());
    }
}
