//! Pure rules of leases, unit-tested without a database.

/// A lease has run out once its expiry time is reached.
pub fn is_expired(expires_at_ms: u64, now_ms: u64) -> bool {
    now_ms >= expires_at_ms
}

/// "I need more time" gives a full lease from now, never less than what is left.
pub fn extended_expiry(expires_at_ms: u64, now_ms: u64, lease_ms: u64) -> u64 {
    expires_at_ms.max(now_ms + lease_ms)
}

/// Seconds left on a lease, as the page shows them (never negative).
pub fn seconds_left(expires_at_ms: u64, now_ms: u64) -> f64 {
    expires_at_ms.saturating_sub(now_ms) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_at_its_expiry_time() {
        assert!(!is_expired(1_000, 999));
        assert!(is_expired(1_000, 1_000));
        assert!(is_expired(1_000, 5_000));
    }

    #[test]
    fn more_time_never_shortens_a_lease() {
        assert_eq!(extended_expiry(10_000, 5_000, 30_000), 35_000);
        assert_eq!(extended_expiry(90_000, 5_000, 30_000), 90_000);
    }

    #[test]
    fn seconds_left_is_never_negative() {
        assert_eq!(seconds_left(10_500, 10_000), 0.5);
        assert_eq!(seconds_left(10_000, 12_000), 0.0);
    }
}
