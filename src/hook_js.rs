//! Hook arguments as JavaScript values, made on the JS thread straight from
//! rmqtt's types.
//!
//! This is the hot path of every notification (a QoS 0 flood means one call
//! per message). Native code only makes the primitive values; the objects
//! are built by small JavaScript functions (each `HookArgs::JS`, with the
//! helpers of `hook_args.js`), called with those values as positional
//! arguments. The strings of a client's id
//! (client id, address, username) are made once per batch and client: strings
//! are immutable in JavaScript, so sharing them between events is invisible.

use std::collections::HashMap;
use std::ptr;

use bytes::Bytes;
use bytestring::ByteString;
use napi::bindgen_prelude::*;
use napi::sys;
use rmqtt::codec::v5::PublishProperties;
use rmqtt::types::{From, FromType, Id, Publish, QoS as RQoS};

use crate::hook_data::AuthenticateRequest;
use crate::hook_table::Kind;
use crate::message_properties;

/// The compiled builders: per `Kind`, the function that makes its argument
/// objects from the values its `HookArgs` made and calls the hook; then
/// `ALLOW` (what a builder returns for a plain `{ allow: true }`).
pub struct Builders {
  fns: Vec<FunctionRef<(), Unknown<'static>>>,
  /// Per `Kind`, the number of values its builder takes (the hook, then the
  /// arguments): `run` checks the values made against it.
  arity: [usize; Kind::ALL.len()],
}

/// Index of `ALLOW` in `Builders::values`.
pub const ALLOW: usize = Kind::ALL.len();

impl Builders {
  /// Runs on the JS thread.
  pub fn compile(env: &Env) -> Result<Self> {
    let builders: Vec<&str> = Kind::ALL.iter().map(|k| k.builder_js()).collect();
    let source = format!(
      "(function () {{\n'use strict'\n{}\nreturn [\n{},\nALLOW]\n}})()",
      include_str!("hook_args.js"),
      builders.join(",\n")
    );
    let list: Array = env.run_script(source)?;
    let mut arity = [0; Kind::ALL.len()];
    let fns = (0..=ALLOW as u32)
      .map(|i| {
        let f = list
          .get::<Function<(), Unknown<'static>>>(i)?
          .ok_or_else(|| Error::from_reason("hook_args.js: missing a builder"))?;
        if let Some(n) = arity.get_mut(i as usize) {
          *n = f.get_named_property::<u32>("length")? as usize;
        }
        f.create_ref()
      })
      .collect::<Result<Vec<_>>>()?;
    Ok(Builders { fns, arity })
  }

  /// The functions (and `ALLOW`) as values of the current handle scope.
  pub fn values(&self, env: &Env) -> Result<[sys::napi_value; ALLOW + 1]> {
    let mut out = [ptr::null_mut(); ALLOW + 1];
    for (slot, f) in out.iter_mut().zip(&self.fns) {
      *slot = f.borrow_back(env)?.raw();
    }
    Ok(out)
  }

  /// How many values the builder of `kind` takes.
  pub fn arity(&self, kind: Kind) -> usize {
    self.arity[kind as usize]
  }
}

/// The arguments of one hook call, as rmqtt's own (cheaply cloned) values.
/// `push` makes their JS values on the JS thread, in the order of the
/// parameters of `JS` after the hook `f`; `JS` builds the argument objects
/// from them and calls `f` (an object literal is one allocation of a known
/// shape, where the same object made from native code costs one slow
/// property write per field). Decisions wrap the call in `answer()`.
/// The helpers `JS` uses (`session`, `from`, `message`, `bytes`, `answer`)
/// are in `hook_args.js`.
pub trait HookArgs {
  const JS: &'static str;
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()>;
  /// Bytes of its payload that go into a scope's slab.
  fn slab_bytes(&self) -> usize {
    0
  }
}

/// The CONNECT being authenticated: `(request)`.
pub struct Authenticate(pub AuthenticateRequest);

impl HookArgs for Authenticate {
  // No answer(): `{ allow: true }` is not the whole answer here (superuser, code).
  const JS: &'static str = "(f, request) => f(request)";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    // Once per connection: napi-rs's own conversion is fine here.
    out.push(unsafe { AuthenticateRequest::to_napi_value(a.env(), self.0)? });
    Ok(())
  }
}

/// `(session)`
pub struct Session(pub Id);

impl HookArgs for Session {
  const JS: &'static str = "(f, n, a, c, u) => f(session(n, a, c, u))";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    a.session(out, Some(&self.0))
  }
}

/// `(session, { reason })`
pub struct SessionReason(pub Id, pub String);

impl HookArgs for SessionReason {
  const JS: &'static str = "(f, n, a, c, u, reason) => f(session(n, a, c, u), { reason })";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    a.session(out, Some(&self.0))?;
    out.push(a.string(&self.1)?);
    Ok(())
  }
}

/// `(session, { topicFilter, qos })`, a notification or a decision.
pub struct SessionSubscription(pub Id, pub String, pub RQoS);

impl HookArgs for SessionSubscription {
  const JS: &'static str =
    "(f, n, a, c, u, topicFilter, qos) => answer(f(session(n, a, c, u), { topicFilter, qos }))";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    a.session(out, Some(&self.0))?;
    out.extend([a.string(&self.1)?, a.qos(self.2)?]);
    Ok(())
  }
}

/// `(session, { topicFilter })`
pub struct SessionUnsubscription(pub Id, pub String);

impl HookArgs for SessionUnsubscription {
  const JS: &'static str =
    "(f, n, a, c, u, topicFilter) => f(session(n, a, c, u), { topicFilter })";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    a.session(out, Some(&self.0))?;
    out.push(a.string(&self.1)?);
    Ok(())
  }
}

/// `(session, { topic, payload, qos, retain })`
pub struct SessionPublishRequest(pub Id, pub Msg);

impl HookArgs for SessionPublishRequest {
  const JS: &'static str = "(f, n, a, c, u, topic, b, off, len, qos, retain, properties) =>
    answer(f(session(n, a, c, u), { topic, payload: bytes(b, off, len), qos, retain, properties }))";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    a.session(out, Some(&self.0))?;
    a.publish_request(out, &self.1)
  }
  fn slab_bytes(&self) -> usize {
    self.1.slab_bytes()
  }
}

/// `(session | null, from, message)`. The bool tells a client's publish
/// (it has a session) from a plugin's.
pub struct Message(pub Option<Id>, pub From, pub bool, pub Msg);

impl HookArgs for Message {
  const JS: &'static str = "(f, n, a, c, u, ft, fn, fa, fc, fu, dup, qos, retain, topic, b, off, len, time, p) =>
    f(session(n, a, c, u), from(ft, fn, fa, fc, fu), message(dup, qos, retain, topic, b, off, len, time, p))";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    a.session(out, self.0.as_ref())?;
    a.from(out, &self.1, self.2)?;
    a.message(out, &self.3)
  }
  fn slab_bytes(&self) -> usize {
    self.3.slab_bytes()
  }
}

/// `(to | null, from, message, { reason })`
pub struct DroppedMessage(pub Option<Id>, pub From, pub Msg, pub String);

impl HookArgs for DroppedMessage {
  const JS: &'static str = "(f, n, a, c, u, ft, fn, fa, fc, fu, dup, qos, retain, topic, b, off, len, time, p, reason) =>
    f(session(n, a, c, u), from(ft, fn, fa, fc, fu), message(dup, qos, retain, topic, b, off, len, time, p), { reason })";
  fn push(self, a: &mut Args, out: &mut Vec<sys::napi_value>) -> Result<()> {
    a.session(out, self.0.as_ref())?;
    a.from(out, &self.1, false)?;
    a.message(out, &self.2)?;
    out.push(a.string(&self.3)?);
    Ok(())
  }
  fn slab_bytes(&self) -> usize {
    self.2.slab_bytes()
  }
}

/// What hooks see of a message; without MQTT 5 properties it holds no
/// allocation of its own (the topic and payload are shared with rmqtt), so
/// queueing it is cheap.
pub struct Msg {
  pub dup: bool,
  pub qos: RQoS,
  pub retain: bool,
  pub topic: ByteString,
  pub payload: Bytes,
  pub create_time: Option<i64>,
  /// Only when the message has some (`message_properties::of`).
  pub properties: Option<Box<PublishProperties>>,
}

impl Msg {
  /// Bytes this message takes in a scope's payload slab.
  pub fn slab_bytes(&self) -> usize {
    if self.payload.len() <= SMALL_PAYLOAD {
      self.payload.len()
    } else {
      0
    }
  }

  pub fn of(p: &Publish) -> Self {
    Msg {
      dup: p.dup,
      qos: p.qos,
      retain: p.retain,
      topic: p.topic.clone(),
      payload: p.payload.clone(),
      create_time: p.create_time,
      properties: message_properties::of(p.properties.as_ref(), p.create_time),
    }
  }
}

pub fn check(status: sys::napi_status, what: &str) -> Result<()> {
  if status == sys::Status::napi_ok {
    Ok(())
  } else {
    Err(Error::new(
      Status::from(status),
      format!("building hook arguments: {what} failed"),
    ))
  }
}

/// The strings of one client id, shared by all its events in a batch.
#[derive(Clone, Copy)]
struct IdStrings {
  client_id: sys::napi_value,
  remote_addr: sys::napi_value,
  username: sys::napi_value,
}

/// Makes the argument values of one batch of hook calls. Everything it
/// makes lives in the handle scope current at the time.
pub struct Args {
  env: sys::napi_env,
  null: sys::napi_value,
  undefined: sys::napi_value,
  yes: sys::napi_value,
  no: sys::napi_value,
  /// Keyed by the address of rmqtt's shared `_Id`: the events of a batch
  /// keep their ids alive, so an address cannot be reused while cached.
  ids: HashMap<usize, IdStrings>,
  types: HashMap<&'static str, sys::napi_value>,
  /// One ArrayBuffer per scope that small payloads are copied into; each
  /// payload is a Buffer view of its part (made in JavaScript). One
  /// allocation per scope instead of one per message, as Node's own Buffer
  /// pool does.
  slab: Slab,
}

/// Payloads up to this size share the scope's slab (Node pools below 4 KiB too).
pub const SMALL_PAYLOAD: usize = 4096;

struct Slab {
  buffer: sys::napi_value,
  data: *mut u8,
  len: usize,
  used: usize,
}

impl Slab {
  const EMPTY: Slab = Slab {
    buffer: ptr::null_mut(),
    data: ptr::null_mut(),
    len: 0,
    used: 0,
  };
}

impl Args {
  /// # Safety
  /// `env` must be the env of the current JS thread callback.
  pub unsafe fn new(env: sys::napi_env) -> Result<Self> {
    let mut null = ptr::null_mut();
    let mut undefined = ptr::null_mut();
    let mut yes = ptr::null_mut();
    let mut no = ptr::null_mut();
    check(sys::napi_get_null(env, &mut null), "null")?;
    check(sys::napi_get_undefined(env, &mut undefined), "undefined")?;
    check(sys::napi_get_boolean(env, true, &mut yes), "true")?;
    check(sys::napi_get_boolean(env, false, &mut no), "false")?;
    Ok(Args {
      env,
      null,
      undefined,
      yes,
      no,
      ids: HashMap::new(),
      types: HashMap::new(),
      slab: Slab::EMPTY,
    })
  }

  /// Forgets cached values: call whenever the handle scope they live in closes.
  pub fn forget(&mut self) {
    self.ids.clear();
    self.types.clear();
    self.slab = Slab::EMPTY;
  }

  /// Makes the slab for the small payloads of the events about to run.
  pub fn reserve(&mut self, bytes: usize) -> Result<()> {
    let mut data = ptr::null_mut();
    let mut buffer = ptr::null_mut();
    if bytes > 0 {
      check(
        unsafe { sys::napi_create_arraybuffer(self.env, bytes, &mut data, &mut buffer) },
        "create payload slab",
      )?;
    }
    self.slab = Slab {
      buffer,
      data: data.cast(),
      len: bytes,
      used: 0,
    };
    Ok(())
  }

  /// A payload as three values for `bytes()` in hook_args.js: a part of the
  /// slab (slab, offset, length), or a Buffer of its own (buffer, null, null).
  fn payload(&mut self, out: &mut Vec<sys::napi_value>, bytes: &[u8]) -> Result<()> {
    let slab = &mut self.slab;
    if bytes.len() <= SMALL_PAYLOAD && slab.len - slab.used >= bytes.len() && !slab.data.is_null() {
      let offset = slab.used;
      // SAFETY: the slab is `len` bytes long and lives in the current scope.
      unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), slab.data.add(offset), bytes.len()) };
      slab.used += bytes.len();
      let buffer = slab.buffer;
      out.extend([
        buffer,
        self.number(offset as f64)?,
        self.number(bytes.len() as f64)?,
      ]);
    } else {
      out.extend([self.buffer(bytes)?, self.null, self.null]);
    }
    Ok(())
  }

  pub fn env(&self) -> sys::napi_env {
    self.env
  }

  pub fn undefined(&self) -> sys::napi_value {
    self.undefined
  }

  pub fn string(&self, s: &str) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    check(
      unsafe {
        sys::napi_create_string_utf8(self.env, s.as_ptr().cast(), s.len() as isize, &mut v)
      },
      "create string",
    )?;
    Ok(v)
  }

  pub fn number(&self, n: f64) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    check(
      unsafe { sys::napi_create_double(self.env, n, &mut v) },
      "number",
    )?;
    Ok(v)
  }

  pub fn boolean(&self, b: bool) -> sys::napi_value {
    if b {
      self.yes
    } else {
      self.no
    }
  }

  pub fn qos(&self, q: RQoS) -> Result<sys::napi_value> {
    self.number(q as u8 as f64)
  }

  /// A copy of the bytes: an external buffer would need a finalizer per
  /// message (and Electron forbids them).
  pub fn buffer(&self, bytes: &[u8]) -> Result<sys::napi_value> {
    let mut data = ptr::null_mut();
    let mut v = ptr::null_mut();
    check(
      unsafe {
        sys::napi_create_buffer_copy(
          self.env,
          bytes.len(),
          bytes.as_ptr().cast(),
          &mut data,
          &mut v,
        )
      },
      "create buffer",
    )?;
    Ok(v)
  }

  fn id_strings(&mut self, id: &Id) -> Result<IdStrings> {
    let key = ptr::from_ref::<rmqtt::types::_Id>(id) as usize;
    if let Some(s) = self.ids.get(&key) {
      return Ok(*s);
    }
    let s = IdStrings {
      client_id: self.string(&id.client_id)?,
      remote_addr: match id.remote_addr {
        Some(a) => self.string(&a.to_string())?,
        None => self.null,
      },
      username: match &id.username {
        Some(u) => self.string(u)?,
        None => self.null,
      },
    };
    self.ids.insert(key, s);
    Ok(s)
  }

  /// `SessionInfo | null`: node, remoteAddr, clientId (null for no session), username.
  pub fn session(&mut self, out: &mut Vec<sys::napi_value>, id: Option<&Id>) -> Result<()> {
    match id {
      Some(id) => {
        let s = self.id_strings(id)?;
        out.extend([
          self.number(id.node_id as f64)?,
          s.remote_addr,
          s.client_id,
          s.username,
        ]);
      }
      None => out.extend([self.null; 4]),
    }
    Ok(())
  }

  /// `MessageFrom`: type, node, remoteAddr, clientId, username.
  /// `has_session` tells a client's publish from a plugin's.
  pub fn from(
    &mut self,
    out: &mut Vec<sys::napi_value>,
    f: &From,
    has_session: bool,
  ) -> Result<()> {
    let typ = from_type(f, has_session);
    let typ = match self.types.get(typ) {
      Some(v) => *v,
      None => {
        let v = self.string(typ)?;
        self.types.insert(typ, v);
        v
      }
    };
    let s = self.id_strings(&f.id)?;
    out.extend([
      typ,
      self.number(f.id.node_id as f64)?,
      s.remote_addr,
      s.client_id,
      s.username,
    ]);
    Ok(())
  }

  /// `MessageInfo`: dup, qos, retain, topic, payload, createTime, properties.
  pub fn message(&mut self, out: &mut Vec<sys::napi_value>, m: &Msg) -> Result<()> {
    out.extend([
      self.boolean(m.dup),
      self.qos(m.qos)?,
      self.boolean(m.retain),
      self.string(&m.topic)?,
    ]);
    self.payload(out, &m.payload)?;
    out.extend([
      self.number(m.create_time.unwrap_or(0) as f64)?,
      self.properties(m.properties.as_deref())?,
    ]);
    Ok(())
  }

  /// `PublishRequest`: topic, payload, qos, retain, properties.
  pub fn publish_request(&mut self, out: &mut Vec<sys::napi_value>, m: &Msg) -> Result<()> {
    out.push(self.string(&m.topic)?);
    self.payload(out, &m.payload)?;
    out.extend([
      self.qos(m.qos)?,
      self.boolean(m.retain),
      self.properties(m.properties.as_deref())?,
    ]);
    Ok(())
  }

  /// `MessageProperties`, or `undefined` (the common case, which makes
  /// nothing). Made here field by field: only messages that carry
  /// properties pay for it, and only the fields present become keys.
  pub fn properties(&self, p: Option<&PublishProperties>) -> Result<sys::napi_value> {
    let Some(p) = p else {
      return Ok(self.undefined);
    };
    let object = self.object()?;
    if !p.user_properties.is_empty() {
      let pairs = self.array(p.user_properties.len())?;
      for (i, (k, v)) in p.user_properties.iter().enumerate() {
        let pair = self.array(2)?;
        self.set_element(pair, 0, self.string(k)?)?;
        self.set_element(pair, 1, self.string(v)?)?;
        self.set_element(pairs, i, pair)?;
      }
      self.set(object, c"userProperties", pairs)?;
    }
    if let Some(t) = &p.response_topic {
      self.set(object, c"responseTopic", self.string(t)?)?;
    }
    if let Some(d) = &p.correlation_data {
      self.set(object, c"correlationData", self.buffer(d)?)?;
    }
    if let Some(t) = &p.content_type {
      self.set(object, c"contentType", self.string(t)?)?;
    }
    if p.is_utf8_payload {
      self.set(object, c"payloadFormatIndicator", self.yes)?;
    }
    if let Some(i) = p.message_expiry_interval {
      self.set(
        object,
        c"messageExpiryInterval",
        self.number(f64::from(i.get()))?,
      )?;
    }
    if !p.subscription_ids.is_empty() {
      let ids = self.array(p.subscription_ids.len())?;
      for (i, id) in p.subscription_ids.iter().enumerate() {
        self.set_element(ids, i, self.number(f64::from(id.get()))?)?;
      }
      self.set(object, c"subscriptionIdentifiers", ids)?;
    }
    Ok(object)
  }

  fn object(&self) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    check(
      unsafe { sys::napi_create_object(self.env, &mut v) },
      "create object",
    )?;
    Ok(v)
  }

  pub fn array(&self, len: usize) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    check(
      unsafe { sys::napi_create_array_with_length(self.env, len, &mut v) },
      "create array",
    )?;
    Ok(v)
  }

  fn set(
    &self,
    object: sys::napi_value,
    key: &std::ffi::CStr,
    value: sys::napi_value,
  ) -> Result<()> {
    check(
      unsafe { sys::napi_set_named_property(self.env, object, key.as_ptr(), value) },
      "set property",
    )
  }

  pub fn set_element(
    &self,
    array: sys::napi_value,
    i: usize,
    value: sys::napi_value,
  ) -> Result<()> {
    check(
      unsafe { sys::napi_set_element(self.env, array, i as u32, value) },
      "set element",
    )
  }
}

/// `MessageFrom.type`.
pub fn from_type(f: &From, has_session: bool) -> &'static str {
  match f.typ() {
    // rmqtt tags client publishes as "custom"; tell them apart by the session.
    FromType::Custom if has_session || f.id.remote_addr.is_some() => "client",
    FromType::Custom => "custom",
    FromType::Admin => "admin",
    FromType::System => "system",
    FromType::LastWill => "lastwill",
    FromType::Bridge => "bridge",
  }
}
