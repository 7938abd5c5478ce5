//! MQTT Broker Core Management System
//!
//! Central coordination point for all broker subsystems with:
//! - Thread-safe access to all components
//! - Feature-gated module integration
//! - Uniform access patterns across subsystems
//!
//! ## Architectural Responsibilities
//! 1. ​**​Component Lifecycle​**​:
//!    - Initializes default implementations of all subsystems
//!    - Manages RwLock-protected access to mutable state
//!    - Coordinates feature-gated components
//!
//! 2. ​**​Access Control​**​:
//!    - Provides both read and write accessors for all components
//!    - Enforces proper synchronization through async locks
//!    - Maintains consistent interface across features
//!
//! 3. ​**​Subsystem Integration​**​:
//!    - Shared state management
//!    - Message routing infrastructure
//!    - Session persistence
//!    - QoS message handling
//!    - Plugin hook system
//!
//! ## Implementation Features
//! - Zero-cost abstraction for immutable access
//! - Tokio-based async synchronization
//! - Feature flags for optional components:
//!   - `retain`: Message retention storage
//!   - `msgstore`: Persistent message storage
//!   - `delayed`: Scheduled message delivery
//!   - `shared-subscription`: Group subscription support
//!   - `auto-subscription`: Automatic topic subscriptions
//!
//! Usage Pattern:
//! 1. Get read/write guard for needed subsystem
//! 2. Perform operations within lock scope
//! 3. Allow automatic lock release when done
//!
//! Note: All write operations should be kept minimal to avoid
//! blocking other tasks waiting for the same resource.

// fork patch: parking_lot's lock, not tokio's. Every publish reads
// four or five of these (retain, message store, shared, router, ...), and each
// release of tokio's lock took its semaphore's mutex, one per broker, shared
// by all worker threads. They are written only while the broker starts and
// stops; `send_guard` lets a read guard live across an await as before.
use std::sync::Arc;

pub use crate::component::{Component, ComponentMut, Current};

#[cfg(feature = "delayed")]
use crate::delayed::{DefaultDelayedSender, DelayedSender};
use crate::fitter::{DefaultFitterManager, FitterManager};
use crate::hook::{DefaultHookManager, HookManager};
#[cfg(feature = "msgstore")]
use crate::message::{DefaultMessageManager, MessageManager};
#[cfg(feature = "retain")]
use crate::retain::{DefaultRetainStorage, RetainStorage};
use crate::router::{DefaultRouter, Router};

use crate::session::{DefaultSessionManager, SessionManager};
use crate::shared::{DefaultShared, ForwardGate, Shared};
#[cfg(feature = "auto-subscription")]
use crate::subscribe::{AutoSubscription, DefaultAutoSubscription};
#[cfg(feature = "shared-subscription")]
use crate::subscribe::{DefaultSharedSubscription, SharedSubscription};

/// Central management component for MQTT broker subsystems
pub struct Manager {
    /// Thread-safe access to shared broker state
    pub shared: Component<dyn Shared>,
    /// Routing component for message distribution
    pub router: Component<dyn Router>,
    #[cfg(feature = "retain")]
    /// Retention storage for QoS 1/2 messages (feature-gated)
    pub retain: Component<dyn RetainStorage>,
    /// Message fitting and processing manager
    pub fitter_mgr: Component<dyn FitterManager>,
    /// Hook management system for event handling
    pub hook_mgr: Box<dyn HookManager>,
    #[cfg(feature = "shared-subscription")]
    /// Shared subscription handler (feature-gated)
    pub shared_subscription: Component<dyn SharedSubscription>,
    /// Session state management component
    pub session_mgr: Component<dyn SessionManager>,
    #[cfg(feature = "msgstore")]
    /// Message storage system (feature-gated)
    pub message_mgr: Component<dyn MessageManager>,
    #[cfg(feature = "delayed")]
    /// Delayed message sender (feature-gated)
    pub delayed_sender: Component<dyn DelayedSender>,
    #[cfg(feature = "auto-subscription")]
    /// Automatic subscription handler (feature-gated)
    pub auto_subscription: Component<dyn AutoSubscription>,
    /// fork patch: flow control at routing (see `shared::ForwardGate`).
    pub forward_gate: std::sync::OnceLock<std::sync::Arc<dyn ForwardGate>>,
    /// fork patch: counts the messages clients send and are sent (see
    /// `shared::TrafficCounter`).
    pub traffic_counter: std::sync::OnceLock<std::sync::Arc<dyn crate::shared::TrafficCounter>>,
    /// fork patch: a publish ACL answered on the data path (see
    /// `shared::PublishAcl`).
    pub publish_acl: std::sync::OnceLock<std::sync::Arc<dyn crate::shared::PublishAcl>>,
    /// fork patch: connection limits (see `AdmissionGate`).
    pub admission_gate: std::sync::OnceLock<std::sync::Arc<dyn AdmissionGate>>,
    /// fork patch: limits on the retained messages (see `RetainQuota`).
    pub retain_quota: std::sync::OnceLock<std::sync::Arc<dyn RetainQuota>>,
    /// fork patch: publishers' acknowledgements held until stored (see
    /// `durable`).
    pub durable_ack: std::sync::OnceLock<std::sync::Arc<dyn crate::durable::DurableAck>>,
}

/// fork patch: whether a retained message may be stored (limits on all
/// retained messages together). Asked for each one, a deletion (empty
/// payload) included, before it is stored or routed; admitted, it counts as
/// stored. A refused message is dropped: not stored, not routed, reported
/// through `message_dropped`, and a client's QoS 1/2 PUBLISH is answered
/// 0x97 Quota exceeded.
pub trait RetainQuota: Send + Sync {
    fn admit(&self, topic: &str, payload_len: usize, expiry: Option<std::time::Duration>) -> bool;

    /// fork patch: the retained messages it holds admitted, not expired:
    /// (messages, payload bytes), if it keeps that account.
    fn totals(&self) -> Option<(usize, usize)> {
        None
    }
}

/// fork patch: what a connection holds while it lives once admitted; dropped
/// when the connection ends, however it ends.
pub type AdmissionPermit = Box<dyn std::any::Any + Send>;

/// fork patch: decides, once a connection's CONNECT is read and before its
/// session is touched, whether it is admitted (connection limits). A refusal
/// (its reason, for the log) is a CONNACK 0x97 Quota exceeded (5.0) or 3
/// Server unavailable (3.1.1).
pub trait AdmissionGate: Send + Sync {
    fn admit(
        &self,
        lid: crate::types::ListenerId,
        remote: std::net::SocketAddr,
    ) -> std::result::Result<AdmissionPermit, String>;
}

impl Manager {
    /// Creates new Manager with default implementations
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            shared: Component::new(Box::new(DefaultShared::new(None))),
            router: Component::new(Box::new(DefaultRouter::new(None))),
            #[cfg(feature = "retain")]
            retain: Component::new(Box::new(DefaultRetainStorage::new())),
            fitter_mgr: Component::new(Box::new(DefaultFitterManager)),
            hook_mgr: Box::new(DefaultHookManager::new()),
            #[cfg(feature = "shared-subscription")]
            shared_subscription: Component::new(Box::new(DefaultSharedSubscription)),
            session_mgr: Component::new(Box::new(DefaultSessionManager)),
            #[cfg(feature = "msgstore")]
            message_mgr: Component::new(Box::new(DefaultMessageManager::new())),
            #[cfg(feature = "delayed")]
            delayed_sender: Component::new(Box::new(DefaultDelayedSender::new())),
            #[cfg(feature = "auto-subscription")]
            auto_subscription: Component::new(Box::new(DefaultAutoSubscription)),
            forward_gate: std::sync::OnceLock::new(),
            traffic_counter: std::sync::OnceLock::new(),
            publish_acl: std::sync::OnceLock::new(),
            admission_gate: std::sync::OnceLock::new(),
            retain_quota: std::sync::OnceLock::new(),
            durable_ack: std::sync::OnceLock::new(),
        }
    }

    /// Gets read access to shared state
    #[inline]
    pub async fn shared(&self) -> Arc<Box<dyn Shared>> {
        self.shared.get()
    }

    /// fork patch: the shared state for the message path: no lock or
    /// count per message (see `Component::current`).
    #[inline]
    pub fn shared_ref(&self) -> Current<dyn Shared> {
        self.shared.current()
    }

    /// Gets write access to shared state
    #[inline]
    pub async fn shared_mut(&self) -> ComponentMut<'_, dyn Shared> {
        self.shared.write(|| Box::new(DefaultShared::new(None)))
    }

    /// Gets read access to router component
    #[inline]
    pub async fn router(&self) -> Arc<Box<dyn Router>> {
        self.router.get()
    }

    /// fork patch: the router for the message path (see `shared_ref`).
    #[inline]
    pub fn router_ref(&self) -> Current<dyn Router> {
        self.router.current()
    }

    /// Gets write access to router component
    #[inline]
    pub async fn router_mut(&self) -> ComponentMut<'_, dyn Router> {
        self.router.write(|| Box::new(DefaultRouter::new(None)))
    }

    /// Gets read access to retain storage (requires "retain" feature)
    #[inline]
    #[cfg(feature = "retain")]
    pub async fn retain(&self) -> Arc<Box<dyn RetainStorage>> {
        self.retain.get()
    }

    /// Gets write access to retain storage (requires "retain" feature)
    #[inline]
    #[cfg(feature = "retain")]
    pub async fn retain_mut(&self) -> ComponentMut<'_, dyn RetainStorage> {
        self.retain.write(|| Box::new(DefaultRetainStorage::new()))
    }

    /// Gets read access to fitter manager
    #[inline]
    pub async fn fitter_mgr(&self) -> Arc<Box<dyn FitterManager>> {
        self.fitter_mgr.get()
    }

    /// Gets write access to fitter manager
    #[inline]
    pub async fn fitter_mgr_mut(&self) -> ComponentMut<'_, dyn FitterManager> {
        self.fitter_mgr.write(|| Box::new(DefaultFitterManager))
    }

    /// Gets reference to hook manager (non-async access)
    #[inline]
    pub fn hook_mgr(&self) -> &dyn HookManager {
        self.hook_mgr.as_ref()
    }

    /// Gets read access to shared subscriptions (requires "shared-subscription" feature)
    #[inline]
    #[cfg(feature = "shared-subscription")]
    pub async fn shared_subscription(&self) -> Arc<Box<dyn SharedSubscription>> {
        self.shared_subscription.get()
    }

    /// Gets write access to shared subscriptions (requires "shared-subscription" feature)
    #[inline]
    #[cfg(feature = "shared-subscription")]
    pub async fn shared_subscription_mut(&self) -> ComponentMut<'_, dyn SharedSubscription> {
        self.shared_subscription.write(|| Box::new(DefaultSharedSubscription))
    }

    /// Gets read access to session manager
    #[inline]
    pub async fn session_mgr(&self) -> Arc<Box<dyn SessionManager>> {
        self.session_mgr.get()
    }

    /// Gets write access to session manager
    #[inline]
    pub async fn session_mgr_mut(&self) -> ComponentMut<'_, dyn SessionManager> {
        self.session_mgr.write(|| Box::new(DefaultSessionManager))
    }

    /// Gets read access to message manager (requires "msgstore" feature)
    #[inline]
    #[cfg(feature = "msgstore")]
    pub async fn message_mgr(&self) -> Arc<Box<dyn MessageManager>> {
        self.message_mgr.get()
    }

    /// Gets write access to message manager (requires "msgstore" feature)
    #[inline]
    #[cfg(feature = "msgstore")]
    pub async fn message_mgr_mut(&self) -> ComponentMut<'_, dyn MessageManager> {
        self.message_mgr.write(|| Box::new(DefaultMessageManager::new()))
    }

    /// Gets read access to delayed sender (requires "delayed" feature)
    #[inline]
    #[cfg(feature = "delayed")]
    pub async fn delayed_sender(&self) -> Arc<Box<dyn DelayedSender>> {
        self.delayed_sender.get()
    }

    /// Gets write access to delayed sender (requires "delayed" feature)
    #[inline]
    #[cfg(feature = "delayed")]
    pub async fn delayed_sender_mut(&self) -> ComponentMut<'_, dyn DelayedSender> {
        self.delayed_sender.write(|| Box::new(DefaultDelayedSender::new()))
    }

    /// Gets read access to auto-subscription (requires "auto-subscription" feature)
    #[inline]
    #[cfg(feature = "auto-subscription")]
    pub async fn auto_subscription(&self) -> Arc<Box<dyn AutoSubscription>> {
        self.auto_subscription.get()
    }

    /// Gets write access to auto-subscription (requires "auto-subscription" feature)
    #[inline]
    #[cfg(feature = "auto-subscription")]
    pub async fn auto_subscription_mut(&self) -> ComponentMut<'_, dyn AutoSubscription> {
        self.auto_subscription.write(|| Box::new(DefaultAutoSubscription))
    }
}
