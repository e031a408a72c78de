// How numbers look in the benchmarks' tables; a missing value prints as nothing.

const missing = (x) => x == null || Number.isNaN(x);

/** Calls or requests per second: 12,345 (or 12.3 below 100). */
export function formatRate(x) {
  if (missing(x)) return "";
  return x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(1);
}

/** Milliseconds with the digits that matter at that size. */
export function formatMs(x) {
  if (missing(x)) return "";
  return x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}

export function formatInt(x) {
  return missing(x) ? "" : Math.round(x).toLocaleString("en-US");
}

export function formatFixed(x, digits) {
  return missing(x) ? "" : x.toFixed(digits);
}

/** A share (0..1) as a percentage. */
export function formatPercent(x) {
  return missing(x) ? "" : `${Math.round(x * 100)}%`;
}

export function formatRatio(x) {
  return missing(x) ? "" : `${x.toFixed(2)}x`;
}
