//! `storage.sync`: when a publisher is acknowledged. `'interval'` (the
//! default): once its message is routed; sled writes its log out every
//! 500 ms, so a kill -9 may lose what was acknowledged in that window.
//! `'always'`: a PUBACK/PUBREC waits until every offline persistent session
//! the message was routed to has it flushed to disk (rmqtt
//! 0051-durable-ack, rmqtt-session-storage 0004-sync-always).

use napi::Result;

use crate::error::invalid_arg;
use crate::storage::StorageConfig;

/// Whether publishers' acknowledgements wait for the session store's flush.
pub fn always(config: Option<&StorageConfig>) -> Result<bool> {
  let Some(sync) = config.and_then(|c| c.sync.as_deref()) else {
    return Ok(false);
  };
  let always = match sync {
    "always" => true,
    "interval" => false,
    other => {
      return Err(invalid_arg(format!(
        "storage.sync: must be 'always' or 'interval', not {other:?}"
      )))
    }
  };
  // Sessions are not stored in Redis (yet), and what Redis keeps after a
  // crash is its own setting (appendonly, appendfsync): a promise made here
  // would not hold.
  if config.is_some_and(|c| c.redis.is_some()) {
    return Err(invalid_arg(
      "storage.sync: only with storage.path; with storage.redis, durability is the Redis server's \
       own setting (appendonly/appendfsync)",
    ));
  }
  Ok(always)
}
