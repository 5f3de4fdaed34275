// nchan, the nginx push module, as a peer: one nginx process, with a configuration of its own, does all
// the work; this process only publishes to it over HTTP and answers the harness. nginx stays on the
// core this process was started on (core 0) and this process moves to core 1, so that measuring nginx
// (its pid is the one reported) counts nginx alone.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { connect, createServer, type Socket } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchEvent } from '../event.js'
import { findNchanModule, findNginx, missingNchan } from '../nchan-install.js'
import { runServer, type ServerMemory } from './harness.js'

function hasCommand (name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

const HOST = '127.0.0.1'
const PUBLISH_PATH = '/pub'
const CHANNEL = 'bench'
// Far above the benchmark's largest run (5,000 streams, 10,000 idle ones) plus the publisher.
const WORKER_CONNECTIONS = 32_768
const OPEN_FILES = 2 * WORKER_CONNECTIONS
// Files nginx opens besides connections: listening socket, logs, nchan's own.
const SPARE_FILES = 64
// Messages a channel keeps: five bursts of 200, and the stall test's steps of 64 many times over.
const BUFFER_LENGTH = 1024
// Room for what a stalled client keeps reserved: 8,192 events of 4 KiB take two 4 KiB slab pages each.
const SHARED_MEMORY = '256M'
const PREFIX_NAME = 'bench-nchan-'
// A folder with no pid file yet is being set up, unless it is this old.
const STALE_MS = 10 * 60_000
const START_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 1500
// Not proc.ts's canPin: pinned to one core already, this process sees one core as available.
const canPin = cpus().length >= 2 && hasCommand('taskset')
/** The cores this process may run on as started (core 0 in the benchmark); nginx runs there. */
const STARTED_ON = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'

/** Why a start failed, in words the runner shows as they are. */
class CannotRun extends Error {
  constructor (reason: string) {
    super(`nchan cannot run here: ${reason}`)
  }
}

/** The `--without-...` modules of this nginx build, whose temp path directives it would reject. */
function modulesLeftOut (nginx: string): Set<string> {
  const version = spawnSync(nginx, ['-V'], { encoding: 'utf8' })
  const configure = `${version.stdout ?? ''}${version.stderr ?? ''}`
  return new Set([...configure.matchAll(/--without-http_(\w+)_module/g)].map((match) => match[1] as string))
}

function config (prefix: string, module: string, port: number, leftOut: Set<string>, files: number): string {
  const temp = ['proxy', 'fastcgi', 'uwsgi', 'scgi']
    .filter((name) => !leftOut.has(name))
    .map((name) => `  ${name}_temp_path ${join(prefix, name)};`)
  return [
    `load_module ${module};`,
    // One process does everything: no master, no worker processes to find.
    'daemon off;',
    'master_process off;',
    'worker_processes 1;',
    // Applied by worker processes only; without a master, nginx is started with this limit where it may be raised.
    `worker_rlimit_nofile ${OPEN_FILES};`,
    `pid ${join(prefix, 'nginx.pid')};`,
    `error_log ${join(prefix, 'error.log')} warn;`,
    `events { worker_connections ${Math.min(WORKER_CONNECTIONS, files - SPARE_FILES)}; }`,
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${join(prefix, 'client_body')};`,
    ...temp,
    // Publish bodies (up to 4 KiB of padding) stay in memory, never in a temp file.
    '  client_body_buffer_size 64k;',
    '  client_max_body_size 1m;',
    // The publishing connection lives as long as the server: no request count or idle time ends it.
    '  keepalive_requests 1000000000;',
    '  keepalive_timeout 1h;',
    `  nchan_shared_memory_size ${SHARED_MEMORY};`,
    '  server {',
    `    listen ${HOST}:${port};`,
    '    location /events {',
    '      nchan_subscriber eventsource;',
    `      nchan_channel_id ${CHANNEL};`,
    // Like every other server here: a new stream gets what is published from then on, no history.
    '      nchan_subscriber_first_message newest;',
    '    }',
    `    location = ${PUBLISH_PATH} {`,
    '      allow 127.0.0.1;',
    '      deny all;',
    '      nchan_publisher http;',
    `      nchan_channel_id ${CHANNEL};`,
    `      nchan_message_buffer_length ${BUFFER_LENGTH};`,
    '      nchan_message_timeout 10m;',
    '    }',
    '  }',
    '}',
    ''
  ].join('\n')
}

const RAISE_FILES = ['prlimit', `--nofile=${OPEN_FILES}:${OPEN_FILES}`]

/**
 * The open files nginx may hold: OPEN_FILES where prlimit may raise the limit (root with
 * CAP_SYS_RESOURCE), else this process's own limit, which node has raised to the hard one.
 */
function openFiles (): { files: number, raise: boolean } {
  if (spawnSync(RAISE_FILES[0] as string, [...RAISE_FILES.slice(1), '--', 'true'], { stdio: 'ignore' }).status === 0) {
    return { files: OPEN_FILES, raise: true }
  }
  const limits = readFileSync('/proc/self/limits', 'utf8')
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1]
  return { files: soft === undefined || soft === 'unlimited' ? OPEN_FILES : Number(soft), raise: false }
}

/** A port nothing listens on now, for nginx to take (it cannot be told to pick one itself). */
function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, HOST, () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

interface ChannelInfo { subscribers: number, messages: number }

/** The channel as nchan reports it (GET on the publisher location); no channel yet means no subscribers. */
function channelInfo (port: number): Promise<ChannelInfo> {
  return new Promise((resolve, reject) => {
    const req = get({ host: HOST, port, path: PUBLISH_PATH, agent: false, headers: { accept: 'application/json' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        if (res.statusCode === 404) resolve({ subscribers: 0, messages: 0 })
        else if (res.statusCode !== 200) reject(new Error(`nchan's channel info answered ${res.statusCode}: ${body}`))
        else resolve(JSON.parse(body) as ChannelInfo)
      })
    })
    req.on('error', reject)
  })
}

interface Pending { resolve: () => void, reject: (err: Error) => void }

/**
 * Publishes by HTTP/1.1 POSTs pipelined on one keep-alive connection: nginx reads and handles the
 * requests of a connection one after the other, so events are published in the order they were
 * written. The POSTs of one tick go out in one write; each promise settles with nchan's answer.
 */
class Publisher {
  readonly #port: number
  #socket: Socket | undefined
  #pending: Pending[] = []
  #received: Buffer = Buffer.alloc(0)
  #corked = false

  constructor (port: number) {
    this.#port = port
  }

  publish (body: string): Promise<void> {
    const socket = this.#socket ?? this.#open()
    if (!this.#corked) {
      this.#corked = true
      socket.cork()
      process.nextTick(() => {
        this.#corked = false
        socket.uncork()
      })
    }
    socket.write(`POST ${PUBLISH_PATH} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
    return new Promise((resolve, reject) => { this.#pending.push({ resolve, reject }) })
  }

  close (): void {
    this.#socket?.destroy()
  }

  #open (): Socket {
    const socket = connect(this.#port, HOST)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      if (this.#socket === socket) this.#fail(new Error('the publishing connection to nginx closed'))
    })
    this.#socket = socket
    return socket
  }

  /** Forgets the connection; the publishes still waiting on it fail, since they may or may not have been made. */
  #fail (err: Error): void {
    const socket = this.#socket
    this.#socket = undefined
    this.#received = Buffer.alloc(0)
    const pending = this.#pending
    this.#pending = []
    for (const call of pending) call.reject(err)
    socket?.destroy()
  }

  #onData (chunk: Buffer): void {
    this.#received = this.#received.length === 0 ? chunk : Buffer.concat([this.#received, chunk])
    for (;;) {
      const headEnd = this.#received.indexOf('\r\n\r\n')
      if (headEnd === -1) return
      const head = this.#received.toString('latin1', 0, headEnd)
      const length = /\r\ncontent-length: *(\d+)/i.exec(head)
      if (length === null) {
        this.#fail(new Error(`nchan answered a publish without a Content-Length: ${head}`))
        return
      }
      const end = headEnd + 4 + Number(length[1])
      if (this.#received.length < end) return
      const statusLine = head.slice(0, head.indexOf('\r\n'))
      const body = this.#received.toString('utf8', headEnd + 4, end)
      this.#received = this.#received.subarray(end)
      const call = this.#pending.shift()
      // 201: delivered to subscribers; 202: queued, no subscriber yet.
      if (/^HTTP\/1\.1 20[12] /.test(statusLine)) call?.resolve()
      else call?.reject(new Error(`nchan refused a publish: ${statusLine} ${body.trim()}`))
    }
  }
}

function rssOf (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)
  if (kb === null) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(kb[1]) * 1024
}

function tail (file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ')
  } catch {
    return ''
  }
}

function exited (child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/**
 * Starts nginx with the configuration written into `prefix`. The command is wrapped so that nginx
 * dies with this process even when that is killed (setpriv's parent-death signal), stays on the cores
 * this process was started on (taskset) and, where `raise` says it may, holds more open files than
 * this process (prlimit): without a master, worker_rlimit_nofile is not applied. Each wrapper execs
 * the next, so the child's pid is nginx's.
 */
function spawnNginx (nginx: string, prefix: string, raise: boolean): { child: ChildProcess, stderr: () => string } {
  let command = [nginx, '-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')]
  if (raise) command = [...RAISE_FILES, '--', ...command]
  // The cores this process was started on, even when it has already moved (a second try at a port).
  if (canPin) command = ['taskset', '-c', STARTED_ON, ...command]
  if (hasCommand('setpriv')) command = ['setpriv', '--pdeathsig', 'KILL', '--', ...command]
  const child = spawn(command[0] as string, command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], detached: false })
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => { stderr += chunk })
  child.on('error', (err) => { stderr += err.message })
  return { child, stderr: () => stderr.trim().replaceAll('\n', ' | ') }
}

/** Waits until nginx answers on `port`; gives the reason when it exits first or does not answer in time. */
async function waitUntilServing (child: ChildProcess, port: number, errorLog: string, stderr: () => string): Promise<string | undefined> {
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (exited(child)) {
      const why = [stderr(), tail(errorLog, 5)].filter((text) => text !== '').join(' | ')
      return `nginx exited at start (${child.signalCode ?? `code ${child.exitCode}`}): ${why}`
    }
    try {
      await channelInfo(port)
      return undefined
    } catch {
      await sleep(20)
    }
  }
  return `nginx did not answer on port ${port} within ${START_TIMEOUT_MS} ms: ${tail(errorLog, 5)}`
}

function isNginx (pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'nginx'
  } catch {
    return false
  }
}

/** Removes the folders of earlier runs whose nginx is gone: a run killed with SIGKILL cannot remove its own. */
function removeStalePrefixes (): void {
  for (const name of readdirSync(tmpdir()).filter((entry) => entry.startsWith(PREFIX_NAME))) {
    const dir = join(tmpdir(), name)
    try {
      const pidFile = join(dir, 'nginx.pid')
      const stale = existsSync(pidFile)
        ? !isNginx(Number(readFileSync(pidFile, 'utf8').trim()))
        : Date.now() - statSync(dir).mtimeMs > STALE_MS
      if (stale) rmSync(dir, { recursive: true, force: true })
    } catch {
      // Another run removed it meanwhile.
    }
  }
}

/** Moves this process, every thread of it, to core 1: nginx, started already, keeps core 0 to itself. */
function moveOffNginxCore (): void {
  if (!canPin) return
  const result = spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`taskset could not move the nchan publisher to core 1: ${result.stderr}`)
}

async function startNchan () {
  const missing = missingNchan()
  if (missing !== undefined) throw new CannotRun(`${missing}; ensureNchan() in bench/nchan-install.ts installs them as root`)
  const nginx = findNginx() as string
  const module = findNchanModule() as string
  const leftOut = modulesLeftOut(nginx)
  const { files, raise } = openFiles()
  removeStalePrefixes()
  const prefix = mkdtempSync(join(tmpdir(), PREFIX_NAME))
  const errorLog = join(prefix, 'error.log')

  let child: ChildProcess | undefined
  const kill = (): void => {
    if (child !== undefined && !exited(child)) child.kill('SIGKILL')
  }
  // However this process ends, nginx ends with it and its folder goes.
  process.on('exit', () => {
    kill()
    rmSync(prefix, { recursive: true, force: true })
  })
  process.on('disconnect', kill)
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => {
      kill()
      process.exit(1)
    })
  }

  let port = 0
  let failure: string | undefined
  // The port is free when chosen but may be taken before nginx binds it: then another one.
  for (let attempt = 0; attempt < 3; attempt++) {
    port = await freePort()
    writeFileSync(join(prefix, 'nginx.conf'), config(prefix, module, port, leftOut, files))
    const started = spawnNginx(nginx, prefix, raise)
    child = started.child
    moveOffNginxCore()
    failure = await waitUntilServing(child, port, errorLog, started.stderr)
    if (failure === undefined) break
    kill()
    if (!failure.includes('Address already in use')) break
  }
  if (failure !== undefined || child?.pid === undefined) throw new CannotRun(failure ?? 'nginx did not start')
  const nginxProcess = child
  const pid = child.pid
  if (!isNginx(pid)) throw new CannotRun(`process ${pid} is not nginx: the command that started it did not exec it`)

  const publisher = new Publisher(port)
  const connections = async (): Promise<number> => (await channelInfo(port)).subscribers
  return {
    port,
    pid,
    publish: (event: BenchEvent) => publisher.publish(JSON.stringify(event)),
    // A tick's events are stamped when they are sent: the next tick's wait until nchan has delivered them.
    awaitEachTick: true,
    connections,
    // nginx has no heap apart from the rest: all of its resident memory counts as held.
    memory: async (): Promise<ServerMemory> => {
      const rss = rssOf(pid)
      return { rss, heapUsed: rss, external: 0, connections: await connections() }
    },
    cleanup: async () => {
      publisher.close()
      if (!exited(nginxProcess)) {
        const gone = new Promise((resolve) => nginxProcess.once('exit', resolve))
        nginxProcess.kill('SIGTERM')
        await Promise.race([gone, sleep(STOP_TIMEOUT_MS)])
        kill()
      }
      if (existsSync(prefix)) rmSync(prefix, { recursive: true, force: true })
    }
  }
}

await runServer(async () => {
  try {
    return await startNchan()
  } catch (err) {
    const message = err instanceof CannotRun ? err.message : `nchan cannot run here: ${(err as Error).stack ?? String(err)}`
    process.stderr.write(`${message}\n`)
    // The reason reaches the parent before this process exits, for a runner that listens for it.
    await new Promise<void>((resolve) => {
      if (process.send === undefined) resolve()
      else process.send({ ready: false, error: message }, () => resolve())
    })
    process.exit(1)
  }
})
