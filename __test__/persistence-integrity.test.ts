/**
 * A store on disk that cannot be read whole is refused at start(), never
 * opened empty (src/store_integrity.rs): damage to a store closed by stop()
 * (garbage, truncation, a deleted file), a store not closed by stop() that
 * lost its sentinel key (src/store_sentinel.rs), a store of a newer format,
 * and store data without a format marker.
 */
import {
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { afterEach, describe, expect, it } from 'vitest'

import { type ServerConfig, cleanup, listener, startError, startServer, urlFor } from './helpers'
import { retained } from './retained'

const COUNT = 100
const dirs: string[] = []

afterEach(async () => {
  await cleanup()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function config(path: string): ServerConfig {
  return { listeners: [listener('tcp')], storage: { path } }
}

/** A store closed by stop() holding COUNT retained messages. */
async function storeOf100(): Promise<string> {
  const path = mkdtempSync(join(tmpdir(), 'mqtt-integrity-'))
  dirs.push(path)
  const { server } = await startServer(config(path))
  for (let i = 0; i < COUNT; i++) await server.publish(`r/${i}`, `m${i}`, { qos: 1, retain: true })
  await server.stop()
  return path
}

/** Writes 4 KiB of garbage over the start of `file`. */
function garbage(file: string): void {
  const fd = openSync(file, 'r+')
  writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, 0)
  closeSync(fd)
}

/** How many retained messages a new subscriber gets from a broker on `path` (a missing one times out). */
async function retainedCount(path: string): Promise<number> {
  const { listeners } = await startServer(config(path))
  return Object.keys(await retained(urlFor(listeners[0]), COUNT)).length
}

describe('a store closed by stop() and changed since', () => {
  it('reopens with every message when nothing changed (the control)', async () => {
    const path = await storeOf100()
    expect(await retainedCount(path)).toBe(COUNT)
    // Closed and sealed again by cleanup's close(); still whole.
    await cleanup()
    expect(await retainedCount(path)).toBe(COUNT)
  })

  it.each([
    [
      '4 KiB of garbage over retained/db',
      (db: string) => garbage(db),
      /retained\/db is corrupted \(its checksum changed\)/,
    ],
    [
      'retained/db truncated to 10 bytes',
      (db: string) => truncateSync(db, 10),
      /retained\/db is truncated \(10 of \d+ bytes\)/,
    ],
    ['retained/db deleted', (db: string) => unlinkSync(db), /retained\/db is missing/],
  ])('%s: start() is refused naming the path and the damage, the store left as it is', async (_what, damage, why) => {
    const path = await storeOf100()
    const db = join(path, 'retained', 'db')
    damage(db)
    const before = statSync(db, { throwIfNoEntry: false })?.size
    for (let attempt = 0; attempt < 2; attempt++) {
      const err = await startError(config(path))
      expect((err as Error & { code?: string }).code).toBe('GenericFailure')
      expect(err.message).toMatch(/^storage\.path: ".*mqtt-integrity-[^"]*" was damaged since it was closed: /)
      expect(err.message).toMatch(why)
      expect(err.message).toMatch(/the store was not opened, so nothing in it was lost$/)
      // Not opened: the engine did not "recover" it into an empty store.
      expect(statSync(db, { throwIfNoEntry: false })?.size).toBe(before)
    }
  })
})

describe('a store not closed by stop() (no seal, as a crash leaves it) and wiped since', () => {
  it('opens with every message when nothing changed (the control)', async () => {
    const path = await storeOf100()
    unlinkSync(join(path, 'SEAL'))
    expect(await retainedCount(path)).toBe(COUNT)
  })

  it.each([
    ['4 KiB of garbage over the start of retained/db', (db: string) => garbage(db), /opens empty|cannot be opened/],
    ['retained/db truncated to 10 bytes', (db: string) => truncateSync(db, 10), /opens empty|cannot be opened/],
    ['retained deleted', (db: string) => rmSync(join(db, '..'), { recursive: true }), /is missing/],
  ])('%s: start() is refused (its sentinel key is gone)', async (_what, damage, how) => {
    const path = await storeOf100()
    unlinkSync(join(path, 'SEAL'))
    damage(join(path, 'retained', 'db'))
    const err = await startError(config(path))
    expect(err.message).toMatch(
      /^storage\.path: ".*" lost its database retained: it was not closed by stop\(\), and retained /,
    )
    expect(err.message).toMatch(how)
  })
})

describe('the format marker', () => {
  it('a store of a newer format is refused', async () => {
    const path = await storeOf100()
    const format = join(path, 'FORMAT')
    expect(readFileSync(format, 'utf8')).toBe('embedded-mqtt-broker store\nformat 1\n')
    writeFileSync(format, 'embedded-mqtt-broker store\nformat 2\n')
    const err = await startError(config(path))
    expect(err.message).toMatch(
      /^storage\.path: ".*" is a store of format 2, written by a newer version \(this one reads format 1\)/,
    )
  })

  it('a FORMAT file that is not a marker is refused', async () => {
    const path = await storeOf100()
    writeFileSync(join(path, 'FORMAT'), 'hello')
    const err = await startError(config(path))
    expect(err.message).toMatch(/has a FORMAT file that is not a store format marker/)
  })

  it('store data without a marker (a pre-release store, or the marker deleted) is refused', async () => {
    const path = await storeOf100()
    unlinkSync(join(path, 'FORMAT'))
    const err = await startError(config(path))
    expect(err.message).toMatch(/^storage\.path: ".*" holds store data but no FORMAT file .*move the directory away/)
  })
})
