//! The seam between this crate and its rmqtt fork: everything `src/` uses
//! that crates.io's rmqtt 0.24 does not have goes through here, each item
//! naming the patch of `vendor/patches/` it needs. Upgrading rmqtt or
//! dropping a patch then fails to compile here, in one place.
//!
//! Found by building `src/` against the pristine crates (these were its only
//! errors). The fork also changes behaviour `src/` relies on without an API
//! of its own (e.g. the read gate holding a publisher, rmqtt
//! 0018-session-loop; the topic level limit on publishes,
//! 0021-topic-levels; `maxKeepAlive` given to MQTT 5 clients asking for 0,
//! 0028-keep-alive-cap): those are in the patch table,
//! `vendor/rmqtt/PATCHED.md`, not here.

use std::sync::Arc;

use rmqtt::context::ServerContext;
use rmqtt::hook::Register;
use rmqtt::router::{DefaultRouter, Router};
use rmqtt::shared::{DefaultShared, Shared};
use rmqtt::types::Reason;

/// Flow control at routing: the gate rmqtt asks before it routes a message
/// and before each session channel (rmqtt 0014-forward-gate).
pub use rmqtt::shared::ForwardGate;

/// Installs a broker's forward gate; false when it has one already (rmqtt
/// 0014-forward-gate).
pub fn set_forward_gate(scx: &ServerContext, gate: Arc<dyn ForwardGate>) -> bool {
  scx.extends.forward_gate.set(gate).is_ok()
}

/// The reason to close a session with at `stop()`: an MQTT 5 client is sent
/// DISCONNECT 0x8B Server shutting down before its socket closes (rmqtt
/// 0015-v5-server-disconnect).
pub fn server_shutting_down() -> Reason {
  Reason::from_static(rmqtt::session::SERVER_SHUTTING_DOWN)
}

/// Counts the messages clients send and are sent, on the data path
/// (rmqtt 0034-traffic-counter).
pub use rmqtt::shared::TrafficCounter;

/// Installs a broker's traffic counter; false when it has one already
/// (rmqtt 0034-traffic-counter).
pub fn set_traffic_counter(scx: &ServerContext, counter: Arc<dyn TrafficCounter>) -> bool {
  scx.extends.traffic_counter.set(counter).is_ok()
}

/// A publish ACL asked on the data path, before the hooks (rmqtt
/// 0050-publish-acl).
pub use rmqtt::shared::PublishAcl;

/// Installs a broker's data-path publish ACL; false when it has one already
/// (rmqtt 0050-publish-acl).
pub fn set_publish_acl(scx: &ServerContext, acl: Arc<dyn PublishAcl>) -> bool {
  scx.extends.publish_acl.set(acl).is_ok()
}

/// Bytes of the MQTT packets a listener's connections read and write, set
/// with `Builder::wire_bytes` (rmqtt-net 0012-wire-bytes).
pub use rmqtt::net::WireBytes;

/// Counts a listener's MQTT bytes in `wire` (rmqtt-net 0012-wire-bytes).
pub fn count_wire_bytes(b: rmqtt::net::Builder, wire: &Arc<WireBytes>) -> rmqtt::net::Builder {
  b.wire_bytes(wire.clone())
}

/// The reason to close a session with for `server.disconnect()`: an MQTT 5
/// client is sent this DISCONNECT (rmqtt 0033-admin-disconnect).
pub use rmqtt::session::admin_disconnect;

/// The broker's clock, milliseconds since the epoch, up to a tick behind:
/// what rmqtt stamps a message's create time with and measures its expiry
/// by (rmqtt 0005-coarse-clock).
pub use rmqtt::clock::timestamp_millis;

/// Takes a register's handlers out of rmqtt's hook manager for good; `stop`
/// only disables them (rmqtt 0007-register-remove).
pub async fn remove_hooks(register: &dyn Register) {
  register.remove().await;
}

/// Swaps the broker's shared state for an empty one without awaiting (the
/// broker's runtime is gone), giving back the old one to drop. The components
/// are `Component`s whose `replace` is synchronous; upstream's tokio `RwLock`
/// needs a runtime (rmqtt 0001-component-snapshots).
pub fn take_shared(scx: &ServerContext) -> Arc<Box<dyn Shared>> {
  scx
    .extends
    .shared
    .replace(Box::new(DefaultShared::new(None)))
}

/// The router's counterpart of [`take_shared`] (rmqtt 0001-component-snapshots).
pub fn take_router(scx: &ServerContext) -> Arc<Box<dyn Router>> {
  scx
    .extends
    .router
    .replace(Box::new(DefaultRouter::new(None)))
}

/// MQTT 5.0 enhanced authentication: a step of an AUTH exchange as the
/// `ClientEnhancedAuth` hook gets it (the `Type`, `Parameter` and
/// `HookResult` variants of that name are the fork's too), and the answer
/// it gives (rmqtt 0032-enhanced-auth).
pub use rmqtt::enhanced_auth::{EnhancedAuthRequest as AuthStepRequest, EnhancedAuthStep};

/// A hook's refusal of a CONNECT with its own CONNACK code, Reason String
/// and Server Reference (rmqtt 0035-decision-refusals).
pub use rmqtt::types::AuthRefusal;

/// The authentication result that carries an [`AuthRefusal`] (rmqtt
/// 0035-decision-refusals).
pub fn refused(refusal: AuthRefusal) -> rmqtt::types::AuthResult {
  rmqtt::types::AuthResult::Refused(Box::new(refusal))
}

/// A subscribe ACL refusal with a Reason String for the SUBACK (rmqtt
/// 0035-decision-refusals).
pub fn subscribe_refusal(
  code: rmqtt::codec::v5::SubscribeAckReason,
  reason: Option<bytestring::ByteString>,
) -> rmqtt::types::SubscribeAclResult {
  rmqtt::types::SubscribeAclResult::new_refusal(code, reason)
}

/// TLS material in memory, read by this crate from a path, PEM text or a
/// Buffer (rmqtt-net 0010-tls-pem; upstream reads files only).
pub use rmqtt::net::TlsPem;

/// Gives a listener its TLS material; with client CAs (`client_ca`), asks
/// clients for a certificate, which `optional` lets them not send
/// (rmqtt-net 0010-tls-pem).
pub fn tls_pem(b: rmqtt::net::Builder, pem: TlsPem, optional: bool) -> rmqtt::net::Builder {
  let verify = pem.client_ca.is_some();
  b.tls_pem(Some(pem))
    .tls_cross_certificate(verify)
    .tls_client_cert_optional(optional)
}

/// Sends a session a barrier; the receiver resolves once the session has
/// taken every earlier message off its channel, and fails if it is offline
/// or gone (rmqtt 0041-session-barrier).
pub fn barrier(tx: &rmqtt::types::Tx) -> Option<tokio::sync::oneshot::Receiver<()>> {
  let (done, passed) = tokio::sync::oneshot::channel();
  tx.unbounded_send(rmqtt::types::Message::Barrier(done))
    .ok()
    .map(|_| passed)
}

/// Puts `msg` on a session's channel ahead of everything not yet taken off
/// it (rmqtt 0046-resume-order); a closed channel has nobody to take it.
pub fn send_first(tx: &rmqtt::types::Tx, msg: rmqtt::types::Message) {
  let _ = tx.send_first(msg);
}

/// The retained store's counterpart of [`take_shared`]: a store on disk is
/// closed (and its lock released) once the old one is dropped (rmqtt
/// 0001-component-snapshots).
pub fn take_retain(scx: &ServerContext) -> Arc<Box<dyn rmqtt::retain::RetainStorage>> {
  scx
    .extends
    .retain
    .replace(Box::new(rmqtt::retain::DefaultRetainStorage::new()))
}

/// The session manager's counterpart of [`take_retain`]: the persistent
/// session store's manager holds the store open until it is dropped.
pub fn take_session_mgr(scx: &ServerContext) -> Arc<Box<dyn rmqtt::session::SessionManager>> {
  scx
    .extends
    .session_mgr
    .replace(Box::new(rmqtt::session::DefaultSessionManager))
}

/// Accepts on a broker's listeners; its pre-startup hooks are the caller's
/// to run first (rmqtt 0052-serve-after-startup).
pub async fn serve(server: rmqtt::server::MqttServer) -> rmqtt::Result<()> {
  server.serve().await
}
