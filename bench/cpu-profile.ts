import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** A function and the time spent in its own code. */
export interface SelfTime { name: string, where: string, ms: number, share: number }

/** Reads a `.cpuprofile` (from `node --cpu-prof`) and sums self time per function, largest first. */
export function selfTimes (path: string): SelfTime[] {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile
  const byNode = new Map<number, ProfileNode>()
  for (const node of profile.nodes) byNode.set(node.id, node)
  const totals = new Map<string, { name: string, where: string, us: number }>()
  let all = 0
  profile.samples.forEach((id, i) => {
    const frame = byNode.get(id)?.callFrame
    if (frame === undefined) return
    const us = profile.timeDeltas[i] ?? 0
    all += us
    const where = frame.url === '' ? '' : `${frame.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '')}:${frame.lineNumber + 1}`
    const key = `${frame.functionName}@${where}`
    const entry = totals.get(key) ?? { name: frame.functionName || '(anonymous)', where, us: 0 }
    entry.us += us
    totals.set(key, entry)
  })
  return [...totals.values()]
    .sort((a, b) => b.us - a.us)
    .map((entry) => ({ name: entry.name, where: entry.where, ms: entry.us / 1000, share: entry.us / all }))
}
