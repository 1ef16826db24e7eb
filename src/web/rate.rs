//! Per-address rate limits (a token bucket per client address), for what
//! costs the server something lasting: saving a report.
//!
//! The table of addresses is bounded too: when full, addresses whose bucket
//! has refilled (nothing owed) are forgotten first; if every one still owes,
//! a new address waits like one that has used its burst.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many actions an address may take at once, and how fast it earns more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
    /// Addresses remembered at once.
    pub max_addresses: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `address` at `now`, or says how long until one is due.
    pub fn take(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let address = address.to_canonical();
        let per_token = self.rate.every.as_secs_f64();
        let burst = f64::from(self.rate.burst);
        let refilled = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() / per_token).min(burst)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&address) && buckets.len() >= self.rate.max_addresses {
            buckets.retain(|_, b| refilled(b) < burst);
            if buckets.len() >= self.rate.max_addresses {
                return Err(self.rate.every);
            }
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refilled(bucket);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) * per_token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimiter {
        RateLimiter::new(Rate {
            burst: 3,
            every: Duration::from_secs(20),
            max_addresses: 2,
        })
    }

    #[test]
    fn a_burst_is_allowed_then_one_per_interval() {
        let l = limiter();
        let a = IpAddr::from([198, 18, 0, 1]);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take(a, t), Ok(()));
        }
        let wait = l.take(a, t).expect_err("burst used");
        assert_eq!(wait, Duration::from_secs(20));
        assert_eq!(l.take(a, t + Duration::from_secs(20)), Ok(()));
        // Another address has its own bucket.
        assert_eq!(l.take(IpAddr::from([198, 18, 0, 2]), t), Ok(()));
    }

    #[test]
    fn the_address_table_is_bounded_and_forgets_settled_addresses_first() {
        let l = limiter();
        let t = Instant::now();
        let (a, b, c) = (
            IpAddr::from([198, 18, 0, 1]),
            IpAddr::from([198, 18, 0, 2]),
            IpAddr::from([198, 18, 0, 3]),
        );
        assert_eq!(l.take(a, t), Ok(()));
        assert_eq!(l.take(b, t), Ok(()));
        // Both still owe: a third address must wait.
        assert!(l.take(c, t).is_err());
        // Later both have refilled and are forgotten to make room.
        assert_eq!(l.take(c, t + Duration::from_secs(60)), Ok(()));
    }
}
