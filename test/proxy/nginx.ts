import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Teardown } from '../helpers/teardown.js'

/**
 * Debian's nginx, started by a test in the foreground with a config, prefix,
 * pid file and free port of its own (never the system service), and stopped
 * in teardown.
 */

export const NGINX_PATH = process.env.NGINX_PATH ?? '/usr/sbin/nginx'

/** The `location` of docs/scaling.md (and the README's advice): no buffering, HTTP/1.1 to the app, a long read timeout. */
export function recommendedLocation (appPort: number, readTimeout = '1h'): string {
  return `proxy_pass http://127.0.0.1:${appPort};
      proxy_http_version 1.1;
      proxy_set_header Connection '';
      proxy_buffering off;
      proxy_cache off;
      proxy_read_timeout ${readTimeout};`
}

/** Why nginx cannot run here, or undefined; with BROWSER_REQUIRED=1 or PROXY_REQUIRED=1 a missing nginx fails instead. */
export function nginxMissing (): string | undefined {
  if (existsSync(NGINX_PATH)) return undefined
  const why = `nginx not found at ${NGINX_PATH}: apt-get install -y nginx-light (or nginx), or set NGINX_PATH`
  if (process.env.BROWSER_REQUIRED === '1' || process.env.PROXY_REQUIRED === '1') throw new Error(why)
  return why
}

/** A port nobody listens on now. */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Resolves once something accepts connections on `port`. */
export async function listening (port: number, timeout = 10000): Promise<void> {
  const deadline = Date.now() + timeout
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
      socket.on('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} within ${timeout} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** nginx with `location` (the body of `location / { … }`) in front of an app; resolves with its port once it listens. */
export async function startNginx (t: Teardown, location: string): Promise<{ port: number, errorLog: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'push-stream-nginx-'))
  const port = await freePort()
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `${name}_temp_path ${dir}/${name};`).join('\n  ')
  const errorLog = join(dir, 'error.log')
  await writeFile(join(dir, 'nginx.conf'), `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errorLog} warn;
events { worker_connections 1024; }
http {
  access_log off;
  ${temp}
  server {
    listen 127.0.0.1:${port};
    location / {
      ${location}
    }
  }
}
`)
  const child = spawn(NGINX_PATH, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', errorLog], { stdio: ['ignore', 'inherit', 'inherit'] })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  })
  await listening(port)
  return { port, errorLog }
}
