// A broker on port 1883 (or $PORT) with a retained greeting, stopped cleanly
// by Ctrl+C. Run it with `npm run example`, then in another terminal:
//   npx mqtt sub -h 127.0.0.1 -p 1883 -t 'demo/#' -v
//   npx mqtt pub -h 127.0.0.1 -p 1883 -t demo/hello -m 'hi'
import { MqttServer, QoS } from 'embedded-mqtt-broker'

async function main(): Promise<void> {
  const server = new MqttServer()
  const port = Number(process.env.PORT ?? 1883)
  const listeners = await server.start(MqttServer.createBasicConfig(port, '127.0.0.1'))
  for (const l of listeners) console.log(`listening: ${l.url}`)

  // Retained, so subscribers that arrive later still get it.
  await server.publish('demo/server', `up since ${new Date().toISOString()}`, {
    qos: QoS.AtLeastOnce,
    retain: true,
  })
  console.log(`try: npx mqtt sub -h 127.0.0.1 -p ${listeners[0].port} -t 'demo/#' -v`)

  const shutdown = async (): Promise<void> => {
    console.log('stopping...')
    await server.close()
    console.log('stopped')
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

main().catch((err: Error) => {
  console.error(err.message)
  process.exit(1)
})
