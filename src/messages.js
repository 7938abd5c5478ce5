// `server.messages(filter, options)` (messages.rs): an async iterator over a
// subscription whose handler returns a promise that settles when the loop
// takes the message, so a loop that falls behind holds the publishers back.
// Compiled once per call; `messages(...)` returns the iterator.
const messages = (server, filter, options) => {
  const queue = [] // [message, release], not yet taken by the loop
  const waiting = [] // [resolve, reject] of next() calls with nothing to take
  let ended = false
  let failure = null
  let subscription = null
  const finish = () => {
    ended = true
    for (const [resolve, reject] of waiting.splice(0)) {
      if (failure) reject(failure)
      else resolve({ value: undefined, done: true })
    }
  }
  const handler = (message) =>
    new Promise((release) => {
      const next = waiting.shift()
      if (next) {
        next[0]({ value: message, done: false })
        release()
      } else queue.push([message, release])
    })
  // Throws here, synchronously, on a bad argument.
  const subscribed = server.subscribe(filter, handler, options)
  const ready = subscribed.then(
    (s) => {
      subscription = s
      s.closed.then(finish)
    },
    (e) => {
      failure = e
      finish()
      throw e
    },
  )
  // The rejection is the loop's (next() rejects); `ready` need not be awaited.
  ready.catch(() => {})
  const release = () => {
    for (const [, r] of queue.splice(0)) r()
  }
  const iterator = {
    ready,
    [Symbol.asyncIterator]() {
      return this
    },
    next() {
      const item = queue.shift()
      if (item) {
        item[1]()
        return Promise.resolve({ value: item[0], done: false })
      }
      if (failure) return Promise.reject(failure)
      if (ended) return Promise.resolve({ value: undefined, done: true })
      return new Promise((resolve, reject) => waiting.push([resolve, reject]))
    },
    async return() {
      ended = true
      const s = subscription ?? (await subscribed.catch(() => null))
      if (s) await s.unsubscribe()
      release()
      finish()
      return { value: undefined, done: true }
    },
  }
  // `await using it = server.messages(...)`: leaving the scope unsubscribes,
  // as leaving a for-await loop does (Node.js without the symbol: nothing).
  if (typeof Symbol.asyncDispose === 'symbol') {
    iterator[Symbol.asyncDispose] = async () => {
      await iterator.return()
    }
  }
  return iterator
}
