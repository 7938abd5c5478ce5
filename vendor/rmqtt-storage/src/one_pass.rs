//! fork patch (0003-one-pass-reads): reads of a whole store in one pass, for
//! a start() that loads everything (rmqtt-retainer's index, rmqtt-session-
//! storage's sessions). On sled each is one blocking scan; the other backends
//! answer `None` and the caller keeps its iterator-and-get path.

use serde::de::DeserializeOwned;

use crate::storage::{DefaultStorageDB, Key};
use crate::Result;

/// A map read whole: its name and its items, raw.
pub struct MapRead {
    pub name: Key,
    items: Vec<(Key, Vec<u8>)>,
}

impl MapRead {
    /// The item `key` decoded, as the map's `get` would return it.
    pub fn get<V: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<V>> {
        match self.items.iter().find(|(k, _)| k.as_slice() == key) {
            Some((_, v)) => Ok(Some(postcard::from_bytes::<V>(v)?)),
            None => Ok(None),
        }
    }
}

/// A list read whole: its name and its values in order (or why they did not decode).
pub type ListRead<V> = (Key, Result<Vec<V>>);

impl DefaultStorageDB {
    /// This store (a `CircuitBrokenDB` gives the one under its breaker), so
    /// that callers reach the reads below whichever they hold.
    pub fn unbroken(&self) -> &DefaultStorageDB {
        self
    }

    /// Every unexpired key under `prefix` (plain bytes, no pattern) with its
    /// value decoded, as `scan` then `get` would return them.
    pub async fn read_prefix<V>(&self, prefix: &[u8]) -> Result<Option<Vec<(Key, Result<V>)>>>
    where
        V: DeserializeOwned + Send + 'static,
    {
        match self {
            #[cfg(feature = "sled")]
            DefaultStorageDB::Sled(db) => db.read_prefix(prefix.to_vec()).await.map(Some),
            #[allow(unreachable_patterns)]
            _ => Ok(None),
        }
    }

    /// Every map with its items, as `map_iter` then `get` would return them.
    pub async fn read_maps(&self) -> Result<Option<Vec<MapRead>>> {
        match self {
            #[cfg(feature = "sled")]
            DefaultStorageDB::Sled(db) => Ok(Some(
                db.read_maps().await?.into_iter().map(|(name, items)| MapRead { name, items }).collect(),
            )),
            #[allow(unreachable_patterns)]
            _ => Ok(None),
        }
    }

    /// Every list with its values, as `list_iter` then `all` would return them.
    pub async fn read_lists<V>(&self) -> Result<Option<Vec<ListRead<V>>>>
    where
        V: DeserializeOwned + Send + 'static,
    {
        match self {
            #[cfg(feature = "sled")]
            DefaultStorageDB::Sled(db) => db.read_lists().await.map(Some),
            #[allow(unreachable_patterns)]
            _ => Ok(None),
        }
    }
}
