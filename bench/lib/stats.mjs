// Summaries over rounds.

/** Median of the finite numbers in `xs`, or null when there are none. */
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

export function max(xs) {
  const v = xs.filter((x) => Number.isFinite(x))
  return v.length ? Math.max(...v) : null
}
