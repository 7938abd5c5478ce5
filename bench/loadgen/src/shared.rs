//! State every task of one run updates: the clock that payload timestamps
//! are read against, progress counters, and the latency histogram.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

use crate::histogram::Histogram;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process started using the clock. Publishers and
/// subscribers live in this one process, so timestamps need no clock sync.
pub fn now_ns() -> u64 {
  ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

pub struct Shared {
  pub latency_us: Histogram,
  /// PUBLISH packets written by all publishers.
  pub sent: AtomicU64,
  /// Messages delivered to all subscribers (duplicates included).
  pub received: AtomicU64,
  /// When the last message arrived, from [`now_ns`].
  pub last_recv_ns: AtomicU64,
}

impl Shared {
  pub fn new() -> Self {
    now_ns();
    Shared {
      latency_us: Histogram::new(),
      sent: AtomicU64::new(0),
      received: AtomicU64::new(0),
      last_recv_ns: AtomicU64::new(0),
    }
  }

  pub fn delivered(&self, n: u64, at_ns: u64) {
    self.received.fetch_add(n, Relaxed);
    self.last_recv_ns.fetch_max(at_ns, Relaxed);
  }
}
