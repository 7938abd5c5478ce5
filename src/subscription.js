// The caller of an in-process subscription's handler (subscription_queue.rs),
// compiled after the helpers of hook_args.js. Given `done`, native code's
// completion callback, returns `deliver`: it makes the message object, calls
// the handler, and returns whether the handler returned a promise (a
// thenable), in which case `done(failed, reason)` runs when it settles.
const deliverer = (done) => {
  const ok = () => done(false)
  const fail = (e) => done(true, e)
  return (f, dup, qos, retain, topic, b, off, len, time, p) => {
    const r = f(message(dup, qos, retain, topic, b, off, len, time, p))
    if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
      r.then(ok, fail)
      return true
    }
    return false
  }
}
