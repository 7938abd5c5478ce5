// The file `embedded-mqtt-broker -c FILE` reads. Source of config.schema.json
// (scripts/config-schema.mjs): the schema follows start()'s own types, so a
// key added to ServerConfig is in the schema at the next `npm run schema`.
import type { ServerConfig } from '../index'

/**
 * Configuration of the `embedded-mqtt-broker` command: the object
 * `MqttServer.start()` takes, under the same names, plus keys of the CLI's
 * own.
 */
export interface CliConfig extends Omit<ServerConfig, 'listeners'> {
  /** Where editors find this schema; ignored by the broker. */
  $schema?: string
  /**
   * Log level on stderr. `info` logs one line per client connect, disconnect
   * and refused CONNECT; `debug` and `trace` add rmqtt's own logs. The
   * `MQTT_SERVER_LOG` environment variable and `-v` take precedence.
   * Default `warn`.
   */
  logLevel?: 'error' | 'warn' | 'info' | 'debug' | 'trace'
  /**
   * Listeners to open. Optional here: without it, the command-line flags
   * (`--port`, `--host`...) make them, bound to 127.0.0.1 by default.
   */
  listeners?: ServerConfig['listeners']
}

// JSON has no bytes: where start() also takes a Buffer or Uint8Array (TLS
// material), a config file gives a path or PEM text. The schema generator
// loads no @types/node, so Buffer is declared here for it to recognise and
// leave out (an undeclared Buffer would turn the whole union into `any`).
declare global {
  interface Buffer extends Uint8Array {}
}
