import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { Teardown } from '../helpers/teardown.js'

/** A running app process (`app-process.ts`): its port and a way to publish through it. */
export interface AppProcess {
  child: ChildProcess
  port: number
  publish: (data: unknown, channel?: string) => Promise<string>
  /** Closes the app (`app.close()`, which ends every stream) and waits for the process to exit. */
  close: () => Promise<void>
}

/** Starts `app-process.ts` under tsx with `env` and has it listen; killed in teardown whatever happens. */
export async function startAppProcess (t: Teardown, env: Record<string, string> = {}): Promise<AppProcess> {
  return await (await prepareAppProcess(t, env)).listen()
}

/** Starts `app-process.ts` under tsx with `env`, ready but not yet listening; killed in teardown whatever happens. */
export async function prepareAppProcess (t: Teardown, env: Record<string, string> = {}): Promise<{ listen: () => Promise<AppProcess> }> {
  const file = fileURLToPath(new URL('./app-process.ts', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  t.teardown(() => {
    if (child.exitCode !== null || child.signalCode !== null) return
    // A frozen process ignores everything until it is continued.
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  })
  const exited = new Promise<never>((_resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the app process exited (${code}) before listening`)))
  })
  exited.catch(() => {})
  const next = async (type: string): Promise<{ type: string, port?: number }> => await Promise.race([exited, new Promise<{ type: string, port?: number }>((resolve) => {
    const onMessage = (message: { type: string, port?: number }): void => {
      if (message.type !== type) return
      child.off('message', onMessage)
      resolve(message)
    }
    child.on('message', onMessage)
  })])
  await next('ready')
  return {
    listen: async () => {
      child.send({ type: 'listen' })
      return running(child, (await next('listening')).port as number)
    }
  }
}

function running (child: ChildProcess, port: number): AppProcess {
  let chain = Promise.resolve('')
  return {
    child,
    port,
    // One publish at a time, so each answer belongs to its request.
    publish: async (data, channel) => {
      chain = chain.then(async () => {
        const answer = once(child, 'message') as Promise<[{ type: string, id: string }]>
        child.send({ type: 'publish', data, channel })
        return (await answer)[0].id
      })
      return await chain
    },
    close: async () => {
      const exited = once(child, 'exit')
      child.send({ type: 'close' })
      await exited
    }
  }
}
