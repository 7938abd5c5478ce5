/**
 * Event-loop behaviour in a real child process: a running server keeps Node
 * alive (like net.Server); once stopped or closed, or after a failed start,
 * nothing of the addon holds the process.
 */
import { createServer } from 'node:net'

import { afterEach, describe, expect, it } from 'vitest'

import { cleanup, connect, inbox, killChildren, nodeEval, ROOT, subscribe, waitFor } from './helpers'

afterEach(async () => {
  killChildren()
  await cleanup()
})

/** How long a child that should exit by itself may take. */
const EXIT_DEADLINE = 10000

/** Child prelude: the package by path, a loopback listener, and a beforeExit tell-tale. */
const PRELUDE = `
const { MqttServer } = require(${JSON.stringify(ROOT)});
const cfg = (port = 0) => ({ listeners: [{ address: '127.0.0.1', port, protocol: 'tcp' }] });
process.on('beforeExit', () => console.log('LOOP-EMPTY'));
const fail = (e) => { console.error('FAILED', e && e.stack || e); process.exitCode = 1; };
`

describe('a child process', () => {
  it('that starts, publishes and stops a server exits by itself with code 0', async () => {
    const run = nodeEval(`${PRELUDE}
      (async () => {
        const server = new MqttServer();
        const [l] = await server.start(cfg());
        console.log('started ' + l.port);
        await server.publish('t', 'hello', { qos: 1, retain: true });
        await server.stop();
        console.log('stopped');
      })().catch(fail);
    `)
    const exit = await run.exit(EXIT_DEADLINE)
    expect(exit.stderr).toBe('')
    expect(exit.code).toBe(0)
    expect(exit.signal).toBeNull()
    expect(exit.stdout).toMatch(/^started \d+\nstopped\nLOOP-EMPTY\n$/)
  })

  it('that closes a server with a connected client exits by itself', async () => {
    const run = nodeEval(`${PRELUDE}
      const mqtt = require('mqtt');
      (async () => {
        const server = new MqttServer();
        const [l] = await server.start(cfg());
        const client = await mqtt.connectAsync('mqtt://127.0.0.1:' + l.port, { reconnectPeriod: 0 });
        const closed = new Promise((r) => client.once('close', r));
        await server.close();
        await closed;
        console.log('client closed');
      })().catch(fail);
    `)
    const exit = await run.exit(EXIT_DEADLINE)
    expect(exit.stderr).toBe('')
    expect(exit.code).toBe(0)
    expect(exit.stdout).toMatch(/^client closed\nLOOP-EMPTY\n$/)
  })

  it('that restarts a server, then stops it, exits by itself', async () => {
    const run = nodeEval(`${PRELUDE}
      (async () => {
        const server = new MqttServer();
        const [l] = await server.start(cfg());
        await server.stop();
        await server.start(cfg(l.port));
        await server.stop();
        console.log('done');
      })().catch(fail);
    `)
    const exit = await run.exit(EXIT_DEADLINE)
    expect(exit.stderr).toBe('')
    expect(exit.code).toBe(0)
    expect(exit.stdout).toBe('done\nLOOP-EMPTY\n')
  })

  it('whose start fails (port in use) exits by itself', async () => {
    const blocker = createServer().listen(0, '127.0.0.1')
    await waitFor(blocker, 'listening')
    try {
      const port = (blocker.address() as { port: number }).port
      const run = nodeEval(`${PRELUDE}
        (async () => {
          const server = new MqttServer();
          try { await server.start(cfg(${port})); console.log('unexpectedly started'); }
          catch (e) { console.log('rejected ' + e.code); }
        })().catch(fail);
      `)
      const exit = await run.exit(EXIT_DEADLINE)
      expect(exit.stderr).toBe('')
      expect(exit.code).toBe(0)
      expect(exit.stdout).toBe('rejected EADDRINUSE\nLOOP-EMPTY\n')
    } finally {
      blocker.close()
    }
  })

  it('whose start fails on a bad config exits by itself', async () => {
    const run = nodeEval(`${PRELUDE}
      new MqttServer().start({ listeners: [] }).catch((e) => console.log('rejected ' + e.code));
    `)
    const exit = await run.exit(EXIT_DEADLINE)
    expect(exit.code).toBe(0)
    expect(exit.stdout).toBe('rejected InvalidArg\nLOOP-EMPTY\n')
  })

  it('that starts a server and does nothing else stays alive and serving', async () => {
    const run = nodeEval(`${PRELUDE}
      new MqttServer().start(cfg()).then(([l]) => console.log('started ' + l.port), fail);
    `)
    const [, port] = await run.stdoutMatch(/started (\d+)\n/)
    // The script has nothing left to do: only the server holds the loop.
    // Positive control that the process is alive and serving: an MQTT round
    // trip through the child's broker.
    const url = `mqtt://127.0.0.1:${port}`
    const sub = await connect(url)
    const box = inbox(sub)
    await subscribe(sub, 'alive', 1)
    const pub = await connect(url)
    await pub.publishAsync('alive', 'yes', { qos: 1 })
    expect((await box.next()).payload.toString()).toBe('yes')
    expect(run.child.exitCode).toBeNull()
    expect(run.child.signalCode).toBeNull()
    expect(run.stdout).not.toMatch(/LOOP-EMPTY/)
    // Now end it from outside.
    run.child.kill('SIGTERM')
    const exit = await run.exit(EXIT_DEADLINE)
    expect(exit.signal).toBe('SIGTERM')
    expect(exit.stdout).toBe(`started ${port}\n`)
  })
})
