/** One group of bars: a figure, with one bar per server. */
export interface BarGroup {
  label: string
  bars: Array<{ series: string, value: number, text: string }>
}

export interface BarChart {
  title: string
  subtitle: string
  /** The servers, in legend order; each keeps its colour in every group. */
  series: string[]
  groups: BarGroup[]
  /** Where the reference line is drawn (1 for ratios to the floor). */
  reference: number
  referenceLabel: string
}

const COLOURS = ['#7f7f7f', '#1f77b4', '#17becf', '#ff7f0e', '#d62728', '#9467bd', '#2ca02c', '#8c564b']
const WIDTH = 920
// Wide enough for the longest group label at 12 px bold.
const LEFT = 260
const RIGHT = 90
const BAR = 13
const GAP = 3
const GROUP_GAP = 18

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/**
 * A horizontal grouped bar chart as plain SVG: groups top to bottom, a bar
 * per series, the value printed at the end of each bar, and a dashed
 * reference line. Bars longer than the axis are cut and marked.
 */
export function renderBarChart (chart: BarChart): string {
  const values = chart.groups.flatMap((group) => group.bars.map((bar) => bar.value)).filter(Number.isFinite)
  // Up to 4× the reference: beyond that the detail near the reference line would be lost.
  const axisMax = Math.min(Math.max(chart.reference * 1.5, ...values) * 1.05, chart.reference * 4)
  const plotWidth = WIDTH - LEFT - RIGHT
  // A figure below zero (memory measured as a difference, within noise) is drawn as no bar.
  const x = (value: number): number => LEFT + Math.max(0, Math.min(value, axisMax)) / axisMax * plotWidth
  const out: string[] = []
  let y = 30
  out.push(`<text x="${WIDTH / 2}" y="${y}" text-anchor="middle" font-size="16" font-weight="bold">${escape(chart.title)}</text>`)
  y += 18
  out.push(`<text x="${WIDTH / 2}" y="${y}" text-anchor="middle" font-size="11" fill="#555">${escape(chart.subtitle)}</text>`)
  y += 22
  // Legend, in one row.
  let lx = LEFT
  chart.series.forEach((name, i) => {
    out.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${COLOURS[i % COLOURS.length]}"/>`)
    out.push(`<text x="${lx + 16}" y="${y}" font-size="12">${escape(name)}</text>`)
    lx += 24 + name.length * 7
  })
  y += 20
  const top = y
  for (const group of chart.groups) {
    out.push(`<text x="${LEFT - 8}" y="${y + 11}" text-anchor="end" font-size="12" font-weight="bold">${escape(group.label)}</text>`)
    for (const bar of group.bars) {
      const colour = COLOURS[chart.series.indexOf(bar.series) % COLOURS.length]
      if (Number.isFinite(bar.value)) {
        const end = x(bar.value)
        out.push(`<rect x="${LEFT}" y="${y}" width="${(end - LEFT).toFixed(1)}" height="${BAR}" fill="${colour}"/>`)
        if (bar.value > axisMax) out.push(`<path d="M${end - 6} ${y} l6 ${BAR / 2} l-6 ${BAR / 2}" fill="#fff"/>`)
        out.push(`<text x="${(end + 4).toFixed(1)}" y="${y + 10}" font-size="11">${escape(bar.text)}</text>`)
      } else {
        out.push(`<text x="${LEFT + 4}" y="${y + 10}" font-size="11" fill="#999">${escape(bar.text)}</text>`)
      }
      y += BAR + GAP
    }
    y += GROUP_GAP
  }
  const refX = x(chart.reference).toFixed(1)
  out.push(`<line x1="${refX}" y1="${top - 6}" x2="${refX}" y2="${y - GROUP_GAP + 4}" stroke="#000" stroke-dasharray="4 3"/>`)
  out.push(`<text x="${refX}" y="${y - GROUP_GAP + 18}" text-anchor="middle" font-size="11">${escape(chart.referenceLabel)}</text>`)
  const height = y + 16
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    ...out,
    '</svg>',
    ''
  ].join('\n')
}
