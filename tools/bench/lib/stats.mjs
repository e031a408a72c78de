// Statistics over measured samples: one percentile definition for every benchmark.

/** A growable array of doubles: millions of samples (no-op calls) without GC churn. */
export class Samples {
  #data = new Float64Array(1 << 16);
  #length = 0;

  push(x) {
    if (this.#length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.#length++] = x;
  }

  get length() {
    return this.#length;
  }

  /** The samples in ascending order (a view: sorts in place). */
  sorted() {
    return this.#data.subarray(0, this.#length).sort();
  }
}

/** Nearest-rank percentile of an ascending array (fraction in 0..1); NaN when empty. */
export function percentile(sorted, fraction) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(fraction * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function mean(values) {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** count, min, max, mean, median and the 90th/99th percentiles of any samples. */
export function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  return {
    count: sorted.length,
    min: sorted.length ? sorted[0] : NaN,
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
    mean: mean(sorted),
    median: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
  };
}
