//! `MqttServer`'s administration methods: clients, subscriptions, retained
//! messages, stats and metrics. Each reads a running broker on its own
//! runtime and resolves there; none blocks Node's thread.

use std::future::Future;

use napi::bindgen_prelude::*;
use napi::ValueType;
use napi_derive::napi;

use crate::clients::{self, ClientInfo, ClientIterator, DisconnectOptions, SubscriptionInfo};
use crate::error::{failure, invalid_arg};
use crate::js_value::{self, type_name};
use crate::retained::{self, RetainedMessage};
use crate::server::{Current, MqttServer};
use crate::stats::{self, ServerStats};

impl MqttServer {
  /// The running broker, or the error `what` gives when there is none.
  fn running_broker(&self, what: &str) -> Result<Current> {
    self
      .current()
      .ok_or_else(|| failure(format!("{what}: the server is not running")))
  }
}

/// Runs `work` on the broker's runtime (rmqtt's futures expect it) and
/// resolves with its result.
fn on_broker<T, F>(
  env: &Env,
  current: Current,
  what: &'static str,
  work: F,
) -> Result<AsyncBlock<T>>
where
  T: ToNapiValue + Send + 'static,
  F: Future<Output = Result<T>> + Send + 'static,
{
  let task = current.handle.runtime.spawn(work);
  AsyncBlockBuilder::new(async move {
    task
      .await
      .map_err(|_| failure(format!("{what}: the server stopped before it was done")))?
  })
  .build(env)
}

/// A string argument, or an error naming it.
fn string_arg(value: Unknown, name: &str) -> Result<String> {
  match value.get_type()? {
    ValueType::String => unsafe { value.cast() },
    other => Err(invalid_arg(format!(
      "{name}: expected a string, got {}",
      type_name(other)
    ))),
  }
}

fn client_id_arg(value: Unknown) -> Result<String> {
  let id = string_arg(value, "clientId")?;
  if id.is_empty() {
    return Err(invalid_arg("clientId: must not be empty"));
  }
  Ok(id)
}

#[napi]
impl MqttServer {
  /// Clients connected now (0 when not running). Reads a counter.
  #[napi(getter)]
  pub fn connected_clients(&self) -> u32 {
    self
      .current()
      .map_or(0, |c| c.handle.scx.connections.count().max(0) as u32)
  }

  /// Every session (connected clients and persistent sessions of
  /// disconnected ones), read a page at a time as the iteration reaches it:
  /// `for await (const c of server.clients())`. Clients that come or go
  /// during the iteration may or may not be seen; none is seen twice.
  /// Throws if the server is not running.
  #[napi(ts_return_type = "AsyncIterable<ClientInfo>")]
  pub fn clients(&self) -> Result<ClientIterator> {
    let c = self.running_broker("clients")?;
    let names = c.listeners.iter().map(|l| l.name.clone()).collect();
    Ok(ClientIterator::new(
      c.handle.scx.clone(),
      c.handle.runtime.clone(),
      names,
    ))
  }

  /// The session of `clientId` (connected or persistent), or `null`.
  #[napi(
    ts_args_type = "clientId: string",
    ts_return_type = "Promise<ClientInfo | null>"
  )]
  pub fn client(&self, env: Env, client_id: Unknown) -> Result<AsyncBlock<Option<ClientInfo>>> {
    let id = client_id_arg(client_id)?;
    let c = self.running_broker("client")?;
    let names: Vec<String> = c.listeners.iter().map(|l| l.name.clone()).collect();
    let scx = c.handle.scx.clone();
    on_broker(&env, c, "client", async move {
      Ok(match clients::find(&scx, &id) {
        Some(s) => Some(clients::info(&s, &names).await),
        None => None,
      })
    })
  }

  /// The subscriptions of `clientId`'s session, or of every session.
  #[napi(
    ts_args_type = "clientId?: string",
    ts_return_type = "Promise<SubscriptionInfo[]>"
  )]
  pub fn subscriptions(
    &self,
    env: Env,
    client_id: Option<Unknown>,
  ) -> Result<AsyncBlock<Vec<SubscriptionInfo>>> {
    let id = match client_id {
      Some(v) if !matches!(v.get_type()?, ValueType::Undefined) => Some(client_id_arg(v)?),
      _ => None,
    };
    let c = self.running_broker("subscriptions")?;
    let scx = c.handle.scx.clone();
    on_broker(&env, c, "subscriptions", async move {
      Ok(clients::subscriptions(&scx, id).await)
    })
  }

  /// Closes `clientId`'s connection. An MQTT 5 client is first sent a
  /// DISCONNECT with `reasonCode` (default 0x98 Administrative action) and
  /// `reason`. Its session then lives on as it asked (persistent sessions
  /// stay), unless `discardSession`. Resolves with whether there was such
  /// a session, once the connection is closed.
  #[napi(
    ts_args_type = "clientId: string, options?: DisconnectOptions",
    ts_return_type = "Promise<boolean>"
  )]
  pub fn disconnect(
    &self,
    env: Env,
    client_id: Unknown,
    options: Option<Unknown>,
  ) -> Result<AsyncBlock<bool>> {
    let id = client_id_arg(client_id)?;
    let options: Option<DisconnectOptions> = match options {
      None => None,
      Some(o) => match js_value::to_json(&o, "options")? {
        serde_json::Value::Null => None,
        v => Some(crate::config::from_json(v, "options")?),
      },
    };
    let (disconnect, discard) = clients::disconnect_request(options)?;
    let c = self.running_broker("disconnect")?;
    let scx = c.handle.scx.clone();
    on_broker(&env, c, "disconnect", async move {
      Ok(clients::disconnect(scx, id, disconnect, discard).await)
    })
  }

  /// The retained messages whose topics match `filter` (`#` and `+` do not
  /// match topics starting with `$`; name `$SYS/#` to read those).
  #[napi(
    ts_args_type = "filter: string",
    ts_return_type = "Promise<RetainedMessage[]>"
  )]
  pub fn retained(&self, env: Env, filter: Unknown) -> Result<AsyncBlock<Vec<RetainedMessage>>> {
    let filter = string_arg(filter, "filter")?;
    retained::validate_filter(&filter).map_err(invalid_arg)?;
    let c = self.running_broker("retained")?;
    let scx = c.handle.scx.clone();
    on_broker(&env, c, "retained", async move {
      retained::matching(&scx, filter).await.map_err(failure)
    })
  }

  /// Removes `topic`'s retained message, without publishing anything.
  /// Resolves with whether there was one.
  #[napi(ts_args_type = "topic: string", ts_return_type = "Promise<boolean>")]
  pub fn delete_retained(&self, env: Env, topic: Unknown) -> Result<AsyncBlock<bool>> {
    let topic = string_arg(topic, "topic")?;
    crate::publish::validate_topic(&topic).map_err(invalid_arg)?;
    let c = self.running_broker("deleteRetained")?;
    let scx = c.handle.scx.clone();
    on_broker(&env, c, "deleteRetained", async move {
      retained::delete(&scx, topic).await.map_err(failure)
    })
  }

  /// Counts since `start()`: connections, sessions, subscriptions, retained
  /// messages, and messages received / sent / dropped per QoS. Exact.
  #[napi(ts_return_type = "Promise<ServerStats>")]
  pub fn stats(&self, env: Env) -> Result<AsyncBlock<ServerStats>> {
    let c = self.running_broker("stats")?;
    let (scx, counters) = (c.handle.scx.clone(), c.handle.stats.clone());
    on_broker(&env, c, "stats", async move {
      Ok(stats::snapshot(&scx, &counters).await)
    })
  }

  /// `stats()` in the Prometheus text exposition format (for `GET /metrics`).
  #[napi(ts_return_type = "Promise<string>")]
  pub fn metrics(&self, env: Env) -> Result<AsyncBlock<String>> {
    let c = self.running_broker("metrics")?;
    let (scx, counters) = (c.handle.scx.clone(), c.handle.stats.clone());
    on_broker(&env, c, "metrics", async move {
      Ok(crate::metrics::render(
        &stats::snapshot(&scx, &counters).await,
      ))
    })
  }
}
