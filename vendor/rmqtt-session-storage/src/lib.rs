//! Session storage plugin for RMQTT.
//!
//! Persists MQTT session state (subscriptions, inflight messages,
//! offline messages) to configurable backends including:
//! - **Sled**: Embedded database (default).
//! - **Redis**: External Redis server.
//! - **Redis Cluster**: Distributed Redis setup.
//!
//! # Features
//!
//! - Session state serialization/deserialization via postcard.
//! - Automatic cleanup of expired sessions.
//! - Configurable garbage collection intervals.
//! - Lock-free concurrent access with async channels.
//!
#![deny(unsafe_code)]

use anyhow::anyhow;
use std::convert::From as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use serde_json::{self, json};

use rmqtt::{
    fitter::Fitter,
    hook::{Handler, HookResult, Parameter, Register, ReturnType, Type},
    plugin::{PackageInfo, Plugin},
    register,
    session::Session,
    types::DisconnectInfo,
    types::{ClientId, ConnectInfo, Disconnect, From, Publish, SessionSubMap, SessionSubs, TimestampMillis},
    utils::timestamp_millis,
    Result,
};

#[cfg(feature = "circuit-breaker")]
pub(crate) use rmqtt_storage::{
    init_db, CircuitBrokenDB as StorageDb, CircuitBrokenList as StorageList, CircuitBrokenMap as StorageMap,
    List, Map, StorageDB, StorageType,
};

#[cfg(not(feature = "circuit-breaker"))]
pub(crate) use rmqtt_storage::{
    init_db, DefaultStorageDB as StorageDb, List, Map, StorageDB, StorageList, StorageMap, StorageType,
};

use config::PluginConfig;
use pending::Pending;
use queues::{ConnectGate, Queues};
use rmqtt::context::ServerContext;
use rmqtt::inflight::OutInflightMessage;
use rmqtt::macros::Plugin;
use rmqtt::session::SessionState;
use session::{Basic, StorageSessionManager, StoredSessionInfo, StoredSessionInfos};
use session::{StoredKey, BASIC, DISCONNECT_INFO, INFLIGHT_MESSAGES, LAST_TIME, SESSION_SUB_MAP};

mod config;
mod durable;
mod pending;
mod queues;
mod session;

/// fork patch (0008-map-reads-in-parallel): stored sessions read at once
/// where the store has no one-pass read (Redis).
const MAP_READS: usize = 64;

enum RebuildChanType {
    // fork patch (0007-queues-after-start): resolves once the session's
    // stored messages are in its deliver queue.
    Session(Session, Duration, oneshot::Receiver<()>),
    Done(oneshot::Sender<()>),
}

type OfflineMessageOptionType = Option<(ClientId, From, Publish)>;

register!(StoragePlugin::new);

#[derive(Plugin)]
struct StoragePlugin {
    scx: ServerContext,
    cfg: Arc<PluginConfig>,
    storage_db: StorageDb,
    stored_session_infos: StoredSessionInfos,
    register: Box<dyn Register>,
    session_mgr: StorageSessionManager,
    pending: Pending,
    /// fork patch: with `sync`, the flushes acknowledgements wait for.
    group_commit: Option<Arc<durable::GroupCommit>>,
    queues: Queues,
}

impl StoragePlugin {
    #[inline]
    async fn new<S: Into<String>>(scx: ServerContext, name: S) -> Result<Self> {
        let name = name.into();
        let mut cfg = scx.plugins.read_config::<PluginConfig>(&name)?;
        match cfg.storage.typ {
            #[cfg(feature = "sled")]
            StorageType::Sled => {
                cfg.storage.sled.path =
                    cfg.storage.sled.path.replace("{node}", &format!("{}", scx.node.id()));
            }
            #[cfg(feature = "redis")]
            StorageType::Redis => {
                cfg.storage.redis.prefix =
                    cfg.storage.redis.prefix.replace("{node}", &format!("{}", scx.node.id()));
            }
            #[cfg(feature = "redis-cluster")]
            StorageType::RedisCluster => {
                cfg.storage.redis_cluster.prefix =
                    cfg.storage.redis_cluster.prefix.replace("{node}", &format!("{}", scx.node.id()));
            }
            #[allow(unreachable_patterns)]
            _ => return Err(anyhow!("Unsupported storage engine config")),
        }

        log::info!("{name} StoragePlugin cfg: {cfg:?}");

        let storage_db = match init_db(&cfg.storage).await {
            Err(e) => {
                log::error!("{name} init storage db error, {e}");
                return Err(e);
            }
            Ok(db) => {
                #[cfg(feature = "circuit-breaker")]
                {
                    StorageDb::new(db, cfg.to_cb_config(&scx.circuit_breaker_config))
                }
                #[cfg(not(feature = "circuit-breaker"))]
                {
                    db
                }
            }
        };

        let stored_session_infos = StoredSessionInfos::new();

        let register = scx.extends.hook_mgr().register();
        let pending = Pending::default();
        let session_mgr =
            StorageSessionManager::new(storage_db.clone(), stored_session_infos.clone(), pending.clone());

        let cfg = Arc::new(cfg);
        let group_commit = cfg.sync.then(|| durable::GroupCommit::new(storage_db.clone()));
        Ok(Self {
            scx,
            cfg,
            storage_db,
            stored_session_infos,
            register,
            session_mgr,
            queues: Queues::new(pending.clone()),
            pending,
            group_commit,
        })
    }

    async fn load_offline_session_infos(&mut self) -> Result<()> {
        let now = std::time::Instant::now();
        log::info!("{:?} load_offline_session_infos ...", self.name());
        let storage_db = self.storage_db.clone();
        // fork patch (0005-one-pass-reads): every session's map read in one
        // pass where the store can (sled); otherwise by its iterators and a
        // read per item, as upstream did. Those cost a round trip to sled's command thread per
        // stored message: 28 s for 10,000 sessions x 100 messages.
        let maps = match storage_db.unbroken().read_maps().await? {
            Some(maps) => maps.iter().map(StoredMap::read).collect(),
            None => self.maps_by_iter().await?,
        };
        log::info!("{} stored sessions read, {:?}", maps.len(), now.elapsed());
        for map in maps {
            self.admit(map).await;
        }

        // fork patch (0007-queues-after-start): the lists of offline messages
        // are read after the broker starts (`queues.rs`).

        for removed_key in self.stored_session_infos.retain_latests() {
            storage_db.map_remove(make_map_stored_key(removed_key.as_ref())).await?;
            storage_db.list_remove(make_list_stored_key(removed_key.as_ref())).await?;
        }
        log::info!(
            "stored_session_infos len: {:?}, cost: {:?}",
            self.stored_session_infos.len(),
            now.elapsed()
        );

        Ok(())
    }

    /// Every stored session's map, by the store's iterator, each item read
    /// with a round trip (stores without a one-pass read).
    async fn maps_by_iter(&self) -> Result<Vec<StoredMap>> {
        let mut iter_storage_db = self.storage_db.clone();
        let mut found = Vec::new();
        let mut map_iter = iter_storage_db.map_iter().await?;
        while let Some(m) = map_iter.next().await {
            match m {
                Ok(m) => found.push(m),
                Err(e) => {
                    log::warn!("load offline session info error, {e}");
                }
            }
        }
        drop(map_iter);
        // fork patch (0008-map-reads-in-parallel): a map's five reads at once,
        // `MAP_READS` maps at a time (Redis: a round trip each; 10,000
        // sessions took 3.8 s one read at a time).
        let maps = futures::stream::iter(found)
            .map(|m| async move {
                let (basic, last_time, disconnect_info, subs, inflights) = futures::join!(
                    m.get(BASIC),
                    m.get(LAST_TIME),
                    m.get(DISCONNECT_INFO),
                    m.get(SESSION_SUB_MAP),
                    m.get(INFLIGHT_MESSAGES)
                );
                StoredMap { name: m.name().to_vec(), basic, last_time, disconnect_info, subs, inflights }
            })
            .buffered(MAP_READS)
            .collect()
            .await;
        Ok(maps)
    }

    /// Adds a stored session to those to rebuild, or removes it from the
    /// store (no basic info, or expired while the broker was down).
    async fn admit(&mut self, m: StoredMap) {
        let storage_db = self.storage_db.clone();
        let id_key = StoredKey::from(map_stored_key_to_id_bytes(&m.name).to_vec());
        log::debug!("map_stored_key: {id_key:?}");
        let basic = match m.basic {
            Err(e) => {
                log::warn!("{id_key:?} load offline session basic info error, {e}");
                if let Err(e) = storage_db.map_remove(&m.name).await {
                    log::warn!("{id_key:?} remove offline session info error, {e}");
                }
                return;
            }
            Ok(None) => {
                log::debug!("{id_key:?} offline session basic info is None");
                if let Err(e) = storage_db.map_remove(&m.name).await {
                    log::warn!("{id_key:?} remove offline session info error, {e}");
                }
                return;
            }
            Ok(Some(basic)) => basic,
        };

        log::debug!("basic: {basic:?}");
        log::debug!("map key: {id_key:?}");
        let mut s_info = StoredSessionInfo::from(id_key.clone(), basic);

        // Load last_time and disconnect_info first: the expiry pre-check below needs them.
        let last_time = match m.last_time {
            Ok(Some(last_time)) => {
                log::debug!("last_time: {last_time:?}");
                s_info.set_last_time(last_time);
                last_time
            }
            Ok(None) => 0,
            Err(e) => {
                log::warn!("{id_key:?} load offline session last time error, {e}");
                0
            }
        };

        let disconnect_info = match m.disconnect_info {
            Ok(Some(disc_info)) => {
                log::debug!("disc_info: {disc_info:?}");
                Some(disc_info)
            }
            Ok(None) => None,
            Err(e) => {
                log::warn!("{id_key:?} load offline session disconnect info error, {e}");
                None
            }
        };

        // Expired offline sessions (which would also be cleaned up by the rebuild
        // pass) are skipped entirely: drop them from storage without loading their
        // subscriptions/inflight messages. Under stress workloads a large number of
        // expired sessions makes the serial `load_offline_session_infos` scan (5 sled
        // gets per session) grow linearly with the session count and can exceed the
        // broker health-check window; this pre-check keys off
        // last_time + session_expiry_interval, reducing startup cost from O(all
        // sessions) to O(active sessions).
        if last_time > 0 && offline_session_is_expired(&s_info.basic, disconnect_info.as_ref(), last_time) {
            log::debug!("{id_key:?} offline session is expired (last_time: {last_time:?}), skip loading and remove");
            if let Err(e) = storage_db.map_remove(&m.name).await {
                log::warn!("{id_key:?} remove expired offline session info error, {e}");
            }
            if let Err(e) = storage_db.list_remove(make_list_stored_key(id_key.as_ref())).await {
                log::warn!("{id_key:?} remove expired offline session messages error, {e}");
            }
            return;
        }
        if let Some(disc_info) = disconnect_info {
            s_info.set_disconnect_info(disc_info);
        }

        match m.subs {
            Ok(Some(subs)) => {
                log::debug!("subs: {subs:?}");
                s_info.set_subs(subs);
            }
            Ok(None) => {}
            Err(e) => {
                log::warn!("{id_key:?} load offline session subscription info error, {e}");
            }
        }

        match m.inflights {
            Ok(Some(inflights)) => {
                log::debug!("inflights len: {:?}", inflights.len());
                s_info.inflight_messages = inflights;
            }
            Ok(None) => {}
            Err(e) => {
                log::warn!("{id_key:?} load offline session inflight messages error, {e}");
            }
        }

        self.stored_session_infos.add(s_info);
    }

    fn start_local_runtime(scx: ServerContext) -> mpsc::Sender<RebuildChanType> {
        let (tx, mut rx) = futures::channel::mpsc::channel::<RebuildChanType>(100_000);
        let exec = scx.get_exec("SESSION_REBUILD_EXEC");
        tokio::spawn(async move {
            let now = std::time::Instant::now();
            while let Some(msg) = rx.next().await {
                match msg {
                    RebuildChanType::Session(session, session_expiry_interval, ready) => {
                        let ready = async move {
                            let _ = ready.await;
                        };
                        match SessionState::offline_restart_after(session.clone(), session_expiry_interval, ready)
                            .await
                        {
                            Err(e) => {
                                log::warn!("Rebuild offline sessions error, {e}");
                            }
                            Ok(msg_tx) => {
                                // `session_entry.set` consumes the session, so take the
                                // subscriptions (SessionSubs is Clone) and the id out first.
                                let subs = session.subscriptions().await;
                                let session_id = session.id.clone();
                                let scx_for_task = scx.clone();

                                let mut session_entry = scx.extends.shared().await.entry(session.id.clone());

                                let id = session_entry.id().clone();
                                let task_fut = async move {
                                    if let Err(e) = session_entry.set(session, msg_tx).await {
                                        log::warn!(
                                            "{:?} Rebuild offline sessions error, {:?}",
                                            session_entry.id(),
                                            e
                                        );
                                    } else {
                                        // Session successfully restored into peers: register its
                                        // subscriptions in the router so that publishes matching
                                        // them are routable immediately (issue #475). Previously
                                        // `rebuild_offline_sessions` never called `router().add(..)`,
                                        // so between the broker restart and the client's reconnect
                                        // any matching publish was PUBACKed and silently dropped,
                                        // while the reconnect still saw `session_present = 1`
                                        // (violating MQTT-3.2.2-2).
                                        if let Ok(subs) = subs {
                                            for (tf, opts) in subs.read().await.iter() {
                                                if let Err(e) = scx_for_task
                                                    .extends
                                                    .router()
                                                    .await
                                                    .add(tf, session_id.clone(), opts.clone())
                                                    .await
                                                {
                                                    log::warn!(
                                                        "{:?} rebuild offline sessions, router.add, {e}",
                                                        session_id
                                                    );
                                                }
                                            }
                                        } else {
                                            log::warn!(
                                                "{:?} rebuild offline sessions, session.subscriptions() error",
                                                session_id
                                            );
                                        }
                                    }
                                };
                                if let Err(e) = exec.spawn(task_fut).await {
                                    log::warn!(
                                        "{:?} Rebuild offline sessions error, {:?}",
                                        id,
                                        e.to_string()
                                    );
                                }

                                let completed_count = exec.completed_count().await;
                                if completed_count > 0 && completed_count % 5000 == 0 {
                                    log::info!(
                                        "{:?} Rebuild offline sessions, completed_count: {}, active_count: {}, waiting_count: {}, rate: {:?}",
                                        id,
                                        exec.completed_count().await, exec.active_count(), exec.waiting_count(), exec.rate().await
                                    );
                                }
                            }
                        }
                    }
                    RebuildChanType::Done(done_tx) => {
                        let _ = exec.flush().await;
                        let _ = done_tx.send(());
                        log::info!(
                                    "Rebuild offline sessions, completed_count: {}, active_count: {}, waiting_count: {}, rate: {:?}, cost: {:?}",
                                    exec.completed_count().await, exec.active_count(), exec.waiting_count(), exec.rate().await, now.elapsed()
                                );
                        break;
                    }
                }
            }
            log::info!("Offline session rebuilding finished");
        });
        tx
    }
}

#[async_trait]
impl Plugin for StoragePlugin {
    #[inline]
    async fn init(&mut self) -> Result<()> {
        log::info!("{} init", self.name());
        let rebuild_tx = Self::start_local_runtime(self.scx.clone());

        self.register
            .add(
                Type::BeforeStartup,
                Box::new(StorageHandler::new(
                    self.scx.clone(),
                    self.storage_db.clone(),
                    self.cfg.clone(),
                    self.stored_session_infos.clone(),
                    rebuild_tx.clone(),
                    self.queues.clone(),
                )),
            )
            .await;
        self.register.add(Type::ClientConnect, Box::new(ConnectGate(self.queues.clone()))).await;
        self.register
            .add(
                Type::OfflineMessage,
                Box::new(OfflineMessageHandler::new(
                    self.scx.clone(),
                    self.cfg.clone(),
                    self.storage_db.clone(),
                    self.pending.clone(),
                )),
            )
            .await;
        self.register
            .add(
                Type::OfflineInflightMessages,
                Box::new(OfflineMessageHandler::new(
                    self.scx.clone(),
                    self.cfg.clone(),
                    self.storage_db.clone(),
                    self.pending.clone(),
                )),
            )
            .await;

        self.load_offline_session_infos().await?;

        Ok(())
    }

    #[inline]
    async fn get_config(&self) -> Result<serde_json::Value> {
        Ok(self.cfg.to_json())
    }

    #[inline]
    async fn start(&mut self) -> Result<()> {
        log::info!("{} start", self.name());
        *self.scx.extends.session_mgr_mut().await = Box::new(self.session_mgr.clone());
        if let Some(gc) = &self.group_commit {
            let _ = self.scx.extends.durable_ack.set(Arc::new(durable::Sync(gc.clone())));
        }

        self.register.start().await;
        Ok(())
    }

    #[inline]
    async fn stop(&mut self) -> Result<bool> {
        // fork patch: the writes under way are finished first, for at most
        // 2 s (the broker may be going down); then its handlers, which hold
        // the store (and the context, a cycle), leave the hook manager. It
        // still reports that it did not stop (it is the broker's session
        // store): only a broker going down stops it.
        if tokio::time::timeout(Duration::from_secs(2), self.pending.idle()).await.is_err() {
            log::warn!("{} stop: session writes still under way after 2 s", self.name());
        }
        self.register.remove().await;
        if let Some(gc) = &self.group_commit {
            gc.close();
        }
        Ok(false)
    }

    /// fork patch: `"writes"` answers `{ "pending": n, "ended": m }`, the
    /// background writes under way and those ended so far, so that an
    /// embedder's stop() can wait for a store that is still writing (the
    /// removals of a consumed backlog take seconds: sled removes ~70,000
    /// keys/s) for as long as it moves, instead of a fixed time.
    async fn send(&self, msg: serde_json::Value) -> Result<serde_json::Value> {
        match msg.as_str() {
            Some("writes") => {
                let (pending, ended) = self.pending.progress();
                Ok(serde_json::json!({ "pending": pending, "ended": ended }))
            }
            _ => Ok(serde_json::Value::Null),
        }
    }

    #[inline]
    async fn attrs(&self) -> serde_json::Value {
        async fn stats(storage_db: &StorageDb) -> (String, String, String) {
            let max_limit = 1000;
            let mut session_count = 0;
            let mut storage_db_map = storage_db.clone();
            {
                let now = std::time::Instant::now();
                let iter = storage_db_map.map_iter().await;
                if let Ok(mut iter) = iter {
                    while let Some(m) = iter.next().await {
                        if let Ok(m) = m {
                            log::debug!("map: {:?}", StoredKey::from(m.name().to_vec()));
                        }
                        session_count += 1;
                        if session_count >= max_limit {
                            break;
                        }
                    }
                }
                log::debug!("map_iter cost time: {:?}", now.elapsed());
            }

            let mut offline_session_count = 0;
            let mut offline_message_count = 0;
            let mut storage_db_list = storage_db.clone();
            {
                let now = std::time::Instant::now();
                let iter = storage_db_list.list_iter().await;
                if let Ok(mut iter) = iter {
                    while let Some(l) = iter.next().await {
                        if let Ok(mut l) = l {
                            log::debug!("list: {:?}", StoredKey::from(l.name().to_vec()));
                            if let Ok(mut l_iter) = l.iter::<OfflineMessageOptionType>().await {
                                while let Some(msg) = l_iter.next().await {
                                    if let Ok(Some(_)) = msg {
                                        offline_message_count += 1;
                                        if offline_message_count >= max_limit {
                                            break;
                                        }
                                    }
                                }
                            }
                        }
                        offline_session_count += 1;
                        if offline_session_count >= max_limit {
                            break;
                        }
                    }
                }
                log::debug!("list_iter cost time: {:?}", now.elapsed());
            }
            let session_count = if session_count >= max_limit {
                format!("{session_count}+")
            } else {
                format!("{session_count}")
            };
            let offline_session_count = if offline_session_count >= max_limit {
                format!("{offline_session_count}+")
            } else {
                format!("{offline_session_count}")
            };
            let offline_message_count = if offline_message_count >= max_limit {
                format!("{offline_message_count}+")
            } else {
                format!("{offline_message_count}")
            };

            (session_count, offline_session_count, offline_message_count)
        }

        let (session_count, offline_session_count, offline_message_count, storage_info) =
            match tokio::time::timeout(Duration::from_secs(10), stats(&self.storage_db)).await {
                Ok((session_count, offline_session_count, offline_message_count)) => (
                    session_count,
                    offline_session_count,
                    offline_message_count,
                    self.storage_db.info().await.unwrap_or_default(),
                ),
                Err(_) => (
                    "timeout(10s)".into(),
                    "timeout(10s)".into(),
                    "timeout(10s)".into(),
                    match self.storage_db.info().await {
                        Ok(info) => info,
                        Err(e) => serde_json::Value::String(e.to_string()),
                    },
                ),
            };

        json!({
            "session_count": session_count,
            "offline_session_count": offline_session_count,
            "offline_message_count": offline_message_count,
            "storage_info": storage_info
        })
    }
}

struct OfflineMessageHandler {
    #[allow(dead_code)]
    scx: ServerContext,
    cfg: Arc<PluginConfig>,
    storage_db: StorageDb,
    pending: Pending,
}

impl OfflineMessageHandler {
    fn new(scx: ServerContext, cfg: Arc<PluginConfig>, storage_db: StorageDb, pending: Pending) -> Self {
        Self { scx, cfg, storage_db, pending }
    }

    /// Stores a message of an offline session.
    ///
    /// fork patch: upstream put the write on a bounded queue that dropped it
    /// when full; it is awaited in place instead. The hook runs in the offline
    /// session's own loop, so this holds only that session (its channel then
    /// applies the broker's flow control), keeps its messages in order (the
    /// queue's 8 workers could reorder one session's pushes), and never drops
    /// a message whose publisher was acknowledged.
    async fn dispatch<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.pending.track(fut).await
    }
}

#[async_trait]
impl Handler for OfflineMessageHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::OfflineMessage(s, f, p) => {
                log::debug!(
                    "OfflineMessage storage_type: {:?}, from: {:?}, p: {:?}",
                    self.cfg.storage.typ,
                    f,
                    p
                );
                let list_stored_key = make_list_stored_key(s.id.to_string());
                let storage_db = self.storage_db.clone();
                let id = s.id.clone();
                let max_mqueue_len = s.listen_cfg().max_mqueue_len;
                let p = (*p).clone();
                let f = f.clone();
                self.dispatch(async move {
                    let offlines_list = storage_db.list(list_stored_key.as_ref(), None).await;
                    let res = offlines_list
                        .push_limit::<OfflineMessageOptionType>(
                            &Some((id.client_id.clone(), f, p)),
                            max_mqueue_len,
                            true,
                        )
                        .await;
                    if let Err(e) = res {
                        log::warn!("{id:?} save offline messages error, {e}")
                    }
                })
                .await;
            }

            Parameter::OfflineInflightMessages(s, inflight_messages) => {
                log::debug!(
                    "OfflineInflightMessages storage_type: {:?}, inflight_messages len: {:?}",
                    self.cfg.storage.typ,
                    inflight_messages.len(),
                );
                let map_stored_key = make_map_stored_key(s.id.to_string());
                log::debug!("{:?} map_stored_key: {:?}", s.id, map_stored_key);

                let storage_db = self.storage_db.clone();
                let inflight_messages = inflight_messages.clone();
                let id = s.id.clone();
                self.dispatch(async move {
                    let m = storage_db.map(map_stored_key.as_ref(), None).await;
                    if let Err(e) = m.insert(INFLIGHT_MESSAGES, &inflight_messages).await {
                        log::warn!("{id:?} save offline inflight messages error, {e}")
                    }
                })
                .await;
            }

            _ => {
                log::error!("unimplemented, {param:?}")
            }
        }
        (true, acc)
    }
}

/// One stored session's map, read (fork patch 0005-one-pass-reads): what
/// `admit` decides on.
struct StoredMap {
    name: Vec<u8>,
    basic: Result<Option<Basic>>,
    last_time: Result<Option<TimestampMillis>>,
    disconnect_info: Result<Option<DisconnectInfo>>,
    subs: Result<Option<SessionSubMap>>,
    inflights: Result<Option<Vec<OutInflightMessage>>>,
}

impl StoredMap {
    fn read(m: &rmqtt_storage::MapRead) -> Self {
        Self {
            name: m.name.clone(),
            basic: m.get(BASIC),
            last_time: m.get(LAST_TIME),
            disconnect_info: m.get(DISCONNECT_INFO),
            subs: m.get(SESSION_SUB_MAP),
            inflights: m.get(INFLIGHT_MESSAGES),
        }
    }
}

struct StorageHandler {
    scx: ServerContext,
    storage_db: StorageDb,
    cfg: Arc<PluginConfig>,
    stored_session_infos: StoredSessionInfos,
    rebuild_tx: mpsc::Sender<RebuildChanType>,
    queues: Queues,
}

impl StorageHandler {
    fn new(
        scx: ServerContext,
        storage_db: StorageDb,
        cfg: Arc<PluginConfig>,
        stored_session_infos: StoredSessionInfos,
        rebuild_tx: mpsc::Sender<RebuildChanType>,
        queues: Queues,
    ) -> Self {
        Self { scx, storage_db, cfg, stored_session_infos, rebuild_tx, queues }
    }

    //Rebuild offline sessions.
    async fn rebuild_offline_sessions(&self, rebuild_done_tx: oneshot::Sender<()>) {
        let now = std::time::Instant::now();
        let mut offline_sessions_count = 0;
        for mut entry in self.stored_session_infos.iter_mut() {
            let (_, storeds) = entry.pair_mut();
            if let Some(stored) = storeds.iter_mut().next() {
                let id = stored.basic.id.clone();

                let listen_cfg =
                    if let Some(listen_cfg) = self.scx.listen_cfgs.get(&id.lid).map(|c| c.value().clone()) {
                        listen_cfg
                    } else {
                        log::warn!("tcp listener config is not found, local addr is {:?}", id.local_addr);
                        continue;
                    };

                log::debug!("{id:?} listen_cfg: {listen_cfg:?}");

                //create fitter
                let fitter = self.scx.extends.fitter_mgr().await.create(
                    stored.basic.conn_info.clone(),
                    id.clone(),
                    listen_cfg.clone(),
                );

                //check session expiry interval
                let session_expiry_interval = session_expiry_interval(
                    fitter.as_ref(),
                    stored.disconnect_info.as_ref(),
                    stored.last_time,
                )
                .await;
                log::debug!("{id:?} session_expiry_interval: {session_expiry_interval:?}");
                if session_expiry_interval <= 0 {
                    log::debug!(
                        "{:?} session is expiry, {:?}, id_key: {:?}, {:?}, {:?}",
                        id,
                        session_expiry_interval,
                        stored.id_key,
                        make_map_stored_key(stored.id_key.as_ref()),
                        make_list_stored_key(stored.id_key.as_ref())
                    );
                    let storage_db = self.storage_db.clone();
                    if let Err(e) = storage_db.map_remove(make_map_stored_key(stored.id_key.as_ref())).await {
                        log::warn!("{id:?} remove map error, {e}");
                    }
                    if let Err(e) = storage_db.list_remove(make_list_stored_key(stored.id_key.as_ref())).await
                    {
                        log::warn!("{id:?} remove list error, {e}");
                    }
                    //session is expiry
                    continue;
                }
                offline_sessions_count += 1;

                if stored.disconnect_info.is_none() {
                    stored.disconnect_info = Some(DisconnectInfo::new(stored.last_time));
                }

                let max_inflight = fitter.max_inflight();
                let max_mqueue_len = fitter.max_mqueue_len();
                let subs = stored.subs.take().map(SessionSubs::from).unwrap_or_else(SessionSubs::new);

                let session = match Session::new(
                    id.clone(),
                    self.scx.clone(),
                    max_mqueue_len,
                    listen_cfg,
                    fitter,
                    None,
                    max_inflight,
                    stored.basic.created_at,
                    stored.basic.conn_info.clone(),
                    false,
                    false,
                    false,
                    stored.basic.connected_at,
                    subs,
                    stored.disconnect_info.take(),
                    None,
                )
                .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        log::warn!("rebuild session offline message error, create session error, {e}");
                        continue;
                    }
                };

                // fork patch (0007-queues-after-start): its stored messages
                // are loaded after the broker starts (`queues.rs`).
                let ready =
                    self.queues.wait_for(stored.id_key.clone(), id.client_id.clone(), session.deliver_queue().clone());

                // fork patch: the fork's in-flight window is a mutex (rmqtt
                // 0002-inflight-mutex).
                let out_inflight = session.out_inflight();
                for item in stored.inflight_messages.drain(..) {
                    out_inflight.lock().push_back(item);
                }

                if let Err(e) = self
                    .rebuild_tx
                    .clone()
                    .send(RebuildChanType::Session(
                        session,
                        Duration::from_millis(session_expiry_interval as u64),
                        ready,
                    ))
                    .await
                {
                    log::error!("rebuild offline sessions error, {e}");
                }
            }
        }
        log::info!("offline_sessions_count: {offline_sessions_count}, cost: {:?}", now.elapsed());
        let _ = self.rebuild_tx.clone().send(RebuildChanType::Done(rebuild_done_tx)).await;
    }
}

#[async_trait]
impl Handler for StorageHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::BeforeStartup => {
                let now = std::time::Instant::now();
                log::info!(
                    "BeforeStartup storage_type: {:?}, stored_session_infos len: {}",
                    self.cfg.storage.typ,
                    self.stored_session_infos.len()
                );
                let (rebuild_done_tx, rebuild_done_rx) = oneshot::channel::<()>();
                self.rebuild_offline_sessions(rebuild_done_tx).await;
                let _ = rebuild_done_rx.await;
                // A list whose session was not rebuilt (its listener is gone)
                // is kept, as upstream kept it.
                let known = self
                    .stored_session_infos
                    .iter()
                    .flat_map(|e| e.value().iter().map(|s| s.id_key.clone()).collect::<Vec<_>>())
                    .collect();
                self.queues.spawn_load(self.storage_db.clone(), known);
                log::info!("BeforeStartup rebuild total cost: {:?}", now.elapsed());
            }
            _ => {
                log::error!("unimplemented, {param:?}")
            }
        }
        (true, acc)
    }
}

#[inline]
async fn session_expiry_interval(
    fitter: &dyn Fitter,
    disconnect_info: Option<&DisconnectInfo>,
    last_time: TimestampMillis,
) -> TimestampMillis {
    let disconnected_at = disconnect_info.map(|d| d.disconnected_at).unwrap_or_default();
    let disconnected_at = if disconnected_at <= 0 { last_time } else { disconnected_at };
    fitter.session_expiry_interval(disconnect_info.and_then(|d| d.mqtt_disconnect.as_ref())).as_millis()
        as i64
        - (timestamp_millis() - disconnected_at)
}

/// Conservatively decides whether an offline session is *definitely expired*, i.e. it
/// would also be cleaned up by `rebuild_offline_sessions`.
///
/// The semantics mirror `session_expiry_interval() <= 0`: the effective session expiry
/// is the DISCONNECT property (when present) overriding the CONNECT-requested value (V5),
/// then capped by the listener's `max_session_expiry_interval`. Since the listener config
/// (`scx.listen_cfgs`) is not populated yet during load, the larger of the CONNECT/DISCONNECT
/// values is used as a loose upper bound - a session is only treated as expired once the
/// time since disconnect exceeds that bound, so a session still valid at rebuild time can
/// never be removed prematurely.
///
/// Returns `false` (no pre-check, keep the original load behaviour and let the rebuild
/// pass decide) for non-V5 connections, whose expiry is determined by the listener
/// default, or when `last_time` is missing (corrupt data).
#[inline]
fn offline_session_is_expired(
    basic: &Basic,
    disconnect_info: Option<&DisconnectInfo>,
    last_time: TimestampMillis,
) -> bool {
    // Session expiry requested in the V5 CONNECT (seconds); for V3 the expiry comes from
    // the listener default, so no pre-check is possible.
    let connect_secs = match basic.conn_info.as_ref() {
        ConnectInfo::V5(_, connect) => connect.session_expiry_interval_secs as u64,
        ConnectInfo::V3(_, _) => return false,
    };
    // A DISCONNECT property can override the CONNECT value; take the larger of the two as
    // a loose upper bound (conservative, never removes a still-valid session).
    let disconnect_secs = disconnect_info.and_then(|d| d.mqtt_disconnect.as_ref()).and_then(|d| match d {
        Disconnect::V5(d) => d.session_expiry_interval_secs.map(|s| s as u64),
        _ => None,
    });
    let expiry_upper_secs = disconnect_secs.unwrap_or(connect_secs).max(connect_secs);

    // Disconnect instant: prefer the DISCONNECT record, fall back to last_time when missing
    // (<=0), matching `session_expiry_interval()`.
    let disconnected_at = disconnect_info.map(|d| d.disconnected_at).filter(|&t| t > 0).unwrap_or(last_time);
    let elapsed_ms = timestamp_millis().saturating_sub(disconnected_at) as i64;
    (expiry_upper_secs as i64 * 1000) - elapsed_ms <= 0
}

#[inline]
pub(crate) fn make_map_stored_key<T: AsRef<[u8]>>(id: T) -> StoredKey {
    let mut key = Vec::from("map-");
    key.extend_from_slice(id.as_ref());
    Bytes::from(key)
}

#[inline]
pub(crate) fn map_stored_key_to_id_bytes(stored_key: &[u8]) -> &[u8] {
    if stored_key.starts_with(b"map-") {
        stored_key[4..].as_ref()
    } else {
        stored_key
    }
}

#[inline]
pub(crate) fn make_list_stored_key<T: AsRef<[u8]>>(id: T) -> StoredKey {
    let mut key = Vec::from("list-");
    key.extend_from_slice(id.as_ref());
    Bytes::from(key)
}

#[inline]
pub(crate) fn list_stored_key_to_id_bytes(stored_key: &[u8]) -> &[u8] {
    if stored_key.starts_with(b"list-") {
        stored_key[5..].as_ref()
    } else {
        stored_key
    }
}
