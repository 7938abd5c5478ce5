//! The data hooks hand to JavaScript, and what decision hooks hand back.
//!
//! The argument types here declare what `index.d.ts` shows; their JS values
//! are made by `hook_js.rs`. Results are read with napi-rs's conversions.

use napi::bindgen_prelude::{Buffer, Either, Null};
use napi_derive::napi;
use rmqtt::types::ConnectInfo;

use crate::message_properties::MessageProperties;

/// A value or JavaScript `null` (an `Option` would become `undefined`).
pub type Nullable<T> = Either<T, Null>;

pub fn nullable<T>(v: Option<T>) -> Nullable<T> {
  v.map_or(Either::B(Null), Either::A)
}

/// A connected client, as hooks see it.
#[napi(object, object_to_js = false)]
#[allow(dead_code)] // built by hook_js.rs
pub struct SessionInfo {
  /// Broker node id (always this broker's id: embedded-mqtt-broker is single-node).
  pub node: u32,
  /// Client's address and port, e.g. `"127.0.0.1:53211"`.
  #[napi(ts_type = "string | null")]
  pub remote_addr: Nullable<String>,
  pub client_id: String,
  /// Username from CONNECT; `null` for anonymous clients.
  #[napi(ts_type = "string | null")]
  pub username: Nullable<String>,
}

/// Where a message came from.
#[napi(object, object_to_js = false)]
#[allow(dead_code)] // built by hook_js.rs
pub struct MessageFrom {
  /// `"client"` for client publishes, `"system"` for `server.publish()`,
  /// `"lastwill"` for a will message; the others come from rmqtt plugins.
  #[napi(ts_type = "'client' | 'system' | 'bridge' | 'admin' | 'lastwill' | 'custom'")]
  pub r#type: String,
  pub node: u32,
  #[napi(ts_type = "string | null")]
  pub remote_addr: Nullable<String>,
  pub client_id: String,
  #[napi(ts_type = "string | null")]
  pub username: Nullable<String>,
}

/// A message passing through the broker.
#[napi(object, object_to_js = false)]
#[allow(dead_code)] // built by hook_js.rs
pub struct MessageInfo {
  pub dup: bool,
  #[napi(ts_type = "QoS")]
  pub qos: u32,
  pub retain: bool,
  pub topic: String,
  /// The exact payload bytes.
  pub payload: Buffer,
  /// When the broker received the message, in milliseconds since the epoch.
  pub create_time: f64,
  /// Its MQTT 5 properties, only those it carries. `undefined` when it has
  /// none (always for an MQTT 3.1.1 publisher): such a message costs no
  /// allocation and no object; the key is there either way (one shape).
  pub properties: Option<MessageProperties>,
}

/// A subscription, as requested by the client (`onClientSubscribeAuthorize`)
/// or as granted (`onClientSubscribe`).
#[napi(object, object_to_js = false)]
#[allow(dead_code)] // built by hook_js.rs
pub struct SubscriptionInfo {
  pub topic_filter: String,
  #[napi(ts_type = "QoS")]
  pub qos: u32,
}

#[napi(object, object_to_js = false)]
#[allow(dead_code)] // built by hook_js.rs
pub struct UnsubscriptionInfo {
  pub topic_filter: String,
}

/// Why a client disconnected, a session ended, or a message was dropped.
#[napi(object, object_to_js = false)]
#[allow(dead_code)] // built by hook_js.rs
pub struct ReasonInfo {
  pub reason: String,
}

/// The CONNECT being authenticated.
#[napi(object)]
pub struct AuthenticateRequest {
  pub client_id: String,
  #[napi(ts_type = "string | null")]
  pub username: Nullable<String>,
  /// The password as text when it is valid UTF-8, else `null` (compare bytes
  /// with `passwordBuffer`: MQTT passwords are binary).
  #[napi(ts_type = "string | null")]
  pub password: Nullable<String>,
  /// The exact password bytes, `null` when the client sent no password.
  #[napi(ts_type = "Buffer | null")]
  pub password_buffer: Nullable<Buffer>,
  /// 3 = MQTT 3.1, 4 = MQTT 3.1.1, 5 = MQTT 5.0.
  pub protocol_version: u32,
  #[napi(ts_type = "string | null")]
  pub remote_addr: Nullable<String>,
  pub keep_alive: u32,
  /// Clean session (3.1.1) / clean start (5.0) flag.
  pub clean_session: bool,
}

/// A client PUBLISH being authorized.
#[napi(object, object_to_js = false)]
#[allow(dead_code)] // built by hook_js.rs
pub struct PublishRequest {
  pub topic: String,
  pub payload: Buffer,
  #[napi(ts_type = "QoS")]
  pub qos: u32,
  pub retain: bool,
  /// Its MQTT 5 properties; `undefined` when it has none.
  pub properties: Option<MessageProperties>,
}

/// A refusal's reason code: a `ReasonCodeName` or its number.
pub type Code = Either<f64, String>;

/// Answer of `onClientAuthenticate`.
#[napi(object)]
#[derive(Clone)]
pub struct AuthenticateResult {
  pub allow: bool,
  /// A superuser skips the subscribe and publish authorization hooks.
  pub superuser: Option<bool>,
  /// Why the client was refused: logged, and sent to MQTT 5.0 clients as the
  /// CONNACK's Reason String.
  pub reason: Option<String>,
  /// CONNACK reason code of a refusal (MQTT 5.0 value; 3.1.1 clients get the
  /// closest 3.1.1 code). Default: `'badUsernameOrPassword'` when the client
  /// sent a username, `'notAuthorized'` otherwise. A code not valid in a
  /// CONNACK is the hook's failure (refused, counted in `hookStats.failures`).
  #[napi(ts_type = "ReasonCodeName | number")]
  pub code: Option<Code>,
  /// Redirect (MQTT 5.0): with `code: 'useAnotherServer'` or `'serverMoved'`,
  /// sent as the CONNACK's Server Reference (e.g. `"other.example:1883"`).
  pub server_reference: Option<String>,
}

/// Answer of `onClientSubscribeAuthorize`.
#[napi(object)]
#[derive(Clone)]
pub struct SubscribeAuthorizeResult {
  pub allow: bool,
  /// Highest QoS to grant; the granted QoS is the lower of this and the request.
  #[napi(ts_type = "QoS")]
  pub qos: Option<u32>,
  /// MQTT 5.0 clients get it as the SUBACK's Reason String.
  pub reason: Option<String>,
  /// SUBACK reason code of a denial (MQTT 5.0; 3.1.1 clients get 0x80).
  /// Default `'notAuthorized'` (0x87).
  #[napi(ts_type = "ReasonCodeName | number")]
  pub code: Option<Code>,
  /// Reuse this answer for the same client connection and topic filter for
  /// this many milliseconds, without calling the hook.
  pub cache_ms: Option<f64>,
}

/// Answer of `onClientPublishAuthorize`.
#[napi(object)]
#[derive(Clone)]
pub struct PublishAuthorizeResult {
  pub allow: bool,
  /// MQTT 5.0 clients get it as the PUBACK/PUBREC reason string.
  pub reason: Option<String>,
  /// PUBACK/PUBREC reason code of a denial (MQTT 5.0). Default
  /// `'notAuthorized'` (0x87). With `disconnect`, also the DISCONNECT's code.
  #[napi(ts_type = "ReasonCodeName | number")]
  pub code: Option<Code>,
  /// Also disconnect the client (default `false`).
  pub disconnect: Option<bool>,
  /// Reuse this answer for the same client connection and topic for this
  /// many milliseconds, without calling the hook (payload, QoS and retain
  /// are not part of the key).
  pub cache_ms: Option<f64>,
}

pub fn authenticate_request(c: &ConnectInfo) -> AuthenticateRequest {
  let password = c.password();
  AuthenticateRequest {
    client_id: c.client_id().to_string(),
    username: nullable(c.username().map(|u| u.to_string())),
    password: nullable(password.and_then(|p| std::str::from_utf8(p).ok().map(str::to_string))),
    password_buffer: nullable(password.map(|p| p.to_vec().into())),
    protocol_version: c.proto_ver() as u32,
    remote_addr: nullable(c.id().remote_addr.map(|a| a.to_string())),
    keep_alive: c.keep_alive() as u32,
    clean_session: c.clean_start(),
  }
}

/// The answer `{ allow: true }` and nothing else (see `answer` in hook_args.js).
pub trait AllowAll {
  fn allow_all() -> Self;
}

impl AllowAll for AuthenticateResult {
  fn allow_all() -> Self {
    AuthenticateResult {
      allow: true,
      superuser: None,
      reason: None,
      code: None,
      server_reference: None,
    }
  }
}

impl AllowAll for SubscribeAuthorizeResult {
  fn allow_all() -> Self {
    SubscribeAuthorizeResult {
      allow: true,
      qos: None,
      reason: None,
      code: None,
      cache_ms: None,
    }
  }
}

impl AllowAll for PublishAuthorizeResult {
  fn allow_all() -> Self {
    PublishAuthorizeResult {
      allow: true,
      reason: None,
      code: None,
      disconnect: None,
      cache_ms: None,
    }
  }
}
