//! One `info` line per client connect, disconnect and refused CONNECT, under
//! the log target `embedded_mqtt_broker::clients` (`MQTT_SERVER_LOG=info`,
//! the CLI's `-v`): what an operator needs (client id, address, reason)
//! without turning on rmqtt's own, internal, logs.
//!
//! Registered only when that target is enabled, so a broker that does not
//! log pays nothing.

use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Priority, ReturnType, Type};
use rmqtt::types::Id;

pub const TARGET: &str = "embedded_mqtt_broker::clients";
/// Last: a CONNACK reason changed by another handler (authentication) is
/// the one the client gets, and the one logged.
const PRIORITY: Priority = Priority::MIN;

pub async fn register(scx: &ServerContext) {
  if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
    return;
  }
  let r = scx.extends.hook_mgr().register();
  for typ in [
    Type::ClientConnack,
    Type::ClientConnected,
    Type::ClientDisconnected,
  ] {
    r.add_priority(typ, PRIORITY, Box::new(ConnLog)).await;
  }
  r.start().await;
}

struct ConnLog;

/// `client "id" (user "name") from 1.2.3.4:5678`
fn who(id: &Id) -> String {
  let user = match &id.username {
    Some(u) => format!(" (user {:?})", &**u),
    None => String::new(),
  };
  let addr = id
    .remote_addr
    .map_or_else(|| "unknown address".to_string(), |a| a.to_string());
  format!("client {:?}{user} from {addr}", &*id.client_id)
}

#[async_trait::async_trait]
impl Handler for ConnLog {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    match param {
      Parameter::ClientConnack(info, reason) => {
        let reason = match &acc {
          Some(HookResult::ConnectAckReason(r)) => r,
          _ => *reason,
        };
        if !reason.success() {
          tracing::info!(target: TARGET, "refused {}: {}", who(info.id()), reason.reason());
        }
      }
      Parameter::ClientConnected(s) => tracing::info!(target: TARGET, "connected {}", who(&s.id)),
      Parameter::ClientDisconnected(s, r) => {
        tracing::info!(target: TARGET, "disconnected {}: {r}", who(&s.id))
      }
      _ => {}
    }
    (true, acc)
  }
}
