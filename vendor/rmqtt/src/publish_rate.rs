//! fork patch: the inbound publish rate of one connection (the listener's
//! `max_publish_rate`): a token bucket of messages and one of bytes (topic
//! and payload), each holding one second's worth, so a client may burst up
//! to one second of its rate. A PUBLISH taken past either is still handled;
//! the session loop then reads no more from the client until the debt is
//! paid, and TCP pushes back on it (see `SessionState::charge_publish_rate`).

use std::time::{Duration, Instant};

pub(crate) struct PublishRate {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
}

struct Bucket {
    /// Per second; also the bucket's size.
    rate: f64,
    /// Negative while in debt.
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Bucket { rate, level: rate, at: now }
    }

    /// Takes `n`; how long until the bucket is out of debt.
    fn take(&mut self, n: f64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.level = (self.level + elapsed * self.rate).min(self.rate) - n;
        if self.level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.level / self.rate)
        }
    }
}

impl PublishRate {
    /// `None` without a limit (0 for both).
    pub(crate) fn new(messages: u32, bytes: u64) -> Option<Self> {
        if messages == 0 && bytes == 0 {
            return None;
        }
        let now = Instant::now();
        Some(PublishRate {
            messages: (messages > 0).then(|| Bucket::new(messages as f64, now)),
            bytes: (bytes > 0).then(|| Bucket::new(bytes as f64, now)),
        })
    }

    /// Counts one PUBLISH of `len` bytes: how long to stop reading, if at all.
    pub(crate) fn charge(&mut self, len: usize) -> Option<Duration> {
        let now = Instant::now();
        let messages = self.messages.as_mut().map_or(Duration::ZERO, |b| b.take(1.0, now));
        let bytes = self.bytes.as_mut().map_or(Duration::ZERO, |b| b.take(len as f64, now));
        let wait = messages.max(bytes);
        (!wait.is_zero()).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_passes_then_each_message_waits_its_share() {
        let mut rate = PublishRate::new(10, 0).unwrap();
        for _ in 0..10 {
            assert_eq!(rate.charge(1), None);
        }
        let wait = rate.charge(1).expect("the 11th waits");
        assert!((wait.as_secs_f64() - 0.1).abs() < 0.01, "{wait:?}");
    }

    #[test]
    fn bytes_over_the_rate_wait_for_their_debt() {
        let mut rate = PublishRate::new(0, 1000).unwrap();
        assert_eq!(rate.charge(1000), None);
        let wait = rate.charge(500).expect("over the byte rate");
        assert!((wait.as_secs_f64() - 0.5).abs() < 0.01, "{wait:?}");
    }

    #[test]
    fn no_limit_is_none() {
        assert!(PublishRate::new(0, 0).is_none());
    }
}
