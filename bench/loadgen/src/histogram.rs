//! A lock-free latency histogram in microseconds, log-linear like HDR
//! histograms: exact below 1,024 µs, then 512 buckets per power of two
//! (0.2% resolution). One is shared by every subscriber, so that a
//! thousand subscribers do not each carry their own.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const LINEAR: u64 = 1024;
const SUB: u64 = 512;
/// Up to 2^40 µs (12 days): more than any run.
const BUCKETS: usize = (LINEAR + 31 * SUB) as usize;

pub struct Histogram {
  counts: Vec<AtomicU64>,
  max: AtomicU64,
}

fn index(v: u64) -> usize {
  if v < LINEAR {
    return v as usize;
  }
  let shift = (63 - v.leading_zeros() as u64) - 9;
  let top = v >> shift;
  ((LINEAR + (shift - 1) * SUB + (top - SUB)) as usize).min(BUCKETS - 1)
}

/// The middle of a bucket's range.
fn value(i: usize) -> u64 {
  let i = i as u64;
  if i < LINEAR {
    return i;
  }
  let shift = (i - LINEAR) / SUB + 1;
  let top = (i - LINEAR) % SUB + SUB;
  (top << shift) + (1 << (shift - 1))
}

impl Histogram {
  pub fn new() -> Self {
    Histogram {
      counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
      max: AtomicU64::new(0),
    }
  }

  pub fn record(&self, us: u64) {
    self.counts[index(us)].fetch_add(1, Relaxed);
    self.max.fetch_max(us, Relaxed);
  }

  pub fn count(&self) -> u64 {
    self.counts.iter().map(|c| c.load(Relaxed)).sum()
  }

  pub fn max(&self) -> u64 {
    self.max.load(Relaxed)
  }

  /// The value at quantile `q` (0..=1); 0 when empty.
  pub fn quantile(&self, q: f64) -> u64 {
    let total = self.count();
    if total == 0 {
      return 0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in self.counts.iter().enumerate() {
      seen += c.load(Relaxed);
      if seen >= rank {
        return value(i).min(self.max());
      }
    }
    self.max()
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn buckets_are_monotonic_and_close() {
    let mut last = 0;
    for v in [0, 1, 1023, 1024, 1025, 5000, 123_456, 9_999_999, 1 << 39] {
      let i = index(v);
      assert!(i >= last, "{v}");
      last = i;
      let err = (value(i) as f64 - v as f64).abs() / (v.max(1) as f64);
      assert!(err < 0.003, "{v} -> {}", value(i));
    }
  }

  #[test]
  fn quantiles() {
    let h = Histogram::new();
    for v in 1..=1000 {
      h.record(v);
    }
    assert_eq!(h.quantile(0.5), 500);
    assert_eq!(h.quantile(0.99), 990);
    assert_eq!(h.max(), 1000);
  }
}
