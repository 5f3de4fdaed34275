/** The soak's settings, from its command-line flags. */
export interface SoakArgs {
  /** How long events are published, in ms. */
  durationMs: number
  clients: number
  /** Events published per second, all channels together. */
  rate: number
  channels: number
  /** Where the report goes; undefined for `--out none`. */
  out: string | undefined
}

const DEFAULTS = { duration: '10m', clients: '2000', rate: '50', channels: '20', out: 'docs/reliability.md' }

/** `90`, `90s`, `10m` or `1h` in milliseconds. */
export function parseDuration (text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text)
  if (match === null) throw new Error(`--duration: "${text}" is not a duration such as 30s or 10m`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 's'] as number
  return Number(match[1]) * unit
}

function positiveInteger (name: string, text: string): number {
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name}: "${text}" is not a positive integer`)
  return value
}

/** Reads `--name value` and `--name=value` flags; unknown flags are an error. */
export function parseArgs (argv: string[]): SoakArgs {
  const given: Record<string, string> = { ...DEFAULTS }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const match = /^--([a-z]+)(?:=(.*))?$/.exec(arg)
    if (match === null || !((match[1] as string) in DEFAULTS)) throw new Error(`unknown argument "${arg}"; flags: ${Object.keys(DEFAULTS).map((k) => `--${k}`).join(' ')}`)
    const value = match[2] ?? argv[++i]
    if (value === undefined) throw new Error(`${arg} needs a value`)
    given[match[1] as string] = value
  }
  return {
    durationMs: parseDuration(given.duration as string),
    clients: positiveInteger('clients', given.clients as string),
    rate: positiveInteger('rate', given.rate as string),
    channels: positiveInteger('channels', given.channels as string),
    out: given.out === 'none' ? undefined : given.out
  }
}
