#!/usr/bin/env node
// Generates config.schema.json, the JSON Schema of the CLI's config file,
// from the TypeScript types (scripts/cli-config.d.ts, which extends
// index.d.ts's ServerConfig, itself generated from src/config.rs). Property
// descriptions are the types' doc comments.
//
//   node scripts/config-schema.mjs          write config.schema.json
//   node scripts/config-schema.mjs --check  exit 1 if it is out of date
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import ts from 'typescript'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const SOURCE = join(ROOT, 'scripts', 'cli-config.d.ts')
export const SCHEMA_FILE = join(ROOT, 'config.schema.json')

export function generate() {
  const program = ts.createProgram([SOURCE], { strict: true, noEmit: true, types: [] })
  // A type error in the source (a key of ServerConfig renamed under
  // CliConfig's feet) must not become a silently wrong schema. Only that
  // file is checked: index.d.ts is checked by `npm run typecheck`.
  const source = program.getSourceFile(SOURCE)
  const errors = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
  if (errors.length)
    throw new Error(
      ts.formatDiagnostics(errors, {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => ROOT,
        getNewLine: () => '\n',
      }),
    )
  const checker = program.getTypeChecker()
  const root = source.statements.find((s) => ts.isInterfaceDeclaration(s) && s.name.text === 'CliConfig')
  const definitions = {}

  const doc = (symbol) => ts.displayPartsToString(symbol.getDocumentationComment(checker)).replace(/\s*\n\s*/g, ' ')

  function object(type) {
    const properties = {}
    const required = []
    for (const p of checker.getPropertiesOfType(type)) {
      const decl = p.valueDeclaration ?? p.declarations?.[0]
      const pt = checker.getTypeOfSymbolAtLocation(p, decl ?? source)
      const description = doc(p)
      properties[p.name] = { ...(description && { description }), ...schemaOf(checker.getNonNullableType(pt), p.name) }
      if (!(p.flags & ts.SymbolFlags.Optional)) required.push(p.name)
    }
    return { type: 'object', properties, ...(required.length && { required }), additionalProperties: false }
  }

  function schemaOf(type, at) {
    if (type.flags & ts.TypeFlags.String) return { type: 'string' }
    if (type.flags & ts.TypeFlags.Number) return { type: 'number' }
    if (type.flags & ts.TypeFlags.Boolean) return { type: 'boolean' }
    if (type.isStringLiteral()) return { const: type.value }
    if (type.isUnion()) {
      // Bytes (Buffer, Uint8Array) cannot be written in JSON: left out.
      const types = type.types.filter(
        (t) => !(t.flags & ts.TypeFlags.Undefined) && !['Buffer', 'Uint8Array'].includes(t.symbol?.name),
      )
      if (types.length === 1) return schemaOf(types[0], at)
      if (types.every((t) => t.isStringLiteral())) return { enum: types.map((t) => t.value) }
      if (types.every((t) => t.flags & ts.TypeFlags.BooleanLiteral)) return { type: 'boolean' }
      return { anyOf: types.map((t) => schemaOf(t, at)) }
    }
    if (type.flags & ts.TypeFlags.Null) return { type: 'null' }
    if (checker.isArrayType(type)) return { type: 'array', items: schemaOf(checker.getTypeArguments(type)[0], at) }
    if (type.flags & ts.TypeFlags.Object) {
      const index = checker.getIndexTypeOfType(type, ts.IndexKind.String)
      if (index && checker.getPropertiesOfType(type).length === 0)
        return { type: 'object', additionalProperties: schemaOf(index, at) }
      // Named interfaces become definitions, referenced wherever used.
      const name = type.aliasSymbol?.name ?? type.symbol?.name
      if (name && name !== '__type' && name !== '__object') {
        if (!(name in definitions)) {
          definitions[name] = {}
          definitions[name] = object(type)
        }
        return { $ref: `#/definitions/${name}` }
      }
      return object(type)
    }
    throw new Error(`config-schema: ${at}: no JSON Schema for TypeScript type ${checker.typeToString(type)}`)
  }

  const top = object(checker.getTypeAtLocation(root.name))
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://unpkg.com/embedded-mqtt-broker/config.schema.json',
    title: 'embedded-mqtt-broker configuration file',
    description: doc(checker.getSymbolAtLocation(root.name)),
    ...top,
    definitions,
  }
}

export const render = () => `${JSON.stringify(generate(), null, 2)}\n`

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = render()
  if (process.argv.includes('--check')) {
    if (readFileSync(SCHEMA_FILE, 'utf8') !== text) {
      process.stderr.write('config.schema.json is out of date: run `npm run schema`\n')
      process.exit(1)
    }
  } else writeFileSync(SCHEMA_FILE, text)
}
