// Calls a hook with its argument objects, built here from positional values.
// Compiled once per setHooks() by hook_js.rs. An object literal costs V8 one
// allocation with a known shape; the same object built from native code is
// one slow property write per field, and was most of a notification's cost.
// The order of the functions is the order of `Shape` in hook_js.rs.
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
  return [
    // Session
    (f, n, a, c, u) => f(session(n, a, c, u)),
    // SessionReason
    (f, n, a, c, u, reason) => f(session(n, a, c, u), { reason }),
    // SessionSubscription
    (f, n, a, c, u, topicFilter, qos) => f(session(n, a, c, u), { topicFilter, qos }),
    // SessionUnsubscription
    (f, n, a, c, u, topicFilter) => f(session(n, a, c, u), { topicFilter }),
    // SessionPublishRequest
    (f, n, a, c, u, topic, b, off, len, qos, retain) =>
      f(session(n, a, c, u), { topic, payload: bytes(b, off, len), qos, retain }),
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
  ]
})()
