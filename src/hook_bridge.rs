//! The rmqtt side of hooks: a handler registered in a broker's hook manager
//! that turns rmqtt events into calls of the server's JavaScript hooks.
//!
//! Only the hook types the current sets use are registered, so an absent hook
//! costs nothing; `setHooks()`/`addHooks()` on a running server register the
//! types the new sets add and remove those they drop. Several sets: every
//! set that has a notification gets it; decisions combine (`decision.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytestring::ByteString;
use napi::bindgen_prelude::*;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Register, ReturnType, Type};
use rmqtt::types::{AuthResult, Id, Publish, PublishAclResult, SubscribeAclResult};
use tokio::sync::{oneshot, Mutex as AsyncMutex, Notify};

use crate::decision::{self, Login, Verdict};
use crate::decision_cache::Action;
use crate::enhanced_auth::{self, EnhancedAuth};
use crate::fork;
use crate::hook_data;
use crate::hook_js::{
  Authenticate, DroppedMessage, Message, Msg, Session, SessionPublishRequest, SessionReason,
  SessionSubscription, SessionUnsubscription,
};
use crate::hook_queue::{Live, Reply};
use crate::hook_table::{Event, Kind};
use crate::hooks::{mask_has, HookSet, Hooks, KindMask, SetList};

/// The hooks as one running broker sees them. Closed at stop, so a broker
/// being torn down (or leaked by rmqtt) never calls into JavaScript again.
pub struct Attachment {
  hooks: Weak<Hooks>,
  /// `Hooks::kinds`: whether a kind is in use, without upgrading `hooks`.
  kinds: KindMask,
  live: Live,
  /// Wakes the decisions still waiting for JavaScript when the broker stops,
  /// so they deny at once instead of holding `stop()` until their timeout
  /// (rmqtt's hook manager keeps a handler's lock while it runs, and removing
  /// the handlers waits for that lock).
  closing: Notify,
  /// One registration per hook type in use, so a type both the old and the
  /// new set use stays registered across `setHooks()`.
  registers: AsyncMutex<HashMap<Type, Box<dyn Register>>>,
  /// Native ACL rules decide publishes (policy.rs): `onMessagePublish` then
  /// waits for their allow, as it does for an authorize hook's.
  native_acl: AtomicBool,
}

impl Attachment {
  pub fn new(hooks: &Arc<Hooks>) -> Arc<Self> {
    Arc::new(Attachment {
      hooks: Arc::downgrade(hooks),
      kinds: hooks.kinds(),
      live: Arc::new(AtomicBool::new(true)),
      closing: Notify::new(),
      registers: AsyncMutex::new(HashMap::new()),
      native_acl: AtomicBool::new(false),
    })
  }

  /// Stops calling JavaScript, denies the decisions still pending, and
  /// takes the handlers out of rmqtt's hook manager, which would otherwise
  /// keep this attachment alive.
  pub async fn close(&self) {
    self.live.store(false, Ordering::SeqCst);
    self.closing.notify_waiters();
    for (_, register) in self.registers.lock().await.drain() {
      fork::remove_hooks(register.as_ref()).await;
    }
  }

  pub fn set_native_acl(&self) {
    self.native_acl.store(true, Ordering::Release);
  }

  /// Reports a publish the native ACL allowed to `onMessagePublish`.
  pub fn published(&self, id: &Id, p: &Publish) {
    if !self.has(Kind::MessagePublish) {
      return;
    }
    if let Some((hooks, sets)) = self.current() {
      for set in sets.iter().filter(|set| set.has(Kind::MessagePublish)) {
        let from = rmqtt::types::From::from_custom(id.clone());
        let event = Event::MessagePublish(Message(Some(id.clone()), from, true, Msg::of(p)), ());
        set.queue.push(&self.live, &hooks, set.queue_limit, event);
      }
    }
  }

  /// Whether JavaScript would be asked this decision now.
  pub fn has_decision(&self, kind: Kind) -> bool {
    self.has(kind)
  }

  /// Whether a live set has `kind`: two loads, no lock, no reference count
  /// (the native ACL asks this for every publish it allows).
  fn has(&self, kind: Kind) -> bool {
    self.live.load(Ordering::Acquire)
      && self.hooks.strong_count() > 0
      && mask_has(&self.kinds, kind)
  }

  fn current(&self) -> Option<(Arc<Hooks>, SetList)> {
    if !self.live.load(Ordering::Acquire) {
      return None;
    }
    let hooks = self.hooks.upgrade()?;
    let sets = hooks.current();
    if sets.is_empty() {
      return None;
    }
    Some((hooks, sets))
  }

  /// Registers a handler for exactly the hook types the current set uses.
  /// Runs on the broker's runtime.
  ///
  /// A handler reads the current set for each event, so a type both sets use
  /// keeps its registration: there is no moment when it has none (a swapped
  /// authorize hook never lets a message through unasked) or two (no event
  /// is reported twice). Types no longer used are removed, not only stopped:
  /// rmqtt keeps a stopped handler in its map for the life of the broker, so
  /// each `setHooks()` would have left some behind.
  /// `attached` is told once the new types are registered, before the
  /// removals, which may wait.
  pub async fn sync(self: &Arc<Self>, scx: &ServerContext, attached: Option<oneshot::Sender<()>>) {
    let mut registers = self.registers.lock().await;
    let wanted = self
      .current()
      .map(|(_, sets)| types_of(&sets))
      .unwrap_or_default();
    // New types first: removing a type waits for its decisions still
    // pending (up to the set's timeout), and a new authentication hook must
    // not wait behind that while clients connect unasked.
    for typ in &wanted {
      if registers.contains_key(typ) {
        continue;
      }
      let register = scx.extends.hook_mgr().register();
      register
        .add(
          *typ,
          Box::new(Bridge {
            attachment: self.clone(),
          }),
        )
        .await;
      register.start().await;
      registers.insert(*typ, register);
    }
    if let Some(attached) = attached {
      let _ = attached.send(());
    }
    let gone: Vec<Type> = registers
      .keys()
      .filter(|t| !wanted.contains(t))
      .copied()
      .collect();
    for typ in gone {
      if let Some(register) = registers.remove(&typ) {
        fork::remove_hooks(register.as_ref()).await;
      }
    }
  }
}

fn types_of(sets: &[Arc<HookSet>]) -> Vec<Type> {
  let has = |k: Kind| sets.iter().any(|s| s.has(k));
  let mut types: Vec<Type> = Kind::ALL
    .into_iter()
    .filter(|k| has(*k))
    .map(Kind::rmqtt_type)
    .collect();
  // A disconnect forgets the client's cached decisions (in Rust only).
  let caches = has(Kind::ClientSubscribeAuthorize) || has(Kind::ClientPublishAuthorize);
  if caches && !types.contains(&Type::ClientDisconnected) {
    types.push(Type::ClientDisconnected);
  }
  types
}

struct Bridge {
  attachment: Arc<Attachment>,
}

/// What one handler call works with: the hooks of the server and the sets
/// current when the event happened.
struct Ctx<'a> {
  live: &'a Live,
  closing: &'a Notify,
  hooks: Arc<Hooks>,
  sets: SetList,
}

impl Ctx<'_> {
  fn has(&self, kind: Kind) -> bool {
    self.sets.iter().any(|s| s.has(kind))
  }

  /// Queues the notification `event()` makes for every set that has `kind`.
  fn notify(&self, kind: Kind, event: impl Fn() -> Event) {
    for set in self.sets.iter().filter(|s| s.has(kind)) {
      set
        .queue
        .push(self.live, &self.hooks, set.queue_limit, event());
    }
  }

  /// Asks one set's decision hook and waits for its answer, or its
  /// Promise's, within the set's timeout. `None` (deny) on timeout, throw,
  /// rejection or a value of the wrong shape, each with a warning, and at
  /// once when the broker stops.
  async fn decide<R: FromNapiValue + Send + 'static>(
    &self,
    set: &HookSet,
    kind: Kind,
    event: impl FnOnce(Reply<R>) -> Event,
  ) -> Option<R> {
    // Registered before `live` is read, so a stop in between still wakes it.
    let closing = self.closing.notified();
    tokio::pin!(closing);
    closing.as_mut().enable();
    if !self.live.load(Ordering::Acquire) {
      return None;
    }
    let (tx, rx) = oneshot::channel();
    set.queue.push_decision(self.live, event(tx)).await;
    let answer = async {
      match rx.await {
        Ok(Ok(Either::A(r))) => Ok(r),
        Ok(Ok(Either::B(promise))) => promise.await,
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::from_reason(
          "the hook was not called (the server is stopping)",
        )),
      }
    };
    let name = kind.name();
    let answer = tokio::select! {
      answer = tokio::time::timeout(set.timeout, answer) => answer,
      _ = closing => {
        tracing::debug!("{name}: the server is stopping, denying");
        return None;
      }
    };
    match answer {
      Ok(Ok(r)) => Some(r),
      Ok(Err(e)) => {
        self.hooks.count_failure();
        tracing::warn!("{name} failed, denying: {}", e.reason);
        None
      }
      Err(_) => {
        self.hooks.count_timeout();
        tracing::warn!(
          "{name} did not answer within {} ms, denying",
          set.timeout.as_millis()
        );
        None
      }
    }
  }

  /// Asks every set that has the authorize hook `kind`, in order, each from
  /// its cache when it holds this question: the first denial ends it,
  /// allows combine their QoS caps.
  async fn authorize<R: FromNapiValue + Send + 'static>(
    &self,
    kind: Kind,
    key: (&Id, Action, &ByteString),
    event: impl Fn(Reply<R>) -> Event,
    read: impl Fn(R) -> std::result::Result<(Verdict, Option<Duration>), String>,
  ) -> Verdict {
    let (id, action, topic) = key;
    let mut cap = None;
    for set in self.sets.iter().filter(|s| s.has(kind)) {
      let verdict = match set.cache.get(id, action, topic) {
        Some(v) => v,
        None => match self.decide(set, kind, &event).await.map(&read) {
          None => Verdict::DENY,
          Some(Ok((v, ttl))) => {
            if let Some(ttl) = ttl {
              set.cache.put(id, action, topic, ttl, v.clone());
            }
            v
          }
          Some(Err(e)) => {
            self.hooks.count_failure();
            tracing::warn!("{}: {e}; denying", kind.name());
            Verdict::DENY
          }
        },
      };
      match verdict {
        Verdict::Allow(c) => cap = decision::and(cap, c),
        deny => return deny,
      }
    }
    Verdict::Allow(cap)
  }
}

#[async_trait::async_trait]
impl Handler for Bridge {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    let Some((hooks, sets)) = self.attachment.current() else {
      // Stopping or closing: a decision still denies, as one pending would;
      // passing it on would let rmqtt's default allow it.
      return match denial(param) {
        Some(deny) => (false, Some(deny)),
        None => (true, acc),
      };
    };
    let cx = Ctx {
      live: &self.attachment.live,
      closing: &self.attachment.closing,
      hooks,
      sets,
    };
    match param {
      Parameter::ClientAuthenticate(ci) => {
        if !cx.has(Kind::ClientAuthenticate) {
          return (true, acc);
        }
        let has_username = ci.username().is_some();
        let v5 = ci.proto_ver() == rmqtt::codec::types::MQTT_LEVEL_5;
        let mut superuser = true;
        for set in cx.sets.iter().filter(|s| s.has(Kind::ClientAuthenticate)) {
          let request = hook_data::authenticate_request(ci);
          let answer = cx
            .decide(set, Kind::ClientAuthenticate, |r| {
              Event::ClientAuthenticate(Authenticate(request), r)
            })
            .await;
          let refused = match answer.map(|r| decision::authenticate(r, v5, has_username)) {
            Some(Ok(Login::Allow { superuser: s })) => {
              superuser &= s;
              continue;
            }
            Some(Ok(refusal)) => decision::login_result(refusal),
            Some(Err(e)) => {
              cx.hooks.count_failure();
              tracing::warn!("onClientAuthenticate: {e}; refusing as notAuthorized");
              AuthResult::NotAuthorized
            }
            None => AuthResult::NotAuthorized,
          };
          tracing::debug!(
            "onClientAuthenticate refused {}: {refused:?}",
            ci.client_id()
          );
          return (false, Some(HookResult::AuthResult(refused)));
        }
        (
          false,
          Some(HookResult::AuthResult(AuthResult::Allow(superuser, None))),
        )
      }
      Parameter::ClientEnhancedAuth(step) => {
        // An exchange has several steps: the first set that has the hook
        // answers them all (sets cannot share one challenge-response).
        let Some(set) = cx.sets.iter().find(|s| s.has(Kind::ClientEnhancedAuth)) else {
          return (true, acc);
        };
        let request = enhanced_auth::request(step);
        let answer = cx
          .decide(set, Kind::ClientEnhancedAuth, |r| {
            Event::ClientEnhancedAuth(EnhancedAuth(request), r)
          })
          .await;
        let step = match answer.map(enhanced_auth::step) {
          Some(Ok(step)) => step,
          Some(Err(why)) => {
            cx.hooks.count_failure();
            tracing::warn!("onClientEnhancedAuth: {why}; refusing");
            enhanced_auth::denied()
          }
          None => enhanced_auth::denied(),
        };
        (false, Some(HookResult::EnhancedAuth(step)))
      }
      Parameter::ClientSubscribeCheckAcl(s, sub) => {
        if !cx.has(Kind::ClientSubscribeAuthorize) {
          return (true, acc);
        }
        let requested = sub.opts.qos();
        let filter: &ByteString = &sub.topic_filter;
        let verdict = cx
          .authorize(
            Kind::ClientSubscribeAuthorize,
            (&s.id, Action::Subscribe, filter),
            |r| {
              Event::ClientSubscribeAuthorize(
                SessionSubscription(s.id.clone(), filter.to_string(), requested),
                r,
              )
            },
            decision::subscribe,
          )
          .await;
        let result = decision::subscribe_result(verdict, requested);
        (false, Some(HookResult::SubscribeAclResult(result)))
      }
      Parameter::MessagePublishCheckAcl(s, p) => {
        if !cx.has(Kind::ClientPublishAuthorize) {
          return (true, acc);
        }
        // Only an ACL rule may allow these (policy.rs); the fork lets them
        // reach the ACL hooks instead of refusing them up front.
        if p.topic.starts_with('$') {
          let reason = Some(crate::policy::RESERVED.into());
          let result = PublishAclResult::rejected(false, reason);
          return (false, Some(HookResult::PublishAclResult(result)));
        }
        let verdict = cx
          .authorize(
            Kind::ClientPublishAuthorize,
            (&s.id, Action::Publish, &p.topic),
            |r| Event::ClientPublishAuthorize(SessionPublishRequest(s.id.clone(), Msg::of(p)), r),
            decision::publish,
          )
          .await;
        if let Verdict::Allow(_) = verdict {
          // rmqtt fires `message_publish` before the ACL check; with an
          // authorize hook the notification waits for the allow, so
          // `onMessagePublish` never reports a message that was denied.
          cx.notify(Kind::MessagePublish, || {
            let from = rmqtt::types::From::from_custom(s.id.clone());
            Event::MessagePublish(Message(Some(s.id.clone()), from, true, Msg::of(p)), ())
          });
        }
        let result = decision::publish_result(verdict);
        (false, Some(HookResult::PublishAclResult(result)))
      }
      Parameter::MessagePublish(s, from, p) => {
        if !cx.has(Kind::MessagePublish) {
          return (true, acc);
        }
        let acl = cx.has(Kind::ClientPublishAuthorize)
          || self.attachment.native_acl.load(Ordering::Acquire);
        let after_acl = match s {
          // Reported once allowed, by the ACL branch above or the native ACL
          // (superusers skip the ACL, but not for `$` topics).
          Some(s) if acl => p.topic.starts_with('$') || !s.superuser().await.unwrap_or_default(),
          _ => false,
        };
        if !after_acl {
          cx.notify(Kind::MessagePublish, || {
            Event::MessagePublish(
              Message(
                s.map(|s| s.id.clone()),
                (*from).clone(),
                s.is_some(),
                Msg::of(p),
              ),
              (),
            )
          });
        }
        (true, acc)
      }
      Parameter::SessionSubscribed(s, sub) => {
        cx.notify(Kind::ClientSubscribe, || {
          Event::ClientSubscribe(
            SessionSubscription(s.id.clone(), sub.topic_filter.to_string(), sub.opts.qos()),
            (),
          )
        });
        (true, acc)
      }
      Parameter::SessionUnsubscribed(s, unsub) => {
        cx.notify(Kind::ClientUnsubscribe, || {
          Event::ClientUnsubscribe(
            SessionUnsubscription(s.id.clone(), unsub.topic_filter.to_string()),
            (),
          )
        });
        (true, acc)
      }
      Parameter::ClientConnected(s) => {
        cx.notify(Kind::ClientConnected, || {
          Event::ClientConnected(Session(s.id.clone()), ())
        });
        (true, acc)
      }
      Parameter::ClientDisconnected(s, reason) => {
        for set in cx.sets.iter() {
          set.cache.forget(&s.id.client_id);
        }
        cx.notify(Kind::ClientDisconnected, || {
          Event::ClientDisconnected(SessionReason(s.id.clone(), reason.to_string()), ())
        });
        (true, acc)
      }
      Parameter::MessageDelivered(s, from, p) => {
        cx.notify(Kind::MessageDelivered, || {
          Event::MessageDelivered(
            Message(Some(s.id.clone()), (*from).clone(), false, Msg::of(p)),
            (),
          )
        });
        (true, acc)
      }
      Parameter::MessageAcked(s, from, p) => {
        cx.notify(Kind::MessageAcked, || {
          Event::MessageAcked(
            Message(Some(s.id.clone()), (*from).clone(), false, Msg::of(p)),
            (),
          )
        });
        (true, acc)
      }
      Parameter::MessageDropped(to, from, p, reason) => {
        cx.notify(Kind::MessageDropped, || {
          Event::MessageDropped(
            DroppedMessage(to.clone(), (*from).clone(), Msg::of(p), reason.to_string()),
            (),
          )
        });
        (true, acc)
      }
      Parameter::SessionCreated(s) => {
        cx.notify(Kind::SessionCreated, || {
          Event::SessionCreated(Session(s.id.clone()), ())
        });
        (true, acc)
      }
      Parameter::SessionTerminated(s, reason) => {
        cx.notify(Kind::SessionTerminated, || {
          Event::SessionTerminated(SessionReason(s.id.clone(), reason.to_string()), ())
        });
        (true, acc)
      }
      _ => (true, acc),
    }
  }
}

/// The answer of a denied decision, for the decision hook types.
fn denial(param: &Parameter) -> Option<HookResult> {
  match param {
    Parameter::ClientAuthenticate(_) => Some(HookResult::AuthResult(AuthResult::NotAuthorized)),
    Parameter::ClientEnhancedAuth(_) => Some(HookResult::EnhancedAuth(enhanced_auth::denied())),
    Parameter::ClientSubscribeCheckAcl(..) => Some(HookResult::SubscribeAclResult(
      SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized),
    )),
    Parameter::MessagePublishCheckAcl(..) => Some(HookResult::PublishAclResult(
      PublishAclResult::rejected(false, None),
    )),
    _ => None,
  }
}
