//! Every hook `setHooks()` and `addHooks()` accept, declared once.
//!
//! One row per hook: its kind, its name in the callbacks object, the rmqtt
//! hook type it is registered for, whether it decides (and what it answers)
//! or only notifies, the arguments it is called with (a `HookArgs` type of
//! `hook_js.rs`, which makes both the values and the JavaScript that turns
//! them into objects) and its TypeScript signature. From the rows come
//! `Kind` (and `Kind::ALL`, in row order), the queue's `Event`, the
//! `HookCallbacks` type of `index.d.ts`, registration (`Kind::rmqtt_type`)
//! and dispatch (`Event::dispatch`). Adding a hook is a row here, its
//! `HookArgs` if no existing one fits, and the `Parameter` arm in
//! `hook_bridge.rs` that makes its event.

use napi_derive::napi;
use rmqtt::hook::Type;

use crate::enhanced_auth::{EnhancedAuth, EnhancedAuthResult};
use crate::hook_data::{AuthenticateResult, PublishAuthorizeResult, SubscribeAuthorizeResult};
use crate::hook_js::{
  Authenticate, DroppedMessage, HookArgs, Message, Session, SessionPublishRequest, SessionReason,
  SessionSubscription, SessionUnsubscription,
};
use crate::hook_queue::{Outcome, Reply};

/// Runs one event: called by `Event::dispatch` with the event's kind,
/// arguments and outcome (`()` for a notification, the reply for a decision).
pub trait Dispatch {
  fn run<A: HookArgs, O: Outcome>(&mut self, kind: Kind, args: A, outcome: O);
}

macro_rules! hook_table {
  ($(
    $(#[doc = $doc:tt])*
    $kind:ident: $name:tt, $rmqtt:ident, $mode:ident $(($answer:ty))?, $args:ident, $ts:tt;
  )*) => {
    /// Every hook `setHooks()` and `addHooks()` accept, in row order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kind {
      $($kind,)*
    }

    impl Kind {
      pub const ALL: [Kind; 0 $(+ hook_table!(@one $kind))*] = [$(Kind::$kind,)*];

      /// The name in the callbacks object.
      pub fn name(self) -> &'static str {
        match self {
          $(Kind::$kind => $name,)*
        }
      }

      /// Decision hooks are awaited; the others are notifications.
      pub fn decides(self) -> bool {
        match self {
          $(Kind::$kind => hook_table!(@decides $mode),)*
        }
      }

      /// The rmqtt hook type this hook is called from.
      pub fn rmqtt_type(self) -> Type {
        match self {
          $(Kind::$kind => Type::$rmqtt,)*
        }
      }

      /// The JavaScript function that builds this hook's arguments and calls it.
      pub fn builder_js(self) -> &'static str {
        match self {
          $(Kind::$kind => <$args as HookArgs>::JS,)*
        }
      }
    }

    /// One hook call waiting for JavaScript: its arguments, and for a
    /// decision where the answer goes.
    pub enum Event {
      $($kind($args, hook_table!(@outcome $mode $($answer)?)),)*
    }

    impl Event {
      pub fn kind(&self) -> Kind {
        match self {
          $(Event::$kind(..) => Kind::$kind,)*
        }
      }

      /// Bytes of its payload that go into a scope's slab.
      pub fn slab_bytes(&self) -> usize {
        match self {
          $(Event::$kind(args, _) => args.slab_bytes(),)*
        }
      }

      pub fn dispatch(self, to: &mut impl Dispatch) {
        match self {
          $(Event::$kind(args, outcome) => to.run(Kind::$kind, args, outcome),)*
        }
      }
    }

    // In a module of its own: napi-rs names locals after the fields, which
    // are the kinds' (CamelCase) names here.
    #[allow(non_snake_case)]
    mod callbacks {
      use super::*;

      /// The hooks `setHooks()` and `addHooks()` accept, all optional. Decision
      /// hooks return their answer or a Promise of it; a throw, a rejection, a
      /// malformed answer or a timeout denies. Notification hooks are
      /// fire-and-forget: their return value is ignored and they never delay
      /// the broker.
      ///
      /// (Type declaration only: the object is read field by field in `HookSet::from_js`.)
      #[napi(object, object_to_js = false)]
      #[allow(dead_code)]
      pub struct HookCallbacks {
        $(
          $(#[doc = $doc])*
          #[napi(js_name = $name, ts_type = $ts)]
          pub $kind: Option<()>,
        )*
      }
    }
  };
  (@one $kind:ident) => { 1 };
  (@decides decision) => { true };
  (@decides notification) => { false };
  (@outcome decision $answer:ty) => { Reply<$answer> };
  (@outcome notification) => { () };
}

// Docs are `#[doc = "..."]`, not `///`: inside a macro `///` becomes a raw
// string, which napi-rs copies into index.d.ts as `r"...`.
hook_table! {
  #[doc = "Decides every CONNECT that carries a username, and every CONNECT on a"]
  #[doc = "listener with `allowAnonymous: false`. Clients without a username on an"]
  #[doc = "`allowAnonymous: true` listener are let in without asking."]
  ClientAuthenticate: "onClientAuthenticate", ClientAuthenticate,
    decision(AuthenticateResult), Authenticate,
    "(request: AuthenticateRequest) => AuthenticateResult | Promise<AuthenticateResult>";
  #[doc = "One step of MQTT 5.0 enhanced authentication: a CONNECT with an"]
  #[doc = "Authentication Method, the client's AUTH answers, and re-authentication."]
  #[doc = "Without it such a CONNECT is refused (0x8C). It replaces `onClientAuthenticate`"]
  #[doc = "for the clients that choose a method."]
  ClientEnhancedAuth: "onClientEnhancedAuth", ClientEnhancedAuth,
    decision(EnhancedAuthResult), EnhancedAuth,
    "(request: EnhancedAuthRequest) => EnhancedAuthResult | Promise<EnhancedAuthResult>";
  #[doc = "Decides each topic filter of a SUBSCRIBE; a denial fails only that filter."]
  ClientSubscribeAuthorize: "onClientSubscribeAuthorize", ClientSubscribeCheckAcl,
    decision(SubscribeAuthorizeResult), SessionSubscription,
    "(session: SessionInfo, subscription: SubscriptionInfo) => SubscribeAuthorizeResult | Promise<SubscribeAuthorizeResult>";
  #[doc = "Decides each client PUBLISH; a denied message is not routed."]
  ClientPublishAuthorize: "onClientPublishAuthorize", MessagePublishCheckAcl,
    decision(PublishAuthorizeResult), SessionPublishRequest,
    "(session: SessionInfo, message: PublishRequest) => PublishAuthorizeResult | Promise<PublishAuthorizeResult>";
  #[doc = "A message entered the broker (from a client, `server.publish()`, or a will)."]
  MessagePublish: "onMessagePublish", MessagePublish, notification, Message,
    "(session: SessionInfo | null, from: MessageFrom, message: MessageInfo) => void";
  #[doc = "A subscription was granted."]
  ClientSubscribe: "onClientSubscribe", SessionSubscribed, notification, SessionSubscription,
    "(session: SessionInfo, subscription: SubscriptionInfo) => void";
  #[doc = "A subscription was removed by the client."]
  ClientUnsubscribe: "onClientUnsubscribe", SessionUnsubscribed, notification,
    SessionUnsubscription, "(session: SessionInfo, unsubscription: UnsubscriptionInfo) => void";
  #[doc = "A client finished connecting."]
  ClientConnected: "onClientConnected", ClientConnected, notification, Session,
    "(session: SessionInfo) => void";
  #[doc = "A client's connection ended."]
  ClientDisconnected: "onClientDisconnected", ClientDisconnected, notification, SessionReason,
    "(session: SessionInfo, info: ReasonInfo) => void";
  #[doc = "A message was sent to a subscriber."]
  MessageDelivered: "onMessageDelivered", MessageDelivered, notification, Message,
    "(session: SessionInfo, from: MessageFrom, message: MessageInfo) => void";
  #[doc = "A subscriber acknowledged a QoS 1/2 message."]
  MessageAcked: "onMessageAcked", MessageAcked, notification, Message,
    "(session: SessionInfo, from: MessageFrom, message: MessageInfo) => void";
  #[doc = "A message was dropped (denied, expired, queue full, ...); `to` is the"]
  #[doc = "subscriber it was meant for, when there was one."]
  MessageDropped: "onMessageDropped", MessageDropped, notification, DroppedMessage,
    "(to: SessionInfo | null, from: MessageFrom, message: MessageInfo, info: ReasonInfo) => void";
  #[doc = "A session was created."]
  SessionCreated: "onSessionCreated", SessionCreated, notification, Session,
    "(session: SessionInfo) => void";
  #[doc = "A session ended."]
  SessionTerminated: "onSessionTerminated", SessionTerminated, notification, SessionReason,
    "(session: SessionInfo, info: ReasonInfo) => void";
}
