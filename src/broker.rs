//! One running rmqtt broker: its own tokio runtime, its context, its listeners.
//!
//! rmqtt has no stop API. Each broker therefore gets a dedicated runtime, and
//! stopping shuts that runtime down: every task it owns (accept loops and every
//! client connection) is dropped, which closes the sockets. Nothing is shared
//! between brokers, so many can run in one process.

use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::router::DefaultRouter;
use rmqtt::server::MqttServer as RmqttServer;
use rmqtt::shared::DefaultShared;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;

use crate::config::BrokerSpec;
use crate::hook_bridge::Attachment;
use crate::listener::{self, ListenerInfo};
use crate::shared_subscription::RoundRobin;

/// How long `stop()` waits for the broker's tasks before abandoning them.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Broker {
  runtime: Runtime,
  scx: ServerContext,
  listeners: Vec<ListenerInfo>,
  hooks: Arc<Attachment>,
}

/// What a caller needs to act on a running broker without holding it.
#[derive(Clone)]
pub struct BrokerHandle {
  pub runtime: Handle,
  pub scx: ServerContext,
  pub hooks: Arc<Attachment>,
}

impl Broker {
  /// Builds the context, binds every listener, and starts serving. Resolves
  /// once all listeners are bound, or fails (naming the listener) with
  /// nothing left running.
  pub async fn start(spec: BrokerSpec, hooks: Arc<Attachment>) -> Result<Broker, String> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
      .worker_threads(threads)
      .thread_name("mqtt-server")
      .enable_all()
      .build()
      .map_err(|e| format!("cannot create the broker runtime: {e}"))?;

    let (ready_tx, ready_rx) = oneshot::channel();
    let attachment = hooks.clone();
    runtime.spawn(async move {
      match setup(spec, attachment).await {
        Ok((server, scx, infos)) => {
          let _ = ready_tx.send(Ok((scx, infos)));
          if let Err(e) = server.run().await {
            log::error!("broker stopped with an error: {e}");
          }
        }
        Err(e) => {
          let _ = ready_tx.send(Err(e));
        }
      }
    });

    match ready_rx.await {
      Ok(Ok((scx, listeners))) => Ok(Broker {
        runtime,
        scx,
        listeners,
        hooks,
      }),
      Ok(Err(e)) => {
        runtime.shutdown_background();
        Err(e)
      }
      Err(_) => {
        // The setup task panicked: tokio caught it, the sender was dropped.
        runtime.shutdown_background();
        Err("the broker failed to start (internal error, see the log)".into())
      }
    }
  }

  pub fn listeners(&self) -> &[ListenerInfo] {
    &self.listeners
  }

  pub fn handle(&self) -> BrokerHandle {
    BrokerHandle {
      runtime: self.runtime.handle().clone(),
      scx: self.scx.clone(),
      hooks: self.hooks.clone(),
    }
  }

  /// Closes every listener and client connection and frees the broker.
  pub async fn shutdown(self) {
    let Broker {
      runtime,
      scx,
      hooks,
      ..
    } = self;
    // First, so no event of a broker going down reaches JavaScript.
    hooks.close();
    // rmqtt's shared state and router hold clones of the context (a cycle
    // that would keep every session alive forever); swapping them out breaks
    // it so sessions are freed with the runtime.
    let detach = runtime.spawn(async move {
      *scx.extends.shared_mut().await = Box::new(DefaultShared::new(None));
      *scx.extends.router_mut().await = Box::new(DefaultRouter::new(None));
    });
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, detach).await;
    // A runtime must not be dropped from async code: shut it down on a
    // blocking thread.
    let joined =
      tokio::task::spawn_blocking(move || runtime.shutdown_timeout(SHUTDOWN_TIMEOUT)).await;
    if let Err(e) = joined {
      log::warn!("broker runtime shutdown did not complete cleanly: {e}");
    }
  }
}

type Ready = (RmqttServer, ServerContext, Vec<ListenerInfo>);

async fn setup(spec: BrokerSpec, hooks: Arc<Attachment>) -> Result<Ready, String> {
  let mut builder = ServerContext::new()
    // rmqtt's busy check refuses CONNECTs while the host's CPU load is high;
    // an embedded broker shares its machine with the application, so a busy
    // host must not lock clients out.
    .busy_check_enable(false);
  if let Some(dir) = &spec.plugins_config_dir {
    builder = builder.plugins_config_dir(dir.clone());
  }
  let scx = builder.build().await;

  rmqtt_retainer::register(&scx, true, false)
    .await
    .map_err(|e| format!("cannot start the retained-message store: {e}"))?;
  *scx.extends.shared_subscription_mut().await = Box::new(RoundRobin::default());
  hooks.sync(&scx).await;

  let mut server = RmqttServer::new(scx.clone());
  let mut infos = Vec::with_capacity(spec.listeners.len());
  for (id, l) in spec.listeners.iter().enumerate() {
    let (bound, info) = listener::bind(l)?;
    // Keyed by position, not port: several listeners may ask for port 0.
    server = server.listener_by_id(bound, id as u16);
    infos.push(info);
  }
  Ok((server.build(), scx, infos))
}
