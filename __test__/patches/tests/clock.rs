//! rmqtt's coarse clocks (`vendor/rmqtt/src/clock.rs`): never behind the
//! precise clock where a timer deadline is computed from them, and close to
//! the precise clocks either way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmqtt::clock;

/// Three ticks at HZ=100, the coarsest Linux kernel there is.
const SLACK: Duration = Duration::from_millis(30);

#[test]
fn now_is_never_behind_the_precise_clock_and_close_to_it() {
  for i in 0..2000 {
    // Idle gaps too: the coarse clock lags most just after a CPU wakes.
    if i % 100 == 0 {
      std::thread::sleep(Duration::from_micros(1500 + i as u64));
    }
    let before = tokio::time::Instant::now();
    let coarse = clock::now();
    let after = tokio::time::Instant::now();
    assert!(
      coarse >= before,
      "coarse {coarse:?} is behind the precise {before:?}"
    );
    assert!(
      coarse <= after + SLACK,
      "coarse {coarse:?} is too far ahead of {after:?}"
    );
  }
}

#[test]
fn now_moves_forward() {
  let start = clock::now();
  let mut last = start;
  while clock::now() < start + Duration::from_millis(50) {
    let now = clock::now();
    assert!(now >= last);
    last = now;
  }
}

#[test]
fn timestamp_millis_follows_the_wall_clock() {
  let precise = || {
    SystemTime::now()
      .duration_since(UNIX_EPOCH)
      .unwrap()
      .as_millis() as i64
  };
  for _ in 0..2000 {
    let before = precise();
    let coarse = clock::timestamp_millis();
    let after = precise();
    assert!(
      coarse <= after,
      "coarse {coarse} is ahead of the wall clock {after}"
    );
    assert!(
      coarse + SLACK.as_millis() as i64 >= before,
      "coarse {coarse} lags {before} by more than {SLACK:?}"
    );
  }
}
