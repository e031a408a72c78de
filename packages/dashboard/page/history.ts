import type { DashboardStatus, HistogramTotals } from "../src/status-types.js";

/** How long the page keeps statuses: the charts' span. */
export const HISTORY_MS = 5 * 60_000;

/**
 * The statuses the page polled in the last minutes, oldest first. The feed sends totals
 * since each process started; rates and percentiles come from the difference between
 * two statuses (a counter that went down -- a worker replaced -- counts as a restart
 * from zero, as Prometheus reads it).
 */
export class History {
  readonly #statuses: DashboardStatus[] = [];

  add(status: DashboardStatus): void {
    this.#statuses.push(status);
    while (this.#statuses.length > 2 && status.time - this.#statuses[0]!.time > HISTORY_MS) this.#statuses.shift();
  }

  get statuses(): readonly DashboardStatus[] {
    return this.#statuses;
  }

  get latest(): DashboardStatus | undefined {
    return this.#statuses.at(-1);
  }

  /** The status about `ms` before the latest (the oldest kept, if none is that old). */
  before(ms: number): DashboardStatus | undefined {
    const latest = this.latest;
    if (!latest) return undefined;
    for (let i = this.#statuses.length - 2; i >= 0; i--) {
      if (latest.time - this.#statuses[i]!.time >= ms) return this.#statuses[i];
    }
    return this.#statuses.length > 1 ? this.#statuses[0] : undefined;
  }
}

/** Increase of a counter between two readings (a decrease: a restart from zero). */
export function increase(before: number | undefined, after: number): number {
  return before === undefined || after < before ? after : after - before;
}

/** The requests a histogram gained between two readings, as a histogram. */
export function histogramIncrease(before: HistogramTotals | undefined, after: HistogramTotals): HistogramTotals {
  if (!before || after.count < before.count) return after;
  const old = new Map(before.buckets);
  return {
    count: after.count - before.count,
    sum: after.sum - before.sum,
    buckets: after.buckets.map(([le, n]) => [le, n - (old.get(le) ?? 0)]),
  };
}

/** Adds histograms with the same bounds (several models' into one). */
export function histogramSum(histograms: readonly HistogramTotals[]): HistogramTotals {
  const buckets = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const h of histograms) {
    count += h.count;
    sum += h.sum;
    for (const [le, n] of h.buckets) buckets.set(le, (buckets.get(le) ?? 0) + n);
  }
  return { count, sum, buckets: [...buckets].sort((a, b) => a[0] - b[0]) };
}

/**
 * The q-quantile of a histogram, interpolated linearly inside its bucket as
 * Prometheus's histogram_quantile does; undefined without observations. Past the
 * last finite bound it answers that bound.
 */
export function quantile(q: number, h: HistogramTotals): number | undefined {
  if (h.count <= 0) return undefined;
  const rank = q * h.count;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of h.buckets) {
    if (cumulative >= rank) {
      const inBucket = cumulative - below;
      return inBucket <= 0 ? le : lower + (le - lower) * ((rank - below) / inBucket);
    }
    lower = le;
    below = cumulative;
  }
  return h.buckets.at(-1)?.[0];
}
