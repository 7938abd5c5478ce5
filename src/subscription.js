// The caller of an in-process subscription's handler (subscription_queue.rs),
// compiled after the helpers of hook_args.js and the layout constants of
// subscription_batch.rs (SLOTS, FLAGS, TOPIC, ...). Given native code's callbacks,
// `done(failed, reason)` (a promise the handler returned has settled) and
// `threw(error)`, returns `run`, which delivers a run of messages laid out by
// subscription_batch.rs, and `end`, which stops a run under way (the handler
// called unsubscribe()).
const deliverer = (done, threw) => {
  const ok = () => done(false)
  const fail = (e) => done(true, e)
  // Topic strings by index; native code knows which ones are here.
  const names = []
  let ended = false
  // SLOTS numbers per message (subscription_batch.rs). Returns how many
  // messages are done (not waiting for a promise).
  const run = (f, n, buffer, reset, fresh, extra) => {
    if (reset) names.length = 0
    if (fresh !== undefined) for (const t of fresh) names.push(t)
    const meta = new Float64Array(buffer, 0, n * SLOTS)
    let finished = 0
    for (let i = 0, j = 0; i < n; i++, j += SLOTS) {
      // What unsubscribe() left is not delivered, and counts as done.
      if (ended) return finished + n - i
      const flags = meta[j + FLAGS]
      // A large payload is a Buffer of its own in `extra`.
      const own = (flags & OWN_PAYLOAD) !== 0
      const m = message(
        (flags & DUP) !== 0,
        (flags >> QOS_SHIFT) & 3,
        (flags & RETAIN) !== 0,
        names[meta[j + TOPIC]],
        own ? extra[meta[j + OFFSET]] : buffer,
        own ? null : meta[j + OFFSET],
        own ? null : meta[j + LENGTH],
        meta[j + TIME],
        flags & HAS_PROPS ? extra[meta[j + PROPS]] : undefined,
      )
      try {
        const r = f(m)
        if (r !== null && typeof r === 'object' && typeof r.then === 'function') r.then(ok, fail)
        else finished++
      } catch (e) {
        threw(e)
        finished++
      }
    }
    return finished
  }
  return {
    run,
    end: () => {
      ended = true
    },
  }
}
