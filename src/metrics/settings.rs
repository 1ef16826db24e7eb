//! The metrics flags (flattened into [`crate::config::Args`]) and their
//! checked form.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;

/// Most networks `--metrics-top-networks` may give series of their own.
pub const MAX_TOP_NETWORKS: usize = 1000;

/// Metrics flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of its
    /// own (bind it where only your Prometheus can reach it). Off by default.
    #[arg(long, env = "TLSDIAG_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// IP-to-AS table for counting outcomes by source network: the
    /// iptoasn.com TSV (ip2asn-v4.tsv, ip2asn-v6.tsv or ip2asn-combined.tsv,
    /// uncompressed). Re-read when it changes; a bad file keeps the old table.
    /// Without it, networks are /24 (IPv4) and /48 (IPv6) prefixes.
    #[arg(long, env = "TLSDIAG_ASN_DB", requires = "metrics_addr")]
    pub asn_db: Option<PathBuf>,

    /// How often --asn-db is checked for changes (its mtime, size and inode).
    #[arg(long, env = "TLSDIAG_ASN_DB_RELOAD_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub asn_db_reload_interval: Duration,

    /// Source networks with series of their own (the ones with the most
    /// attempts); the rest are counted under network="other".
    #[arg(long, env = "TLSDIAG_METRICS_TOP_NETWORKS", default_value_t = 50)]
    pub metrics_top_networks: usize,
}

/// Checked metrics settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `None`: no metrics listener, and no per-network accounting.
    pub addr: Option<SocketAddr>,
    pub asn_db: Option<PathBuf>,
    pub asn_db_reload: Duration,
    pub top_networks: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            addr: None,
            asn_db: None,
            asn_db_reload: Duration::from_secs(30),
            top_networks: 50,
        }
    }
}

impl MetricsArgs {
    pub fn into_settings(self) -> Result<MetricsSettings, ConfigError> {
        if !(1..=MAX_TOP_NETWORKS).contains(&self.metrics_top_networks) {
            return Err(ConfigError::TopNetworks(MAX_TOP_NETWORKS));
        }
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(86_400));
        if self.asn_db_reload_interval < min || self.asn_db_reload_interval > max {
            return Err(ConfigError::OutOfRange {
                flag: "asn-db-reload-interval",
                min,
                max,
                got: self.asn_db_reload_interval,
            });
        }
        Ok(MetricsSettings {
            addr: self.metrics_addr,
            asn_db: self.asn_db,
            asn_db_reload: self.asn_db_reload_interval,
            top_networks: self.metrics_top_networks,
        })
    }
}
