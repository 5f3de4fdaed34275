import os from 'node:os'
import type { SoakArgs } from './args.js'

/** The figures of one soak run. */
export interface SoakResult {
  args: SoakArgs
  command: string
  date: string
  published: number
  delivered: number
  lost: number
  duplicated: number
  outOfOrder: number
  resets: number
  reconnects: number
  notCaughtUp: number
  p50: number
  p99: number
  latencySamples: number
  /** Server RSS and heap, sampled during the run. */
  memory: Array<{ atMs: number, rss: number, heapUsed: number, connections: number }>
  wallMs: number
}

const MiB = 1024 * 1024
const minutes = (ms: number): string => ms >= 60_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 1000).toFixed(0)} s`

/** The machine the run was on, as one line. */
export function machine (): string {
  const cpus = os.cpus()
  return `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}`
}

/** True when the run kept the guarantee. */
export function passed (r: SoakResult): boolean {
  return r.lost === 0 && r.duplicated === 0 && r.outOfOrder === 0
}

/** The figures as lines for the terminal. */
export function summary (r: SoakResult): string {
  return [
    `published ${r.published} events, delivered ${r.delivered}, ${r.reconnects} reconnects`,
    `lost ${r.lost}, duplicated ${r.duplicated}, out of order ${r.outOfOrder}, resets ${r.resets}${r.notCaughtUp > 0 ? `, ${r.notCaughtUp} clients not caught up` : ''}`,
    `publish-to-receive latency: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms (${r.latencySamples} live deliveries)`,
    ...r.memory.map((m) => `server at ${minutes(m.atMs)}: RSS ${(m.rss / MiB).toFixed(1)} MiB, heap ${(m.heapUsed / MiB).toFixed(1)} MiB, ${m.connections} streams`),
    passed(r) ? 'PASS' : 'FAIL: events were lost, duplicated or reordered'
  ].join('\n')
}

/** The figures as the markdown of docs/reliability.md. */
export function markdown (r: SoakResult): string {
  const { args } = r
  return `# Reliability: the soak

What the plugin guarantees, and a run that checks it.

## The guarantee

- **At-least-once within history, ordered per channel.** A client that reconnects with \`Last-Event-ID\` while history still holds the events after that id gets exactly the events it missed on its channels, in order, then live events: none lost, none repeated.
- **Beyond history, a \`reset\`.** When the id is older than history (or unknown, malformed, from another process or from the future), nothing is replayed: the client gets one \`reset\` event and then live events. It may have missed events, and it is told so.
- **Not guaranteed:** delivery to a client that stays away longer than history covers (\`history\` events, all channels together); order across different channels as seen by clients subscribed to different sets; anything across processes (each process has its own history unless an adapter shares it); delivery to a client cut for being slow (past \`maxBufferedBytes\`) beyond what it can resume from history.

## What was measured

\`npm run soak\` starts the server (the plugin with its defaults: history 1,000 events, in-memory) in a child process and ${args.clients} clients in the runner's own process, talking over loopback. The server publishes ${args.rate} events per second spread at random over ${args.channels} channels, for ${minutes(args.durationMs)}. Each client subscribes to 1 to 3 random channels with the browser client's handshake, drops its connection at random (on average every 30 s) and reconnects 0 to 2 s later with \`Last-Event-ID\`. Each event carries its channel, its sequence number on that channel and its publish time. At the end publishing stops, every client catches up, and each client's events are checked against the server's own list of what it published after the client's first connection: an event never received is *lost*, one received twice is *duplicated*, and one that arrived after a later event of the same channel is *out of order*. Latency is publish-to-receive for live events only (replayed events are not counted), on one machine's clock. Server RSS is sampled every ${minutes(memoryInterval(args.durationMs))}.

## Result

- Date: ${r.date}
- Machine: ${machine()}
- Node.js ${process.version}
- Command: \`${r.command}\`
- Wall time: ${minutes(r.wallMs)}

| figure | value |
|---|---|
| events published | ${r.published} |
| events delivered | ${r.delivered} |
| reconnects with \`Last-Event-ID\` | ${r.reconnects} |
| **lost** | **${r.lost}** |
| **duplicated** | **${r.duplicated}** |
| **out of order** | **${r.outOfOrder}** |
| \`reset\` events | ${r.resets} |
| latency p50 | ${r.p50.toFixed(1)} ms |
| latency p99 | ${r.p99.toFixed(1)} ms |

Server memory during the run:

| time | RSS | heap used | open streams |
|---|---|---|---|
${r.memory.map((m) => `| ${minutes(m.atMs)} | ${(m.rss / MiB).toFixed(1)} MiB | ${(m.heapUsed / MiB).toFixed(1)} MiB | ${m.connections} |`).join('\n')}

${passed(r) ? 'The run kept the guarantee: nothing lost, duplicated or reordered.' : '**The run did not keep the guarantee.**'}
`
}

/** How often server memory is sampled: every minute, or six times in a shorter run. */
export function memoryInterval (durationMs: number): number {
  return Math.min(60_000, Math.max(1000, Math.floor(durationMs / 6)))
}
