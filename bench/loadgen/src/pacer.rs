//! Even pacing for fixed-rate runs: one message every 1/rate seconds, the
//! publishers taking turns, so a run at 4,000 msgs/s is one message every
//! 250 µs. Publishers sleeping on tokio's timer instead all started together
//! and shared its 1 ms ticks: 16 of them at 4,000 msgs/s published as a
//! burst of 16 every 4 ms (`--pace burst` keeps that schedule). A thread that
//! sleeps to each slot has no such grouping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Starts the pacer thread; publisher `i` sends one message per notification
/// of `ticks[i]`. Ends at `deadline`, when it wakes every publisher a last
/// time so none is left waiting.
pub fn spawn(publishers: usize, rate: f64, deadline: Instant) -> Vec<Arc<Notify>> {
  let ticks: Vec<Arc<Notify>> = (0..publishers).map(|_| Arc::new(Notify::new())).collect();
  let t = ticks.clone();
  let slot = Duration::from_secs_f64(1.0 / rate);
  std::thread::Builder::new()
    .name("pacer".into())
    .spawn(move || {
      let mut next = Instant::now();
      let mut i = 0;
      while next < deadline {
        let now = Instant::now();
        if next > now {
          std::thread::sleep(next - now);
        }
        t[i].notify_one();
        i = (i + 1) % t.len();
        // A fixed schedule: a late wake-up is followed by on-time slots,
        // not by a shifted one.
        next += slot;
      }
      std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
      for tick in &t {
        tick.notify_one();
      }
    })
    .expect("cannot start the pacer thread");
  ticks
}
