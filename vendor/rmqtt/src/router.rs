//! MQTT Topic Routing & Subscription Management Core
//!
//! Provides distributed topic-based routing implementation with hierarchical subscription management
//! for MQTT brokers. The system combines trie-based pattern matching with concurrent data structures
//! to achieve O(log n) topic operations while maintaining thread safety across cluster nodes.
//!
//! ## Core Features
//! 1. **Topic Pattern Management**:
//!    - Trie-based storage with wildcard support (+/#) using `TopicTree`
//!    - Atomic subscription counters with `Counter` struct
//!    - Distributed subscription synchronization via `AllRelationsMap`
//!
//! 2. **Subscription Lifecycle**:
//!    - Add/remove operations protected by `RwLock`
//!    - Cross-node online status checking
//!    - Shared subscription support through conditional compilation
//!
//! 3. **Data Structures**:
//!    - `Arc<DashMap>` for thread-safe subscription relations storage
//!    - Hierarchical topic matching with `VecToTopic` conversions
//!    - JSON serialization for admin interfaces
//!
//! ## Design Characteristics
//! - **Concurrency Model**:
//!   - Lock hierarchy: Topic tree uses `RwLock` while relations use lock-free `DashMap`
//!   - Atomic counters for subscription statistics
//!   - Async-compatible through `#[async_trait]`
//!
//! - **Cluster Coordination**:
//!   - Node-specific subscription merging with `merge_topics/merge_routes`
//!   - Online status integration with server context
//!   - Paginated query support for large datasets
//!
//! Typical usage includes:
//! - Routing QoS 1/2 messages with session persistence
//! - Handling shared subscriptions with round-robin selection
//! - Performing cluster-wide subscription audits
//!
//! The implementation leverages Rust's type system to ensure:
//! - Zero-cost abstraction for topic matching
//! - Memory safety through ownership model
//! - Linear scalability with subscription count

use std::convert::From as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use itertools::Itertools;
use serde_json::json;
use tokio::sync::RwLock;

use crate::context::ServerContext;
use crate::trie::{TopicTree, VecToTopic};
use crate::types::*;
use crate::utils::Counter;
use crate::Result;

#[async_trait]
/// Defines the message routing contract for topic-based subscription management.
///
/// Provides operations for adding/removing subscriptions, matching topics
/// against subscriptions, querying subscription state, and aggregating
/// routing metadata across cluster nodes. Implementations must be `Send + Sync`.
pub trait Router: Sync + Send {
    /// Add a subscription by client ID with the given topic filter.
    async fn add(&self, topic_filter: &str, id: Id, opts: SubscriptionOptions) -> Result<()>;

    /// Remove a subscription by client ID with the given topic filter.
    async fn remove(&self, topic_filter: &str, id: Id) -> Result<bool>;

    /// Match subscriptions for a given client ID and topic name.
    ///
    /// Returns a map of matching subscription relations, grouped by node ID.
    async fn matches(&self, id: Id, topic: &TopicName) -> Result<SubRelationsMap>;

    /// fork patch: `topic`'s recipients on one node, shared, when the router
    /// has them cached and they depend on nothing but the topic (no No Local,
    /// no shared group); `None` means ask `matches`.
    #[inline]
    fn cached_matches(&self, _topic: &TopicName) -> Option<(NodeId, Arc<[SubRelation]>)> {
        None
    }

    /// Check whether a client is currently connected to the given node.
    async fn is_online(&self, node_id: NodeId, client_id: &str) -> bool;

    /// Get a limited number of unique routes (node ID + topic filter pairs).
    async fn gets(&self, limit: usize) -> Vec<Route>;

    /// Get all routes matching the given topic.
    async fn get(&self, topic: &str) -> Result<Vec<Route>>;

    /// Query subscription relations matching the given search parameters.
    async fn query_subscriptions(&self, q: &SubsSearchParams) -> Vec<SubsSearchResult>;

    /// Return the number of unique topic filters stored in the topic tree.
    async fn topics_tree(&self) -> usize;

    /// Return the atomic counter tracking the number of subscribed topics.
    fn topics(&self) -> Counter;

    /// Return the atomic counter tracking the number of subscription relations.
    fn routes(&self) -> Counter;

    /// Merge topic counters from another node for cluster-wide aggregation.
    fn merge_topics(&self, topics_map: &HashMap<NodeId, Counter>) -> Counter;

    /// Merge route counters from another node for cluster-wide aggregation.
    fn merge_routes(&self, routes_map: &HashMap<NodeId, Counter>) -> Counter;

    /// List topic filter strings up to the given limit.
    async fn list_topics(&self, top: usize) -> Vec<String>;

    /// List subscription relations as JSON values, up to the given limit.
    async fn list_relations(&self, top: usize) -> Vec<serde_json::Value>;

    /// Return a reference to the full subscription relations map.
    fn relations(&self) -> &AllRelationsMap;
}

/// fork patch: one publish's relations, per node. Nearly always there
/// is only this node, so the first node's collector is held apart and the map
/// (an allocation for every publish) is used only from a second node on.
struct NodeCollectors {
    first: Option<(NodeId, SubscriptioRelationsCollector)>,
    rest: SubscriptioRelationsCollectorMap,
}

impl Default for NodeCollectors {
    fn default() -> Self {
        NodeCollectors { first: None, rest: per_message_map() }
    }
}

impl NodeCollectors {
    #[inline]
    fn entry(&mut self, node_id: NodeId) -> &mut SubscriptioRelationsCollector {
        let first = self.first.get_or_insert_with(|| (node_id, SubscriptioRelationsCollector::default()));
        if first.0 == node_id {
            &mut first.1
        } else {
            self.rest.entry(node_id).or_default()
        }
    }

    #[inline]
    fn into_map(self) -> SubRelationsMap {
        let mut map: SubRelationsMap = per_message_map();
        if let Some((node_id, collector)) = self.first {
            map.insert(node_id, collector.into());
        }
        for (node_id, collector) in self.rest {
            map.insert(node_id, collector.into());
        }
        map
    }
}

#[allow(clippy::type_complexity)]
#[derive(Clone)]
/// Default implementation of the [`Router`] trait.
///
/// Stores subscriptions in a thread-safe trie ([`TopicTree`]) backed by `Arc<RwLock>`, with
/// subscription relations held in a `DashMap`. Tracks topic and relation counts via atomic
/// [`Counter`] instances. Supports both individual and shared-subscription routing.
pub struct DefaultRouter {
    scx: Option<ServerContext>,
    pub topics: Arc<RwLock<TopicTree<()>>>,
    pub topics_count: Arc<Counter>,
    pub relations: Arc<AllRelationsMap>,
    pub relations_count: Arc<Counter>,
    // fork patch: the filters each topic name matched, see `MatchCache`.
    matched: Arc<MatchCache>,
}

/// fork patch: the topic filters a topic name matched, kept per topic
/// name until the topic tree changes. Parsing the name, walking the tree and
/// building a string per matched filter was most of `matches`, and it is the
/// same answer for every message on a topic until a subscription is added
/// or removed. Each entry carries the tree's generation it was computed at;
/// the generation moves (under the tree's write lock) whenever the tree does,
/// which retires every entry at once. Bounded: when full it is emptied, so it
/// follows the topics in use, and unbounded topic sets cost one insert each.
///
/// fork patch (0053-routes-cache): an entry also keeps the relations its
/// filters led to (the recipients on this node), when they do not depend on
/// the message: no shared group (a member is chosen per message), no No
/// Local (depends on the publisher), one node, at most `ROUTES_CACHE_MAX`.
/// They are valid while `routes_generation` has not moved; it moves after
/// every change to the relations (and so after every change to the tree).
/// Building them (a relations lookup, a map per client for MQTT 5's
/// subscription identifiers, a map per node) was half of routing a message
/// to one subscriber.
#[derive(Default)]
struct MatchCache {
    generation: AtomicU64,
    filters: DashMap<TopicName, MatchEntry>,
    routes_generation: AtomicU64,
    /// Names inserted since the last emptying: `DashMap::len` would lock
    /// every shard on each miss. Approximate under races, which a bound
    /// tolerates.
    inserted: AtomicUsize,
}

/// A topic name's filters, the tree's generation they were computed at,
/// and the recipients they led to.
type MatchEntry = (u64, Arc<[TopicFilter]>, Option<CachedRoutes>);

/// Topic names kept by `MatchCache` (each entry is the name plus its filters,
/// ~150 B for short topics).
const MATCH_CACHE_MAX: usize = 8192;

/// Recipients kept per topic name at most: a larger fan-out amortizes
/// building them over its deliveries, and would make the cache large.
const ROUTES_CACHE_MAX: usize = 16;

/// The relations a topic name's filters led to (see `MatchCache`).
#[derive(Clone)]
struct CachedRoutes {
    generation: u64,
    node_id: NodeId,
    relations: Arc<[SubRelation]>,
}

impl MatchCache {
    /// Called with the tree's write lock held, after a change to the tree.
    #[inline]
    fn tree_changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Called after every change to the relations, before the change is
    /// acknowledged (SUBACK, UNSUBACK): routing computed since reads it first.
    #[inline]
    fn relations_changed(&self) {
        self.routes_generation.fetch_add(1, Ordering::Release);
    }

    /// The cached recipients of `topic_name`, if still valid.
    #[inline]
    fn routes(&self, topic_name: &TopicName, generation: u64) -> Option<(NodeId, Arc<[SubRelation]>)> {
        let e = self.filters.get(topic_name)?;
        let routes = e.2.as_ref()?;
        (routes.generation == generation).then(|| (routes.node_id, routes.relations.clone()))
    }

    /// Keeps `topic_name`'s recipients, computed from relations read after
    /// `generation` was.
    #[inline]
    fn set_routes(&self, topic_name: &TopicName, routes: CachedRoutes) {
        if let Some(mut e) = self.filters.get_mut(topic_name) {
            e.2 = Some(routes);
        }
    }
}

impl DefaultRouter {
    #[inline]
    pub fn new(scx: Option<ServerContext>) -> DefaultRouter {
        Self {
            scx,
            topics: Arc::new(RwLock::new(TopicTree::default())),
            topics_count: Arc::new(Counter::new()),
            relations: Arc::new(DashMap::default()),
            relations_count: Arc::new(Counter::new()),
            matched: Arc::new(MatchCache::default()),
        }
    }

    /// fork patch: the topic filters `topic_name` matches, from the
    /// cache when the tree has not changed since they were computed.
    #[inline]
    async fn matched_filters(&self, topic_name: &TopicName) -> Result<Arc<[TopicFilter]>> {
        let cache = &self.matched;
        if let Some(e) = cache.filters.get(topic_name) {
            if e.0 == cache.generation.load(Ordering::Acquire) {
                return Ok(e.1.clone());
            }
        }
        let topic = Topic::from_str(topic_name)?;
        let (generation, filters) = {
            let tree = self.topics.read().await;
            // Read under the lock, so it is the generation of the tree walked.
            let generation = cache.generation.load(Ordering::Acquire);
            let filters: Arc<[TopicFilter]> =
                tree.matches(&topic).iter().map(|(f, _)| f.to_topic_filter()).collect();
            (generation, filters)
        };
        if cache.inserted.load(Ordering::Relaxed) >= MATCH_CACHE_MAX {
            cache.inserted.store(0, Ordering::Relaxed);
            cache.filters.clear();
        }
        if cache.filters.insert(topic_name.clone(), (generation, filters.clone(), None)).is_none() {
            cache.inserted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(filters)
    }

    #[inline]
    pub(crate) fn context(&self) -> &ServerContext {
        if let Some(scx) = &self.scx {
            scx
        } else {
            unreachable!()
        }
    }

    #[inline]
    pub async fn _has_matches(&self, topic: &str) -> Result<bool> {
        let topic = Topic::from_str(topic)?;
        Ok(self.topics.read().await.is_match(&topic))
    }

    #[inline]
    pub async fn _get_routes(&self, topic: &str) -> Result<Vec<Route>> {
        let topic = Topic::from_str(topic)?;
        let node_id = self.context().node.id();
        let routes = self
            .topics
            .read()
            .await
            .matches(&topic)
            .iter()
            .unique()
            .map(|(topic_filter, _)| Route { node_id, topic: topic_filter.to_topic_filter() })
            .collect::<Vec<_>>();
        Ok(routes)
    }

    #[allow(clippy::type_complexity)]
    #[inline]
    pub async fn _matches(&self, this_id: Id, topic_name: &TopicName) -> Result<SubRelationsMap> {
        // fork patch (0053-routes-cache): read before the relations are.
        let routes_generation = self.matched.routes_generation.load(Ordering::Acquire);
        if let Some((node_id, relations)) = self.matched.routes(topic_name, routes_generation) {
            let mut map: SubRelationsMap = per_message_map();
            map.insert(node_id, relations.to_vec());
            return Ok(map);
        }
        // Whether the recipients depend on nothing but the topic name.
        let mut cacheable = true;
        // let scx = self.context();
        let mut collector_map = NodeCollectors::default();
        // fork patch: cached per topic name (`MatchCache`).
        let filters = self.matched_filters(topic_name).await?;
        for topic_filter in filters.iter() {
            #[allow(clippy::mutable_key_type)]
            #[cfg(feature = "shared-subscription")]
            let mut groups: HashMap<
                SharedGroup,
                Vec<(
                    NodeId,
                    ClientId,
                    SubscriptionOptions,
                    Option<Vec<SubscriptionIdentifier>>,
                    Option<IsOnline>,
                )>,
            > = per_message_map();

            if let Some(rels) = self.relations.get(topic_filter) {
                for (client_id, (id, opts)) in rels.iter() {
                    if let Some(no_local) = opts.no_local() {
                        cacheable &= !no_local;
                        //MQTT V5: No Local
                        if no_local && &this_id == id {
                            continue;
                        }
                    }
                    #[cfg(feature = "shared-subscription")]
                    {
                        if let Some(group) = opts.shared_group() {
                            // fork patch: whether the member is online is
                            // asked below, once this map's read guard is gone.
                            // Awaiting under it deadlocked: a subscribe waiting
                            // for the shard's write lock holds its worker, and
                            // the task holding the read guard cannot be resumed.
                            groups.entry(group.clone()).or_default().push((
                                id.node_id,
                                client_id.clone(),
                                opts.clone(),
                                None,
                                None,
                            ));
                        } else {
                            collector_map.entry(id.node_id).add(
                                topic_filter,
                                client_id.clone(),
                                opts.clone(),
                                None,
                            );
                        }
                    }
                    #[cfg(not(feature = "shared-subscription"))]
                    {
                        collector_map.entry(id.node_id).add(
                            topic_filter,
                            client_id.clone(),
                            opts.clone(),
                            None,
                        );
                    }
                }
            }

            #[cfg(feature = "shared-subscription")]
            if !groups.is_empty() {
                cacheable = false;
                let router = self.context().extends.router().await;
                for s_subs in groups.values_mut() {
                    for (node_id, client_id, _, _, is_online) in s_subs.iter_mut() {
                        *is_online = Some(router.is_online(*node_id, client_id).await);
                    }
                }
            }

            //select a subscriber from shared subscribe groups
            #[cfg(feature = "shared-subscription")]
            for (group, mut s_subs) in groups.drain() {
                log::debug!("group: {group}, s_subs: {s_subs:?}");
                let group_cids = s_subs.iter().map(|(_, cid, _, _, _)| cid.clone()).collect();
                if let Some((idx, is_online)) = self
                    .context()
                    .extends
                    .shared_subscription()
                    .await
                    .choice(self.context(), &group, &this_id, topic_name, &s_subs)
                    .await
                {
                    let (node_id, client_id, opts, _, _) = s_subs.remove(idx);
                    collector_map.entry(node_id).add(
                        topic_filter,
                        client_id,
                        opts,
                        Some((group, is_online, group_cids)),
                    );
                }
            }
        }

        let rels_map = collector_map.into_map();
        if cacheable && rels_map.len() == 1 {
            if let Some((node_id, relations)) = rels_map.iter().next() {
                if relations.len() <= ROUTES_CACHE_MAX {
                    let routes = CachedRoutes {
                        generation: routes_generation,
                        node_id: *node_id,
                        relations: relations[..].into(),
                    };
                    self.matched.set_routes(topic_name, routes);
                }
            }
        }

        log::debug!("{topic_name:?} this_subs: {rels_map:?}");
        Ok(rels_map)
    }

    #[inline]
    fn _query_subscriptions_filter(
        q: &SubsSearchParams,
        client_id: &str,
        opts: &SubscriptionOptions,
    ) -> bool {
        if let Some(ref q_clientid) = q.clientid {
            if q_clientid.as_bytes() != client_id.as_bytes() {
                return false;
            }
        }

        if let Some(ref q_qos) = q.qos {
            if *q_qos != opts.qos_value() {
                return false;
            }
        }

        #[cfg(feature = "shared-subscription")]
        match (&q.share, opts.shared_group()) {
            (Some(q_group), Some(group)) if q_group != group => return false,
            (Some(_), None) => return false,
            _ => {}
        }

        true
    }

    #[inline]
    async fn _query_subscriptions_for_topic(
        &self,
        q: &SubsSearchParams,
        topic: &str,
    ) -> Vec<SubsSearchResult> {
        let limit = q._limit;
        let mut curr: usize = 0;
        let topic_filter = TopicFilter::from(topic);
        self.relations
            .get(topic)
            .map(|e| {
                e.value()
                    .iter()
                    .filter(|(client_id, (_id, opts))| {
                        Self::_query_subscriptions_filter(q, client_id.as_ref(), opts)
                    })
                    .filter_map(|(client_id, (id, opts))| {
                        if curr < limit {
                            curr += 1;
                            Some(SubsSearchResult {
                                node_id: id.node_id,
                                clientid: client_id.clone(),
                                client_addr: id.remote_addr,
                                topic: topic_filter.clone(),
                                opts: opts.clone(),
                            })
                        } else {
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    }

    #[inline]
    async fn _query_subscriptions_for_matches(
        &self,
        q: &SubsSearchParams,
        _match_topic: &str,
    ) -> Vec<SubsSearchResult> {
        let topic = if let Ok(t) = Topic::from_str(_match_topic) {
            t
        } else {
            return Vec::new();
        };

        let limit = q._limit;
        let mut curr: usize = 0;

        self.topics
            .read()
            .await
            .matches(&topic)
            .iter()
            .unique()
            .flat_map(|(topic_filter, _)| {
                let topic_filter = topic_filter.to_topic_filter();
                if let Some(entry) = self.relations.get(&topic_filter) {
                    entry
                        .iter()
                        .filter(|(client_id, (_id, opts))| {
                            Self::_query_subscriptions_filter(q, client_id.as_ref(), opts)
                        })
                        .filter_map(|(client_id, (id, opts))| {
                            if curr < limit {
                                curr += 1;
                                Some(SubsSearchResult {
                                    node_id: id.node_id,
                                    clientid: client_id.clone(),
                                    client_addr: id.remote_addr,
                                    topic: topic_filter.clone(),
                                    opts: opts.clone(),
                                })
                            } else {
                                None
                            }
                        })
                        .collect::<Vec<_>>()
                } else {
                    Vec::new()
                }
            })
            .collect::<Vec<_>>()
    }

    #[inline]
    async fn _query_subscriptions_for_other(&self, q: &SubsSearchParams) -> Vec<SubsSearchResult> {
        let limit = q._limit;
        let mut curr: usize = 0;
        self.relations
            .iter()
            .flat_map(|e| {
                let topic_filter = e.key();
                e.value()
                    .iter()
                    .filter(|(client_id, (_id, opts))| {
                        Self::_query_subscriptions_filter(q, client_id.as_ref(), opts)
                    })
                    .filter_map(|(client_id, (id, opts))| {
                        if curr < limit {
                            curr += 1;
                            Some(SubsSearchResult {
                                node_id: id.node_id,
                                clientid: client_id.clone(),
                                client_addr: id.remote_addr,
                                topic: topic_filter.clone(),
                                opts: opts.clone(),
                            })
                        } else {
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    }

    #[inline]
    async fn _query_subscriptions(&self, q: &SubsSearchParams) -> Vec<SubsSearchResult> {
        //topic
        if let Some(ref topic) = q.topic {
            return self._query_subscriptions_for_topic(q, topic).await;
        }

        //_match_topic
        if let Some(ref _match_topic) = q._match_topic {
            return self._query_subscriptions_for_matches(q, _match_topic).await;
        }

        //other
        self._query_subscriptions_for_other(q).await
    }
}

#[async_trait]
impl Router for DefaultRouter {
    #[inline]
    async fn add(&self, topic_filter: &str, id: Id, opts: SubscriptionOptions) -> Result<()> {
        log::debug!("{id:?} add, topic_filter: {topic_filter:?}");
        let topic = Topic::from_str(topic_filter)?;
        //add to topic tree
        {
            let mut tree = self.topics.write().await;
            if tree.insert(&topic, ()) {
                self.matched.tree_changed();
            }
        }
        //add to subscribe relations
        let old = self
            .relations
            .entry(TopicFilter::from(topic_filter))
            .or_insert_with(|| {
                self.topics_count.inc();
                HashMap::default()
            })
            .insert(id.client_id.clone(), (id, opts));
        self.matched.relations_changed();
        if old.is_none() {
            self.relations_count.inc();
        }

        Ok(())
    }

    #[inline]
    async fn remove(&self, topic_filter: &str, id: Id) -> Result<bool> {
        log::debug!("{id:?} remove, topic_filter: {topic_filter:?}");
        //Remove subscription relationship from local
        let res = if let Some(mut rels) = self.relations.get_mut(topic_filter) {
            let remove_enable = rels.value().get(&id.client_id).map(|(s_id, _)| {
                if *s_id != id {
                    log::debug!("remove, input id not the same, input id: {id:?}, current id: {s_id:?}, topic_filter: {topic_filter}");
                    false
                } else {
                    true
                }
            }).unwrap_or(false);
            if remove_enable {
                let remove_ok = rels.value_mut().remove(&id.client_id).is_some();
                if remove_ok {
                    self.relations_count.dec();
                    self.matched.relations_changed();
                }
                Some((rels.is_empty(), remove_ok))
            } else {
                None
            }
        } else {
            None
        };

        log::debug!("{id:?} remove, topic_filter: {topic_filter:?}, res: {res:?}");

        let remove_ok = if let Some((is_empty, remove_ok)) = res {
            if is_empty {
                if self.relations.remove(topic_filter).is_some() {
                    self.topics_count.dec();
                }
                let topic = Topic::from_str(topic_filter)?;
                let mut tree = self.topics.write().await;
                if tree.remove(&topic, &()) {
                    self.matched.tree_changed();
                }
            }
            remove_ok
        } else {
            false
        };
        Ok(remove_ok)
    }

    #[inline]
    async fn matches(&self, id: Id, topic: &TopicName) -> Result<SubRelationsMap> {
        Ok(self._matches(id, topic).await?)
    }

    #[inline]
    fn cached_matches(&self, topic: &TopicName) -> Option<(NodeId, Arc<[SubRelation]>)> {
        let routes_generation = self.matched.routes_generation.load(Ordering::Acquire);
        self.matched.routes(topic, routes_generation)
    }

    #[inline]
    async fn is_online(&self, node_id: NodeId, client_id: &str) -> bool {
        self.context()
            .extends
            .shared()
            .await
            .entry(Id::from(node_id, ClientId::from(client_id)))
            .is_connected()
            .await
    }

    #[inline]
    async fn gets(&self, limit: usize) -> Vec<Route> {
        let mut curr: usize = 0;
        self.relations
            .iter()
            .flat_map(|e| {
                let topic_filter = e.key();
                e.value()
                    .iter()
                    .map(|(_, (id, _))| (id.node_id, topic_filter))
                    .unique()
                    .filter_map(|(node_id, topic_filter)| {
                        if curr < limit {
                            curr += 1;
                            Some(Route { node_id, topic: topic_filter.clone() })
                        } else {
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    }

    #[inline]
    async fn get(&self, topic: &str) -> Result<Vec<Route>> {
        let topic = Topic::from_str(topic)?;
        let routes = self
            .topics
            .read()
            .await
            .matches(&topic)
            .iter()
            .unique()
            .flat_map(|(topic_filter, _)| {
                let topic_filter = topic_filter.to_topic_filter();
                if let Some(entry) = self.relations.get(&topic_filter) {
                    entry
                        .iter()
                        .map(|(_, (id, _))| id.node_id)
                        .unique()
                        .map(|node_id| Route { node_id, topic: topic_filter.clone() })
                        .collect::<Vec<_>>()
                } else {
                    Vec::new()
                }
            })
            .collect::<Vec<_>>();
        Ok(routes)
    }

    #[inline]
    async fn query_subscriptions(&self, q: &SubsSearchParams) -> Vec<SubsSearchResult> {
        self._query_subscriptions(q).await
    }

    #[inline]
    async fn topics_tree(&self) -> usize {
        self.topics.read().await.values_size()
    }

    #[inline]
    fn topics(&self) -> Counter {
        self.topics_count.as_ref().clone()
    }

    #[inline]
    fn routes(&self) -> Counter {
        self.relations_count.as_ref().clone()
    }

    #[inline]
    fn merge_topics(&self, topics_map: &HashMap<NodeId, Counter>) -> Counter {
        let topics = Counter::new();
        for (i, (_, counter)) in topics_map.iter().enumerate() {
            if i == 0 {
                topics.set(counter);
            } else {
                topics.count_min(counter.count());
                topics.max_max(counter.max())
            }
        }
        topics
    }

    #[inline]
    fn merge_routes(&self, routes_map: &HashMap<NodeId, Counter>) -> Counter {
        let routes = Counter::new();
        for (i, (_, counter)) in routes_map.iter().enumerate() {
            if i == 0 {
                routes.set(counter);
            } else {
                routes.count_min(counter.count());
                routes.max_max(counter.max())
            }
        }
        routes
    }

    #[inline]
    async fn list_topics(&self, top: usize) -> Vec<String> {
        self.topics.read().await.list(top)
    }

    #[inline]
    async fn list_relations(&self, top: usize) -> Vec<serde_json::Value> {
        let mut count = 0;
        let mut rels = Vec::new();
        for entry in self.relations.iter() {
            let topic_filter = entry.key();
            for (client_id, (id, opts)) in entry.iter() {
                let item = json!({
                    "topic_filter": topic_filter,
                    "client_id": client_id,
                    "node_id": id.node_id,
                    "opts": opts.to_json(),
                });
                rels.push(item);
                count += 1;
                if count >= top {
                    return rels;
                }
            }
        }
        rels
    }

    #[inline]
    fn relations(&self) -> &AllRelationsMap {
        &self.relations
    }
}
