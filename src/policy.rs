//! Native policy of one running broker: password authentication and ACL
//! rules, as an rmqtt hook handler that runs before the JavaScript hooks.
//!
//! Order, for each decision: a superuser skips the ACL (rmqtt); then the
//! native answer (a known user's password check, the first matching ACL
//! rule); only when that does not decide is the JavaScript hook asked
//! (`onClientAuthenticate`, `onClientPublishAuthorize`,
//! `onClientSubscribeAuthorize`); without one, the default decides
//! (an unknown username is refused, `aclDefault` for the ACL). A publish
//! to a `$` topic that no rule allows is refused without asking JavaScript.

use std::sync::{Arc, RwLock};

use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Register, ReturnType, Type};
use rmqtt::types::{AuthResult, PublishAclResult, SubscribeAclResult};
use tokio::sync::Mutex as AsyncMutex;

use crate::acl::{Action, Rules, Who};
use crate::broker::BrokerHandle;
use crate::config;
use crate::hook_bridge::Attachment;
use crate::hook_table::Kind;
use crate::passwd::Users;

/// Above the JavaScript bridge (0) so the native answer comes first.
const PRIORITY: u32 = 100;

/// Why a `$` topic publish is refused (MQTT 4.7.2).
pub const RESERVED: &str = "topics starting with $ are reserved for the server";

pub struct Policy {
  acl: RwLock<Option<Arc<Rules>>>,
  /// `aclDefault`, for the rules `setAcl()` gives.
  acl_default: bool,
  users: Option<Arc<Users>>,
  hooks: Arc<Attachment>,
  /// The registration of the ACL hook types, made once rules exist.
  acl_register: AsyncMutex<Option<Box<dyn Register>>>,
}

impl Policy {
  pub fn new(
    acl: Option<Rules>,
    acl_default: bool,
    users: Option<Users>,
    hooks: Arc<Attachment>,
  ) -> Arc<Policy> {
    Arc::new(Policy {
      acl: RwLock::new(acl.map(Arc::new)),
      acl_default,
      users: users.map(Arc::new),
      hooks,
      acl_register: AsyncMutex::new(None),
    })
  }

  pub fn acl_default(&self) -> bool {
    self.acl_default
  }

  fn rules(&self) -> Option<Arc<Rules>> {
    self.acl.read().ok().and_then(|r| r.clone())
  }

  /// Replaces the rules; they decide from the next request on, once the
  /// ACL handler is registered (`register_acl`).
  pub fn set_rules(&self, rules: Rules) {
    if let Ok(mut slot) = self.acl.write() {
      *slot = Some(Arc::new(rules));
    }
  }

  /// Registers the handler for what is configured: authentication if there
  /// are users, the ACL types if there are rules (absent, they cost nothing).
  pub async fn register(self: &Arc<Self>, scx: &ServerContext) {
    if self.users.is_some() {
      let r = scx.extends.hook_mgr().register();
      r.add_priority(
        Type::ClientAuthenticate,
        PRIORITY,
        Box::new(Native(self.clone())),
      )
      .await;
      r.start().await;
      // Lives as long as the broker: dropping a Register does not remove it.
      drop(r);
    }
    self.register_acl(scx).await;
  }

  pub async fn register_acl(self: &Arc<Self>, scx: &ServerContext) {
    let mut slot = self.acl_register.lock().await;
    if slot.is_some() || self.rules().is_none() {
      return;
    }
    let r = scx.extends.hook_mgr().register();
    for typ in [Type::ClientSubscribeCheckAcl, Type::MessagePublishCheckAcl] {
      r.add_priority(typ, PRIORITY, Box::new(Native(self.clone())))
        .await;
    }
    r.start().await;
    *slot = Some(r);
  }
}

struct Native(Arc<Policy>);

fn who(id: &rmqtt::types::Id) -> Who<'_> {
  Who {
    username: id.username.as_deref(),
    client_id: &id.client_id,
    ip: id.remote_addr.map(|a| a.ip()),
  }
}

#[async_trait::async_trait]
impl Handler for Native {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    let p = &self.0;
    match param {
      Parameter::ClientAuthenticate(ci) => {
        let Some(users) = p.users.clone() else {
          return (true, acc);
        };
        let name = ci.username().map(|u| u.to_string());
        match name {
          Some(name) if users.contains(&name) => {
            let password = ci.password().cloned().unwrap_or_default();
            // PBKDF2 is CPU work: off the broker's async threads.
            let verdict = tokio::task::spawn_blocking(move || users.verify(&name, &password))
              .await
              .ok()
              .flatten();
            let result = match verdict {
              Some(superuser) => AuthResult::Allow(superuser, None),
              None => {
                tracing::info!("{}: wrong password, refused", ci.client_id());
                AuthResult::BadUsernameOrPassword
              }
            };
            (false, Some(HookResult::AuthResult(result)))
          }
          _ if p.hooks.has_decision(Kind::ClientAuthenticate) => (true, acc),
          Some(_) => {
            tracing::info!("{}: unknown username, refused", ci.client_id());
            let result = AuthResult::BadUsernameOrPassword;
            (false, Some(HookResult::AuthResult(result)))
          }
          None => (
            false,
            Some(HookResult::AuthResult(AuthResult::NotAuthorized)),
          ),
        }
      }
      Parameter::MessagePublishCheckAcl(s, publish) => {
        let Some(rules) = p.rules() else {
          return (true, acc);
        };
        let topic: &str = &publish.topic;
        let allow = match rules.decide(Action::Publish, &who(&s.id), topic) {
          Some(allow) => allow,
          None if topic.starts_with('$') => {
            let reason = Some(RESERVED.into());
            return (
              false,
              Some(HookResult::PublishAclResult(PublishAclResult::rejected(
                false, reason,
              ))),
            );
          }
          None if p.hooks.has_decision(Kind::ClientPublishAuthorize) => return (true, acc),
          None => rules.default_allow(),
        };
        let result = if allow {
          PublishAclResult::allow()
        } else {
          PublishAclResult::rejected(false, None)
        };
        (false, Some(HookResult::PublishAclResult(result)))
      }
      Parameter::ClientSubscribeCheckAcl(s, sub) => {
        let Some(rules) = p.rules() else {
          return (true, acc);
        };
        let filter: &str = &sub.topic_filter;
        let allow = match rules.decide(Action::Subscribe, &who(&s.id), filter) {
          Some(allow) => allow,
          None if p.hooks.has_decision(Kind::ClientSubscribeAuthorize) => return (true, acc),
          None => rules.default_allow(),
        };
        let result = if allow {
          SubscribeAclResult::new_success(sub.opts.qos(), None)
        } else {
          SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
        };
        (false, Some(HookResult::SubscribeAclResult(result)))
      }
      _ => (true, acc),
    }
  }
}

/// `setAcl(rules)`: validates and installs the rules; the future ends once
/// the handler that applies them is registered.
pub fn set_acl(
  handle: &BrokerHandle,
  value: serde_json::Value,
) -> napi::Result<impl std::future::Future<Output = ()>> {
  #[derive(serde::Deserialize)]
  struct Arg {
    acl: Vec<crate::acl::AclRule>,
  }
  let arg: Arg = config::from_json(serde_json::json!({ "acl": value }), "")?;
  let policy = handle.policy.clone();
  let rules = Rules::parse(&arg.acl, policy.acl_default(), "acl")?;
  policy.set_rules(rules);
  let scx = handle.scx.clone();
  let registered = handle
    .runtime
    .spawn(async move { policy.register_acl(&scx).await });
  Ok(async move {
    let _ = registered.await;
  })
}
