//! Persistent retainer implementation.
//!
//! Stores retained messages in an external storage backend (Sled/Redis)
//! with batch writes, prefix-based topic matching, and optional TTL
//! expiry. Also provides [`ValueCached`] for caching storage query results.

use std::borrow::Cow;
use std::convert::From as _;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use async_trait::async_trait;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use futures_time::{self, future::FutureExt};
use rust_box::task_exec_queue::{SpawnExt, TaskExecQueue};
use tokio::sync::RwLock;

#[cfg(feature = "circuit-breaker")]
pub(crate) use rmqtt_storage::CircuitBrokenDB as StorageDb;
#[cfg(not(feature = "circuit-breaker"))]
pub(crate) use rmqtt_storage::DefaultStorageDB as StorageDb;
use rmqtt_storage::{StorageDB as _, StorageType};

#[cfg(feature = "rate-counter")]
use rmqtt::utils::RateCounter;
use rmqtt::{
    retain::RetainStorage,
    retain::{RetainSyncMode, RetainTree},
    types::{NodeId, Retain, TimedValue, TimestampMillis, Topic, TopicFilter, TopicName},
    utils::{timestamp_millis, StatsMergeMode},
    Result,
};

use crate::config::PluginConfig;
use crate::value_cached::ValueCached;

pub(crate) type Msg = (TopicName, Retain, Option<Duration>);

/// Cluster sync message: updates the in-memory topics tree only (no Redis).
/// Sent via a dedicated unbounded channel to avoid blocking on batch_store I/O.
pub(crate) enum SyncMsg {
    Add(TopicName, Option<Duration>),
    Remove(TopicName),
}

type StoredMsg = (Retain, Option<TimestampMillis>);

const RETAIN_MESSAGES_MAX: &[u8] = b"m|";

const RETAIN_MESSAGES_PREFIX: &[u8] = b"p|";

/// fork patch (0006-gets-in-parallel): stored reads in flight at once for a
/// wildcard filter's retained messages, and at start where the store has no
/// one-pass read (Redis).
const WILDCARD_GETS: usize = 64;

/// fork patch (0006-gets-in-parallel): how long a retained read may take
/// (upstream's 5 s), and for a wildcard filter how long without any of its
/// reads finishing.
const READ_STALL_MS: u64 = 5000;

#[derive(Clone)]
pub(crate) struct Retainer {
    inner: Arc<RetainerInner>,
}

impl Retainer {
    #[inline]
    pub(crate) async fn new(
        _node_id: NodeId,
        cfg: Arc<RwLock<PluginConfig>>,
        storage_db: StorageDb,
        storage_type: StorageType,
        exec: TaskExecQueue,
    ) -> Result<(Retainer, mpsc::Receiver<Msg>, mpsc::Receiver<SyncMsg>)> {
        let (msg_tx, msg_rx) = mpsc::channel::<Msg>(5_000);
        let (sync_tx, sync_rx) = mpsc::channel::<SyncMsg>(10_000);
        let storage_messages_count = ValueCached::new(Duration::from_millis(3000));
        let storage_messages_max = ValueCached::new(Duration::from_millis(3000));
        let abstract_info = ValueCached::new(Duration::from_millis(3000));

        let inner = Arc::new(RetainerInner {
            cfg,
            storage_db,
            msg_tx,
            sync_tx,
            storage_messages_count,
            storage_messages_max,
            storage_type,
            exec: exec.clone(),
            topics: Arc::new(RwLock::new(RetainTree::default())),
            inventory: std::sync::Mutex::new(None),
            pending: Default::default(),
            #[cfg(feature = "rate-counter")]
            set_rate_counter: RateCounter::new(),
            #[cfg(feature = "rate-counter")]
            sync_rate_counter: RateCounter::new(),
            abstract_info,
        });
        let retainer = Self { inner };
        // serve() is called later from RetainerPlugin::init()

        Ok((retainer, msg_rx, sync_rx))
    }

    #[inline]
    async fn get_retain_count(&self) -> usize {
        let this = self.inner.clone();
        let cached = self.storage_messages_count.clone();
        let count = cached
            .call_timeout(async move { this._len().await }, Duration::from_millis(3000))
            .await
            .get()
            .map(|c| c.copied().unwrap_or_default())
            .unwrap_or_default();
        if count > 0 {
            count - 1
        } else {
            count
        }
    }

    #[inline]
    pub(crate) async fn info(&self) -> serde_json::Value {
        let this = self.inner.clone();
        let cached = self.abstract_info.clone();
        let info = cached
            .call_timeout(async move { this._abstract_info().await }, Duration::from_millis(3000))
            .await
            .get()
            .map(|c| c.cloned().unwrap_or_default())
            .unwrap_or_default();
        info
    }

    pub(crate) fn serve(
        &self,
        mut msg_rx: mpsc::Receiver<Msg>,
        mut sync_rx: mpsc::Receiver<SyncMsg>,
        batch_messages_limit: usize,
    ) {
        let msg_mgr = self.clone();
        let sync_topics = self.topics.clone();

        #[cfg(feature = "rate-counter")]
        let rate_counter = self.set_rate_counter.clone();
        #[cfg(feature = "rate-counter")]
        let rc = rate_counter.clone();
        #[cfg(feature = "rate-counter")]
        let sync_rc = self.sync_rate_counter.clone();

        // Rate sampling loop: compute throughput once per second.
        #[cfg(feature = "rate-counter")]
        tokio::spawn(async move {
            let interval = Duration::from_millis(1500);
            loop {
                tokio::time::sleep(interval).await;
                rc.tick(interval);
            }
        });

        // Sync rate sampling loop.
        #[cfg(feature = "rate-counter")]
        {
            let sync_rc_tick = sync_rc.clone();
            tokio::spawn(async move {
                let interval = Duration::from_millis(1500);
                loop {
                    tokio::time::sleep(interval).await;
                    sync_rc_tick.tick(interval);
                }
            });
        }

        // Dedicated task: processes retain-sync messages.
        // This is the ONLY task that writes to `topics` for sync messages,
        // eliminating lock contention with the raft exec queue (which used to
        // Sync operations are pure memory (no Redis), so this task never blocks.
        tokio::spawn(async move {
            while let Some(msg) = sync_rx.next().await {
                match msg {
                    SyncMsg::Add(topic_name, expiry) => {
                        if let Ok(topic) = Topic::from_str(&topic_name) {
                            let mut guard = sync_topics.write().await;
                            let _h = WriteHold::new("sync_task_add");
                            guard.insert(&topic, TimedValue::new((), expiry));
                        }
                    }
                    SyncMsg::Remove(topic_name) => {
                        if let Ok(topic) = Topic::from_str(&topic_name) {
                            let mut guard = sync_topics.write().await;
                            let _h = WriteHold::new("sync_task_remove");
                            guard.remove(&topic);
                        }
                    }
                }
                #[cfg(feature = "rate-counter")]
                sync_rc.dec();
            }
        });

        tokio::spawn(async move {
            log::info!("Starting Retainer serve ...");
            let mut merger_msgs = Vec::new();
            while let Some(msg) = msg_rx.next().await {
                merger_msgs.push(msg);
                while merger_msgs.len() < batch_messages_limit {
                    match tokio::time::timeout(Duration::from_millis(0), msg_rx.next()).await {
                        Ok(Some(msg)) => {
                            merger_msgs.push(msg);
                        }
                        _ => break,
                    }
                }

                log::debug!("merger_msgs.len: {}", merger_msgs.len());
                //merge and send
                let msgs = std::mem::take(&mut merger_msgs);
                let batch_size = msgs.len();
                let topics: Vec<TopicName> = msgs.iter().map(|(t, _, _)| t.clone()).collect();

                // When the backing storage is unreachable, storage operations
                // will fast-fail through the rmqtt-storage circuit breaker.
                // The serve loop simply logs the error and continues, preventing
                // the channel backlog from blocking indefinitely.
                let start = Instant::now();
                if let Err(e) = msg_mgr._batch_store_new(msgs).await {
                    log::warn!("batch store failed, {e}");
                }
                // fork patch: stored, or failed to: readers go to the store.
                msg_mgr.stored(&topics);

                #[cfg(feature = "rate-counter")]
                rate_counter.decs(batch_size as i64);

                if start.elapsed().as_secs() > 3 {
                    log::info!("batch stored {} msgs in {:?}", batch_size, start.elapsed());
                }
            }
            log::error!("Recv failed because receiver is gone");
        });
    }
}

#[cfg(feature = "rate-counter")]
impl Retainer {
    /// fork patch: waits until every message `set` so far is stored, or
    /// `timeout` passes; whether it was. The writes are batched in the
    /// background, so without this a retained message set just before the
    /// broker stops is lost.
    pub(crate) async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.set_rate_counter.current() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl Deref for Retainer {
    type Target = RetainerInner;
    #[inline]
    fn deref(&self) -> &Self::Target {
        self.inner.deref()
    }
}

/// fork patch: the pending sets (`RetainerInner::pending`).
impl RetainerInner {
    async fn pend(&self, topic: &TopicName, retain: &Retain, expiry_interval: Option<Duration>) {
        let ttl = self.cfg.read().await.retained_message_ttl;
        // As `_batch_store_new` will store it.
        let value = (!retain.publish.payload.is_empty()).then(|| {
            let millis = ttl
                .map(|ttl| if ttl.is_zero() { None } else { Some(ttl.as_millis() as i64) })
                .unwrap_or_else(|| expiry_interval.map(|i| i.as_millis() as i64));
            (retain.clone(), millis.map(|m| timestamp_millis() + m))
        });
        if let Ok(mut pending) = self.pending.lock() {
            let entry = pending.entry(topic.clone()).or_insert((0, None));
            entry.0 += 1;
            entry.1 = value;
        }
    }

    fn stored(&self, topics: &[TopicName]) {
        if let Ok(mut pending) = self.pending.lock() {
            for t in topics {
                if let Some(entry) = pending.get_mut(t) {
                    entry.0 -= 1;
                    if entry.0 == 0 {
                        pending.remove(t);
                    }
                }
            }
        }
    }

    /// `None` when no set of `topic` is pending, else its live message.
    fn pending_get(&self, topic: &str) -> Option<Option<Retain>> {
        let pending = self.pending.lock().ok()?;
        let (_, value) = pending.get(topic)?;
        let now = timestamp_millis();
        Some(value.as_ref().filter(|(_, at)| at.is_none_or(|at| at > now)).map(|(r, _)| r.clone()))
    }

    /// Puts the pending sets of topics `filter` matches over `retains`.
    fn overlay(&self, filter: &str, retains: &mut Vec<(TopicName, Retain)>) {
        Self::put_over(self.pending_matching(filter), retains);
    }

    /// fork patch (0007-overlay-from-before-the-reads): the pending sets of
    /// topics `filter` matches, as they are now.
    fn pending_matching(&self, filter: &str) -> Vec<(TopicName, Option<StoredMsg>)> {
        let Ok(pending) = self.pending.lock() else { return Vec::new() };
        if pending.is_empty() {
            return Vec::new();
        }
        let Ok(parsed) = Topic::from_str(filter) else { return Vec::new() };
        // A wildcard first level never matches a `$` topic (MQTT 4.7.2).
        let wild_first = filter.starts_with(['+', '#']);
        pending
            .iter()
            .filter(|(topic, _)| !(wild_first && topic.starts_with('$')) && parsed.matches_str::<str>(topic))
            .map(|(topic, (_, value))| (topic.clone(), value.clone()))
            .collect()
    }

    /// Puts `sets` over `retains`: each replaces what `retains` has of its
    /// topic, by its live message or by nothing.
    fn put_over(sets: Vec<(TopicName, Option<StoredMsg>)>, retains: &mut Vec<(TopicName, Retain)>) {
        let now = timestamp_millis();
        for (topic, value) in sets {
            retains.retain(|(t, _)| *t != topic);
            if let Some((retain, at)) = value {
                if at.is_none_or(|at| at > now) {
                    retains.push((topic, retain));
                }
            }
        }
    }
}

pub struct RetainerInner {
    cfg: Arc<RwLock<PluginConfig>>,
    pub(crate) storage_db: StorageDb,
    msg_tx: mpsc::Sender<Msg>,
    /// Dedicated channel for retain-sync messages (no Redis, no blocking).
    sync_tx: mpsc::Sender<SyncMsg>,
    storage_messages_count: ValueCached<usize>,
    storage_messages_max: ValueCached<isize>,
    storage_type: StorageType,
    exec: TaskExecQueue,
    /// In-memory topic name trie index — tracks which topics have active
    /// retained messages. The value type `()` means only the topic name is
    /// stored (no retain data). Used for fast wildcard matching and
    /// cluster-aware topic synchronization.
    pub(crate) topics: Arc<RwLock<RetainTree<TimedValue<()>>>>,
    /// fork patch: what `rebuild_topics` read (topic, payload length, expiry
    /// left), for the first `inventory()`, so that an account of the
    /// messages at start does not read them all a second time.
    inventory: std::sync::Mutex<Option<Vec<(TopicName, usize, Option<Duration>)>>>,
    /// fork patch: what `set` sent and the batch loop has not stored yet:
    /// the newest message per topic (`None`: removed, or expiring at the
    /// given time) and how many of its sets are still queued, so that a read
    /// right after a set (a new subscriber after the PUBACK) sees it.
    pending: std::sync::Mutex<std::collections::HashMap<TopicName, (usize, Option<StoredMsg>)>>,
    /// Rate counter for tracking message processing throughput.
    #[cfg(feature = "rate-counter")]
    pub(crate) set_rate_counter: RateCounter,
    /// Rate counter for sync message processing throughput.
    #[cfg(feature = "rate-counter")]
    pub(crate) sync_rate_counter: RateCounter,
    abstract_info: ValueCached<serde_json::Value>,
}

/// Tracks how long the `topics.write()` lock is HELD (after acquisition).
/// Create immediately after `write().await` returns, keep alive until guard drop.
struct WriteHold {
    label: &'static str,
    start: Instant,
}

impl WriteHold {
    #[inline]
    fn new(label: &'static str) -> Self {
        Self { label, start: Instant::now() }
    }
}

impl Drop for WriteHold {
    fn drop(&mut self) {
        let held = self.start.elapsed();
        if held > Duration::from_millis(100) {
            log::warn!("Topics WRITE lock HELD {:?} by [{}]", held, self.label);
        }
    }
}

impl RetainerInner {
    /// Original per-message version (逐个写入，用于对比重现)
    #[inline]
    async fn _batch_store(&self, msgs: Vec<Msg>) -> Result<()> {
        let (max_retained_messages, max_payload_size, retained_message_ttl) = {
            let cfg = self.cfg.read().await;
            (cfg.max_retained_messages as usize, *cfg.max_payload_size, cfg.retained_message_ttl)
        };

        let mut count = 0;
        for (topic_name, retain, expiry_interval) in msgs {
            let store_topic_name = [RETAIN_MESSAGES_PREFIX, topic_name.as_bytes().as_ref()].concat();
            if retain.publish.payload.is_empty() {
                //remove retain messagge
                if let Err(e) = self
                    .storage_db
                    .remove(store_topic_name.as_slice())
                    .timeout(futures_time::time::Duration::from_millis(5000))
                    .await
                    .map_err(|_e| anyhow!("storage_db.remove timeout"))?
                {
                    log::warn!("remove from db error, remove(..), {e}, topic_name: {topic_name:?}");
                    return Err(e);
                };
                // Remove from in-memory topics tree
                if let Ok(topic) = Topic::from_str(topic_name.as_ref()) {
                    let mut guard = self.topics.write().await;
                    let _h = WriteHold::new("batch_remove");
                    guard.remove(&topic);
                }
            } else {
                match self
                    .check_constraints(topic_name.as_ref(), &retain, max_retained_messages, max_payload_size)
                    .await
                {
                    Ok(false) => {
                        continue;
                    }
                    Ok(true) => {}
                    Err(e) => {
                        log::warn!("store to db error, check_constraints(..), {e}, message: {retain:?}");
                        continue;
                    }
                }

                //add retain messagge
                let expiry_interval_millis = retained_message_ttl
                    .map(|ttl| if ttl.is_zero() { None } else { Some(ttl.as_millis() as i64) })
                    .unwrap_or_else(|| {
                        expiry_interval.map(|expiry_interval| expiry_interval.as_millis() as i64)
                    });

                let expiry_time_at = expiry_interval_millis
                    .map(|expiry_interval_millis| timestamp_millis() + expiry_interval_millis);

                let smsg: StoredMsg = (retain, expiry_time_at);
                if let Err(e) = self
                    .storage_db
                    .insert(store_topic_name.as_slice(), &smsg)
                    .timeout(futures_time::time::Duration::from_millis(5000))
                    .await
                    .map_err(|_e| anyhow!("storage_db.insert timeout"))?
                {
                    log::warn!("store to db error, insert(..), {e}, message: {smsg:?}");
                    return Err(e);
                };

                if let Some(expiry_interval_millis) = expiry_interval_millis {
                    if let Err(e) = self
                        .storage_db
                        .expire(store_topic_name.as_slice(), expiry_interval_millis)
                        .timeout(futures_time::time::Duration::from_millis(5000))
                        .await
                        .map_err(|_e| anyhow!("set expire timeout"))?
                    {
                        log::warn!("store to db error, expire(..), {e}, message: {smsg:?}");
                        return Err(e);
                    }
                }

                // Update in-memory topics tree
                if let Ok(topic) = Topic::from_str(topic_name.as_ref()) {
                    let timeout = expiry_interval_millis.map(|millis| Duration::from_millis(millis as u64));
                    let mut guard = self.topics.write().await;
                    let _h = WriteHold::new("batch_insert");
                    guard.insert(&topic, TimedValue::new((), timeout));
                }

                count += 1;
            }
        }

        if let Err(e) = self
            .storage_messages_max_add(count)
            .timeout(futures_time::time::Duration::from_millis(5000))
            .await
            .map_err(|_e| anyhow!("storage_messages_max_add timeout"))?
        {
            log::warn!("messages_received_counter add error, {e}");
            return Err(e);
        }

        Ok(())
    }

    /// Batch-optimized version (batch_insert / batch_remove)
    #[inline]
    async fn _batch_store_new(&self, msgs: Vec<Msg>) -> Result<()> {
        let (max_retained_messages, max_payload_size, retained_message_ttl) = {
            let cfg = self.cfg.read().await;
            (cfg.max_retained_messages as usize, *cfg.max_payload_size, cfg.retained_message_ttl)
        };

        let mut insert_batch: Vec<(Vec<u8>, StoredMsg)> = Vec::with_capacity(msgs.len());
        let mut remove_keys: Vec<Vec<u8>> = Vec::with_capacity(msgs.len());
        let mut expire_tasks: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut count = 0;
        for (topic_name, retain, expiry_interval) in msgs {
            let store_topic_name = [RETAIN_MESSAGES_PREFIX, topic_name.as_bytes().as_ref()].concat();
            if retain.publish.payload.is_empty() {
                //remove retain messagge
                // fork patch: the removes of a batch run before its inserts;
                // a message the batch set earlier on this topic must not
                // outlive the removal that came after it.
                insert_batch.retain(|(k, _)| *k != store_topic_name);
                expire_tasks.retain(|(k, _)| *k != store_topic_name);
                remove_keys.push(store_topic_name);
                // Remove from in-memory topics tree
                if let Ok(topic) = Topic::from_str(topic_name.as_ref()) {
                    let mut guard = self.topics.write().await;
                    let _h = WriteHold::new("batch_remove");
                    guard.remove(&topic);
                }
            } else {
                match self
                    .check_constraints(topic_name.as_ref(), &retain, max_retained_messages, max_payload_size)
                    .await
                {
                    Ok(false) => {
                        continue;
                    }
                    Ok(true) => {}
                    Err(e) => {
                        log::warn!("store to db error, check_constraints(..), {e}, message: {retain:?}");
                        continue;
                    }
                }

                //add retain messagge
                let expiry_interval_millis = retained_message_ttl
                    .map(|ttl| if ttl.is_zero() { None } else { Some(ttl.as_millis() as i64) })
                    .unwrap_or_else(|| {
                        expiry_interval.map(|expiry_interval| expiry_interval.as_millis() as i64)
                    });

                let expiry_time_at = expiry_interval_millis
                    .map(|expiry_interval_millis| timestamp_millis() + expiry_interval_millis);

                let smsg: StoredMsg = (retain, expiry_time_at);
                // fork patch: a removal earlier in the batch is replaced by
                // this message, not run after it (see above).
                remove_keys.retain(|k| *k != store_topic_name);
                if let Some(expiry_interval_millis) = expiry_interval_millis {
                    expire_tasks.push((store_topic_name.clone(), expiry_interval_millis));
                }
                insert_batch.push((store_topic_name.clone(), smsg));

                // Update in-memory topics tree
                if let Ok(topic) = Topic::from_str(topic_name.as_ref()) {
                    let timeout = expiry_interval_millis.map(|millis| Duration::from_millis(millis as u64));
                    let mut guard = self.topics.write().await;
                    let _h = WriteHold::new("batch_insert");
                    guard.insert(&topic, TimedValue::new((), timeout));
                }

                count += 1;
            }
        }

        // Batch remove — failure propagates to the serve loop so the
        // circuit breaker (via CircuitBrokenDB) can record the failure
        // and eventually trip OPEN.
        if !remove_keys.is_empty() {
            self.storage_db
                .batch_remove(remove_keys)
                .timeout(futures_time::time::Duration::from_millis(5000))
                .await
                .map_err(|_e| anyhow!("storage_db.batch_remove timeout"))?
                .map_err(|e| anyhow!("batch_remove error: {e}"))?;
        }

        // Batch insert — failure propagates to the serve loop.
        if !insert_batch.is_empty() {
            self.storage_db
                .batch_insert(insert_batch)
                .timeout(futures_time::time::Duration::from_millis(5000))
                .await
                .map_err(|_e| anyhow!("storage_db.batch_insert timeout"))?
                .map_err(|e| anyhow!("batch_insert error: {e}"))?;

            // Set TTL for inserted messages
            for (key, ms) in expire_tasks {
                if let Err(e) = self
                    .storage_db
                    .expire(key.as_slice(), ms)
                    .timeout(futures_time::time::Duration::from_millis(5000))
                    .await
                    .map_err(|_e| anyhow!("set expire timeout"))?
                {
                    log::warn!("store to db error, expire(..), {e}");
                    return Err(e);
                }
            }
        }

        if let Err(e) = self
            .storage_messages_max_add(count)
            .timeout(futures_time::time::Duration::from_millis(5000))
            .await
            .map_err(|_e| anyhow!("storage_messages_max_add timeout"))?
        {
            log::warn!("messages_received_counter add error, {e}");
            return Err(e);
        }

        Ok(())
    }

    #[inline]
    async fn check_constraints(
        &self,
        topic: &str,
        retain: &Retain,
        max_retained_messages: usize,
        max_payload_size: usize,
    ) -> Result<bool> {
        if retain.publish.payload.len() > max_payload_size {
            log::warn!("Retain message payload exceeding limit, topic: {topic:?}, retain: {retain:?}");
            return Ok(false);
        }

        if max_retained_messages > 0 && self.topics.read().await.values_size() >= max_retained_messages {
            log::warn!(
                "The retained message has exceeded the maximum limit of: {max_retained_messages}, topic: {topic:?}, retain: {retain:?}"
            );
            return Ok(false);
        }

        Ok(true)
    }

    #[inline]
    async fn _len(&self) -> Result<usize> {
        self.storage_db
            .len()
            .timeout(futures_time::time::Duration::from_millis(3000))
            .await
            .map_err(|_e| anyhow!("db.len timeout"))
            .flatten()
    }

    #[inline]
    async fn storage_messages_max_add(&self, vals: isize) -> Result<()> {
        self.storage_db.counter_incr(RETAIN_MESSAGES_MAX, vals).await?;
        Ok(())
    }

    #[inline]
    async fn storage_messages_max_get(&self) -> Result<isize> {
        self.storage_db
            .counter_get(RETAIN_MESSAGES_MAX)
            .timeout(futures_time::time::Duration::from_millis(3000))
            .await
            .map_err(|_e| anyhow!("storage_messages_max_get timeout"))
            .flatten()
            .map(|v| v.unwrap_or_default())
    }

    #[inline]
    #[allow(dead_code)]
    fn topic_filter_to_pattern(t: &str) -> Cow<'_, str> {
        if t.len() == 1 && (t == "#" || t == "+") {
            return Cow::Borrowed("*");
        }

        let t = t.replace('*', "\\*").replace('?', "\\?").replace('+', "*");

        if t.len() > 1 && t.ends_with("/#") {
            Cow::Owned([&t[0..(t.len() - 2)], "*"].concat())
        } else {
            Cow::Owned(t)
        }
    }

    #[inline]
    async fn get_message(&self, topic_filter: &TopicFilter) -> Result<Vec<(TopicName, Retain)>> {
        let topic = Topic::from_str(topic_filter)?;

        // Precise topic short circuit - GET directly without wildcard, O (1) single Redis query
        if !topic_filter.contains(['+', '#']) {
            // fork patch: a set not stored yet is the newest.
            if let Some(hit) = self.pending_get(topic_filter) {
                return Ok(hit.map(|r| vec![(TopicName::from(topic_filter.as_ref()), r)]).unwrap_or_default());
            }
            let exact_key = [RETAIN_MESSAGES_PREFIX, topic_filter.as_bytes()].concat();
            match self.storage_db.get::<_, StoredMsg>(exact_key.as_slice()).await {
                Ok(Some((retain, expiry_time_at))) => {
                    let retains = if let Some(expiry_time_at) = expiry_time_at {
                        if expiry_time_at > timestamp_millis() {
                            vec![(TopicName::from(topic_filter.as_ref()), retain)]
                        } else {
                            Vec::new()
                        }
                    } else {
                        vec![(TopicName::from(topic_filter.as_ref()), retain)]
                    };
                    Ok(retains)
                }
                Ok(None) => Ok(Vec::new()),
                Err(e) => {
                    log::error!("get_message exact get error: {e}");
                    Err(e)
                }
            }
        } else {
            // fork patch (0007-overlay-from-before-the-reads): the sets pending
            // before the reads. One whose batch was stored while they ran is
            // pending no more when they end, and may have been read before it
            // was stored: it was missing (a `#` subscriber right after 100,000
            // retained publishes into Redis got 99,500, one batch short).
            let pending_before = self.pending_matching(topic_filter);
            // Wildcard path: use in-memory topics tree for fast trie matching,
            // then fetch the actual retain data from storage for each matching topic.
            let matched_topics = {
                let topics = self.topics.read().await;
                topics
                    .matches(&topic)
                    .into_iter()
                    .filter_map(|(t, tv)| if tv.is_expired() { None } else { Some(t.to_string()) })
                    .collect::<Vec<_>>()
            };

            // fork patch (0006-gets-in-parallel): up to
            // `WILDCARD_GETS` reads in flight, in order. One at a time, a
            // round trip each, a `#` subscriber to 100,000 retained messages
            // in Redis got none: the reads outlasted `get`'s 5 s timeout.
            let db = self.storage_db.clone();
            let mut fetched = futures::stream::iter(matched_topics)
                .map(move |topic_str| {
                    let db = db.clone();
                    async move {
                        let store_key = [RETAIN_MESSAGES_PREFIX, topic_str.as_bytes()].concat();
                        let got = db.get::<_, StoredMsg>(store_key.as_slice()).await;
                        (topic_str, got)
                    }
                })
                .buffered(WILDCARD_GETS);
            let mut retains = Vec::new();
            loop {
                // Bounded by progress, not in total (`get`): a large read
                // on a busy machine outlasted 5 s and got nothing.
                let next = fetched.next().timeout(futures_time::time::Duration::from_millis(READ_STALL_MS)).await;
                let Ok(next) = next else {
                    log::warn!("retainer get: no stored read finished in {READ_STALL_MS} ms");
                    return Err(anyhow!("retained message reads stalled"));
                };
                let Some((topic_str, got)) = next else { break };
                match got {
                    Ok(Some((retain, expiry_time_at))) => {
                        let topic_name = TopicName::from(topic_str.as_str());
                        if let Some(expiry_time_at) = expiry_time_at {
                            if expiry_time_at > timestamp_millis() {
                                retains.push((topic_name, retain));
                            }
                        } else {
                            retains.push((topic_name, retain));
                        }
                    }
                    Ok(None) => {
                        // Stale topic entry in topics tree — clean it up
                        // if let Ok(t) = Topic::from_str(topic_str.as_str()) {
                        //     self.topics.write().await.remove(&t);
                        // }
                    }
                    Err(e) => {
                        log::error!("get_message get error: {e}");
                        return Err(e);
                    }
                }
            }
            // fork patch: sets not stored yet win over what the store has
            // (0007: those pending before the reads, then those pending now).
            Self::put_over(pending_before, &mut retains);
            self.overlay(topic_filter, &mut retains);
            Ok(retains)
        }
    }

    #[inline]
    async fn _get_all_paginated(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<(TopicName, Retain, Option<Duration>)>, bool)> {
        let mut db = self.storage_db.clone();
        let topic_filter_pattern = Self::topic_filter_to_pattern("#");
        let mut iter = match db.scan([RETAIN_MESSAGES_PREFIX, topic_filter_pattern.as_bytes()].concat()).await
        {
            Err(e) => {
                log::error!("get_all_paginated scan error: {e}");
                return Ok((Vec::new(), false));
            }
            Ok(iter) => iter,
        };

        // Collect all matching keys first, then drop the iterator to release
        // the mutable borrow on `db`, so we can call `db.get` later.
        let mut matched_keys = Vec::new();
        while let Some(key) = iter.next().await {
            match key {
                Ok(key) if key.starts_with(RETAIN_MESSAGES_PREFIX) => {
                    matched_keys.push(key);
                }
                Ok(_) => {}
                Err(e) => log::error!("get_all_paginated iter error: {e}"),
            }
        }
        drop(iter);

        let total = matched_keys.len();
        let has_more = offset + limit < total;

        let mut items = Vec::with_capacity(limit);
        for key in matched_keys.into_iter().skip(offset).take(limit) {
            match db.get::<_, StoredMsg>(key.as_slice()).await {
                Ok(Some((retain, expiry_time_at))) => {
                    let topic_name = TopicName::from(
                        String::from_utf8_lossy(&key[RETAIN_MESSAGES_PREFIX.len()..]).as_ref(),
                    );
                    // fork patch: an expired message not yet removed is
                    // left out, not listed as one that never expires.
                    let now = timestamp_millis();
                    let remaining = match expiry_time_at {
                        Some(exp) if exp <= now => continue,
                        Some(exp) => Some(Duration::from_millis((exp - now) as u64)),
                        None => None,
                    };
                    items.push((topic_name, retain, remaining));
                }
                Ok(None) => {}
                Err(e) => log::error!("get_all_paginated get error: {e}"),
            }
        }

        Ok((items, has_more))
    }

    /// Every stored message, read key by key: its keys listed first, then
    /// each read (a message that cannot be read: `None`). For stores without
    /// a one-pass read (fork patch 0005-one-pass-reads).
    async fn read_by_keys(&self) -> Result<Vec<(Vec<u8>, Option<StoredMsg>)>> {
        let mut db = self.storage_db.clone();
        let topic_filter_pattern = Self::topic_filter_to_pattern("#");
        let mut iter = match db.scan([RETAIN_MESSAGES_PREFIX, topic_filter_pattern.as_bytes()].concat()).await
        {
            Err(e) => {
                log::warn!("rebuild_topics scan error: {e}");
                return Err(e);
            }
            Ok(iter) => iter,
        };

        // Collect keys first, then drop the iterator to release the mutable
        // borrow on `db`.
        let mut keys = Vec::new();
        while let Some(key) = iter.next().await {
            let key = match key {
                Ok(k) => k,
                Err(e) => {
                    log::warn!("rebuild_topics iter error: {e}");
                    continue;
                }
            };
            if key.starts_with(RETAIN_MESSAGES_PREFIX) {
                keys.push(key);
            }
        }
        drop(iter);
        // fork patch (0006-gets-in-parallel): `WILDCARD_GETS` reads in
        // flight (Redis: a round trip each; 100,000 took 7.2 s one at a time).
        let read = futures::stream::iter(keys)
            .map(|key| {
                let db = db.clone();
                async move {
                    let stored = db.get::<_, StoredMsg>(key.as_slice()).await.ok().flatten();
                    (key, stored)
                }
            })
            .buffered(WILDCARD_GETS)
            .collect()
            .await;
        Ok(read)
    }

    /// Rebuild the in-memory `topics` tree by scanning all stored retain
    /// messages. Called once at startup.
    #[inline]
    pub(crate) async fn rebuild_topics(&self) -> Result<()> {
        let start = std::time::Instant::now();
        log::info!("Rebuilding topics tree from storage ...");
        // fork patch (0005-one-pass-reads): every message read and decoded
        // in one pass where the store can (sled); otherwise its keys are
        // listed, then each is read, as upstream did.
        let read = match self.storage_db.unbroken().read_prefix::<StoredMsg>(RETAIN_MESSAGES_PREFIX).await {
            Ok(Some(read)) => read.into_iter().map(|(k, v)| (k, v.ok())).collect(),
            Ok(None) => self.read_by_keys().await?,
            Err(e) => {
                log::warn!("rebuild_topics read error: {e}");
                return Err(e);
            }
        };

        let mut topics = self.topics.write().await;
        let mut inventory = Vec::with_capacity(read.len());
        for (key, stored) in read {
            let topic_str = String::from_utf8_lossy(&key[RETAIN_MESSAGES_PREFIX.len()..]);
            let topic = match Topic::from_str(topic_str.as_ref()) {
                Ok(t) => t,
                Err(_) => continue,
            };
            match stored {
                Some((retain, expiry_time_at)) if !retain.publish.payload.is_empty() => {
                    // fork patch: an expired message is not indexed (it was,
                    // as one that never expires).
                    let now = timestamp_millis();
                    let timeout = match expiry_time_at {
                        Some(exp) if exp <= now => continue,
                        Some(exp) => Some(Duration::from_millis((exp - now) as u64)),
                        None => None,
                    };
                    topics.insert(&topic, TimedValue::new((), timeout));
                    inventory.push((TopicName::from(topic_str.as_ref()), retain.publish.payload.len(), timeout));
                }
                _ => {}
            }
        }
        *self.inventory.lock().unwrap_or_else(|e| e.into_inner()) = Some(inventory);
        log::info!(
            "Rebuild topics tree done, nodes: {}, values: {}, elapsed: {:?}",
            topics.nodes_size(),
            topics.values_size(),
            start.elapsed()
        );
        Ok(())
    }

    /// Handle a topic-only retain sync notification from a cluster peer
    /// (Redis mode). Unconditionally inserts or removes the topic from the
    /// in-memory `topics` tree **without** querying shared storage —
    /// notification carries the operation direction.
    #[inline]
    async fn _abstract_info(&self) -> Result<serde_json::Value> {
        self.storage_db
            .info()
            .timeout(futures_time::time::Duration::from_millis(3000))
            .await
            .map_err(|_e| anyhow!("get info timeout"))
            .flatten()
    }
}

#[async_trait]
impl RetainStorage for Retainer {
    #[inline]
    fn enable(&self) -> bool {
        true
    }

    #[inline]
    fn merge_on_read(&self) -> bool {
        match self.storage_type {
            #[cfg(feature = "sled")]
            StorageType::Sled => false,
            #[cfg(feature = "redis")]
            StorageType::Redis => false,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    #[inline]
    fn need_sync(&self) -> bool {
        match self.storage_type {
            #[cfg(feature = "redis")]
            StorageType::Redis => false,
            #[allow(unreachable_patterns)]
            _ => true,
        }
    }

    ///topic - concrete topic
    async fn set(&self, topic: &TopicName, retain: Retain, expiry_interval: Option<Duration>) -> Result<()> {
        // fork patch: readable from now on, before the batch loop stores it.
        self.pend(topic, &retain, expiry_interval).await;
        let res =
            self.msg_tx.clone().send((topic.clone(), retain, expiry_interval)).await.map_err(|e| anyhow!(e));
        match res {
            Ok(()) => {
                #[cfg(feature = "rate-counter")]
                self.set_rate_counter.inc();
                Ok(())
            }
            Err(e) => {
                log::error!("Retainer set error, {e}");
                Err(anyhow!(e.to_string()))
            }
        }
    }

    ///topic_filter - Topic filter
    async fn get(&self, topic_filter: &TopicFilter) -> Result<Vec<(TopicName, Retain)>> {
        let this = self.clone();
        let tf = topic_filter.clone();
        let task = async move { this.get_message(&tf).await }.spawn(&self.exec).result();
        // fork patch (0006-gets-in-parallel): a wildcard's reads are bounded
        // by their progress (`get_message`) rather than 5 s in all.
        let result: std::io::Result<_> = if topic_filter.contains(['+', '#']) {
            Ok(task.await)
        } else {
            task.timeout(futures_time::time::Duration::from_millis(READ_STALL_MS)).await
        };

        match result {
            Ok(inner) => {
                // inner is the output of .result(), which is Result<T, JoinError>
                // where T is the output of get_message (Result<Vec<...>, anyhow::Error>)
                // So inner is Result<Result<Vec<...>, anyhow::Error>, JoinError>
                match inner {
                    Ok(Ok(retains)) => {
                        // Task succeeded, get_message returned Ok
                        Ok(retains)
                    }
                    Ok(Err(e)) => {
                        // Task succeeded, but get_message returned Err (storage failure)
                        log::warn!("retainer get_message error: {:?}", e);
                        Ok(Vec::new())
                    }
                    Err(_e) => {
                        // Task failed (panic, etc.)
                        log::warn!("retainer get task error");
                        Ok(Vec::new())
                    }
                }
            }
            Err(_) => {
                // Timeout
                log::warn!("retainer get timeout");
                Ok(Vec::new())
            }
        }
    }

    async fn get_all_paginated(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<(TopicName, Retain, Option<Duration>)>, bool)> {
        self._get_all_paginated(offset, limit)
            .timeout(futures_time::time::Duration::from_secs(60))
            .await
            .map_err(|_e| anyhow!("get_all_paginated timeout"))?
    }

    /// fork patch: the first call takes what `rebuild_topics` read.
    async fn inventory(&self) -> Result<Vec<(TopicName, usize, Option<Duration>)>> {
        let read = self.inventory.lock().unwrap_or_else(|e| e.into_inner()).take();
        match read {
            Some(read) => Ok(read),
            None => rmqtt::retain::inventory_by_pages(self).await,
        }
    }

    #[inline]
    async fn count(&self) -> isize {
        self.get_retain_count().await as isize
    }

    #[inline]
    async fn max(&self) -> isize {
        let this = self.inner.clone();

        let val = self.storage_messages_max.clone();
        let value_ref = val
            .call_timeout(async move { this.storage_messages_max_get().await }, Duration::from_millis(3000))
            .await;
        // value_ref and val are now distinct locals; the borrow is visible
        // to the async state machine and drop order is well-defined.
        match value_ref.get() {
            Ok(max) => max.copied().unwrap_or(-1),
            Err(e) => {
                log::warn!("retainer max error: {e}");
                -1
            }
        }
    }

    #[inline]
    fn stats_merge_mode(&self) -> StatsMergeMode {
        match self.storage_type {
            #[cfg(feature = "sled")]
            StorageType::Sled => StatsMergeMode::Max,
            #[cfg(feature = "redis")]
            StorageType::Redis => StatsMergeMode::Max,
            #[allow(unreachable_patterns)]
            _ => StatsMergeMode::None,
        }
    }

    #[inline]
    fn retain_sync_mode(&self) -> RetainSyncMode {
        match self.storage_type {
            #[cfg(feature = "redis")]
            StorageType::Redis => RetainSyncMode::TopicOnly,
            #[allow(unreachable_patterns)]
            _ => RetainSyncMode::Full,
        }
    }

    async fn sync_retain_topic(
        &self,
        topic: &TopicName,
        expiry_interval: Option<Duration>,
        is_set: bool,
    ) -> Result<()> {
        let msg = if is_set {
            SyncMsg::Add(topic.clone(), expiry_interval)
        } else {
            SyncMsg::Remove(topic.clone())
        };
        self.inner.sync_tx.clone().send(msg).await.map_err(|e| anyhow!(e))?;
        #[cfg(feature = "rate-counter")]
        self.sync_rate_counter.inc();
        Ok(())
    }
}
