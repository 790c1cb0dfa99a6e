//! Replication quotas (Kafka's ReplicationQuotaManager): the bytes a leader sends to, or a
//! follower fetches for, throttled replicas (those a topic's `*.replication.throttled.replicas`
//! lists, while out of the ISR) stay within the broker's `*.replication.throttled.rate`. A
//! throttled partition gets no bytes while the rate is used up, so the others keep their speed.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket of bytes: it refills at the rate, up to one second's worth.
#[derive(Debug)]
pub(super) struct Quota {
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may still go out; below zero after a read larger than what was left.
    tokens: f64,
    refilled: Instant,
}

impl Quota {
    pub(super) fn new() -> Quota {
        Quota { bucket: Mutex::new(Bucket { tokens: 0.0, refilled: Instant::now() }) }
    }

    /// Whether the throttled bytes of late used up `rate` bytes per second.
    pub(super) fn exceeded(&self, rate: i64) -> bool {
        rate != i64::MAX && self.refill(rate, 0) <= 0.0
    }

    /// Counts `bytes` that went out for throttled replicas.
    pub(super) fn record(&self, rate: i64, bytes: usize) {
        if rate != i64::MAX && bytes > 0 {
            self.refill(rate, bytes);
        }
    }

    fn refill(&self, rate: i64, taken: usize) -> f64 {
        let mut b = self.bucket.lock().expect("quota lock");
        let now = Instant::now();
        let rate = rate as f64;
        b.tokens = (b.tokens + rate * now.duration_since(b.refilled).as_secs_f64()).min(rate) - taken as f64;
        b.refilled = now;
        b.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_holds_bytes_to_its_rate() {
        let q = Quota::new();
        assert!(!q.exceeded(i64::MAX), "no limit");
        std::thread::sleep(std::time::Duration::from_millis(20));
        // 20 ms at 100 kB/s refilled about 2 kB.
        assert!(!q.exceeded(100_000));
        q.record(100_000, 50_000);
        assert!(q.exceeded(100_000), "50 kB went out: half a second to wait");
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert!(!q.exceeded(100_000));
    }
}
