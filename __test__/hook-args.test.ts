/**
 * The argument objects every hook receives have exactly the keys index.d.ts
 * declares for them: no renamed, missing or extra field. The declarations
 * are read from index.d.ts with the TypeScript compiler; the objects come
 * from real hooks of a real broker, driven by real clients.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import ts from 'typescript'
import { afterEach, describe, expect, it } from 'vitest'

import type * as Addon from '../index'
import {
  MqttServer,
  ROOT,
  cleanup,
  connect,
  endClient,
  inbox,
  listener,
  subscribe,
  track,
  urlFor,
  withDeadline,
} from './helpers'

afterEach(cleanup)

interface Param {
  name: string
  /** The declared type, as written (for messages). */
  text: string
  /** The interface the argument must match. */
  iface: string
  nullable: boolean
}

interface Keys {
  required: string[]
  optional: string[]
}

/** Each hook's parameters and each interface's keys, from index.d.ts. */
function declarations() {
  const file = join(ROOT, 'index.d.ts')
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
  const interfaces = new Map<string, ts.InterfaceDeclaration>()
  src.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n)) interfaces.set(n.name.text, n)
  })
  const keysOf = (name: string): Keys => {
    const decl = interfaces.get(name)
    if (!decl) throw new Error(`index.d.ts declares no interface ${name}`)
    const keys: Keys = { required: [], optional: [] }
    for (const m of decl.members) {
      if (!ts.isPropertySignature(m)) throw new Error(`${name}: unexpected member ${m.getText(src)}`)
      ;(m.questionToken ? keys.optional : keys.required).push(m.name.getText(src))
    }
    return keys
  }
  const hooks = new Map<string, Param[]>()
  for (const m of interfaces.get('HookCallbacks')?.members ?? []) {
    if (!ts.isPropertySignature(m) || !m.type || !ts.isFunctionTypeNode(m.type)) {
      throw new Error(`HookCallbacks: ${m.getText(src)} is not a function property`)
    }
    hooks.set(
      m.name.getText(src),
      m.type.parameters.map((p) => {
        const types: readonly ts.TypeNode[] =
          p.type && ts.isUnionTypeNode(p.type) ? p.type.types : p.type ? [p.type] : []
        const named = types.filter(ts.isTypeReferenceNode).map((t) => t.typeName.getText(src))
        const nullable = types.some((t) => ts.isLiteralTypeNode(t) && t.literal.kind === ts.SyntaxKind.NullKeyword)
        if (named.length !== 1) throw new Error(`${m.name.getText(src)}: cannot read parameter ${p.getText(src)}`)
        return { name: p.name.getText(src), text: p.type!.getText(src), iface: named[0], nullable }
      }),
    )
  }
  return { hooks, keysOf }
}

describe('hook arguments', () => {
  it('have exactly the keys index.d.ts declares, for every hook', async () => {
    const { hooks: declared, keysOf } = declarations()
    expect(declared.size).toBeGreaterThan(0)

    // Every hook records its arguments; decisions allow all but one topic,
    // so that a message is dropped too.
    const calls = new Map<string, unknown[][]>()
    let allCalled: () => void
    const everyHookCalled = new Promise<void>((resolve) => (allCalled = resolve))
    const record =
      (hook: string) =>
      (...args: any[]) => {
        calls.set(hook, [...(calls.get(hook) ?? []), args])
        if (calls.size === declared.size) allCalled()
        if (hook === 'onClientPublishAuthorize') return { allow: args[1].topic !== 'keys/denied' }
        return { allow: true }
      }
    const server = track(new MqttServer())
    server.setHooks(Object.fromEntries([...declared.keys()].map((h) => [h, record(h)])) as Addon.HookCallbacks)
    const url = urlFor((await server.start({ listeners: [listener('tcp')] }))[0])

    const sub = await connect(url, { clientId: 'keys-sub', username: 'u', password: 'p' })
    await subscribe(sub, 'keys/#', 1)
    const box = inbox(sub)
    const pub = await connect(url, { clientId: 'keys-pub', username: 'u', password: 'p' })
    await pub.publishAsync('keys/1', 'x', { qos: 1 })
    await box.next()
    await server.publish('keys/2', 'y') // no session: `session` is null
    await pub.publishAsync('keys/denied', 'z', { qos: 1 }).catch(() => {})
    await sub.unsubscribeAsync('keys/#')
    await endClient(sub)
    // An Authentication Method: onClientEnhancedAuth decides it (answered `{ allow: true }`).
    await endClient(
      await connect(url, { protocolVersion: 5, clientId: 'keys-auth', properties: { authenticationMethod: 'TEST' } }),
    )
    await withDeadline(
      everyHookCalled,
      10_000,
      () => `hooks never called: ${[...declared.keys()].filter((h) => !calls.has(h)).join(', ')}`,
    )

    for (const [hook, params] of declared) {
      for (const args of calls.get(hook)!) {
        expect(args.length, `${hook}: number of arguments`).toBe(params.length)
        params.forEach((p, i) => {
          const what = `${hook} argument ${i} (${p.name}: ${p.text})`
          const arg = args[i]
          if (arg === null) {
            expect(p.nullable, `${what} is null`).toBe(true)
            return
          }
          expect(typeof arg, what).toBe('object')
          const { required, optional } = keysOf(p.iface)
          const keys = Object.keys(arg as object)
          expect(
            keys.filter((k) => !required.includes(k) && !optional.includes(k)),
            `${what}: keys not in ${p.iface}`,
          ).toEqual([])
          expect(
            required.filter((k) => !keys.includes(k)),
            `${what}: keys of ${p.iface} missing`,
          ).toEqual([])
        })
      }
    }
    // The null paths were taken, so they are checked too.
    expect(calls.get('onMessagePublish')!.some(([s]) => s === null)).toBe(true)
    await endClient(pub)
  })
})
