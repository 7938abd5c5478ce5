//! What rmqtt-codec refuses as it decodes (issue 28): each rule of the spec
//! it now checks, and the valid packets beside them that still decode.

use bytes::BytesMut;
use rmqtt_codec::error::DecodeError;
use rmqtt_codec::{v3, v5};
use tokio_util::codec::Decoder;

fn string(s: &[u8]) -> Vec<u8> {
  let mut v = (s.len() as u16).to_be_bytes().to_vec();
  v.extend_from_slice(s);
  v
}

/// A packet: first byte, one-byte remaining length (the bodies here are short).
fn packet(first: u8, body: &[u8]) -> BytesMut {
  assert!(body.len() < 128);
  let mut v = vec![first, body.len() as u8];
  v.extend_from_slice(body);
  BytesMut::from(&v[..])
}

fn connect(level: u8, flags: u8, rest: &[&[u8]]) -> BytesMut {
  let mut b = string(b"MQTT");
  b.extend_from_slice(&[level, flags, 0, 60]);
  if level == 5 {
    b.push(0); // no properties
  }
  b.extend(string(b"client"));
  if level == 5 && flags & 0x04 != 0 {
    b.push(0); // no will properties
  }
  for r in rest {
    b.extend_from_slice(r);
  }
  packet(0x10, &b)
}

fn publish(level: u8, topic: &[u8], props: &[u8]) -> BytesMut {
  let mut b = string(topic);
  if level == 5 {
    b.push(props.len() as u8);
    b.extend_from_slice(props);
  }
  b.extend_from_slice(b"payload");
  packet(0x30, &b)
}

fn v3(mut b: BytesMut) -> Result<v3::Packet, DecodeError> {
  v3::Codec::new(0)
    .decode(&mut b)
    .map(|p| p.expect("a whole packet").0)
}

fn v5(mut b: BytesMut) -> Result<v5::Packet, DecodeError> {
  v5::Codec::new(0, 0)
    .decode(&mut b)
    .map(|p| p.expect("a whole packet").0)
}

#[test]
fn topic_names_hold_no_wildcards_nor_nul() {
  for topic in [&b"#"[..], b"a/+/b", b"a/#", b"+"] {
    assert!(matches!(
      v3(publish(4, topic, &[])),
      Err(DecodeError::InvalidTopicName)
    ));
    assert!(matches!(
      v5(publish(5, topic, &[])),
      Err(DecodeError::InvalidTopicName)
    ));
  }
  assert!(matches!(
    v3(publish(4, b"a\0b", &[])),
    Err(DecodeError::NulCharacter)
  ));
  assert!(matches!(
    v5(publish(5, b"a\0b", &[])),
    Err(DecodeError::NulCharacter)
  ));
  assert!(v3(publish(4, b"a/b$c", &[])).is_ok());
  assert!(v5(publish(5, b"a/b$c", &[])).is_ok());
}

#[test]
fn mqtt5_publish_topic_alias_and_response_topic() {
  // Empty topic: only with an alias.
  assert!(matches!(
    v5(publish(5, b"", &[])),
    Err(DecodeError::ProtocolViolation(_))
  ));
  assert!(v5(publish(5, b"", &[0x23, 0, 1])).is_ok());
  // Alias 0 is "Topic Alias invalid", not malformed.
  assert!(matches!(
    v5(publish(5, b"t", &[0x23, 0, 0])),
    Err(DecodeError::TopicAliasInvalid)
  ));
  // Twice is malformed.
  assert!(matches!(
    v5(publish(5, b"t", &[0x23, 0, 1, 0x23, 0, 2])),
    Err(DecodeError::MalformedPacket)
  ));
  let mut resp = vec![0x08];
  resp.extend(string(b"reply/+"));
  assert!(matches!(
    v5(publish(5, b"t", &resp)),
    Err(DecodeError::ProtocolViolation(_))
  ));
  let mut resp = vec![0x08];
  resp.extend(string(b"reply/x"));
  assert!(v5(publish(5, b"t", &resp)).is_ok());
}

#[test]
fn will_topics_are_topic_names() {
  for (topic, err) in [
    (&b"w/#"[..], true),
    (b"+", true),
    (b"", true),
    (b"w/x", false),
  ] {
    let (t, m) = (string(topic), string(b"bye"));
    let r3 = v3(connect(4, 0x06, &[&t, &m]));
    let r5 = v5(connect(5, 0x06, &[&t, &m]));
    assert_eq!(
      matches!(r3, Err(DecodeError::InvalidTopicName)),
      err,
      "{topic:?}"
    );
    assert_eq!(
      matches!(r5, Err(DecodeError::InvalidTopicName)),
      err,
      "{topic:?}"
    );
    assert_eq!(r3.is_ok(), !err);
    assert_eq!(r5.is_ok(), !err);
  }
}

#[test]
fn connect_flags() {
  // Will QoS or retain without the will flag: refused by both versions.
  for flags in [0x02 | 0x08, 0x02 | 0x10, 0x02 | 0x20] {
    assert!(matches!(
      v3(connect(4, flags, &[])),
      Err(DecodeError::InvalidConnectFlags)
    ));
    assert!(matches!(
      v5(connect(5, flags, &[])),
      Err(DecodeError::InvalidConnectFlags)
    ));
  }
  // A password without a username: 3.1.1 refuses [MQTT-3.1.2-22], 5.0 allows.
  let pw = string(b"secret");
  assert!(matches!(
    v3(connect(4, 0x42, &[&pw])),
    Err(DecodeError::InvalidConnectFlags)
  ));
  assert!(v5(connect(5, 0x42, &[&pw])).is_ok());
  let user = string(b"user");
  assert!(v3(connect(4, 0xc2, &[&user, &pw])).is_ok());
  // U+0000 in the client id.
  let mut b = string(b"MQTT");
  b.extend_from_slice(&[4, 2, 0, 60]);
  b.extend(string(b"c\0"));
  assert!(matches!(
    v3(packet(0x10, &b)),
    Err(DecodeError::NulCharacter)
  ));
}

#[test]
fn mid_packet_once_the_header_is_read() {
  let mut codec = v3::Codec::new(0);
  let mut buf = BytesMut::from(&[0x30u8, 0x10][..]);
  assert!(!codec.mid_packet());
  assert!(codec.decode(&mut buf).unwrap().is_none());
  assert!(codec.mid_packet());
  assert!(buf.is_empty());
}
