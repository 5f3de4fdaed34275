import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { build } from '../example/server.js'
import { openStream, request } from './helpers/sse.js'

const root = fileURLToPath(new URL('..', import.meta.url))

/** A port that was free a moment ago: the demo must be told its port to print a usable URL. */
async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** Settles like `promise`, or rejects with `what` once `ms` pass first. */
async function within<T> (promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()} within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Resolves with the URL from the demo's "Open <url> in a browser" log line; rejects when it exits first or after `ms`. */
async function waitForUrl (child: ChildProcess, ms: number): Promise<string> {
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => { stderr += chunk })
  const lines = createInterface({ input: child.stdout! })
  const found = new Promise<string>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => reject(new Error(`the demo exited (${code ?? signal}); stderr: ${stderr}`)))
    lines.on('line', (line) => {
      let msg: unknown
      try {
        msg = JSON.parse(line).msg
      } catch {
        msg = line
      }
      const match = typeof msg === 'string' ? /^Open (http:\/\/\S+) in a browser$/.exec(msg) : null
      if (match !== null) resolve(match[1] as string)
    })
  })
  try {
    return await within(found, ms, () => `no "Open <url>" line; stderr: ${stderr}`)
  } finally {
    lines.close()
  }
}

t.test('the demo app serves the page and streams messages', async (t) => {
  const app = await build({ logger: false, interval: 0 })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const base = `http://127.0.0.1:${port}`

  const page = await request(`${base}/`)
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<[a-z]+ id="state"[^>]* data-state="connecting"/)
  t.match(page.body, /<script[^>]* src="\/app\.js"/)
  t.match(page.body, /<link[^>]* href="\/style\.css"/)

  const script = await request(`${base}/app.js`)
  t.equal(script.status, 200)
  t.match(script.headers['content-type'], /javascript/)
  t.match(script.body, /new EventSource\(/)

  const style = await request(`${base}/style.css`)
  t.equal(style.status, 200)
  t.match(style.headers['content-type'], /^text\/css/)

  const client = await openStream(`${base}/events`)
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  t.match(client.headers['content-type'], /^text\/event-stream/)

  const published = await app.pushStream.generate()
  t.ok(published, 'the source gave a message')
  const [event] = await client.take(1)
  t.equal(event?.id, published?.id)
  t.equal(event?.event, undefined, 'a plain message event')
  const message = JSON.parse(event?.data ?? '')
  t.same(Object.keys(message).sort(), ['id', 'text', 'time'])
  t.match(message, { id: /^[\w-]{21}$/, text: /\w/, time: /^\d{4}-\d\d-\d\dT/ })
  t.equal(new Date(message.time).toISOString(), message.time)
  t.same(published?.data, message)

  await app.pushStream.generate()
  const [, second] = await client.take(2)
  t.not(JSON.parse(second?.data ?? '').text, message.text, 'the source rotates its texts')
})

t.test('npm run demo starts a server that prints its URL and stops on SIGTERM', async (t) => {
  const port = await freePort()
  const child = spawn('node_modules/.bin/tsx', ['example/server.ts'], {
    cwd: root,
    env: demoEnv(port),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  // Whatever fails below, the process must not outlive the test.
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })

  const url = await waitForUrl(child, 20_000)
  t.equal(url, `http://127.0.0.1:${port}/`)

  const page = await request(url)
  t.equal(page.status, 200)
  t.match(page.body, /id="state"/)

  child.kill('SIGTERM')
  const code = await within(exited, 10_000, () => 'the demo did not exit after SIGTERM')
  t.equal(code, 0, 'closes cleanly on SIGTERM')
})

/** The environment for the demo process: where to listen. */
function demoEnv (port: number): NodeJS.ProcessEnv {
  return { ...process.env, PORT: String(port), HOST: '127.0.0.1' }
}
