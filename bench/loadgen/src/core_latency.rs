//! `loadgen core-latency`: how long a cache line takes to go from one core
//! to another and back, measured by two threads handing a counter to each
//! other (nanoseconds per round trip, median of 5 runs of 0.1 s).
//!
//! On a VM the host may place the two vCPUs near each other (one core
//! complex, ~50 ns here) or far apart (~330 ns here), and may move them
//! while it runs. A multi-threaded broker hands every message between
//! threads, so its CPU per message follows this figure; a single-threaded
//! one (aedes, mosquitto) does not. The benchmarks print it with each round
//! so that rounds taken in different placements are told apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_millis(100);
const RUNS: usize = 5;

/// One run: round trips per `RUN`, in ns each.
fn once() -> f64 {
  let v = Arc::new(AtomicU64::new(0));
  let stop = u64::MAX;
  let other = {
    let v = v.clone();
    std::thread::spawn(move || loop {
      let x = v.load(Ordering::Acquire);
      if x == stop {
        return;
      }
      if x % 2 == 1 {
        v.store(x + 1, Ordering::Release);
      }
    })
  };
  let began = Instant::now();
  let mut trips = 0u64;
  while began.elapsed() < RUN {
    for _ in 0..1000 {
      let x = 2 * trips + 1;
      v.store(x, Ordering::Release);
      while v.load(Ordering::Acquire) != x + 1 {
        std::hint::spin_loop();
      }
      trips += 1;
    }
  }
  let ns = began.elapsed().as_nanos() as f64 / trips as f64;
  v.store(stop, Ordering::Release);
  let _ = other.join();
  ns
}

/// The JSON line: `{"mode":"core-latency","round_trip_ns":N}`.
pub fn run() -> String {
  let mut runs: Vec<f64> = (0..RUNS).map(|_| once()).collect();
  runs.sort_by(f64::total_cmp);
  format!(
    "{{\"mode\":\"core-latency\",\"round_trip_ns\":{:.1}}}",
    runs[RUNS / 2]
  )
}
