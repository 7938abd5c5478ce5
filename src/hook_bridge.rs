//! The rmqtt side of hooks: a handler registered in a broker's hook manager
//! that turns rmqtt events into calls of the server's JavaScript hooks.
//!
//! Only the hook types the current set uses are registered, so an absent hook
//! costs nothing; `setHooks()` on a running server registers the types the
//! new set adds and removes those it drops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use napi::bindgen_prelude::*;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Register, ReturnType, Type};
use rmqtt::session::Session as RSession;
use rmqtt::types::{AuthResult, Publish, PublishAclResult, QoS as RQoS, SubscribeAclResult};
use tokio::sync::{oneshot, Mutex as AsyncMutex, Notify};

use crate::fork;
use crate::hook_data;
use crate::hook_js::{
  Authenticate, DroppedMessage, Message, Msg, Session, SessionPublishRequest, SessionReason,
  SessionSubscription, SessionUnsubscription,
};
use crate::hook_queue::{Live, Reply};
use crate::hook_table::{Event, Kind};
use crate::hooks::{HookSet, Hooks};

/// The hooks as one running broker sees them. Closed at stop, so a broker
/// being torn down (or leaked by rmqtt) never calls into JavaScript again.
pub struct Attachment {
  hooks: Weak<Hooks>,
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
  pub fn published(&self, s: &RSession, p: &Publish) {
    if let Some((hooks, set)) = self.current() {
      if set.has(Kind::MessagePublish) {
        let from = rmqtt::types::From::from_custom(s.id.clone());
        let event = Event::MessagePublish(Message(Some(s.id.clone()), from, true, Msg::of(p)), ());
        set.queue.push(&self.live, &hooks, set.queue_limit, event);
      }
    }
  }

  /// Whether JavaScript would be asked this decision now.
  pub fn has_decision(&self, kind: Kind) -> bool {
    self.current().is_some_and(|(_, set)| set.has(kind))
  }

  fn current(&self) -> Option<(Arc<Hooks>, Arc<HookSet>)> {
    if !self.live.load(Ordering::Acquire) {
      return None;
    }
    let hooks = self.hooks.upgrade()?;
    let set = hooks.current()?;
    Some((hooks, set))
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
  pub async fn sync(self: &Arc<Self>, scx: &ServerContext) {
    let mut registers = self.registers.lock().await;
    let wanted = self
      .current()
      .map(|(_, set)| types_of(&set))
      .unwrap_or_default();
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
    for typ in wanted {
      if registers.contains_key(&typ) {
        continue;
      }
      let register = scx.extends.hook_mgr().register();
      register
        .add(
          typ,
          Box::new(Bridge {
            attachment: self.clone(),
          }),
        )
        .await;
      register.start().await;
      registers.insert(typ, register);
    }
  }
}

fn types_of(s: &HookSet) -> Vec<Type> {
  Kind::ALL
    .into_iter()
    .filter(|k| s.has(*k))
    .map(Kind::rmqtt_type)
    .collect()
}

struct Bridge {
  attachment: Arc<Attachment>,
}

/// What one handler call works with: the hooks of the server and the set
/// current when the event happened.
struct Ctx<'a> {
  live: &'a Live,
  closing: &'a Notify,
  hooks: Arc<Hooks>,
  set: Arc<HookSet>,
}

impl Ctx<'_> {
  fn has(&self, kind: Kind) -> bool {
    self.set.has(kind)
  }

  fn notify(&self, event: Event) {
    self
      .set
      .queue
      .push(self.live, &self.hooks, self.set.queue_limit, event);
  }

  /// Asks a decision hook and waits for its answer, or its Promise's,
  /// within the set's timeout. `None` (deny) on timeout, throw, rejection
  /// or a value of the wrong shape, each with a warning, and at once when
  /// the broker stops.
  async fn decide<R: FromNapiValue + Send + 'static>(
    &self,
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
    self.set.queue.push_decision(self.live, event(tx)).await;
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
      answer = tokio::time::timeout(self.set.timeout, answer) => answer,
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
          self.set.timeout.as_millis()
        );
        None
      }
    }
  }
}

#[async_trait::async_trait]
impl Handler for Bridge {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    let Some((hooks, set)) = self.attachment.current() else {
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
      set,
    };
    match param {
      Parameter::ClientAuthenticate(ci) => {
        if !cx.has(Kind::ClientAuthenticate) {
          return (true, acc);
        }
        let has_username = ci.username().is_some();
        let request = hook_data::authenticate_request(ci);
        let answer = cx
          .decide(Kind::ClientAuthenticate, |r| {
            Event::ClientAuthenticate(Authenticate(request), r)
          })
          .await;
        let result = match answer {
          Some(r) if r.allow => AuthResult::Allow(r.superuser.unwrap_or(false), None),
          Some(r) => {
            tracing::debug!(
              "onClientAuthenticate refused {}: {:?}",
              ci.client_id(),
              r.reason
            );
            match r.code.as_deref() {
              Some("notAuthorized") => AuthResult::NotAuthorized,
              Some("badUsernameOrPassword") => AuthResult::BadUsernameOrPassword,
              None if has_username => AuthResult::BadUsernameOrPassword,
              None => AuthResult::NotAuthorized,
              Some(other) => {
                cx.hooks.count_failure();
                tracing::warn!(
                  "onClientAuthenticate: unknown code {other:?} (expected \"badUsernameOrPassword\" or \"notAuthorized\"); refusing as notAuthorized"
                );
                AuthResult::NotAuthorized
              }
            }
          }
          None => AuthResult::NotAuthorized,
        };
        (false, Some(HookResult::AuthResult(result)))
      }
      Parameter::ClientSubscribeCheckAcl(s, sub) => {
        if !cx.has(Kind::ClientSubscribeAuthorize) {
          return (true, acc);
        }
        let requested = sub.opts.qos();
        let filter = sub.topic_filter.to_string();
        let answer = cx
          .decide(Kind::ClientSubscribeAuthorize, |r| {
            Event::ClientSubscribeAuthorize(SessionSubscription(s.id.clone(), filter, requested), r)
          })
          .await;
        let result = match answer {
          Some(r) if r.allow => match r.qos.map(qos_from) {
            None => SubscribeAclResult::new_success(requested, None),
            Some(Some(cap)) => SubscribeAclResult::new_success(requested.min(cap), None),
            Some(None) => {
              cx.hooks.count_failure();
              tracing::warn!(
                "onClientSubscribeAuthorize: qos must be 0, 1 or 2, got {:?}; denying",
                r.qos
              );
              SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
            }
          },
          _ => SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized),
        };
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
        let answer = cx
          .decide(Kind::ClientPublishAuthorize, |r| {
            Event::ClientPublishAuthorize(SessionPublishRequest(s.id.clone(), Msg::of(p)), r)
          })
          .await;
        let result = match answer {
          Some(r) if r.allow => {
            // rmqtt fires `message_publish` before the ACL check; with an
            // authorize hook the notification waits for the allow, so
            // `onMessagePublish` never reports a message that was denied.
            if cx.has(Kind::MessagePublish) {
              let from = rmqtt::types::From::from_custom(s.id.clone());
              cx.notify(Event::MessagePublish(
                Message(Some(s.id.clone()), from, true, Msg::of(p)),
                (),
              ));
            }
            PublishAclResult::allow()
          }
          Some(r) => {
            PublishAclResult::rejected(r.disconnect.unwrap_or(false), r.reason.map(Into::into))
          }
          None => PublishAclResult::rejected(false, None),
        };
        (false, Some(HookResult::PublishAclResult(result)))
      }
      Parameter::MessagePublish(s, from, p) => {
        let acl = cx.has(Kind::ClientPublishAuthorize)
          || self.attachment.native_acl.load(Ordering::Acquire);
        let after_acl = match s {
          // Reported once allowed, by the ACL branch above or the native ACL
          // (superusers skip the ACL, but not for `$` topics).
          Some(s) if acl => p.topic.starts_with('$') || !s.superuser().await.unwrap_or_default(),
          _ => false,
        };
        if cx.has(Kind::MessagePublish) && !after_acl {
          cx.notify(Event::MessagePublish(
            Message(
              s.map(|s| s.id.clone()),
              (*from).clone(),
              s.is_some(),
              Msg::of(p),
            ),
            (),
          ));
        }
        (true, acc)
      }
      Parameter::SessionSubscribed(s, sub) => {
        if cx.has(Kind::ClientSubscribe) {
          cx.notify(Event::ClientSubscribe(
            SessionSubscription(s.id.clone(), sub.topic_filter.to_string(), sub.opts.qos()),
            (),
          ));
        }
        (true, acc)
      }
      Parameter::SessionUnsubscribed(s, unsub) => {
        if cx.has(Kind::ClientUnsubscribe) {
          cx.notify(Event::ClientUnsubscribe(
            SessionUnsubscription(s.id.clone(), unsub.topic_filter.to_string()),
            (),
          ));
        }
        (true, acc)
      }
      Parameter::ClientConnected(s) => {
        if cx.has(Kind::ClientConnected) {
          cx.notify(Event::ClientConnected(Session(s.id.clone()), ()));
        }
        (true, acc)
      }
      Parameter::ClientDisconnected(s, reason) => {
        if cx.has(Kind::ClientDisconnected) {
          cx.notify(Event::ClientDisconnected(
            SessionReason(s.id.clone(), reason.to_string()),
            (),
          ));
        }
        (true, acc)
      }
      Parameter::MessageDelivered(s, from, p) => {
        if cx.has(Kind::MessageDelivered) {
          cx.notify(Event::MessageDelivered(
            Message(Some(s.id.clone()), (*from).clone(), false, Msg::of(p)),
            (),
          ));
        }
        (true, acc)
      }
      Parameter::MessageAcked(s, from, p) => {
        if cx.has(Kind::MessageAcked) {
          cx.notify(Event::MessageAcked(
            Message(Some(s.id.clone()), (*from).clone(), false, Msg::of(p)),
            (),
          ));
        }
        (true, acc)
      }
      Parameter::MessageDropped(to, from, p, reason) => {
        if cx.has(Kind::MessageDropped) {
          cx.notify(Event::MessageDropped(
            DroppedMessage(to.clone(), (*from).clone(), Msg::of(p), reason.to_string()),
            (),
          ));
        }
        (true, acc)
      }
      Parameter::SessionCreated(s) => {
        if cx.has(Kind::SessionCreated) {
          cx.notify(Event::SessionCreated(Session(s.id.clone()), ()));
        }
        (true, acc)
      }
      Parameter::SessionTerminated(s, reason) => {
        if cx.has(Kind::SessionTerminated) {
          cx.notify(Event::SessionTerminated(
            SessionReason(s.id.clone(), reason.to_string()),
            (),
          ));
        }
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
    Parameter::ClientSubscribeCheckAcl(..) => Some(HookResult::SubscribeAclResult(
      SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized),
    )),
    Parameter::MessagePublishCheckAcl(..) => Some(HookResult::PublishAclResult(
      PublishAclResult::rejected(false, None),
    )),
    _ => None,
  }
}

fn qos_from(q: u32) -> Option<RQoS> {
  match q {
    0 => Some(RQoS::AtMostOnce),
    1 => Some(RQoS::AtLeastOnce),
    2 => Some(RQoS::ExactlyOnce),
    _ => None,
  }
}
