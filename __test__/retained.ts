/** What a new subscriber gets of the retained messages, for the storage tests. */
import { expect } from 'vitest'

import { connect, inbox, subscribe } from './helpers'

/**
 * The retained messages a new subscriber to `#` gets, by topic, read until
 * `count` arrived (a missing one times out). rmqtt sends them after the
 * SUBACK, in a task of their own, so a message published after the
 * subscription may come first: only a count tells when they are all in.
 */
export async function retained(url: string, count: number): Promise<Record<string, string>> {
  const c = await connect(url)
  const box = inbox(c)
  await subscribe(c, '#', 1)
  const got: Record<string, string> = {}
  for (let i = 0; i < count; i++) {
    const m = await box.next()
    expect(m.packet.retain).toBe(true)
    got[m.topic] = m.payload.toString()
  }
  return got
}
