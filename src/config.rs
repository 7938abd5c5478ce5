//! The configuration JavaScript passes to `start()`, and its validation.
//!
//! The `#[napi(object)]` structs define the TypeScript types; the values are
//! read with serde (through `serde_path_to_error`) so that every mistake,
//! including a wrong type or a misspelled field, is reported with the path of
//! the field (`listeners[1].port: ...`) instead of a generic conversion error.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use napi::Result;
use napi_derive::napi;
use serde::Deserialize;

use crate::error::invalid_arg;
use crate::tls::{CertAsUsername, TlsSpec};
use crate::tls_source::{self, PemSource};
use crate::warning::Warning;

/// Broker configuration passed to `MqttServer.start()`.
#[napi(object)]
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct ServerConfig {
  /// Listeners to open; at least one. All are bound before `start()` resolves.
  pub listeners: Vec<ListenerConfig>,
  /// Directory holding rmqtt plugin configuration files (`rmqtt-retainer.toml`, ...).
  pub plugins_config_dir: Option<String>,
  /// Threads of this broker's runtime, 1-256. Default: the number of CPU cores.
  #[serde(default, deserialize_with = "opt_number")]
  pub worker_threads: Option<f64>,
  /// Longest time, in seconds, a session outlives its connection, 1 to
  /// 4294967295. An MQTT 5 client asking for a longer Session Expiry Interval
  /// (or for none, 0xFFFFFFFF) gets this one, told in its CONNACK. Also
  /// the default of `sessionExpiryInterval`. Default 7200 (2 hours).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_session_expiry_interval: Option<f64>,
  /// How long, in seconds, an MQTT 3.1.1 persistent session (`clean:
  /// false`) outlives its connection, 1 to `maxSessionExpiryInterval` (3.1.1
  /// clients cannot ask for a lifetime). Default: `maxSessionExpiryInterval`.
  #[serde(default, deserialize_with = "opt_number")]
  pub session_expiry_interval: Option<f64>,
  /// Publish the broker's stats under `$SYS/broker/...` (mosquitto's names),
  /// retained. Off when absent.
  pub sys_topics: Option<crate::sys_topics::SysTopicsConfig>,
  /// Native ACL rules, checked in order, first match wins (docs/acl.md).
  /// Replace them at runtime with `setAcl()`.
  pub acl: Option<Vec<crate::acl::AclRule>>,
  /// The answer when no ACL rule matches and no authorize hook is set,
  /// for `acl` and for the rules of `setAcl()`. Default `'deny'`.
  #[napi(ts_type = "'allow' | 'deny'")]
  pub acl_default: Option<String>,
  /// Users authenticated natively, before `onClientAuthenticate` (docs/auth.md).
  pub users: Option<Vec<crate::passwd::UserConfig>>,
  /// A password file as `mosquitto_passwd` writes it, read at `start()`.
  pub password_file: Option<String>,
  /// JSON Web Tokens as CONNECT passwords (docs/auth.md).
  pub jwt: Option<crate::jwt::JwtConfig>,
  /// Keep retained messages on disk, in `storage.path`. Default: in memory.
  pub storage: Option<crate::storage::StorageConfig>,
  /// Most retained messages kept in all (1-4294967295). Beyond it a
  /// retained message for a new topic is refused (MQTT 5 QoS 1/2: 0x97
  /// *Quota exceeded*; reported to `onMessageDropped`); replacing or
  /// clearing one still works. Default: no limit (`maxRetainedBytes` bounds them).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_retained_messages: Option<f64>,
  /// Most bytes (topics and payloads) of all retained messages together
  /// (1-9007199254740991), refused beyond it as past
  /// `maxRetainedMessages`; a replacement is refused only if it is larger
  /// and takes the total over. Default 268435456 (256 MiB).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_retained_bytes: Option<f64>,
}

/// One network endpoint of the broker.
#[napi(object)]
#[derive(Deserialize, Clone, Debug)]
#[serde(
  rename_all = "camelCase",
  deny_unknown_fields,
  expecting = "a listener object"
)]
pub struct ListenerConfig {
  /// Unique name of the listener, used in errors and in `server.listeners`.
  /// Defaults to `"<protocol>-<index>"`.
  pub name: Option<String>,
  /// IP address or host name to bind. Default `"0.0.0.0"`. A host name such as
  /// `"localhost"` is resolved and its first IPv4 address (else IPv6) is bound.
  pub address: Option<String>,
  /// TCP port, 0-65535. `0` binds a free ephemeral port; read the real one
  /// from the value `start()` resolves with or from `server.listeners`.
  #[serde(deserialize_with = "number")]
  pub port: f64,
  /// Transport: plain MQTT over TCP, MQTT over TLS, MQTT over WebSocket, or over secure WebSocket.
  #[napi(ts_type = "'tcp' | 'tls' | 'ws' | 'wss'")]
  pub protocol: String,
  /// The PEM certificate (chain), leaf first: a file path, PEM text or a
  /// Buffer; required for `tls` and `wss`. An expired or not yet valid
  /// certificate starts with a warning (`process.emitWarning`, code
  /// `MQTT_SERVER_TLS_CERT_EXPIRED` or `MQTT_SERVER_TLS_CERT_NOT_YET_VALID`).
  #[napi(ts_type = "string | Buffer | Uint8Array")]
  #[serde(default, deserialize_with = "tls_source::deserialize")]
  pub tls_cert: Option<PemSource>,
  /// The PEM private key (not encrypted): a file path, PEM text or a
  /// Buffer; required for `tls` and `wss`. Never shown in an error.
  #[napi(ts_type = "string | Buffer | Uint8Array")]
  #[serde(default, deserialize_with = "tls_source::deserialize")]
  pub tls_key: Option<PemSource>,
  /// CA certificate(s), PEM (a file path, PEM text or a Buffer), that sign
  /// the client certificates this `tls`/`wss` listener accepts. With it,
  /// clients are asked for a certificate; one that does not verify is
  /// refused during the TLS handshake. Without it, none is asked for.
  #[napi(ts_type = "string | Buffer | Uint8Array")]
  #[serde(default, deserialize_with = "tls_source::deserialize")]
  pub tls_ca: Option<PemSource>,
  /// Refuse clients that present no certificate (needs `tlsCa`). Default
  /// `false`: such clients connect and `certificate` is `null` in
  /// `onClientAuthenticate`.
  pub require_client_cert: Option<bool>,
  /// Use the client certificate's Common Name (`'cn'`) or its whole
  /// subject, e.g. `"CN=alice, O=Acme"` (`'dn'`), as the MQTT username,
  /// whatever the client sent. Needs `requireClientCert: true`.
  #[napi(ts_type = "'cn' | 'dn'")]
  pub cert_as_username: Option<String>,
  /// Accept clients that send no username. Default `true`.
  pub allow_anonymous: Option<bool>,
  /// Largest MQTT packet accepted, in bytes. Default 1 MiB.
  #[serde(default, deserialize_with = "opt_number")]
  pub max_packet_size: Option<f64>,
  /// Unacknowledged QoS 1/2 messages per client, in each direction. Default 256.
  #[serde(default, deserialize_with = "opt_number")]
  pub max_inflight: Option<f64>,
  /// Messages queued per client behind the in-flight window. Default 1000.
  #[serde(default, deserialize_with = "opt_number")]
  pub max_mqueue_len: Option<f64>,
  /// MQTT 5 topic aliases per client, in each direction (0-65535). Default 0:
  /// none offered (they cost no memory while unused, about 2.5 KiB per
  /// connection once 16 topics have one, and a lock per delivery).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_topic_aliases: Option<f64>,
  /// Most levels a topic name or filter may have (1-65536). Default 128. A
  /// subscription to a deeper filter is refused (MQTT 5: 0x8F *Topic Filter
  /// invalid*; 3.1.1: failure), a deeper publish closes the connection (MQTT 5:
  /// DISCONNECT 0x90 *Topic Name invalid* first).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_topic_levels: Option<f64>,
  /// Milliseconds a new connection has, from accept, to complete its TLS
  /// handshake, WebSocket upgrade and CONNECT (100-3600000); it is then
  /// closed without a CONNACK. Also how long a packet that has started may
  /// go without at least 1 KiB/s more of it arriving. Default 30000.
  #[serde(default, deserialize_with = "opt_number")]
  pub handshake_timeout: Option<f64>,
  /// Longest keep-alive, in seconds, a client may use (1-65535). MQTT 5: a
  /// client asking for more, or for none (0), is told this one in CONNACK's
  /// Server Keep Alive. MQTT 3.1.1 has no way to tell it, so such a CONNECT
  /// is refused with 0x02 *Identifier rejected*, as mosquitto does. A
  /// connection that stays silent past 1.5 times its keep-alive is closed.
  /// Default: none (any keep-alive, 0 included, is accepted).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_keep_alive: Option<f64>,
  /// Most subscriptions a client may hold (1-4294967295). A SUBSCRIBE of a
  /// new filter beyond it fails for that filter (MQTT 5: 0x97 *Quota
  /// exceeded*; 3.1.1: 0x80); one the client holds already is still
  /// replaced. Default: no limit.
  #[serde(default, deserialize_with = "opt_number")]
  pub max_subscriptions_per_client: Option<f64>,
  /// Seconds after which an unacknowledged QoS 1/2 delivery to an MQTT
  /// 3.1.1 client is sent again (with DUP) on the same connection, 1-65535.
  /// Default: never, as mosquitto: it is resent when the client reconnects
  /// to its session. MQTT 5 clients never get a resend on the same
  /// connection, which that version forbids (MQTT-4.4.0-1).
  #[serde(default, deserialize_with = "opt_number")]
  pub message_retry_interval: Option<f64>,
  /// Most connections this listener holds at once (1-4294967295), counted
  /// from their CONNECT to their close. One more is refused: CONNACK 0x97
  /// *Quota exceeded* (MQTT 5), 3 *Server unavailable* (3.1.1). Default:
  /// the process's open-file limit less an eighth (at least 64) kept for
  /// the application, one bound shared by the listeners without
  /// `maxConnections` (none on Windows).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_connections: Option<f64>,
  /// Most connections to this listener from one IP address (1-4294967295),
  /// refused as beyond `maxConnections`. Default: no limit (clients behind
  /// one NAT share an address).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_connections_per_ip: Option<f64>,
  /// Longest topic name or filter, in bytes (1-65535). A PUBLISH to a longer
  /// topic is refused as one over `maxTopicLevels` (MQTT 5: DISCONNECT 0x90
  /// *Topic Name invalid*; 3.1.1: close), a longer filter fails in its
  /// SUBACK (0x8F; 3.1.1: 0x80). Default 65535: MQTT's own bound.
  #[serde(default, deserialize_with = "opt_number")]
  pub max_topic_length: Option<f64>,
  /// How fast each connection may publish: `messages` and/or `bytes`
  /// (topic and payload) per second, with bursts of up to one second's
  /// worth. A client past it is throttled: the broker reads nothing more
  /// from it until it is back within the rate, and TCP holds it back. It
  /// is not disconnected. Default: no limit.
  pub max_publish_rate: Option<crate::publish_rate::PublishRateConfig>,
  /// Most topic and payload bytes queued for a client whose session is
  /// offline (1-9007199254740991). A message that does not fit is dropped,
  /// whatever its QoS, and reported through `onMessageDropped`, as one past
  /// `maxMqueueLen`. (A connected client's queue is bounded by flow
  /// control, which holds publishers back.) Default 67108864 (64 MiB).
  #[serde(default, deserialize_with = "opt_number")]
  pub max_queued_bytes: Option<f64>,
}

/// Options for `MqttServer.createMultiProtocolConfig()`. Each port given opens
/// one listener of that protocol; at least one is required.
#[napi(object)]
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, expecting = "an object")]
pub struct MultiProtocolOptions {
  #[serde(default, deserialize_with = "opt_number")]
  pub tcp_port: Option<f64>,
  #[serde(default, deserialize_with = "opt_number")]
  pub tls_port: Option<f64>,
  #[serde(default, deserialize_with = "opt_number")]
  pub ws_port: Option<f64>,
  #[serde(default, deserialize_with = "opt_number")]
  pub wss_port: Option<f64>,
  /// Bind address for every listener. Default `"0.0.0.0"`.
  pub address: Option<String>,
  /// PEM certificate for the `tls` and `wss` listeners: a file path, PEM text or a Buffer.
  #[napi(ts_type = "string | Buffer | Uint8Array")]
  #[serde(default, deserialize_with = "tls_source::deserialize")]
  pub tls_cert: Option<PemSource>,
  /// PEM private key for the `tls` and `wss` listeners: a file path, PEM text or a Buffer.
  #[napi(ts_type = "string | Buffer | Uint8Array")]
  #[serde(default, deserialize_with = "tls_source::deserialize")]
  pub tls_key: Option<PemSource>,
  /// Applied to every listener. Default `true`.
  pub allow_anonymous: Option<bool>,
}

/// `createBasicConfig(port, address)`: one TCP listener.
pub fn basic(
  port: Option<serde_json::Value>,
  address: Option<serde_json::Value>,
) -> Result<ServerConfig> {
  let port = match port {
    None | Some(serde_json::Value::Null) => 1883.0,
    Some(v) => v.as_f64().ok_or_else(|| {
      invalid_arg(format!(
        "createBasicConfig: port must be a number, got {}",
        json_kind(&v)
      ))
    })?,
  };
  let port = integer("createBasicConfig: port", port, 0, u16::MAX as u64)?;
  let address = match address {
    None | Some(serde_json::Value::Null) => None,
    Some(serde_json::Value::String(a)) => Some(a),
    Some(v) => {
      return Err(invalid_arg(format!(
        "createBasicConfig: address must be a string, got {}",
        json_kind(&v)
      )))
    }
  };
  Ok(ServerConfig {
    listeners: vec![listener_config("tcp", port, address, None, None, None)],
    plugins_config_dir: None,
    worker_threads: None,
    max_session_expiry_interval: None,
    session_expiry_interval: None,
    sys_topics: None,
    acl: None,
    acl_default: None,
    users: None,
    password_file: None,
    jwt: None,
    storage: None,
    max_retained_messages: None,
    max_retained_bytes: None,
  })
}

/// `createMultiProtocolConfig(options)`: one listener per port given.
pub fn multi_protocol(options: serde_json::Value) -> Result<ServerConfig> {
  let o: MultiProtocolOptions = from_json(options, "options")?;
  let mut listeners = Vec::new();
  for (protocol, field, port) in [
    ("tcp", "tcpPort", o.tcp_port),
    ("tls", "tlsPort", o.tls_port),
    ("ws", "wsPort", o.ws_port),
    ("wss", "wssPort", o.wss_port),
  ] {
    let Some(port) = port else { continue };
    let port = integer(&format!("options.{field}"), port, 0, u16::MAX as u64)?;
    let tls = protocol == "tls" || protocol == "wss";
    let (cert, key) = if tls {
      (o.tls_cert.clone(), o.tls_key.clone())
    } else {
      (None, None)
    };
    listeners.push(listener_config(
      protocol,
      port,
      o.address.clone(),
      cert,
      key,
      o.allow_anonymous,
    ));
  }
  if listeners.is_empty() {
    return Err(invalid_arg(
      "options: give at least one of tcpPort, tlsPort, wsPort, wssPort",
    ));
  }
  Ok(ServerConfig {
    listeners,
    plugins_config_dir: None,
    worker_threads: None,
    max_session_expiry_interval: None,
    session_expiry_interval: None,
    sys_topics: None,
    acl: None,
    acl_default: None,
    users: None,
    password_file: None,
    jwt: None,
    storage: None,
    max_retained_messages: None,
    max_retained_bytes: None,
  })
}

fn listener_config(
  protocol: &str,
  port: u64,
  address: Option<String>,
  tls_cert: Option<PemSource>,
  tls_key: Option<PemSource>,
  allow_anonymous: Option<bool>,
) -> ListenerConfig {
  ListenerConfig {
    name: Some(protocol.to_string()),
    address: Some(address.unwrap_or_else(|| "0.0.0.0".to_string())),
    port: port as f64,
    protocol: protocol.to_string(),
    tls_cert,
    tls_key,
    tls_ca: None,
    require_client_cert: None,
    cert_as_username: None,
    allow_anonymous: Some(allow_anonymous.unwrap_or(true)),
    max_packet_size: None,
    max_inflight: None,
    max_mqueue_len: None,
    max_topic_aliases: None,
    max_topic_levels: None,
    handshake_timeout: None,
    max_keep_alive: None,
    max_subscriptions_per_client: None,
    message_retry_interval: None,
    max_connections: None,
    max_connections_per_ip: None,
    max_topic_length: None,
    max_publish_rate: None,
    max_queued_bytes: None,
  }
}

/// Deserializes with the failing field's path in the message (`at` names
/// the root, e.g. `"options"`).
pub fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value, at: &str) -> Result<T> {
  serde_path_to_error::deserialize(value).map_err(|e| {
    let path = e.path().to_string();
    let field = match (at.is_empty(), path.as_str()) {
      (true, ".") => "config".to_string(),
      (true, _) => path,
      (false, ".") => at.to_string(),
      (false, _) => format!("{at}.{path}"),
    };
    invalid_arg(format!("{field}: {}", e.inner()))
  })
}

/// A JSON number as `f64`, reporting "expected a number" (not "f64").
pub fn number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
  struct V;
  impl serde::de::Visitor<'_> for V {
    type Value = f64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
      f.write_str("a number")
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<f64, E> {
      Ok(v)
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<f64, E> {
      Ok(v as f64)
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<f64, E> {
      Ok(v as f64)
    }
  }
  d.deserialize_f64(V)
}

/// An optional [`number`]; `null` counts as absent.
pub fn opt_number<'de, D: serde::Deserializer<'de>>(
  d: D,
) -> std::result::Result<Option<f64>, D::Error> {
  #[derive(Deserialize)]
  struct N(#[serde(deserialize_with = "number")] f64);
  Ok(Option::<N>::deserialize(d)?.map(|n| n.0))
}

/// The transports a listener can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
  Tcp,
  Tls,
  Ws,
  Wss,
}

impl Protocol {
  pub fn as_str(self) -> &'static str {
    match self {
      Protocol::Tcp => "tcp",
      Protocol::Tls => "tls",
      Protocol::Ws => "ws",
      Protocol::Wss => "wss",
    }
  }

  fn parse(s: &str) -> Option<Self> {
    match s {
      "tcp" => Some(Protocol::Tcp),
      "tls" => Some(Protocol::Tls),
      "ws" => Some(Protocol::Ws),
      "wss" => Some(Protocol::Wss),
      _ => None,
    }
  }

  fn is_tls(self) -> bool {
    matches!(self, Protocol::Tls | Protocol::Wss)
  }
}

/// Per-listener limits passed to rmqtt; `None` keeps rmqtt's default.
#[derive(Clone, Debug, Default)]
pub struct Limits {
  pub max_packet_size: Option<u32>,
  pub max_inflight: Option<u16>,
  pub max_mqueue_len: Option<usize>,
  pub max_topic_aliases: Option<u16>,
  pub max_topic_levels: Option<usize>,
  pub handshake_timeout: Option<std::time::Duration>,
  pub max_keep_alive: Option<u16>,
  pub max_subscriptions: Option<usize>,
  pub message_retry_interval: Option<Duration>,
  pub max_connections: Option<usize>,
  pub max_connections_per_ip: Option<usize>,
  pub max_topic_length: Option<usize>,
  /// Messages and bytes per second (0: no limit).
  pub max_publish_rate: Option<(u32, u64)>,
  pub max_queued_bytes: Option<usize>,
}

/// A listener whose every field has been checked; binding it can only fail
/// for reasons outside the config (port taken, unreadable certificate).
#[derive(Clone, Debug)]
pub struct ListenerSpec {
  pub name: String,
  pub protocol: Protocol,
  pub addr: SocketAddr,
  /// Present exactly for `tls` and `wss`.
  pub tls: Option<TlsSpec>,
  pub allow_anonymous: bool,
  pub limits: Limits,
  /// The server's `maxSessionExpiryInterval`.
  pub max_session_expiry: Duration,
  /// The server's `sessionExpiryInterval` (3.1.1 persistent sessions).
  pub session_expiry: Duration,
}

/// The validated form of [`ServerConfig`].
#[derive(Clone, Debug)]
pub struct BrokerSpec {
  pub listeners: Vec<ListenerSpec>,
  pub plugins_config_dir: Option<String>,
  pub worker_threads: usize,
  pub storage: Option<crate::storage::Store>,
  /// `storage.sync: 'always'` (`storage_sync.rs`).
  pub storage_sync: bool,
  /// What `start()` reports without failing (a certificate out of date).
  pub warnings: Vec<Warning>,
  /// How often `$SYS` topics are published; `None`: they are not.
  pub sys_topics: Option<Duration>,
  pub acl: Option<crate::acl::Rules>,
  /// `aclDefault`, for rules `setAcl()` installs later.
  pub acl_default: bool,
  pub users: Option<crate::passwd::Users>,
  pub jwt: Option<crate::jwt::Jwt>,
  /// `maxRetainedMessages`, `maxRetainedBytes` (with its default).
  pub retained_limits: crate::retained_quota::Limits,
}

/// `maxSessionExpiryInterval` when not given: rmqtt's own lifetime of an
/// MQTT 3.1.1 session, so both protocols get the same.
const DEFAULT_MAX_SESSION_EXPIRY: u64 = 2 * 60 * 60;

/// Reads and validates a config object coming from JavaScript (the caller,
/// `MqttServer.start`, has already checked that it is an object).
pub async fn parse(value: serde_json::Value) -> Result<BrokerSpec> {
  let config: ServerConfig = from_json(value, "")?;
  if config.listeners.is_empty() {
    return Err(invalid_arg("listeners: at least one listener is required"));
  }
  let max_session_expiry = match config.max_session_expiry_interval {
    Some(v) => integer("maxSessionExpiryInterval", v, 1, u32::MAX as u64)?,
    None => DEFAULT_MAX_SESSION_EXPIRY,
  };
  let session_expiry = match config.session_expiry_interval {
    Some(v) => integer("sessionExpiryInterval", v, 1, u32::MAX as u64)?,
    None => max_session_expiry,
  };
  if session_expiry > max_session_expiry {
    return Err(invalid_arg(format!(
      "sessionExpiryInterval: {session_expiry} is above maxSessionExpiryInterval ({max_session_expiry})"
    )));
  }
  let (max_session_expiry, session_expiry) = (
    Duration::from_secs(max_session_expiry),
    Duration::from_secs(session_expiry),
  );
  let mut names: HashMap<String, usize> = HashMap::new();
  let mut listeners = Vec::with_capacity(config.listeners.len());
  for (i, l) in config.listeners.iter().enumerate() {
    let spec = listener_spec(i, l, (session_expiry, max_session_expiry)).await?;
    if let Some(first) = names.insert(spec.name.clone(), i) {
      let default = if l.name.is_none() {
        " (its default name)"
      } else {
        ""
      };
      return Err(invalid_arg(format!(
        "listeners[{i}].name: \"{}\"{default} is already used by listeners[{first}]; names must be unique",
        spec.name
      )));
    }
    listeners.push(spec);
  }
  if let Some(dir) = &config.plugins_config_dir {
    if !std::path::Path::new(dir).is_dir() {
      return Err(invalid_arg(format!(
        "pluginsConfigDir: \"{dir}\" is not a directory"
      )));
    }
  }
  let worker_threads = match config.worker_threads {
    Some(n) => integer("workerThreads", n, 1, 256)? as usize,
    None => std::thread::available_parallelism().map_or(2, |n| n.get()),
  };
  let acl_default = crate::acl::parse_default(config.acl_default.as_deref(), "aclDefault")?;
  let acl = config
    .acl
    .as_deref()
    .map(|rules| crate::acl::Rules::parse(rules, "acl"))
    .transpose()?;
  let users = crate::passwd::Users::load(config.users.as_deref(), config.password_file.as_deref())?;
  let jwt = config
    .jwt
    .as_ref()
    .map(crate::jwt::Jwt::parse)
    .transpose()?;
  let storage = config
    .storage
    .as_ref()
    .map(crate::storage::check)
    .transpose()?;
  let storage_sync = crate::storage_sync::always(config.storage.as_ref())?;
  Ok(BrokerSpec {
    listeners,
    plugins_config_dir: config.plugins_config_dir,
    worker_threads,
    warnings: Vec::new(),
    sys_topics: config
      .sys_topics
      .as_ref()
      .map(crate::sys_topics::interval)
      .transpose()?,
    acl,
    acl_default,
    users,
    jwt,
    storage,
    storage_sync,
    retained_limits: crate::retained_quota::Limits {
      max_messages: config
        .max_retained_messages
        .map(|v| integer("maxRetainedMessages", v, 1, u32::MAX as u64))
        .transpose()?
        .map(|v| v as usize),
      max_bytes: Some(match config.max_retained_bytes {
        Some(v) => integer("maxRetainedBytes", v, 1, (1 << 53) - 1)? as usize,
        None => crate::retained_quota::DEFAULT_MAX_BYTES,
      }),
    },
  })
}

async fn listener_spec(
  i: usize,
  l: &ListenerConfig,
  (session_expiry, max_session_expiry): (Duration, Duration),
) -> Result<ListenerSpec> {
  let field = |f: &str| format!("listeners[{i}].{f}");
  let protocol = Protocol::parse(&l.protocol).ok_or_else(|| {
    invalid_arg(format!(
      "{}: unknown protocol \"{}\"; expected one of \"tcp\", \"tls\", \"ws\", \"wss\"",
      field("protocol"),
      l.protocol
    ))
  })?;
  let port = integer(&field("port"), l.port, 0, u16::MAX as u64)? as u16;
  let name = match &l.name {
    Some(n) if n.trim().is_empty() => {
      return Err(invalid_arg(format!("{}: must not be empty", field("name"))))
    }
    Some(n) => n.clone(),
    None => format!("{}-{i}", protocol.as_str()),
  };
  let host = l.address.as_deref().unwrap_or("0.0.0.0");
  let addr = resolve(&field("address"), host, port).await?;

  let tls = if protocol.is_tls() {
    Some(tls_spec(&field, l, protocol)?)
  } else {
    let given = [
      ("tlsCert", l.tls_cert.is_some()),
      ("tlsKey", l.tls_key.is_some()),
      ("tlsCa", l.tls_ca.is_some()),
      ("requireClientCert", l.require_client_cert.is_some()),
      ("certAsUsername", l.cert_as_username.is_some()),
    ];
    for (f, v) in given {
      if v {
        return Err(invalid_arg(format!(
          "{}: only valid for \"tls\" and \"wss\" listeners, this one is \"{}\"",
          field(f),
          protocol.as_str()
        )));
      }
    }
    None
  };

  let opt = |f: &str, v: Option<f64>, min: u64, max: u64| -> Result<Option<u64>> {
    v.map(|v| integer(&field(f), v, min, max)).transpose()
  };
  let limits = Limits {
    max_packet_size: opt("maxPacketSize", l.max_packet_size, 16, 268_435_455)?.map(|v| v as u32),
    max_inflight: opt("maxInflight", l.max_inflight, 1, u16::MAX as u64)?.map(|v| v as u16),
    max_mqueue_len: opt("maxMqueueLen", l.max_mqueue_len, 1, u32::MAX as u64)?.map(|v| v as usize),
    max_topic_aliases: opt("maxTopicAliases", l.max_topic_aliases, 0, u16::MAX as u64)?
      .map(|v| v as u16),
    max_topic_levels: opt("maxTopicLevels", l.max_topic_levels, 1, 65536)?.map(|v| v as usize),
    handshake_timeout: opt("handshakeTimeout", l.handshake_timeout, 100, 3_600_000)?
      .map(std::time::Duration::from_millis),
    max_keep_alive: opt("maxKeepAlive", l.max_keep_alive, 1, u16::MAX as u64)?.map(|v| v as u16),
    max_subscriptions: opt(
      "maxSubscriptionsPerClient",
      l.max_subscriptions_per_client,
      1,
      u32::MAX as u64,
    )?
    .map(|v| v as usize),
    message_retry_interval: opt("messageRetryInterval", l.message_retry_interval, 1, 65535)?
      .map(Duration::from_secs),
    max_topic_length: opt("maxTopicLength", l.max_topic_length, 1, 65535)?.map(|v| v as usize),
    max_connections: opt("maxConnections", l.max_connections, 1, u32::MAX as u64)?
      .map(|v| v as usize),
    max_connections_per_ip: opt(
      "maxConnectionsPerIp",
      l.max_connections_per_ip,
      1,
      u32::MAX as u64,
    )?
    .map(|v| v as usize),
    max_publish_rate: l
      .max_publish_rate
      .as_ref()
      .map(|r| crate::publish_rate::parse(&field("maxPublishRate"), r))
      .transpose()?,
    max_queued_bytes: opt("maxQueuedBytes", l.max_queued_bytes, 1, (1 << 53) - 1)?
      .map(|v| v as usize),
  };

  Ok(ListenerSpec {
    name,
    protocol,
    addr,
    tls,
    allow_anonymous: l.allow_anonymous.unwrap_or(true),
    limits,
    max_session_expiry,
    session_expiry,
  })
}

pub fn integer(field: &str, v: f64, min: u64, max: u64) -> Result<u64> {
  if !v.is_finite() || v.fract() != 0.0 || v < min as f64 || v > max as f64 {
    return Err(invalid_arg(format!(
      "{field}: must be an integer from {min} to {max}, got {v}"
    )));
  }
  Ok(v as u64)
}

/// Parses an IP literal, or resolves a host name (never silently falls back
/// to the wildcard address).
async fn resolve(field: &str, host: &str, port: u16) -> Result<SocketAddr> {
  let host = host.trim();
  if host.is_empty() {
    return Err(invalid_arg(format!("{field}: must not be empty")));
  }
  // `[::1]` style is accepted as well as `::1`.
  let literal = host
    .strip_prefix('[')
    .and_then(|h| h.strip_suffix(']'))
    .unwrap_or(host);
  if let Ok(ip) = literal.parse::<IpAddr>() {
    return Ok(SocketAddr::new(ip, port));
  }
  let invalid_host = !host
    .chars()
    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
  if invalid_host {
    return Err(invalid_arg(format!(
      "{field}: \"{host}\" is neither an IP address nor a host name"
    )));
  }
  let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
    .await
    .map_err(|e| invalid_arg(format!("{field}: cannot resolve host \"{host}\": {e}")))?
    .collect();
  addrs
    .iter()
    .find(|a| a.is_ipv4())
    .or_else(|| addrs.first())
    .copied()
    .ok_or_else(|| invalid_arg(format!("{field}: host \"{host}\" resolved to no address")))
}

/// The TLS settings of a `tls`/`wss` listener; the material itself is read
/// by `tls::load`. Values are never echoed: they may hold a key.
fn tls_spec(
  field: &dyn Fn(&str) -> String,
  l: &ListenerConfig,
  protocol: Protocol,
) -> Result<TlsSpec> {
  let required = |f: &str, v: &Option<PemSource>| {
    v.clone()
      .filter(|v| !matches!(v, PemSource::Text(t) if t.is_empty()))
      .ok_or_else(|| {
        invalid_arg(format!(
          "{}: required for a \"{}\" listener (a file path, PEM text or a Buffer)",
          field(f),
          protocol.as_str()
        ))
      })
  };
  let cert = required("tlsCert", &l.tls_cert)?;
  let key = required("tlsKey", &l.tls_key)?;
  let require_client_cert = l.require_client_cert.unwrap_or(false);
  if require_client_cert && l.tls_ca.is_none() {
    return Err(invalid_arg(format!(
      "{}: needs tlsCa, the CA certificates that sign the client certificates",
      field("requireClientCert")
    )));
  }
  let cert_as_username = match l.cert_as_username.as_deref() {
    None => None,
    Some("cn") => Some(CertAsUsername::CommonName),
    Some("dn") => Some(CertAsUsername::Subject),
    Some(other) => {
      return Err(invalid_arg(format!(
        "{}: expected \"cn\" or \"dn\", got \"{other}\"",
        field("certAsUsername")
      )))
    }
  };
  if cert_as_username.is_some() && !require_client_cert {
    return Err(invalid_arg(format!(
      "{}: needs requireClientCert: true (else a client without a certificate would choose its own username)",
      field("certAsUsername")
    )));
  }
  Ok(TlsSpec {
    cert,
    key,
    ca: l.tls_ca.clone(),
    require_client_cert,
    cert_as_username,
    pem: None,
  })
}

fn json_kind(v: &serde_json::Value) -> &'static str {
  match v {
    serde_json::Value::Null => "null/undefined",
    serde_json::Value::Bool(_) => "a boolean",
    serde_json::Value::Number(_) => "a number",
    serde_json::Value::String(_) => "a string",
    serde_json::Value::Array(_) => "an array",
    serde_json::Value::Object(_) => "an object",
  }
}
