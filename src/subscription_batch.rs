//! A run of an in-process subscription's messages as the arguments of one
//! call into JavaScript (`run` of subscription.js), which makes each message
//! object and calls the handler in a loop of its own.
//!
//! One call per message made the JS thread's share of a flood mostly napi:
//! a call into V8, and a string and three numbers made through napi, per
//! message. Here a run is one ArrayBuffer (each message's fields as
//! numbers, then the small payloads, which the message's Buffer is a view
//! of) and, only when needed, an array of what numbers cannot say (new
//! topic strings, large payloads, MQTT 5 properties). A topic's string is
//! made once and kept on the JavaScript side by index (`Topics`), so a
//! flood on a few topics makes no strings at all.

use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::hook_js::{check, Args, Msg, SMALL_PAYLOAD};

/// Numbers per message at the start of the ArrayBuffer, and which is
/// which. subscription.js reads them by these names (`layout_js`).
const SLOTS: usize = 6;
const FLAGS: usize = 0;
const TOPIC: usize = 1;
/// The payload's offset in the buffer, or its index in `extra`.
const OFFSET: usize = 2;
const LENGTH: usize = 3;
const TIME: usize = 4;
/// The properties' index in `extra`.
const PROPS: usize = 5;
/// Bits of `FLAGS`.
const DUP: u32 = 1;
const RETAIN: u32 = 2;
const QOS_SHIFT: u32 = 2;
/// The payload is a Buffer of its own in `extra`, not in the buffer.
const OWN_PAYLOAD: u32 = 16;
/// The message has properties.
const HAS_PROPS: u32 = 32;

/// The layout above as JavaScript constants, compiled ahead of
/// subscription.js: declared once, here.
pub fn layout_js() -> String {
  format!(
    "const SLOTS = {SLOTS}, FLAGS = {FLAGS}, TOPIC = {TOPIC}, OFFSET = {OFFSET}, LENGTH = {LENGTH}, \
     TIME = {TIME}, PROPS = {PROPS}, DUP = {DUP}, RETAIN = {RETAIN}, QOS_SHIFT = {QOS_SHIFT}, \
     OWN_PAYLOAD = {OWN_PAYLOAD}, HAS_PROPS = {HAS_PROPS}"
  )
}
/// Topics JavaScript keeps at most, in number and in bytes, before the
/// table starts again (a flood of distinct topics makes each string once,
/// as before, and holds about this much more).
const MAX_TOPICS: usize = 4096;
const MAX_TOPIC_BYTES: usize = 1 << 20;

/// The topics whose strings JavaScript holds (`names` in subscription.js),
/// with their index there. Used on the JS thread only.
#[derive(Default)]
pub struct Topics {
  /// Copies: a topic as decoded is a slice of the connection's read
  /// buffer, which a key kept here would keep alive.
  index: rmqtt::types::HashMap<Box<str>, u32>,
  bytes: usize,
}

/// Builds the arguments of `run(handler, n, buffer, reset, fresh, extra)`
/// after the handler for `msgs`, in the handle scope current at the time.
pub fn build(args: &Args, topics: &mut Topics, msgs: &[Msg]) -> Result<[sys::napi_value; 5]> {
  let env = args.env();
  let meta = msgs.len() * SLOTS * 8;
  let slab: usize = msgs
    .iter()
    .map(|m| m.payload.len())
    .filter(|&n| n <= SMALL_PAYLOAD)
    .sum();
  let mut data = ptr::null_mut();
  let mut buffer = ptr::null_mut();
  check(
    unsafe { sys::napi_create_arraybuffer(env, meta + slab, &mut data, &mut buffer) },
    "create message buffer",
  )?;
  let data = data.cast::<u8>();
  let mut used = meta;
  // Made room for before the run: its messages index one table.
  let topic_bytes: usize = msgs.iter().map(|m| m.topic.len()).sum();
  let reset =
    topics.index.len() + msgs.len() > MAX_TOPICS || topics.bytes + topic_bytes > MAX_TOPIC_BYTES;
  if reset {
    topics.index.clear();
    topics.bytes = 0;
  }
  let mut fresh: Vec<sys::napi_value> = Vec::new();
  let mut extra: Vec<sys::napi_value> = Vec::new();
  for (i, m) in msgs.iter().enumerate() {
    let topic = match topics.index.get(&*m.topic) {
      Some(&t) => t,
      None => {
        let t = topics.index.len() as u32;
        topics.index.insert(Box::from(&*m.topic), t);
        topics.bytes += m.topic.len();
        fresh.push(args.string(&m.topic)?);
        t
      }
    };
    let mut flags = (m.qos as u8 as u32) << QOS_SHIFT;
    if m.dup {
      flags |= DUP;
    }
    if m.retain {
      flags |= RETAIN;
    }
    let (offset, len) = if m.payload.len() <= SMALL_PAYLOAD {
      // SAFETY: the buffer has room for every small payload after `meta`.
      unsafe { ptr::copy_nonoverlapping(m.payload.as_ptr(), data.add(used), m.payload.len()) };
      used += m.payload.len();
      (used - m.payload.len(), m.payload.len())
    } else {
      flags |= OWN_PAYLOAD;
      extra.push(args.buffer(&m.payload)?);
      (extra.len() - 1, m.payload.len())
    };
    let mut fields = [0f64; SLOTS];
    if m.properties.is_some() {
      flags |= HAS_PROPS;
      extra.push(args.properties(m.properties.as_deref())?);
      fields[PROPS] = (extra.len() - 1) as f64;
    }
    fields[FLAGS] = f64::from(flags);
    fields[TOPIC] = f64::from(topic);
    fields[OFFSET] = offset as f64;
    fields[LENGTH] = len as f64;
    fields[TIME] = m.create_time.unwrap_or(0) as f64;
    for (k, v) in fields.into_iter().enumerate() {
      // SAFETY: slot (i, k) is inside `meta`; V8 need not align the data.
      unsafe {
        ptr::write_unaligned(data.add((i * SLOTS + k) * 8).cast::<f64>(), v);
      }
    }
  }
  Ok([
    args.number(msgs.len() as f64)?,
    buffer,
    args.boolean(reset),
    array(args, &fresh)?,
    array(args, &extra)?,
  ])
}

/// A JS array of `values`, or `undefined` when there are none (the common
/// case).
fn array(args: &Args, values: &[sys::napi_value]) -> Result<sys::napi_value> {
  if values.is_empty() {
    return Ok(args.undefined());
  }
  let a = args.array(values.len())?;
  for (i, v) in values.iter().enumerate() {
    args.set_element(a, i, *v)?;
  }
  Ok(a)
}
