//! Binding one validated listener with rmqtt's network layer.

use std::sync::Arc;

use napi_derive::napi;
use rmqtt::net::{Builder, Listener};

use crate::config::{ListenerSpec, Protocol};
use crate::system_error::StartError;
use crate::tls::CertAsUsername;

/// rmqtt's default window (16) disconnects a client that has more QoS 2
/// publishes in flight (mqtt.js does not honour MQTT 5's receive maximum),
/// and limits how fast a subscriber drains; 256 keeps both comfortable.
const DEFAULT_MAX_INFLIGHT: u16 = 256;
/// `maxPacketSize` when not given (rmqtt's default, set explicitly so that
/// `server.publish()`'s limit is known to match it).
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;

/// The largest packet a listener accepts from clients.
pub fn max_packet_size(spec: &ListenerSpec) -> u32 {
  spec
    .limits
    .max_packet_size
    .unwrap_or(DEFAULT_MAX_PACKET_SIZE)
}

/// Deep enough for any real topic tree (EMQX's default too); rmqtt's own
/// default is no limit.
const DEFAULT_MAX_TOPIC_LEVELS: usize = 128;

/// Bounds what one session can hold queued (1000 messages of up to 1 MiB
/// by default: 1 GiB) to a size a broker can afford for many.
const DEFAULT_MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// A listener as it is actually bound.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct ListenerInfo {
  /// The listener's name from the config (or its default name).
  pub name: String,
  #[napi(ts_type = "'tcp' | 'tls' | 'ws' | 'wss'")]
  pub protocol: String,
  /// The bound IP address.
  pub address: String,
  /// The bound port: the real one when port 0 was asked for.
  pub port: u32,
  /// Where clients connect, e.g. `"mqtt://127.0.0.1:1883"` (`mqtts://`,
  /// `ws://…/mqtt`, `wss://…/mqtt`): what the CLI and the example print.
  pub url: String,
}

/// The URL of a bound listener (an IPv6 address in brackets).
fn url(protocol: Protocol, addr: std::net::SocketAddr) -> String {
  let (scheme, path) = match protocol {
    Protocol::Tcp => ("mqtt", ""),
    Protocol::Tls => ("mqtts", ""),
    Protocol::Ws => ("ws", "/mqtt"),
    Protocol::Wss => ("wss", "/mqtt"),
  };
  format!("{scheme}://{addr}{path}")
}

/// Binds the socket and sets up the transport. Must run inside a tokio
/// runtime (the socket registers with its reactor). Errors name the listener.
pub fn bind(
  spec: &ListenerSpec,
  wire: &Arc<crate::fork::WireBytes>,
) -> Result<(Listener, ListenerInfo), StartError> {
  let what = format!(
    "listener \"{}\" ({} on {})",
    spec.name,
    spec.protocol.as_str(),
    spec.addr
  );
  let mut b = Builder::new()
    .name(spec.name.clone())
    .laddr(spec.addr)
    .allow_anonymous(spec.allow_anonymous)
    // Lets a restarted broker rebind while old connections sit in TIME_WAIT,
    // as Node's net.Server does. On Windows SO_REUSEADDR would allow port
    // hijacking, so it stays off there.
    .reuseaddr(cfg!(unix).then_some(true))
    .nodelay(true)
    .max_packet_size(max_packet_size(spec))
    // A 3.1.1 persistent session lasts `sessionExpiryInterval`; a 5.0 one
    // what the client asks, up to the cap (told in CONNACK). rmqtt's
    // default has no cap.
    .session_expiry_interval(spec.session_expiry)
    .max_session_expiry_interval(spec.max_session_expiry)
    // No resend on a live connection unless asked for (rmqtt resends every
    // 20 s; mosquitto never does). MQTT 5 clients never get one.
    .message_retry_interval(
      spec
        .limits
        .message_retry_interval
        .unwrap_or(std::time::Duration::ZERO),
    );
  // Every listener of a broker counts into its stats.
  b = crate::fork::count_wire_bytes(b, wire);
  let inflight = spec.limits.max_inflight.unwrap_or(DEFAULT_MAX_INFLIGHT);
  if let Some(v) = std::num::NonZeroU16::new(inflight) {
    b = b.max_inflight(v);
  }
  if let Some(v) = spec.limits.max_mqueue_len {
    b = b.max_mqueue_len(v);
  }
  if let Some(v) = spec.limits.max_topic_aliases {
    b = b.max_topic_aliases(v);
  }
  b = b.max_topic_levels(
    spec
      .limits
      .max_topic_levels
      .unwrap_or(DEFAULT_MAX_TOPIC_LEVELS),
  );
  if let Some(v) = spec.limits.max_topic_length {
    b = b.max_topic_length(v);
  }
  if let Some(v) = spec.limits.handshake_timeout {
    b = b.handshake_timeout(v);
  }
  if let Some(v) = spec.limits.max_keep_alive {
    // With a cap, no keep-alive (0) is not allowed either: 5.0 clients are
    // given the cap, 3.1.1 clients refused (rmqtt fitter, fork patch).
    b = b.max_keepalive(v).allow_zero_keepalive(false);
  }
  if let Some(v) = spec.limits.max_subscriptions {
    b = b.max_subscriptions(v);
  }
  if let Some((messages, bytes)) = spec.limits.max_publish_rate {
    b = b.max_publish_rate(messages, bytes);
  }
  b = b.max_mqueue_bytes(
    spec
      .limits
      .max_queued_bytes
      .unwrap_or(DEFAULT_MAX_QUEUED_BYTES),
  );
  if let Some(tls) = &spec.tls {
    let pem = tls
      .pem
      .clone()
      .ok_or_else(|| format!("{what}: TLS material not loaded (internal error)"))?;
    b = crate::fork::tls_pem(b, pem, !tls.require_client_cert)
      // The subject reaches onClientAuthenticate (`certificate`).
      .collect_cert_info(tls.ca.is_some())
      .cert_cn_as_username(tls.cert_as_username == Some(CertAsUsername::CommonName))
      .cert_subject_dn_as_username(tls.cert_as_username == Some(CertAsUsername::Subject));
  }
  let l = b.bind().map_err(|e| {
    let message = format!("{what}: cannot bind: {e}");
    match e.downcast_ref::<std::io::Error>() {
      Some(io) => StartError::listen(message, io, spec.addr),
      None => message.into(),
    }
  })?;
  let l = match spec.protocol {
    Protocol::Tcp => l.tcp(),
    Protocol::Ws => l.ws(),
    Protocol::Tls => l.tls(),
    Protocol::Wss => l.wss(),
  }
  .map_err(|e| {
    let e = format!("{e:#}");
    if e.contains("KeyMismatch") || e.contains("keys may not be consistent") {
      format!("{what}: invalid TLS certificate or key: tlsKey is not the private key of tlsCert")
    } else {
      format!("{what}: invalid TLS certificate or key: {e}")
    }
  })?;
  let local = l
    .local_addr()
    .map_err(|e| format!("{what}: cannot read bound address: {e}"))?;
  let info = ListenerInfo {
    name: spec.name.clone(),
    protocol: spec.protocol.as_str().to_string(),
    address: local.ip().to_string(),
    port: local.port() as u32,
    url: url(spec.protocol, local),
  };
  Ok((l, info))
}
