// Calls a hook with its argument objects, built here from positional values.
// Compiled once per setHooks() by hook_js.rs. An object literal costs V8 one
// allocation with a known shape; the same object built from native code is
// one slow property write per field, and was most of a notification's cost.
// The order of the functions is the order of `Shape` in hook_js.rs; ALLOW
// comes last.
;(function () {
  'use strict'
  const session = (node, remoteAddr, clientId, username) =>
    clientId === null ? null : { node, remoteAddr, clientId, username }
  const from = (type, node, remoteAddr, clientId, username) => ({ type, node, remoteAddr, clientId, username })
  // A payload comes as a part of a shared ArrayBuffer (buffer, offset, length)
  // or as a Buffer of its own (buffer, null, null).
  const bytes = (b, off, len) => (off === null ? b : Buffer.from(b, off, len))
  const message = (dup, qos, retain, topic, b, off, len, createTime) => ({
    dup,
    qos,
    retain,
    topic,
    payload: bytes(b, off, len),
    createTime,
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
    r.disconnect === undefined
      ? ALLOW
      : r
  return [
    // Session
    (f, n, a, c, u) => f(session(n, a, c, u)),
    // SessionReason
    (f, n, a, c, u, reason) => f(session(n, a, c, u), { reason }),
    // SessionSubscription (a notification, or a decision)
    (f, n, a, c, u, topicFilter, qos) => answer(f(session(n, a, c, u), { topicFilter, qos })),
    // SessionUnsubscription
    (f, n, a, c, u, topicFilter) => f(session(n, a, c, u), { topicFilter }),
    // SessionPublishRequest
    (f, n, a, c, u, topic, b, off, len, qos, retain) =>
      answer(f(session(n, a, c, u), { topic, payload: bytes(b, off, len), qos, retain })),
    // Message: session (or null), origin, message
    (f, n, a, c, u, ft, fn, fa, fc, fu, dup, qos, retain, topic, b, off, len, time) =>
      f(session(n, a, c, u), from(ft, fn, fa, fc, fu), message(dup, qos, retain, topic, b, off, len, time)),
    // DroppedMessage: target (or null), origin, message, reason
    (f, n, a, c, u, ft, fn, fa, fc, fu, dup, qos, retain, topic, b, off, len, time, reason) =>
      f(
        session(n, a, c, u),
        from(ft, fn, fa, fc, fu),
        message(dup, qos, retain, topic, b, off, len, time),
        { reason },
      ),
    ALLOW,
  ]
})()
