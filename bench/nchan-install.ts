// Finds nginx and its nchan module, and installs both from Debian's packages when they are missing
// and this process may do so, without ever starting the system's nginx service.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Where distributions put the nchan module; Debian's package uses the first. */
const MODULE_PATHS = [
  '/usr/lib/nginx/modules/ngx_nchan_module.so',
  '/usr/lib64/nginx/modules/ngx_nchan_module.so',
  '/usr/share/nginx/modules/ngx_nchan_module.so',
  '/usr/local/nginx/modules/ngx_nchan_module.so'
]
const NGINX_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin']
const POLICY_RC_D = '/usr/sbin/policy-rc.d'
const APT_TIMEOUT_MS = 10 * 60_000

export type NchanStatus = { ok: true } | { ok: false, reason: string }

/** The nginx binary: on PATH, or in the sbin folders a user's PATH often lacks. */
export function findNginx (): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== ''), ...NGINX_DIRS]
  return dirs.map((dir) => join(dir, 'nginx')).find((file) => existsSync(file))
}

/** The nchan module's shared object, where nginx's packages install it. */
export function findNchanModule (): string | undefined {
  return MODULE_PATHS.find((file) => existsSync(file))
}

/** Why nginx with nchan cannot run now, or undefined when both are there. */
export function missingNchan (): string | undefined {
  const nginx = findNginx() !== undefined
  const module = findNchanModule() !== undefined
  if (nginx && module) return undefined
  const where = [
    nginx ? '' : `nginx on PATH and in ${NGINX_DIRS.join(', ')}`,
    module ? '' : `the module at ${MODULE_PATHS.join(', ')}`
  ].filter((text) => text !== '').join('; ')
  const what = nginx ? 'the nchan module is' : module ? 'nginx is' : 'nginx and the nchan module are'
  return `${what} not installed (looked for ${where})`
}

/** The pids of the nginx processes running now. */
function nginxPids (): Set<number> {
  const pids = new Set<number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'nginx') pids.add(Number(entry))
    } catch {
      // The process ended while the list was read.
    }
  }
  return pids
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function sleepSync (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Stops nginx processes that were not there before: a package's scripts may have started the service. */
function stopNewNginx (before: Set<number>): number[] {
  const started = [...nginxPids()].filter((pid) => !before.has(pid))
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGQUIT')
    } catch {}
  }
  for (let i = 0; i < 50 && started.some(alive); i++) sleepSync(100)
  for (const pid of started.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
  return started
}

function apt (args: string[]): { ok: boolean, output: string } {
  const result = spawnSync('apt-get', args, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: APT_TIMEOUT_MS
  })
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`
  if (result.error !== undefined) return { ok: false, output: `${result.error.message}\n${output}` }
  return { ok: result.status === 0, output }
}

function lastLines (text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ')
}

/** Installs `packages`, running `apt-get update` once when the first try fails (an old or missing package list). */
function aptInstall (packages: string[]): { ok: boolean, output: string } {
  const install = ['install', '-y', '--no-install-recommends', ...packages]
  const first = apt(install)
  if (first.ok) return first
  const update = apt(['update'])
  if (!update.ok) return { ok: false, output: `${first.output}\napt-get update failed: ${update.output}` }
  return apt(install)
}

function hasCommand (name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
}

/**
 * Makes sure nginx and its nchan module are installed: when either is missing, installs them with
 * apt-get (as root only), with service starts refused by a temporary policy-rc.d; any nginx the
 * packages start all the same is stopped. Gives the reason when nchan still cannot run.
 */
export function ensureNchan (): NchanStatus {
  const missing = missingNchan()
  if (missing === undefined) return { ok: true }
  if (process.getuid?.() !== 0) return { ok: false, reason: `${missing}, and only root may install them` }
  if (!hasCommand('apt-get')) return { ok: false, reason: `${missing}, and there is no apt-get to install them with` }

  const nginxMissing = findNginx() === undefined
  const before = nginxPids()
  // Service scripts of the packages ask policy-rc.d first: 101 means "do not start".
  const ownPolicy = !existsSync(POLICY_RC_D)
  if (ownPolicy) writeFileSync(POLICY_RC_D, '#!/bin/sh\nexit 101\n', { mode: 0o755 })
  let packages = nginxMissing ? ['nginx', 'libnginx-mod-nchan'] : ['libnginx-mod-nchan']
  let result: { ok: boolean, output: string }
  try {
    // `nginx` is the server itself from Debian 12 on and a metapackage before; `nginx-light` the small build.
    result = aptInstall(packages)
    if (!result.ok && nginxMissing) {
      packages = ['nginx-light', 'libnginx-mod-nchan']
      result = aptInstall(packages)
    }
  } finally {
    if (ownPolicy) rmSync(POLICY_RC_D, { force: true })
    const stopped = stopNewNginx(before)
    if (stopped.length > 0) process.stderr.write(`nchan install: stopped the nginx the packages started (pids ${stopped.join(', ')})\n`)
  }
  // Installed on a machine with systemd, the service would start at the next boot.
  if (nginxMissing && existsSync('/run/systemd/system')) spawnSync('systemctl', ['disable', 'nginx'], { stdio: 'ignore' })

  const still = missingNchan()
  if (still === undefined) return { ok: true }
  const how = result.ok ? `still, after apt-get installed ${packages.join(' ')}` : 'and installing them with apt-get failed'
  return { ok: false, reason: `${still}, ${how}: ${lastLines(result.output, 5)}` }
}
