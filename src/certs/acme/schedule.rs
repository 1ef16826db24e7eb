//! When to order a certificate: pure decisions over times, tested here.

use std::time::{Duration, SystemTime};

/// Retry delays after a failed order: doubling from the first to the last,
/// so a CA outage or a misconfigured name costs few requests (CAs rate-limit
/// failed validations) and a passing fault is retried soon.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);
pub const LAST_RETRY: Duration = Duration::from_secs(3600);

/// The longest sleep between checks: a clock that jumps (suspend, NTP step)
/// is noticed within this.
pub const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// What a stored (or served) certificate looks like to the scheduler.
#[derive(Debug, Clone)]
pub struct Held {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The names it covers, lowercase.
    pub names: Vec<String>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Order now, for this reason (for the log).
    OrderNow(&'static str),
    /// Nothing to do before this time.
    WaitUntil(SystemTime),
}

/// When `held` is due for renewal: `renew_before` its expiry, or with a third
/// of its lifetime left when that is not set.
pub fn renewal_time(held: &Held, renew_before: Option<Duration>) -> SystemTime {
    let lifetime = held
        .not_after
        .duration_since(held.not_before)
        .unwrap_or_default();
    let before = renew_before.unwrap_or(lifetime / 3);
    held.not_after
        .checked_sub(before)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Whether to order now, given what is held and the names wanted.
pub fn next(
    now: SystemTime,
    held: Option<&Held>,
    domains: &[String],
    renew_before: Option<Duration>,
) -> Next {
    let Some(held) = held else {
        return Next::OrderNow("no certificate yet");
    };
    if !domains.iter().all(|d| held.names.contains(d)) {
        return Next::OrderNow("the certificate does not cover every --acme-domain");
    }
    if now >= held.not_after {
        return Next::OrderNow("the certificate has expired");
    }
    let due = renewal_time(held, renew_before);
    if now >= due {
        Next::OrderNow("the certificate is due for renewal")
    } else {
        Next::WaitUntil(due)
    }
}

/// The earliest next order after one just issued `held`: when it is due, but
/// never sooner than a quarter of its lifetime, so a --acme-renew-before
/// longer than the CA's lifetime cannot make us order back to back.
pub fn after_issuance(now: SystemTime, held: &Held, renew_before: Option<Duration>) -> SystemTime {
    let lifetime = held
        .not_after
        .duration_since(held.not_before)
        .unwrap_or_default();
    let floor = now + (lifetime / 4).max(Duration::from_secs(1));
    renewal_time(held, renew_before).max(floor)
}

/// The delay before retry number `failures` (1 for the first).
pub fn retry_delay(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    (FIRST_RETRY * factor).min(LAST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn held(days: u32) -> Held {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        Held {
            not_before: start,
            not_after: start + days * DAY,
            names: vec!["a.example".into(), "b.example".into()],
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_90_day_certificate_renews_with_30_days_left_by_default() {
        let h = held(90);
        assert_eq!(renewal_time(&h, None), h.not_before + 60 * DAY);
        let d = names(&["a.example"]);
        assert_eq!(
            next(h.not_before + 59 * DAY, Some(&h), &d, None),
            Next::WaitUntil(h.not_before + 60 * DAY)
        );
        assert!(matches!(
            next(h.not_before + 60 * DAY, Some(&h), &d, None),
            Next::OrderNow(_)
        ));
    }

    #[test]
    fn renew_before_sets_the_threshold() {
        let h = held(90);
        let d = names(&["b.example"]);
        assert_eq!(
            next(h.not_before, Some(&h), &d, Some(10 * DAY)),
            Next::WaitUntil(h.not_before + 80 * DAY)
        );
        // Longer than the lifetime: due at once.
        assert!(matches!(
            next(h.not_before, Some(&h), &d, Some(100 * DAY)),
            Next::OrderNow(_)
        ));
    }

    #[test]
    fn missing_uncovered_or_expired_orders_now() {
        let h = held(90);
        assert!(matches!(
            next(h.not_before, None, &names(&["a.example"]), None),
            Next::OrderNow("no certificate yet")
        ));
        assert!(matches!(
            next(
                h.not_before,
                Some(&h),
                &names(&["a.example", "c.example"]),
                None
            ),
            Next::OrderNow("the certificate does not cover every --acme-domain")
        ));
        assert!(matches!(
            next(
                h.not_after,
                Some(&h),
                &names(&["a.example"]),
                Some(Duration::ZERO)
            ),
            Next::OrderNow("the certificate has expired")
        ));
    }

    #[test]
    fn never_orders_back_to_back() {
        let h = held(8);
        // renew-before longer than the lifetime: a quarter of it (2 days) first.
        assert_eq!(
            after_issuance(h.not_before, &h, Some(100 * DAY)),
            h.not_before + 2 * DAY
        );
        // The ordinary case is untouched.
        assert_eq!(
            after_issuance(h.not_before, &h, Some(DAY)),
            h.not_before + 7 * DAY
        );
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_delay(1), Duration::from_secs(10));
        assert_eq!(retry_delay(2), Duration::from_secs(20));
        assert_eq!(retry_delay(5), Duration::from_secs(160));
        assert_eq!(retry_delay(9), Duration::from_secs(2560));
        assert_eq!(retry_delay(10), Duration::from_secs(3600));
        assert_eq!(retry_delay(1000), Duration::from_secs(3600));
    }
}
