// The caller of an in-process subscription's handler (subscription_queue.rs),
// compiled after the helpers of hook_args.js. Given native code's callbacks,
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
  // Six numbers per message: flags, topic, payload offset (or index in
  // `extra`), payload length, createTime, properties' index in `extra`.
  // Returns how many messages are done (not waiting for a promise).
  const run = (f, n, buffer, reset, fresh, extra) => {
    if (reset) names.length = 0
    if (fresh !== undefined) for (const t of fresh) names.push(t)
    const meta = new Float64Array(buffer, 0, n * 6)
    let finished = 0
    for (let i = 0, j = 0; i < n; i++, j += 6) {
      // What unsubscribe() left is not delivered, and counts as done.
      if (ended) return finished + n - i
      const flags = meta[j]
      // A large payload is a Buffer of its own in `extra`.
      const own = (flags & 16) !== 0
      const m = message(
        (flags & 1) === 1,
        (flags >> 2) & 3,
        (flags & 2) === 2,
        names[meta[j + 1]],
        own ? extra[meta[j + 2]] : buffer,
        own ? null : meta[j + 2],
        own ? null : meta[j + 3],
        meta[j + 4],
        flags & 32 ? extra[meta[j + 5]] : undefined,
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
