// The counting handler of bench/subscribe.mjs' peers: it counts every
// message, and reads the clock at the first and at every 256th. A clock
// read per message (performance.now(), a global getter and a clock call)
// cost more than the rest of the handler, on the JavaScript thread that the
// broker's worker threads share two cores with. The rate is taken between
// the first message and the last one timed (`timedCount` messages).
import { writeSync } from 'node:fs'

const EVERY = 256

export function sink() {
  const s = { count: 0, timedCount: 0, firstMs: 0, lastMs: 0 }
  const now = performance.now.bind(performance)
  return {
    count() {
      const n = ++s.count
      if (n === 1) s.firstMs = now()
      else if (n % EVERY === 0) {
        s.lastMs = now()
        s.timedCount = n
      }
    },
    /** The `SINK {json}` line bench/subscribe.mjs reads, written at once. */
    report() {
      writeSync(1, `SINK ${JSON.stringify(s)}\n`)
    },
  }
}
