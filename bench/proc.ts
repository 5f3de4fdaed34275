import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { RpcClient } from './rpc.js'

function hasCommand (name: string, args: string[]): boolean {
  try {
    execFileSync(name, args, { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Whether processes can be pinned to a core: taskset exists and the machine has at least two. */
export const canPin = availableParallelism() >= 2 && hasCommand('taskset', ['-p', String(process.pid)])

/** The hard limit of open files of this process: what a child's soft limit can be raised to. */
export function openFilesHardLimit (): number {
  const limit = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()
  return limit === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(limit)
}

/** Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
export const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** CPU time (user + system) a process has used so far, in microseconds, read from /proc. */
export function cpuMicros (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return (utime + stime) * 1e6 / clockTicks
}

/** A child process with its IPC channel and its pid. */
export interface Child {
  rpc: RpcClient
  pid: number
  process: ChildProcess
  ready: Record<string, unknown>
}

/**
 * Starts a TypeScript file as a node process with an IPC channel, pinned to
 * `core` when possible, and waits for its `ready` message.
 */
export function startChild (
  file: string, name: string,
  opts: { core: number, nodeArgs?: string[], timeoutMs?: number, env?: Record<string, string>, openFiles?: number }
): Promise<Child> {
  const nodeArgs = ['--import', 'tsx', '--expose-gc', '--no-warnings', ...(opts.nodeArgs ?? []), file]
  const pinned = canPin ? ['taskset', '-c', String(opts.core)] : []
  // The soft limit of open files raised for the child (up to the hard limit, which only a privileged process can raise).
  const limited = opts.openFiles === undefined ? [] : ['prlimit', `--nofile=${opts.openFiles}:`, '--']
  const [command, ...args] = [...limited, ...pinned, process.execPath, ...nodeArgs]
  const child = spawn(command as string, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...opts.env } })
  const rpc = new RpcClient(child, name)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${name} did not start within ${opts.timeoutMs ?? 30_000} ms`))
    }, opts.timeoutMs ?? 30_000)
    child.on('message', (message: Record<string, unknown>) => {
      // A child that cannot start says why before it exits.
      if (message.ready === false && typeof message.error === 'string') {
        clearTimeout(timer)
        reject(new Error(`${name}: ${message.error}`))
        return
      }
      if (message.ready !== true) return
      clearTimeout(timer)
      resolve({ rpc, pid: message.pid as number, process: child, ready: message })
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited before it was ready (${signal ?? `code ${code}`})`))
    })
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

/** Asks a child to stop, and kills it if it has not exited within 5 s. */
export async function stopChild (child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return
  const exited = new Promise((resolve) => child.process.once('exit', resolve))
  child.rpc.call('stop', {}, 5000).catch(() => {})
  const timer = setTimeout(() => child.process.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}
