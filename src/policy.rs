//! Native policy of one running broker: password and token (JWT)
//! authentication and ACL rules, as an rmqtt hook handler that runs before
//! the JavaScript hooks.
//!
//! Order, for each decision: a superuser skips the ACL (rmqtt), except for
//! `$` topics; then the native answer (a known user's password check, a
//! token's verification; the connection's token rules, then the first
//! matching `acl` rule); only when that does not decide is the JavaScript
//! hook asked (`onClientAuthenticate`, `onClientPublishAuthorize`,
//! `onClientSubscribeAuthorize`); without one, the default decides (an
//! unknown username is refused, `aclDefault` for the ACL). A publish to a
//! `$` topic that no rule allows is refused without asking JavaScript.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Register, ReturnType, Type};
use rmqtt::session::Session;
use rmqtt::types::{
  AuthResult, ConnectInfo, Id, Message, Publish, PublishAclResult, Reason, SubscribeAclResult,
};
use tokio::sync::Mutex as AsyncMutex;

use crate::acl::{Action, Rules, Who};
use crate::broker::BrokerHandle;
use crate::config;
use crate::fork;
use crate::hook_bridge::Attachment;
use crate::hook_table::Kind;
use crate::jwt::{Claims, Jwt};
use crate::passwd::Users;

/// Above the JavaScript bridge (0) so the native answer comes first.
const PRIORITY: u32 = 100;

/// Why a `$` topic publish is refused (MQTT 4.7.2).
pub const RESERVED: &str = "topics starting with $ are reserved for the server";

pub struct Policy {
  acl: RwLock<Option<Arc<Rules>>>,
  /// `aclDefault`, for the rules `setAcl()` gives.
  acl_default: bool,
  /// Replaced by `setUsers()`.
  users: RwLock<Option<Arc<Users>>>,
  jwt: Option<Arc<Jwt>>,
  /// What tokens said, per connection, while it lasts.
  conns: RwLock<HashMap<Id, Conn>>,
  hooks: Arc<Attachment>,
  /// The registration of the ACL hook types, made once rules exist.
  acl_register: AsyncMutex<Option<Box<dyn Register>>>,
  /// Whether authentication is registered (once there are users or `jwt`).
  auth_registered: AsyncMutex<bool>,
}

impl Policy {
  pub fn new(
    acl: Option<Rules>,
    acl_default: bool,
    users: Option<Users>,
    jwt: Option<Jwt>,
    hooks: Arc<Attachment>,
  ) -> Arc<Policy> {
    Arc::new(Policy {
      acl: RwLock::new(acl.map(Arc::new)),
      acl_default,
      users: RwLock::new(users.map(Arc::new)),
      jwt: jwt.map(Arc::new),
      conns: RwLock::new(HashMap::new()),
      hooks,
      acl_register: AsyncMutex::new(None),
      auth_registered: AsyncMutex::new(false),
    })
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
  /// are users or a token config, the ACL types if there are rules
  /// (absent, they cost nothing).
  pub async fn register(self: &Arc<Self>, scx: &ServerContext) {
    // Per-connection token state (rules, expiry) lives until disconnect.
    if self
      .jwt
      .as_ref()
      .is_some_and(|j| j.has_acl_claim() || j.disconnect_on_expiry)
    {
      self
        .add(scx, &[Type::ClientConnected, Type::ClientDisconnected])
        .await;
    }
    self.register_auth(scx).await;
    self.register_acl(scx).await;
  }

  /// Registers this policy's handler for `types`, for the broker's life
  /// (dropping a Register does not remove it).
  async fn add(self: &Arc<Self>, scx: &ServerContext, types: &[Type]) {
    let r = scx.extends.hook_mgr().register();
    for typ in types {
      r.add_priority(*typ, PRIORITY, Box::new(Native(self.clone())))
        .await;
    }
    r.start().await;
  }

  pub async fn register_auth(self: &Arc<Self>, scx: &ServerContext) {
    let mut done = self.auth_registered.lock().await;
    if *done || (self.users().is_none() && self.jwt.is_none()) {
      return;
    }
    self.add(scx, &[Type::ClientAuthenticate]).await;
    *done = true;
  }

  fn users(&self) -> Option<Arc<Users>> {
    self.users.read().ok().and_then(|u| u.clone())
  }

  /// Replaces the users (`setUsers()`); the next CONNECT uses them, once
  /// authentication is registered (`register_auth`).
  pub fn set_users(&self, users: Users) {
    if let Ok(mut slot) = self.users.write() {
      *slot = Some(Arc::new(users));
    }
  }

  pub async fn register_acl(self: &Arc<Self>, scx: &ServerContext) {
    let mut slot = self.acl_register.lock().await;
    let claims = self.jwt.as_ref().is_some_and(|j| j.has_acl_claim());
    if slot.is_some() || (self.rules().is_none() && !claims) {
      return;
    }
    let r = scx.extends.hook_mgr().register();
    r.add_priority(
      Type::ClientSubscribeCheckAcl,
      PRIORITY,
      Box::new(Native(self.clone())),
    )
    .await;
    r.start().await;
    // Publishes are decided on the data path, without a hook's futures
    // and lock; what the rules leave open goes on to the hooks.
    fork::set_publish_acl(scx, Arc::new(Native(self.clone())));
    self.hooks.set_native_acl();
    *slot = Some(r);
  }
}

struct Native(Arc<Policy>);

/// A token's grants for one connection.
struct Conn {
  acl: Option<Arc<Rules>>,
  /// When to disconnect (seconds since the epoch), with `disconnectOnExpiry`.
  exp: Option<u64>,
}

fn who(id: &Id) -> Who<'_> {
  Who {
    username: id.username.as_deref(),
    client_id: &id.client_id,
    ip: id.remote_addr.map(|a| a.ip()),
  }
}

impl Policy {
  /// The rules of this connection's token (`jwt.aclClaim`), if any.
  fn own_rules(&self, id: &Id) -> Option<Arc<Rules>> {
    // Without `aclClaim` no connection has rules: skip the lock.
    if !self.jwt.as_ref().is_some_and(|j| j.has_acl_claim()) {
      return None;
    }
    let conns = self.conns.read().ok()?;
    conns.get(id).and_then(|c| c.acl.clone())
  }

  /// The answer for `request`: this connection's rules, then `acl`; `None`
  /// when neither decides and the JavaScript hook `kind` is to be asked.
  fn decide(&self, id: &Id, action: Action, request: &str, kind: Kind) -> Option<bool> {
    let own = self.own_rules(id);
    // The read guard, not a clone of the Arc: one shared counter fewer to
    // bounce between threads per publish.
    let global = self.acl.read().ok();
    let global = global.as_ref().and_then(|g| g.as_deref());
    let who = who(id);
    let ruled = own
      .as_deref()
      .and_then(|r| r.decide(action, &who, request))
      .or_else(|| global.and_then(|r| r.decide(action, &who, request)));
    match ruled {
      Some(allow) => Some(allow),
      // Only a rule opens a `$` topic to a client (MQTT 4.7.2).
      None if action == Action::Publish && request.starts_with('$') => Some(false),
      None if self.hooks.has_decision(kind) => None,
      // A client no rule set applies to is not under ACL.
      None if own.is_none() && global.is_none() => Some(true),
      None => Some(self.acl_default),
    }
  }

  async fn authenticate(&self, ci: &ConnectInfo) -> Option<AuthResult> {
    let name = ci.username().map(|u| u.to_string());
    let password = ci.password().cloned().unwrap_or_default();
    if let (Some(users), Some(n)) = (self.users(), name.clone()) {
      if users.contains(&n) {
        // PBKDF2 is CPU work: off the broker's async threads.
        let verdict = tokio::task::spawn_blocking(move || users.verify(&n, &password))
          .await
          .ok()
          .flatten();
        return Some(match verdict {
          Some(superuser) => AuthResult::Allow(superuser, None),
          None => {
            tracing::info!("{}: wrong password, refused", ci.client_id());
            AuthResult::BadUsernameOrPassword
          }
        });
      }
    }
    if let Some(jwt) = &self.jwt {
      if Jwt::looks_like_token(&password) {
        return Some(match jwt.verify(&password, name.as_deref()) {
          Ok(claims) => {
            self.remember(ci.id().clone(), claims);
            AuthResult::Allow(false, None)
          }
          Err(why) => {
            tracing::info!("{}: token refused: {why}", ci.client_id());
            AuthResult::BadUsernameOrPassword
          }
        });
      }
    }
    if self.hooks.has_decision(Kind::ClientAuthenticate) {
      return None;
    }
    Some(if name.is_some() {
      tracing::info!("{}: unknown username, refused", ci.client_id());
      AuthResult::BadUsernameOrPassword
    } else {
      AuthResult::NotAuthorized
    })
  }

  /// Keeps what a token says for its connection's lifetime.
  fn remember(&self, id: Id, claims: Claims) {
    let disconnect = self.jwt.as_ref().is_some_and(|j| j.disconnect_on_expiry);
    let exp = claims.exp.filter(|_| disconnect);
    if claims.acl.is_none() && exp.is_none() {
      return;
    }
    if let Ok(mut conns) = self.conns.write() {
      let acl = claims.acl.map(Arc::new);
      conns.insert(id, Conn { acl, exp });
    }
  }

  /// Closes the connection when its token expires (`jwt.disconnectOnExpiry`).
  fn watch_expiry(&self, s: &Session) {
    let exp = self
      .conns
      .read()
      .ok()
      .and_then(|c| c.get(&s.id).and_then(|c| c.exp));
    let Some(exp) = exp else { return };
    let (id, scx) = (s.id.clone(), s.scx.clone());
    tokio::spawn(async move {
      let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
      tokio::time::sleep(Duration::from_secs(exp.saturating_sub(now))).await;
      let entry = scx.extends.shared().await.entry(id.clone());
      // Only this connection: a client that reconnected has a new token.
      if entry.session().is_some_and(|s| s.id == id) {
        if let Some(tx) = entry.tx() {
          tracing::info!("{}: token expired, disconnecting", id.client_id);
          let _ = tx.unbounded_send(Message::Closed(Reason::from_static("token expired")));
        }
      }
    });
  }
}

#[async_trait::async_trait]
impl Handler for Native {
  async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
    let p = &self.0;
    match param {
      Parameter::ClientAuthenticate(ci) => match p.authenticate(ci).await {
        Some(result) => (false, Some(HookResult::AuthResult(result))),
        None => (true, acc),
      },
      Parameter::ClientConnected(s) => {
        p.watch_expiry(s);
        (true, acc)
      }
      Parameter::ClientDisconnected(s, _) => {
        if let Ok(mut conns) = p.conns.write() {
          conns.remove(&s.id);
        }
        (true, acc)
      }
      Parameter::ClientSubscribeCheckAcl(s, sub) => {
        let filter: &str = &sub.topic_filter;
        let result = match p.decide(
          &s.id,
          Action::Subscribe,
          filter,
          Kind::ClientSubscribeAuthorize,
        ) {
          None => return (true, acc),
          Some(true) => SubscribeAclResult::new_success(sub.opts.qos(), None),
          Some(false) => SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized),
        };
        (false, Some(HookResult::SubscribeAclResult(result)))
      }
      _ => (true, acc),
    }
  }
}

impl fork::PublishAcl for Native {
  fn check(&self, id: &Id, publish: &Publish) -> Option<PublishAclResult> {
    let p = &self.0;
    let topic: &str = &publish.topic;
    Some(
      match p.decide(id, Action::Publish, topic, Kind::ClientPublishAuthorize)? {
        true => {
          p.hooks.published(id, publish);
          PublishAclResult::allow()
        }
        false if topic.starts_with('$') => PublishAclResult::rejected(false, Some(RESERVED.into())),
        false => PublishAclResult::rejected(false, None),
      },
    )
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
  let rules = Rules::parse(&arg.acl, "acl")?;
  policy.set_rules(rules);
  let scx = handle.scx.clone();
  let registered = handle
    .runtime
    .spawn(async move { policy.register_acl(&scx).await });
  Ok(async move {
    let _ = registered.await;
  })
}

/// `setUsers({ users, passwordFile })`: validates and loads (the file is
/// read here, off the JS thread), then replaces the native users.
pub async fn set_users(handle: BrokerHandle, value: serde_json::Value) -> napi::Result<()> {
  #[derive(serde::Deserialize)]
  #[serde(rename_all = "camelCase", deny_unknown_fields)]
  struct Arg {
    users: Option<Vec<crate::passwd::UserConfig>>,
    password_file: Option<String>,
  }
  if !value.is_object() {
    return Err(crate::error::invalid_arg(
      "setUsers: expected an object { users?, passwordFile? }",
    ));
  }
  let arg: Arg = config::from_json(value, "")?;
  let users = Users::load(arg.users.as_deref(), arg.password_file.as_deref())?
    .ok_or_else(|| crate::error::invalid_arg("setUsers: give users or passwordFile"))?;
  let policy = handle.policy.clone();
  policy.set_users(users);
  let scx = handle.scx.clone();
  let _ = handle
    .runtime
    .spawn(async move { policy.register_auth(&scx).await })
    .await;
  Ok(())
}
