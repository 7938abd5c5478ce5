//! The `MqttServer` class JavaScript uses: lifecycle, publish, config helpers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi::{JsValue, ValueType};
use napi_derive::napi;
use tokio::sync::Mutex as AsyncMutex;

use crate::broker::{Broker, BrokerHandle};
use crate::config::{self, ServerConfig};
use crate::error::{failure, invalid_arg};
use crate::hook_bridge::Attachment;
use crate::hooks::{HookOptions, HookSet, HookStats, Hooks};
use crate::js_value::{self, type_name};
use crate::keepalive::KeepAlive;
use crate::listener::ListenerInfo;
use crate::publish::{Message, PublishOptions};
use crate::subscription::Subscription;
use crate::system_error::StartError;
use crate::warning::{self, Warning};
use rmqtt::codec::v5::PublishProperties;

/// Lifecycle state; only `start`/`stop`/`close` change it, one at a time.
enum State {
  Stopped,
  Running {
    // Boxed: a broker is large, and the other states hold nothing.
    broker: Box<Broker>,
    _keepalive: KeepAlive,
    /// `Inner::stops` when `start()` was called: a `stop()` called after
    /// that start (a larger count) stops it, an earlier one does not.
    stops_at_start: u64,
  },
  Closed,
}

struct Inner {
  /// Serialises start/stop/close so they never interleave.
  lifecycle: AsyncMutex<State>,
  /// Counts `stop()`/`close()` calls, when they are made (on the JS thread):
  /// a `start()` made before one of them must not leave the broker running,
  /// whichever of the two takes the lifecycle lock first.
  stops: AtomicU64,
  /// What publish and the sync getters need, readable without waiting on a
  /// lifecycle operation. `Some` exactly while running.
  current: RwLock<Option<Current>>,
  /// The JavaScript hooks; outlive start/stop cycles.
  hooks: Arc<Hooks>,
  /// Numbers the in-process subscriptions (their internal client ids).
  subscriptions: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct Current {
  pub handle: BrokerHandle,
  pub listeners: Vec<ListenerInfo>,
  /// The largest `maxPacketSize` of the listeners: `publish()`'s limit.
  max_packet_size: u32,
}

impl Inner {
  fn current(&self) -> Option<Current> {
    self.current.read().map(|c| c.clone()).unwrap_or_default()
  }

  fn set_current(&self, c: Option<Current>) {
    if let Ok(mut slot) = self.current.write() {
      *slot = c;
    }
  }

  /// Registers with a running broker the hook types the sets now use.
  /// Registers what the current hook sets need with the running broker
  /// (on its runtime); the receiver is told once they decide every later
  /// event (it fails if the broker stops first: nothing left to attach to).
  fn sync_hooks(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
    let handle = self.current()?.handle;
    let (attached, done) = tokio::sync::oneshot::channel();
    let runtime = handle.runtime.clone();
    runtime.spawn(async move { handle.hooks.sync(&handle.scx, Some(attached)).await });
    Some(done)
  }

  /// Stops the broker if it runs; `close` additionally seals the server.
  /// Returns what went wrong on the way (a broker that would not shut down).
  async fn stop(&self, close: bool, stop: u64, drain: Duration) -> Vec<Warning> {
    if close {
      // Releases the JavaScript functions: a closed server calls nothing.
      self.hooks.clear();
    }
    let mut state = self.lifecycle.lock().await;
    if let State::Running { stops_at_start, .. } = &*state {
      // A start() called after this stop() may have taken the lock first;
      // this stop() came before it and leaves it running.
      if !close && *stops_at_start >= stop {
        return Vec::new();
      }
    }
    let previous = std::mem::replace(
      &mut *state,
      if close { State::Closed } else { State::Stopped },
    );
    if let State::Closed = previous {
      *state = State::Closed;
    }
    self.set_current(None);
    let mut warnings = Vec::new();
    if let State::Running {
      broker, _keepalive, ..
    } = previous
    {
      warnings.extend(broker.shutdown(drain).await);
      // Released only now, so the process stays alive until the broker is down.
      drop(_keepalive);
    }
    warnings
  }

  /// Records a `stop()`/`close()` call and returns the promise of it.
  /// Bad `options` reject the promise and stop nothing.
  fn stop_promise(
    self: &Arc<Self>,
    env: &Env,
    close: bool,
    options: Option<Unknown>,
  ) -> Result<AsyncBlock<()>> {
    let drain = match crate::stop_options::read(options) {
      Ok(drain) => drain,
      Err(e) => {
        let method = if close { "close" } else { "stop" };
        let e = invalid_arg(format!("{method}: {}", e.reason));
        return AsyncBlockBuilder::build_with_map(env, async move { Err(e) }, |_, ()| Ok(()));
      }
    };
    let stop = self.stops.fetch_add(1, Ordering::SeqCst) + 1;
    let inner = self.clone();
    AsyncBlockBuilder::build_with_map(
      env,
      async move { Ok(inner.stop(close, stop, drain).await) },
      |env, warnings| warning::emit(&env, &warnings),
    )
  }
}

/// An embedded MQTT 3.1 / 3.1.1 / 5.0 broker.
#[napi]
pub struct MqttServer {
  inner: Arc<Inner>,
}

#[napi]
impl MqttServer {
  #[napi(constructor)]
  pub fn new() -> Self {
    crate::logging::init();
    MqttServer {
      inner: Arc::new(Inner {
        lifecycle: AsyncMutex::new(State::Stopped),
        stops: AtomicU64::new(0),
        current: RwLock::new(None),
        hooks: Arc::new(Hooks::default()),
        subscriptions: AtomicU64::new(0),
      }),
    }
  }

  /// Starts the broker. Resolves with the bound listeners once every one of
  /// them accepts connections; rejects (naming the listener and the cause) if
  /// any cannot be opened, leaving nothing running, or if `stop()`/`close()`
  /// is called before it resolves. While running, the server keeps the
  /// Node.js process alive. A TLS certificate out of its validity period is
  /// reported with `process.emitWarning` (see `ListenerConfig.tlsCert`).
  #[napi(
    ts_args_type = "config: ServerConfig",
    ts_return_type = "Promise<ListenerInfo[]>"
  )]
  pub fn start(&self, env: Env, config: Unknown) -> Result<AsyncBlock<Vec<ListenerInfo>>> {
    let inner = self.inner.clone();
    let value: Result<serde_json::Value> = match config.get_type()? {
      ValueType::Object if !config.is_array()? => js_value::to_json(&config, "config"),
      other => Err(invalid_arg(format!(
        "config: expected an object with a `listeners` array, got {}",
        if config.is_array()? {
          "an array"
        } else {
          type_name(other)
        }
      ))),
    };
    let keepalive = KeepAlive::new(&env)?;
    let stops = inner.stops.load(Ordering::SeqCst);
    let stopped = move |inner: &Inner| inner.stops.load(Ordering::SeqCst) != stops;
    let cancelled =
      || StartError::from("start: stop() or close() was called before the server started");
    // The future's errors reach `map`, which gives system errors Node's shape.
    let started = async move {
      let value = value?;
      let mut state = inner.lifecycle.lock().await;
      if stopped(&inner) {
        return Err(cancelled());
      }
      match &*state {
        State::Running { .. } => return Err("start: the server is already running".into()),
        State::Closed => return Err("start: the server is closed; create a new MqttServer".into()),
        State::Stopped => {}
      }
      let mut spec = config::parse(value).await?;
      crate::tls::load(&mut spec)?;
      let attachment = Attachment::new(&inner.hooks);
      let warnings = spec.warnings.clone();
      let broker = Broker::start(spec, attachment).await?;
      if stopped(&inner) {
        // The stop() waiting behind this start would stop it; doing it here
        // means `running` is never true meanwhile.
        let _ = broker.shutdown(std::time::Duration::ZERO).await;
        return Err(cancelled());
      }
      let listeners = broker.listeners().to_vec();
      inner.set_current(Some(Current {
        handle: broker.handle(),
        listeners: listeners.clone(),
        max_packet_size: broker.max_packet_size(),
      }));
      *state = State::Running {
        broker: Box::new(broker),
        _keepalive: keepalive,
        stops_at_start: stops,
      };
      Ok::<_, StartError>((listeners, warnings))
    };
    AsyncBlockBuilder::build_with_map(&env, async move { Ok(started.await) }, |env, started| {
      let (listeners, warnings) = started.map_err(|e| e.into_js(&env))?;
      warning::emit(&env, &warnings)?;
      Ok(listeners)
    })
  }

  /// Stops the broker: closes every listener, lets connected clients
  /// receive what was routed to them before the call (at most
  /// `options.drainTimeoutMs`, default 3000), then disconnects every client.
  /// Resolves when all is released; `start()` may be called again. Does
  /// nothing if the server is not running. A `start()` still pending ends
  /// stopped too (it rejects). No hook is called once it begins; decision
  /// hooks still pending deny at once. Resolves within a few seconds of the
  /// drain even if the broker were stuck: what did not shut down in time is
  /// abandoned and reported with `process.emitWarning` (code
  /// `MQTT_SERVER_STOP_ABANDONED`). Bad options reject and stop nothing.
  #[napi(
    ts_args_type = "options?: StopOptions",
    ts_return_type = "Promise<void>"
  )]
  pub fn stop(&self, env: Env, options: Option<Unknown>) -> Result<AsyncBlock<()>> {
    self.inner.stop_promise(&env, false, options)
  }

  /// Stops the broker if it runs (draining like `stop()`) and releases the
  /// server for good; a closed server cannot be started again. Bounded like
  /// `stop()`.
  #[napi(
    ts_args_type = "options?: StopOptions",
    ts_return_type = "Promise<void>"
  )]
  pub fn close(&self, env: Env, options: Option<Unknown>) -> Result<AsyncBlock<()>> {
    self.inner.stop_promise(&env, true, options)
  }

  /// Whether the broker is running (between a resolved `start()` and `stop()`).
  #[napi(getter)]
  pub fn running(&self) -> bool {
    self.inner.current().is_some()
  }

  /// The bound listeners while running (empty otherwise), with real ports.
  #[napi(getter)]
  pub fn listeners(&self) -> Vec<ListenerInfo> {
    self
      .inner
      .current()
      .map(|c| c.listeners)
      .unwrap_or_default()
  }

  /// Publishes a message from the server to every matching subscriber.
  /// Resolves once the broker has routed it; rejects if the server is not
  /// running, the topic or options are invalid, or the message is larger
  /// than a client may publish (topic, payload and 4 bytes must fit in the
  /// largest `maxPacketSize` of the listeners). `$` topics such as `$SYS/...`
  /// may be published here, though clients may not publish to them.
  #[napi(
    ts_args_type = "topic: string, payload: string | Buffer | Uint8Array, options?: PublishOptions",
    ts_return_type = "Promise<void>"
  )]
  pub fn publish(
    &self,
    env: Env,
    topic: Unknown,
    payload: Unknown,
    options: Option<Unknown>,
  ) -> Result<AsyncBlock<()>> {
    // Queued here, on the JS thread, so messages keep the order of the calls.
    let current = self.inner.current();
    let max_packet_size = current.as_ref().map(|c| c.max_packet_size);
    let routed = read_message(topic, payload, options, max_packet_size).and_then(|message| {
      let current = current.ok_or_else(|| failure("publish: the server is not running"))?;
      Ok(current.handle.publisher.publish(message))
    });
    AsyncBlockBuilder::new(async move { routed?.await.map_err(failure) }).build(&env)
  }

  /// Subscribes in-process: `handler(message)` is called, on the JS thread
  /// and in order per publisher, for each message matching `filter`
  /// (wildcards and `$share/group/filter` as for a client; retained
  /// messages on subscribe). Resolves once the broker routes to it, with a
  /// `Subscription` (`unsubscribe()`). It is a real subscriber: while the
  /// handler (or the promise it returns) falls behind, publishers are held
  /// back, so QoS 1 and 2 are not dropped; QoS 0 beyond
  /// `options.maxQueued` waiting is dropped and counted. Throws on a bad
  /// argument; rejects if the server is not running. Ends at `stop()`.
  #[napi(
    ts_args_type = "filter: string, handler: (message: MessageInfo) => void | Promise<void>, options?: SubscribeOptions",
    ts_return_type = "Promise<Subscription>"
  )]
  pub fn subscribe(
    &self,
    env: Env,
    filter: Unknown,
    handler: Unknown,
    options: Option<Unknown>,
  ) -> Result<AsyncBlock<Subscription>> {
    let number = self.inner.subscriptions.fetch_add(1, Ordering::Relaxed);
    let handle = self.inner.current().map(|c| c.handle);
    let hooks = &self.inner.hooks;
    crate::subscription::subscribe(&env, handle, hooks, number, filter, handler, options)
  }

  /// The messages matching `filter` as an async iterator, for
  /// `for await (const m of server.messages('sensors/#'))`; leaving the
  /// loop unsubscribes. A subscription (`subscribe()`) whose handler waits
  /// for the loop to take each message: a loop that falls behind holds the
  /// publishers back. `ready` resolves once it is subscribed; the loop ends
  /// when the server stops. Throws on a bad argument.
  #[napi(
    ts_args_type = "filter: string, options?: SubscribeOptions",
    ts_return_type = "AsyncIterableIterator<MessageInfo> & AsyncDisposable & { ready: Promise<void> }"
  )]
  pub fn messages<'a>(
    &self,
    env: &'a Env,
    this: This<'a>,
    filter: Unknown<'a>,
    options: Option<Unknown<'a>>,
  ) -> Result<Unknown<'a>> {
    crate::messages::iterator(env, this, filter, options)
  }

  /// Installs the hooks, replacing the set a previous `setHooks()` installed
  /// (sets added with `addHooks()` stay). May be called before or while the
  /// server runs. Throws on an unknown hook name or a non-function. On a
  /// running server a hook type no set had before is attached on the
  /// broker's threads: the promise resolves once it decides every later
  /// event (await it before relying on a new authentication hook).
  #[napi(
    ts_args_type = "hooks: HookCallbacks, options?: HookOptions",
    ts_return_type = "Promise<void>"
  )]
  pub fn set_hooks(
    &self,
    env: Env,
    hooks: Object,
    options: Option<HookOptions>,
  ) -> Result<AsyncBlock<()>> {
    let set = HookSet::from_js(&env, &hooks, options, &self.inner.hooks)?;
    self.inner.hooks.replace(Some(set));
    attached(&env, self.inner.sync_hooks())
  }

  /// Adds a hook set next to the others (an auth module and a metrics
  /// module can both attach): notifications go to every set; a decision
  /// needs every set that has the hook to allow, asked in order (the
  /// `setHooks()` set first, then the added ones as added), and the first
  /// denial wins. Returns the function that removes this set (true the
  /// first time); its `ready` promise resolves, on a running server, once
  /// the set decides every later event, as `setHooks()`' does (at once
  /// otherwise). Throws as `setHooks()` does.
  #[napi(
    ts_args_type = "hooks: HookCallbacks, options?: HookOptions",
    ts_return_type = "(() => boolean) & { ready: Promise<void> }"
  )]
  pub fn add_hooks<'env>(
    &self,
    env: &'env Env,
    hooks: Object,
    options: Option<HookOptions>,
  ) -> Result<Function<'env, (), bool>> {
    let set = HookSet::from_js(env, &hooks, options, &self.inner.hooks)?;
    let id = self.inner.hooks.add(set);
    let ready = attached(env, self.inner.sync_hooks())?;
    let inner = self.inner.clone();
    let remover = env.create_function_from_closure("removeHooks", move |_| {
      let removed = inner.hooks.remove(id);
      if removed {
        let _ = inner.sync_hooks();
      }
      Ok(removed)
    })?;
    remover
      .to_unknown()
      .coerce_to_object()?
      .set_named_property("ready", ready)?;
    Ok(remover)
  }

  /// Replaces the ACL rules of the running broker, validated as `acl` of
  /// `start()` (errors name the field: `acl[3].topics[0]`; invalid rules
  /// throw and leave the old ones in force). The promise resolves once the
  /// rules decide every later request; throws if the server is not running.
  #[napi(ts_args_type = "rules: AclRule[]", ts_return_type = "Promise<void>")]
  pub fn set_acl(&self, env: Env, rules: Unknown) -> Result<AsyncBlock<()>> {
    let value = js_value::to_json(&rules, "acl")?;
    let current =
      (self.inner.current()).ok_or_else(|| failure("setAcl: the server is not running"))?;
    let installed = crate::policy::set_acl(&current.handle, value)?;
    AsyncBlockBuilder::new(async move {
      installed.await;
      Ok(())
    })
    .build(&env)
  }

  /// Replaces the native users (`users` and `passwordFile` as in `start()`,
  /// the file read again): for a reload. Rejects on invalid input, naming
  /// the field, and leaves the old users in force; rejects if not running.
  #[napi(
    ts_args_type = "users: { users?: UserConfig[]; passwordFile?: string }",
    ts_return_type = "Promise<void>"
  )]
  pub fn set_users(&self, env: Env, users: Unknown) -> Result<AsyncBlock<()>> {
    let value = js_value::to_json(&users, "users");
    let current = self.inner.current();
    AsyncBlockBuilder::new(async move {
      let current = current.ok_or_else(|| failure("setUsers: the server is not running"))?;
      crate::policy::set_users(current.handle, value?).await
    })
    .build(&env)
  }

  /// Counters of hook trouble: dropped notifications, timeouts, failures.
  #[napi(getter)]
  pub fn hook_stats(&self) -> HookStats {
    self.inner.hooks.stats()
  }

  /// A config with one plain TCP listener (defaults: port 1883, address "0.0.0.0").
  #[napi(ts_args_type = "port?: number, address?: string")]
  pub fn create_basic_config(
    port: Option<Unknown>,
    address: Option<Unknown>,
  ) -> Result<ServerConfig> {
    let port = port
      .map(|p| js_value::to_json(&p, "createBasicConfig: port"))
      .transpose()?;
    let address = address
      .map(|a| js_value::to_json(&a, "createBasicConfig: address"))
      .transpose()?;
    config::basic(port, address)
  }

  /// A config with one listener per port given in `options` (at least one).
  #[napi(ts_args_type = "options: MultiProtocolOptions")]
  pub fn create_multi_protocol_config(options: Unknown) -> Result<ServerConfig> {
    config::multi_protocol(js_value::to_json(&options, "options")?)
  }
}

impl MqttServer {
  /// The running broker's handle and listeners, if it runs.
  pub(crate) fn current(&self) -> Option<Current> {
    self.inner.current()
  }
}

impl Default for MqttServer {
  fn default() -> Self {
    Self::new()
  }
}

/// The promise of `setHooks()` and of `addHooks()`' `ready`: resolves once
/// the broker has attached the hooks (at once when it does not run).
fn attached(env: &Env, sync: Option<tokio::sync::oneshot::Receiver<()>>) -> Result<AsyncBlock<()>> {
  AsyncBlockBuilder::new(async move {
    if let Some(sync) = sync {
      let _ = sync.await;
    }
    Ok(())
  })
  .build(env)
}

/// Reads publish arguments on the JS thread (the payload is copied once, so
/// the caller may reuse its buffer at once, and only once its size is known
/// to fit `max_packet_size`, when running). Errors name the argument.
fn read_message(
  topic: Unknown,
  payload: Unknown,
  options: Option<Unknown>,
  max_packet_size: Option<u32>,
) -> Result<Message> {
  let topic: String = match topic.get_type()? {
    ValueType::String => unsafe { topic.cast()? },
    other => {
      return Err(invalid_arg(format!(
        "topic: expected a string, got {}",
        type_name(other)
      )))
    }
  };
  let (options, properties) = read_options(options)?;
  let properties_size = properties
    .as_ref()
    .map_or(0, crate::message_properties::encoded_size);
  let fits = |len: usize| match max_packet_size {
    Some(max) => crate::publish::check_size(&topic, properties_size, len, max).map_err(invalid_arg),
    None => Ok(()),
  };
  let payload = match payload.get_type()? {
    ValueType::String => {
      let text = unsafe { payload.cast::<String>()? };
      fits(text.len())?;
      Bytes::from(text)
    }
    ValueType::Object if payload.is_typedarray()? || payload.is_buffer()? => {
      let bytes: Uint8Array = unsafe { payload.cast() }.map_err(|_| {
        invalid_arg("payload: expected a string, Buffer or Uint8Array, got another typed array")
      })?;
      fits(bytes.len())?;
      Bytes::copy_from_slice(&bytes)
    }
    other => {
      return Err(invalid_arg(format!(
        "payload: expected a string, Buffer or Uint8Array, got {}",
        type_name(other)
      )))
    }
  };
  if let Some(p) = &properties {
    crate::message_properties::check_payload(p, &payload)?;
  }
  Message::new(topic, payload, options, properties).map_err(invalid_arg)
}

/// `options` of `publish()`: the plain fields through serde, `properties`
/// (which holds Buffers) read on its own.
fn read_options(
  options: Option<Unknown>,
) -> Result<(Option<PublishOptions>, Option<PublishProperties>)> {
  let Some(object) = js_value::options_object(options, "options")? else {
    return Ok((None, None));
  };
  let fields = js_value::fields_to_json(&object, "options", |k| k != "properties")?;
  let parsed =
    serde_path_to_error::deserialize::<_, PublishOptions>(serde_json::Value::Object(fields))
      .map_err(|e| invalid_arg(format!("options.{}: {}", e.path(), e.inner())))?;
  let properties: Unknown = object.get_named_property("properties")?;
  let properties = match properties.get_type()? {
    ValueType::Undefined | ValueType::Null => None,
    _ => Some(crate::message_properties::read(&properties)?),
  };
  Ok((Some(parsed), properties))
}
