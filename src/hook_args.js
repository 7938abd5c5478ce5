// The helpers of the hook argument builders (each `HookArgs::JS` in
// hook_js.rs). Compiled once per setHooks() by hook_js.rs, inside a strict
// function that returns the builders, in `Kind::ALL` order, then ALLOW.
const session = (node, remoteAddr, clientId, username) =>
  clientId === null ? null : { node, remoteAddr, clientId, username }
const from = (type, node, remoteAddr, clientId, username) => ({ type, node, remoteAddr, clientId, username })
// A payload comes as a part of a shared ArrayBuffer (buffer, offset, length)
// or as a Buffer of its own (buffer, null, null).
const bytes = (b, off, len) => (off === null ? b : Buffer.from(b, off, len))
// `properties` is undefined when the message has none: one object shape
// for every message, and nothing made for the common case.
const message = (dup, qos, retain, topic, b, off, len, createTime, properties) => ({
  dup,
  qos,
  retain,
  topic,
  payload: bytes(b, off, len),
  createTime,
  properties,
})
// A decision that is exactly `{ allow: true }` comes back as ALLOW, which
// native code takes without reading the fields one by one. ALLOW is a
// private value no hook can return; a function only so that native code
// can hold it the way it holds the builders.
const ALLOW = Object.freeze(function allow() {})
const answer = (r) =>
  typeof r === 'object' &&
  r !== null &&
  r.allow === true &&
  r.reason === undefined &&
  r.qos === undefined &&
  r.code === undefined &&
  r.cacheMs === undefined &&
  r.disconnect === undefined
    ? ALLOW
    : r
