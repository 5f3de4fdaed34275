// fastify-push-stream with its in-memory engine, as built in dist/.
import Fastify from 'fastify'
import pushStream from '../../dist/index.js'
import { portOf, runServer } from './harness.js'

await runServer(async () => {
  const app = Fastify()
  // interval 0: no generated messages, only the benchmark's; room for the 10,000-client memory test,
  // or for the scale run's streams.
  await app.register(pushStream, { interval: 0, maxConnections: Number(process.env.BENCH_MAX_CONNECTIONS ?? 20_000) })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    port: portOf(app.server),
    // The in-memory engine's promise is settled already: nothing to wait for.
    publish: (event) => { app.pushStream.publish(event) },
    connections: () => app.pushStream.stats().connections
  }
})
