//! fork patch (0007-queues-after-start): restored sessions' offline messages
//! loaded after the broker starts. Reading and decoding every stored message
//! before the listeners accept took 8 s for 1,000,000 (10,000 sessions x
//! 100); the sessions themselves (their maps: subscriptions, in-flight
//! messages) take well under a second. So each restored session is routed at
//! once but takes nothing off its channel until its stored messages are in
//! its deliver queue (rmqtt 0055-queues-after-start): what is routed to it
//! meanwhile is queued after them, in order. A client whose session is still
//! waiting is held at its CONNECT until the load is done, so its takeover
//! finds the whole queue. With `sync`, a QoS 1/2 publish routed to a waiting
//! session is acknowledged only once its loop has stored it, after the load
//! (rmqtt 0055 counts the session as in its offline loop while it waits).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::channel::oneshot;
use tokio::sync::watch;

use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::types::{ClientId, MessageQueueType};

use crate::pending::Pending;
use crate::session::StoredKey;
use crate::{list_stored_key_to_id_bytes, List, OfflineMessageOptionType, StorageDB, StorageDb};

#[derive(Clone)]
pub(crate) struct Queues {
    inner: Arc<Inner>,
}

struct Inner {
    /// Restored sessions waiting for their stored messages.
    waiting: Mutex<HashMap<StoredKey, (MessageQueueType, oneshot::Sender<()>)>>,
    /// Their clients, held at CONNECT until `loaded`.
    clients: Mutex<HashSet<ClientId>>,
    loaded: watch::Sender<bool>,
    /// fork patch (0011-load-tracked): the load is one of the plugin's
    /// writes for stop() (it removes the lists nobody owns).
    pending: Pending,
}

impl Queues {
    pub(crate) fn new(pending: Pending) -> Self {
        let (loaded, _) = watch::channel(false);
        Self { inner: Arc::new(Inner { waiting: Mutex::default(), clients: Mutex::default(), loaded, pending }) }
    }

    /// Registers a restored session; resolves once its stored messages are
    /// in `queue` (or there were none, or they could not be read).
    pub(crate) fn wait_for(
        &self,
        id_key: StoredKey,
        client_id: ClientId,
        queue: MessageQueueType,
    ) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(id_key, (queue, tx));
        self.inner.clients.lock().unwrap_or_else(|e| e.into_inner()).insert(client_id);
        rx
    }

    /// Loads every stored list in the background: into its session's queue,
    /// or removed from the store when no stored session (of `known`) owns it
    /// or it cannot be decoded, as upstream did at load.
    pub(crate) fn spawn_load(&self, storage_db: StorageDb, known: HashSet<StoredKey>) {
        let release = Release(self.inner.clone());
        let pending = self.inner.pending.clone();
        // Tracked as a whole and each removal on its own: a stop() waits for
        // it while it moves (10,000 expired sessions' lists: ~15 s of sled).
        self.inner.pending.spawn(async move {
            let now = std::time::Instant::now();
            let lists = match storage_db.unbroken().read_lists::<OfflineMessageOptionType>().await {
                Ok(Some(lists)) => Ok(lists),
                Ok(None) => lists_by_iter(&storage_db).await,
                Err(e) => Err(e),
            };
            let lists = match lists {
                Ok(lists) => lists,
                Err(e) => {
                    log::error!("loading the stored offline messages failed, {e}: restored sessions resume without them");
                    return;
                }
            };
            let mut count = 0;
            for (name, msgs) in lists {
                let id_key = StoredKey::from(list_stored_key_to_id_bytes(&name).to_vec());
                let owner = release.0.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id_key);
                match (owner, msgs) {
                    (Some((queue, ready)), Ok(msgs)) => {
                        for (_, f, p) in msgs.into_iter().flatten() {
                            count += 1;
                            if let Err((f, p)) = queue.push((f, p)) {
                                log::warn!("rebuild session offline message error, deliver queue is full, from: {f:?}, publish: {p:?}");
                            }
                        }
                        let _ = ready.send(());
                    }
                    (owner, msgs) => {
                        if let Some((_, ready)) = owner {
                            let _ = ready.send(());
                        }
                        match msgs {
                            Err(e) => log::warn!("{id_key:?} load offline messages error, {e}"),
                            Ok(_) if known.contains(&id_key) => continue,
                            Ok(_) => {}
                        }
                        let mut removed = Ok(());
                        pending
                            .track(async {
                                removed = storage_db.list_remove(&name).await;
                            })
                            .await;
                        if let Err(e) = removed {
                            log::warn!("{id_key:?} remove offline messages error, {e}");
                        }
                    }
                }
            }
            log::info!("{count} stored offline messages loaded after start, {:?}", now.elapsed());
            drop(release);
        });
    }

    /// Resolves once `client_id`'s restored session, if it has one still
    /// waiting, has its stored messages.
    async fn ready(&self, client_id: &ClientId) {
        if !self.inner.clients.lock().unwrap_or_else(|e| e.into_inner()).contains(client_id) {
            return;
        }
        let _ = self.inner.loaded.subscribe().wait_for(|loaded| *loaded).await;
    }
}

/// Releases every waiting session and client when the load ends, also when
/// it fails or its task is dropped (runtime shutdown): nothing waits forever.
struct Release(Arc<Inner>);

impl Drop for Release {
    fn drop(&mut self) {
        let waiting = std::mem::take(&mut *self.0.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, (_, ready)) in waiting {
            let _ = ready.send(());
        }
        self.0.clients.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.0.loaded.send_replace(true);
    }
}

/// Every list of offline messages, by the store's iterator (stores without a
/// one-pass read).
async fn lists_by_iter(
    storage_db: &StorageDb,
) -> rmqtt::Result<Vec<rmqtt_storage::ListRead<OfflineMessageOptionType>>> {
    let mut iter_storage_db = storage_db.clone();
    let mut lists = Vec::new();
    let mut list_iter = iter_storage_db.list_iter().await?;
    while let Some(l) = list_iter.next().await {
        match l {
            Ok(l) => lists.push((l.name().to_vec(), l.all::<OfflineMessageOptionType>().await)),
            Err(e) => {
                log::warn!("load offline messages error, {e}");
            }
        }
    }
    Ok(lists)
}

/// Holds a CONNECT whose client's restored session is still loading.
pub(crate) struct ConnectGate(pub(crate) Queues);

#[async_trait]
impl Handler for ConnectGate {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::ClientConnect(connect_info) = param {
            self.0.ready(connect_info.client_id()).await;
        }
        (true, acc)
    }
}
