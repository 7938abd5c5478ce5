//! A message without a Message Expiry Interval never expires (patch
//! 0047-no-default-expiry): neither as a retained message
//! (`session::retained_expiry`) nor queued for a subscriber
//! (`hook::message_expiry_at`). Upstream gave it the listener's
//! `message_expiry_interval` (5 min), too slow for a socket test.

use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use rmqtt::codec::types::Publish as CodecPublish;
use rmqtt::codec::v5::PublishProperties;
use rmqtt::hook::message_expiry_at;
use rmqtt::session::retained_expiry;
use rmqtt::types::{MessageExpiryCheckResult, Publish, QoS};

const CREATED: i64 = 1_000_000_000_000;
const DAY_MS: i64 = 86_400_000;

fn publish(expiry: Option<u32>) -> Publish {
  let properties = PublishProperties {
    message_expiry_interval: expiry.and_then(NonZeroU32::new),
    ..Default::default()
  };
  let codec = CodecPublish {
    dup: false,
    retain: true,
    qos: QoS::AtLeastOnce,
    topic: ByteString::from_static("t"),
    packet_id: None,
    payload: Bytes::from_static(b"x"),
    properties: Some(properties),
  };
  Publish::from(Box::new(codec)).create_time(CREATED)
}

#[test]
fn a_retained_message_is_kept_for_its_own_interval_or_forever() {
  assert_eq!(retained_expiry(&publish(None)), None);
  assert_eq!(
    retained_expiry(&publish(Some(10))),
    Some(Duration::from_secs(10))
  );
}

#[test]
fn a_queued_message_without_an_interval_never_expires() {
  let p = publish(None);
  for waited in [0, 5 * 60 * 1000 + 1, 365 * DAY_MS] {
    assert!(
      matches!(
        message_expiry_at(&p, CREATED + waited),
        MessageExpiryCheckResult::Remaining(None)
      ),
      "waited {waited} ms"
    );
  }
}

#[test]
fn a_queued_message_with_an_interval_expires_with_it() {
  let p = publish(Some(10));
  assert_eq!(
    message_expiry_at(&p, CREATED + 4_000).message_expiry_interval(),
    NonZeroU32::new(6)
  );
  assert!(message_expiry_at(&p, CREATED + 10_000).is_expiry());
}
