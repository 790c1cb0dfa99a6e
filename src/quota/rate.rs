//! A rate over sample windows, measured as Kafka's `Rate` over a `SampledStat` measures it, so a
//! client is throttled here exactly when Kafka would throttle it.
//!
//! `windows` samples of `window_ms` each: a record goes to the current sample, or starts the
//! next one (reusing the oldest) once the current one is `window_ms` old; samples older than
//! all windows together count nothing. The rate divides the retained total by the time since
//! the oldest sample started, but by no less than `windows - 1` whole windows: a new client is
//! judged over ten seconds (by default), not over its first burst.

/// How rates are sampled (Kafka's `quota.window.num` and `quota.window.size.seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleWindows {
    pub windows: usize,
    pub window_ms: u64,
}

impl SampleWindows {
    /// Kafka's defaults: 11 windows of one second.
    pub const DEFAULT: SampleWindows = SampleWindows { windows: 11, window_ms: 1000 };

    /// The longest throttle Kafka gives: all windows together.
    pub fn max_throttle_ms(&self) -> u64 {
        self.windows as u64 * self.window_ms
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    value: f64,
}

/// Units (bytes) per second over the sample windows.
#[derive(Debug)]
pub struct Rate {
    windows: SampleWindows,
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    pub fn new(windows: SampleWindows, now_ms: u64) -> Rate {
        Rate { windows, samples: vec![Sample { start_ms: now_ms, value: 0.0 }], current: 0 }
    }

    pub fn record(&mut self, value: f64, now_ms: u64) {
        if now_ms.saturating_sub(self.samples[self.current].start_ms) >= self.windows.window_ms {
            self.current = (self.current + 1) % self.windows.windows.max(1);
            let fresh = Sample { start_ms: now_ms, value: 0.0 };
            match self.samples.get_mut(self.current) {
                Some(sample) => *sample = fresh,
                None => self.samples.push(fresh),
            }
        }
        self.samples[self.current].value += value;
    }

    /// Units per second at `now_ms`.
    pub fn measure(&mut self, now_ms: u64) -> f64 {
        self.purge_obsolete(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (self.window_size_ms(now_ms) as f64 / 1000.0)
    }

    /// The time the rate is measured over: since the oldest sample, at least `windows - 1`
    /// whole windows, at least 1 ms.
    pub fn window_size_ms(&mut self, now_ms: u64) -> u64 {
        self.purge_obsolete(now_ms);
        let oldest = self.samples.iter().map(|s| s.start_ms).min().unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full_windows = elapsed / self.windows.window_ms;
        let min_full_windows = self.windows.windows.saturating_sub(1) as u64;
        if full_windows < min_full_windows {
            elapsed += (min_full_windows - full_windows) * self.windows.window_ms;
        }
        elapsed.max(1)
    }

    /// Samples older than all windows together start over, empty, now.
    fn purge_obsolete(&mut self, now_ms: u64) {
        let expire_age = self.windows.max_throttle_ms();
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.start_ms) >= expire_age {
                *sample = Sample { start_ms: now_ms, value: 0.0 };
            }
        }
    }

    /// The throttle Kafka gives a client whose rate is over `quota` (units per second): the
    /// time the measured total needs to fall back to the quota, at most all windows together;
    /// zero when within it.
    pub fn throttle_ms(&mut self, quota: f64, now_ms: u64) -> u64 {
        let rate = self.measure(now_ms);
        if rate <= quota {
            return 0;
        }
        let throttle = (rate - quota) / quota * self.window_size_ms(now_ms) as f64;
        (throttle.round() as u64).min(self.windows.max_throttle_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_rate_is_judged_over_ten_windows() {
        let mut rate = Rate::new(SampleWindows::DEFAULT, 0);
        rate.record(10_000.0, 0);
        // 10 000 bytes over the minimum of 10 whole windows.
        assert_eq!(rate.window_size_ms(0), 10_000);
        assert_eq!(rate.measure(0), 1000.0);
        // Half a window later, the elapsed half counts on top of the 10 windows still owed.
        assert_eq!(rate.window_size_ms(500), 10_500);
    }

    #[test]
    fn the_throttle_is_the_time_back_to_the_quota() {
        let mut rate = Rate::new(SampleWindows::DEFAULT, 0);
        rate.record(30_000.0, 0);
        // 3000 B/s against a quota of 1000 B/s over 10 s: (3000 - 1000) / 1000 * 10 s, but
        // at most the 11 windows.
        assert_eq!(rate.throttle_ms(1000.0, 0), 11_000);
        assert_eq!(rate.throttle_ms(3000.0, 0), 0, "at the quota is within it");
        let mut rate = Rate::new(SampleWindows::DEFAULT, 0);
        rate.record(12_000.0, 0);
        assert_eq!(rate.throttle_ms(1000.0, 0), 2000);
    }

    #[test]
    fn old_samples_stop_counting() {
        let windows = SampleWindows { windows: 3, window_ms: 1000 };
        let mut rate = Rate::new(windows, 0);
        rate.record(5000.0, 0);
        rate.record(1000.0, 1000);
        rate.record(1000.0, 2000);
        // All three samples: 7000 over the 2.5 s since the first started.
        assert_eq!(rate.measure(2500), 7000.0 / 2.5);
        // The fourth window reuses the first's sample.
        rate.record(1000.0, 3000);
        assert_eq!(rate.measure(3000), 3000.0 / 2.0);
        // Long idle: every sample has expired.
        assert_eq!(rate.measure(10_000), 0.0);
    }
}
