/**
 * Benchmark reports are committed: they must not carry the directories of
 * the machine that ran them.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { expect, it } from 'vitest'

import { portable } from '../bench/lib/report.mjs'
import { ROOT } from './helpers'

it('portable() cuts absolute paths to their file name and leaves the rest', () => {
  expect(portable('existing release build /work/main/x.node (2026-12-04T18:00:54Z)')).toBe(
    'existing release build x.node (2026-12-04T18:00:54Z)',
  )
  expect(portable('given (C:\\Users\\me\\x.node)')).toBe('given (x.node)')
  expect(portable('cargo build --release (40 s), bench/loadgen, 1/2')).toBe(
    'cargo build --release (40 s), bench/loadgen, 1/2',
  )
})

it('no committed benchmark report names a directory of this machine', () => {
  const dir = join(ROOT, 'bench', 'results')
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.md'))) {
    const text = readFileSync(join(dir, f), 'utf8')
    expect(text.match(/(?:^|[\s(])\/(?:home|work|root|tmp|Users|var)\/\S*/gm), f).toBeNull()
    expect(text.includes(ROOT), f).toBe(false)
  }
})
