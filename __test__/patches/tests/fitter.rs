//! rmqtt's keep-alive timeout (`vendor/rmqtt/src/fitter.rs`, patch
//! 0042-keep-alive-exact): 1.5 x the Keep Alive to the millisecond for every
//! value, where upstream gave `ka + 3` s below 6 s and whole seconds above.
//! Values too slow for the socket tests of `__test__/conformance/keepalive.test.ts`.

use std::sync::Arc;
use std::time::Duration;

use rmqtt::codec::v3::Connect as ConnectV3;
use rmqtt::codec::v5::Connect as ConnectV5;
use rmqtt::fitter::{DefaultFitter, Fitter};
use rmqtt::net::Builder;
use rmqtt::types::{ConnectInfo, Id};

fn fitter(v5: bool, listener: Builder) -> DefaultFitter {
  let id = Id::new(1, 0, None, None, "c".into(), None);
  let info = if v5 {
    ConnectInfo::V5(id.clone(), Box::<ConnectV5>::default())
  } else {
    ConnectInfo::V3(id.clone(), Box::<ConnectV3>::default())
  };
  DefaultFitter::new(Arc::new(info), id, Arc::new(listener))
}

#[test]
fn timeout_is_one_and_a_half_keep_alives_to_the_millisecond() {
  for v5 in [false, true] {
    let f = fitter(v5, Builder::new());
    for (ka, ms) in [
      (1u16, 1500u64),
      (2, 3000),
      (5, 7500),
      (6, 9000),
      (7, 10_500),
      (65_535, 98_302_500),
    ] {
      let mut asked = ka;
      assert_eq!(
        f.keep_alive(&mut asked).unwrap(),
        Duration::from_millis(ms),
        "v5 {v5}, keep-alive {ka} s"
      );
      assert_eq!(
        asked, ka,
        "the negotiated keep-alive (5.0's Server Keep Alive) is unchanged"
      );
    }
  }
}

#[test]
fn zero_is_no_timeout_where_allowed() {
  for v5 in [false, true] {
    let mut ka = 0;
    let f = fitter(v5, Builder::new().allow_zero_keepalive(true));
    assert_eq!(f.keep_alive(&mut ka).unwrap(), Duration::ZERO);
  }
}

#[test]
fn v5_zero_where_not_allowed_gets_the_maximum_and_its_timeout() {
  let mut ka = 0;
  let f = fitter(
    true,
    Builder::new().allow_zero_keepalive(false).max_keepalive(10),
  );
  assert_eq!(
    f.keep_alive(&mut ka).unwrap(),
    Duration::from_millis(15_000)
  );
  assert_eq!(ka, 10, "sent back as the Server Keep Alive");
}

#[test]
fn a_backoff_that_rounds_to_zero_still_times_out() {
  let mut ka = 1;
  let f = fitter(false, Builder::new().keepalive_backoff(0.0));
  assert_eq!(f.keep_alive(&mut ka).unwrap(), Duration::from_millis(1));
}
