// `embedded-mqtt-broker passwd [-D] FILE USER`: add, change or delete a user
// of a password file in mosquitto_passwd's format (docs/auth.md).

const { parseArgs } = require('node:util')
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
const { hashPassword } = require('./binding.cjs')

const USAGE = `Usage: embedded-mqtt-broker passwd [-D] FILE USER

Sets USER's password in FILE (created if missing, mode 0600), in the format
mosquitto_passwd writes ($7$, PBKDF2-SHA512). The password is read from the
terminal (asked twice, not echoed) or, when stdin is not a terminal, from its
first line. Nothing else in FILE changes.

Options:
  -D, --delete          remove USER from FILE instead
      --iterations <n>  PBKDF2 iterations (default 101, as mosquitto_passwd)
  -h, --help            show this help`

function fail(message, code = 2) {
  process.stderr.write(`embedded-mqtt-broker passwd: ${message}\n${code === 2 ? `\n${USAGE}\n` : ''}`)
  process.exit(code)
}

/** Reads a line from the terminal without echoing it. */
function askHidden(prompt) {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true })
    process.stderr.write(prompt)
    // Echo nothing of what is typed (readline writes through _writeToOutput).
    rl._writeToOutput = () => {}
    rl.question('', (answer) => {
      rl.close()
      process.stderr.write('\n')
      resolve(answer)
    })
  })
}

async function readPassword() {
  if (process.stdin.isTTY) {
    const first = await askHidden('Password: ')
    const again = await askHidden('Reenter password: ')
    if (first !== again) fail('the passwords do not match', 1)
    return first
  }
  let text = ''
  for await (const chunk of process.stdin) text += chunk
  const line = text.split(/\r?\n/)[0]
  if (line === undefined) fail('no password on stdin', 1)
  return line
}

async function main(argv) {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        delete: { type: 'boolean', short: 'D' },
        iterations: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (e) {
    fail(e.message)
  }
  const { values: o, positionals } = parsed
  if (o.help) return void process.stdout.write(`${USAGE}\n`)
  if (positionals.length !== 2) fail('expected FILE and USER')
  const [file, user] = positionals
  if (user === '' || user.includes(':')) fail('USER must be non-empty and must not contain ":"')
  const iterations = o.iterations === undefined ? undefined : Number(o.iterations)

  let lines = []
  try {
    lines = fs.readFileSync(file, 'utf8').split(/\r?\n/)
    if (lines.at(-1) === '') lines.pop()
  } catch (e) {
    if (e.code !== 'ENOENT' || o.delete) fail(`cannot read "${file}": ${e.message}`, 1)
  }
  const isUser = (l) => l.slice(0, l.indexOf(':')) === user && l.includes(':')
  let entry
  if (!o.delete) {
    try {
      entry = `${user}:${await hashPassword(await readPassword(), { iterations })}`
    } catch (e) {
      fail(e.message.replace(/^options\.iterations/, '--iterations'), 1)
    }
  } else if (!lines.some(isUser)) {
    fail(`no user "${user}" in "${file}"`, 1)
  }
  const at = lines.findIndex(isUser)
  const kept = lines.filter((l) => !isUser(l))
  if (entry) kept.splice(at === -1 ? kept.length : at, 0, entry)

  // Written next to the file and renamed over it: never half a file.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
  try {
    fs.writeFileSync(tmp, kept.length ? `${kept.join('\n')}\n` : '', { mode: 0o600 })
    fs.renameSync(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    fail(`cannot write "${file}": ${e.message}`, 1)
  }
}

module.exports = { main }
