//! Which network an address belongs to, for metrics: its AS when the
//! operator's table has it, otherwise its /24 (IPv4) or /48 (IPv6). A plain
//! `Copy` key, so counting needs no allocation; the label text is made once,
//! when a network is given series of its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::asn::AsTable;

/// A source network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// An AS from the table.
    As(u32),
    /// An IPv4 /24 the table lacks: the address with its last octet cleared.
    V4(u32),
    /// An IPv6 /48 the table lacks: the address's top 48 bits.
    V6(u64),
}

/// The label values of one network's series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLabels {
    /// `AS64500`, `192.0.2.0/24`, `2001:db8:1::/48` or `other`.
    pub network: String,
    /// `AS64500` for an AS, empty otherwise (and then not written).
    pub asn: String,
    /// The AS's description from the table, sanitized; may be empty.
    pub as_name: String,
}

impl NetLabels {
    /// The bucket for every network without series of its own.
    pub fn other() -> Self {
        Self {
            network: "other".into(),
            asn: String::new(),
            as_name: String::new(),
        }
    }
}

impl Network {
    /// The network of `ip`. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn of(ip: IpAddr, table: Option<&AsTable>) -> Self {
        let ip = ip.to_canonical();
        if let Some(asn) = table.and_then(|t| t.lookup(ip)) {
            return Self::As(asn);
        }
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4) & 0xffff_ff00),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 80) as u64),
        }
    }

    /// Its label values; the AS name comes from `table` (empty without one).
    pub fn labels(self, table: Option<&AsTable>) -> NetLabels {
        match self {
            Self::As(asn) => NetLabels {
                network: format!("AS{asn}"),
                asn: format!("AS{asn}"),
                as_name: table.map_or_else(String::new, |t| t.name(asn).to_owned()),
            },
            Self::V4(prefix) => NetLabels {
                network: format!("{}/24", Ipv4Addr::from(prefix)),
                asn: String::new(),
                as_name: String::new(),
            },
            Self::V6(top) => NetLabels {
                network: format!("{}/48", Ipv6Addr::from(u128::from(top) << 80)),
                asn: String::new(),
                as_name: String::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn addresses_outside_the_table_fall_back_to_their_prefix() {
        let table = AsTable::parse(b"127.0.0.0\t127.0.0.255\t64500\tZZ\tTEST-NET-LOOPBACK\n")
            .expect("table");
        let t = Some(&table);
        assert_eq!(Network::of(ip("127.0.0.9"), t), Network::As(64500));
        assert_eq!(
            Network::of(ip("::ffff:127.0.0.9"), t),
            Network::As(64500),
            "a dual-stack listener's IPv4 peer"
        );
        let labels = Network::of(ip("127.0.0.9"), t).labels(t);
        assert_eq!(labels.network, "AS64500");
        assert_eq!(labels.asn, "AS64500");
        assert_eq!(labels.as_name, "TEST-NET-LOOPBACK");

        let v4 = Network::of(ip("127.0.10.77"), t);
        assert_eq!(v4, Network::of(ip("127.0.10.1"), None));
        assert_eq!(v4.labels(t).network, "127.0.10.0/24");
        assert_eq!(v4.labels(t).asn, "");

        let v6 = Network::of(ip("2001:db8:abcd:12::1"), t);
        assert_eq!(v6, Network::of(ip("2001:db8:abcd:ffff::9"), t));
        assert_ne!(v6, Network::of(ip("2001:db8:abce::1"), t));
        assert_eq!(v6.labels(t).network, "2001:db8:abcd::/48");
    }
}
