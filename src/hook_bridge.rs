//! The rmqtt side of hooks: a handler registered in a broker's hook manager
//! that turns rmqtt events into calls of the server's JavaScript hooks.
//!
//! Only the hook types the current set uses are registered, so an absent hook
//! costs nothing; `setHooks()` on a running server re-registers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Register, ReturnType, Type};
use rmqtt::types::{AuthResult, PublishAclResult, QoS as RQoS, SubscribeAclResult};
use tokio::sync::Mutex as AsyncMutex;

use crate::hook_data::{self as data, ReasonInfo, SubscriptionInfo, UnsubscriptionInfo};
use crate::hooks::{is_promise, Decide, HookSet, Hooks, Notify};

/// The hooks as one running broker sees them. Closed at stop, so a broker
/// being torn down (or leaked by rmqtt) never calls into JavaScript again.
pub struct Attachment {
  hooks: Weak<Hooks>,
  live: AtomicBool,
  register: AsyncMutex<Option<Box<dyn Register>>>,
}

impl Attachment {
  pub fn new(hooks: &Arc<Hooks>) -> Arc<Self> {
    Arc::new(Attachment {
      hooks: Arc::downgrade(hooks),
      live: AtomicBool::new(true),
      register: AsyncMutex::new(None),
    })
  }

  /// Stops calling JavaScript and drops the registration, which would
  /// otherwise keep this attachment alive through rmqtt's hook manager.
  pub async fn close(&self) {
    self.live.store(false, Ordering::SeqCst);
    if let Some(register) = self.register.lock().await.take() {
      register.stop().await;
    }
  }

  fn current(&self) -> Option<(Arc<Hooks>, Arc<HookSet>)> {
    if !self.live.load(Ordering::Acquire) {
      return None;
    }
    let hooks = self.hooks.upgrade()?;
    let set = hooks.current()?;
    Some((hooks, set))
  }

  /// Registers a handler for exactly the hook types the current set uses,
  /// replacing the previous registration. Runs on the broker's runtime.
  pub async fn sync(self: &Arc<Self>, scx: &ServerContext) {
    let mut slot = self.register.lock().await;
    if let Some(old) = slot.take() {
      old.stop().await;
    }
    let Some((_, set)) = self.current() else {
      return;
    };
    let types = types_of(&set);
    if types.is_empty() {
      return;
    }
    let register = scx.extends.hook_mgr().register();
    for typ in types {
      register
        .add(
          typ,
          Box::new(Bridge {
            attachment: self.clone(),
          }),
        )
        .await;
    }
    register.start().await;
    *slot = Some(register);
  }
}

fn types_of(s: &HookSet) -> Vec<Type> {
  [
    (s.on_client_authenticate.is_some(), Type::ClientAuthenticate),
    (
      s.on_client_subscribe_authorize.is_some(),
      Type::ClientSubscribeCheckAcl,
    ),
    (
      s.on_client_publish_authorize.is_some(),
      Type::MessagePublishCheckAcl,
    ),
    (s.on_message_publish.is_some(), Type::MessagePublish),
    (s.on_client_subscribe.is_some(), Type::SessionSubscribed),
    (s.on_client_unsubscribe.is_some(), Type::SessionUnsubscribed),
    (s.on_client_connected.is_some(), Type::ClientConnected),
    (s.on_client_disconnected.is_some(), Type::ClientDisconnected),
    (s.on_message_delivered.is_some(), Type::MessageDelivered),
    (s.on_message_acked.is_some(), Type::MessageAcked),
    (s.on_message_dropped.is_some(), Type::MessageDropped),
    (s.on_session_created.is_some(), Type::SessionCreated),
    (s.on_session_terminated.is_some(), Type::SessionTerminated),
  ]
  .into_iter()
  .filter_map(|(set, t)| set.then_some(t))
  .collect()
}

struct Bridge {
  attachment: Arc<Attachment>,
}

#[async_trait::async_trait]
impl Handler for Bridge {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    let Some((hooks, set)) = self.attachment.current() else {
      return (true, acc);
    };
    match param {
      Parameter::ClientAuthenticate(ci) => {
        let Some(f) = &set.on_client_authenticate else {
          return (true, acc);
        };
        let has_username = ci.username().is_some();
        let args = (data::authenticate_request(ci),);
        let result = match decide(&hooks, &set, f, args, "onClientAuthenticate").await {
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
                hooks.count_failure();
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
        let Some(f) = &set.on_client_subscribe_authorize else {
          return (true, acc);
        };
        let requested = sub.opts.qos();
        let args = (
          data::session(&s.id),
          SubscriptionInfo {
            topic_filter: sub.topic_filter.to_string(),
            qos: data::qos_num(requested),
          },
        );
        let result = match decide(&hooks, &set, f, args, "onClientSubscribeAuthorize").await {
          Some(r) if r.allow => match r.qos.map(qos_from) {
            None => SubscribeAclResult::new_success(requested, None),
            Some(Some(cap)) => SubscribeAclResult::new_success(requested.min(cap), None),
            Some(None) => {
              hooks.count_failure();
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
        let Some(f) = &set.on_client_publish_authorize else {
          return (true, acc);
        };
        let args = (data::session(&s.id), data::publish_request(p));
        let result = match decide(&hooks, &set, f, args, "onClientPublishAuthorize").await {
          Some(r) if r.allow => {
            // rmqtt fires `message_publish` before the ACL check; with an
            // authorize hook the notification waits for the allow, so
            // `onMessagePublish` never reports a message that was denied.
            if let Some(n) = &set.on_message_publish {
              let from = rmqtt::types::From::from_custom(s.id.clone());
              let args = (
                Some(data::session(&s.id)),
                data::from(&from, true),
                data::message(p),
              );
              notify(&hooks, &set, n, args, "onMessagePublish");
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
        let after_acl = match s {
          // Reported by the ACL branch above once allowed (superusers skip it).
          Some(s) if set.on_client_publish_authorize.is_some() => {
            !s.superuser().await.unwrap_or_default()
          }
          _ => false,
        };
        if let (Some(f), false) = (&set.on_message_publish, after_acl) {
          let args = (
            s.map(|s| data::session(&s.id)),
            data::from(from, s.is_some()),
            data::message(p),
          );
          notify(&hooks, &set, f, args, "onMessagePublish");
        }
        (true, acc)
      }
      Parameter::SessionSubscribed(s, sub) => {
        if let Some(f) = &set.on_client_subscribe {
          let info = SubscriptionInfo {
            topic_filter: sub.topic_filter.to_string(),
            qos: data::qos_num(sub.opts.qos()),
          };
          notify(
            &hooks,
            &set,
            f,
            (data::session(&s.id), info),
            "onClientSubscribe",
          );
        }
        (true, acc)
      }
      Parameter::SessionUnsubscribed(s, unsub) => {
        if let Some(f) = &set.on_client_unsubscribe {
          let info = UnsubscriptionInfo {
            topic_filter: unsub.topic_filter.to_string(),
          };
          notify(
            &hooks,
            &set,
            f,
            (data::session(&s.id), info),
            "onClientUnsubscribe",
          );
        }
        (true, acc)
      }
      Parameter::ClientConnected(s) => {
        if let Some(f) = &set.on_client_connected {
          notify(
            &hooks,
            &set,
            f,
            (data::session(&s.id),),
            "onClientConnected",
          );
        }
        (true, acc)
      }
      Parameter::ClientDisconnected(s, reason) => {
        if let Some(f) = &set.on_client_disconnected {
          let args = (
            data::session(&s.id),
            ReasonInfo {
              reason: reason.to_string(),
            },
          );
          notify(&hooks, &set, f, args, "onClientDisconnected");
        }
        (true, acc)
      }
      Parameter::MessageDelivered(s, from, p) => {
        if let Some(f) = &set.on_message_delivered {
          let args = (
            data::session(&s.id),
            data::from(from, false),
            data::message(p),
          );
          notify(&hooks, &set, f, args, "onMessageDelivered");
        }
        (true, acc)
      }
      Parameter::MessageAcked(s, from, p) => {
        if let Some(f) = &set.on_message_acked {
          let args = (
            data::session(&s.id),
            data::from(from, false),
            data::message(p),
          );
          notify(&hooks, &set, f, args, "onMessageAcked");
        }
        (true, acc)
      }
      Parameter::MessageDropped(to, from, p, reason) => {
        if let Some(f) = &set.on_message_dropped {
          let args = (
            to.as_ref().map(data::session),
            data::from(from, false),
            data::message(p),
            ReasonInfo {
              reason: reason.to_string(),
            },
          );
          notify(&hooks, &set, f, args, "onMessageDropped");
        }
        (true, acc)
      }
      Parameter::SessionCreated(s) => {
        if let Some(f) = &set.on_session_created {
          notify(&hooks, &set, f, (data::session(&s.id),), "onSessionCreated");
        }
        (true, acc)
      }
      Parameter::SessionTerminated(s, reason) => {
        if let Some(f) = &set.on_session_terminated {
          let args = (
            data::session(&s.id),
            ReasonInfo {
              reason: reason.to_string(),
            },
          );
          notify(&hooks, &set, f, args, "onSessionTerminated");
        }
        (true, acc)
      }
      _ => (true, acc),
    }
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

/// Calls a decision hook and waits for its answer, or its Promise's, within
/// the set's timeout. `None` (deny) on timeout, throw, rejection or a value
/// of the wrong shape, each with a warning.
async fn decide<A: 'static, R: 'static + FromNapiValue + ValidateNapiValue + TypeName + Send>(
  hooks: &Hooks,
  set: &HookSet,
  f: &Decide<A, R>,
  args: A,
  name: &str,
) -> Option<R>
where
  FnArgs<A>: JsValuesTupleIntoVec,
{
  let answer = async {
    match f.call_async_catch(FnArgs::from(args)).await? {
      Either::A(r) => Ok(r),
      Either::B(promise) => promise.await,
    }
  };
  match tokio::time::timeout(set.timeout, answer).await {
    Ok(Ok(r)) => Some(r),
    Ok(Err(e)) => {
      hooks.count_failure();
      tracing::warn!("{name} failed, denying: {}", e.reason);
      None
    }
    Err(_) => {
      hooks.count_timeout();
      tracing::warn!(
        "{name} did not answer within {} ms, denying",
        set.timeout.as_millis()
      );
      None
    }
  }
}

/// Queues a notification without waiting. Past the queue limit it is dropped
/// (counted); a throw or a rejected Promise is logged, never fatal.
fn notify<A: 'static>(hooks: &Arc<Hooks>, set: &HookSet, f: &Notify<A>, args: A, name: &'static str)
where
  FnArgs<A>: JsValuesTupleIntoVec,
{
  if !hooks.try_enqueue(name, set.queue_limit) {
    return;
  }
  let slot = hooks.clone();
  let status = f.call_with_return_value(
    FnArgs::from(args),
    ThreadsafeFunctionCallMode::NonBlocking,
    move |ret, _env| {
      slot.dequeued();
      match ret {
        Err(e) => {
          slot.count_failure();
          tracing::warn!("{name} threw: {}", e.reason)
        }
        Ok(value) if is_promise(&value) => {
          let promise: PromiseRaw<Unknown> = unsafe { value.cast()? };
          promise.catch(move |ctx: CallbackContext<Unknown>| {
            let reason = unsafe { ctx.value.cast::<String>() }.unwrap_or_default();
            tracing::warn!("{name} rejected: {reason}");
            Ok(())
          })?;
        }
        Ok(_) => {}
      }
      Ok(())
    },
  );
  if status != Status::Ok {
    // Never queued (the server is going away): the callback will not run.
    hooks.dequeued();
    if status != Status::Closing {
      tracing::warn!("{name}: could not queue the notification ({status})");
    }
  }
}
