/** A histogram's state: cumulative counts per upper bound, as Prometheus exposes them. */
export interface HistogramSnapshot {
  /** Upper bounds, ascending; +Inf is implicit (its count is `count`). */
  bounds: readonly number[];
  /** Observations <= each bound (cumulative), one per bound. */
  cumulative: number[];
  count: number;
  sum: number;
}

/** Seconds, from 100 µs to 10 s: what a request waits in a queue or runs in a model. */
export const SECONDS_BOUNDS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** Requests (or rows) in one model call. */
export const BATCH_BOUNDS: readonly number[] = Object.freeze([1, 2, 4, 8, 16, 32, 64, 128]);

/** A fixed-bucket histogram; observe() is a few comparisons, cheap enough for every request. */
export class Histogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #count = 0;
  #sum = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.#counts = new Array<number>(bounds.length).fill(0);
  }

  observe(value: number): void {
    this.#count++;
    this.#sum += value;
    const i = this.#bounds.findIndex((b) => value <= b);
    if (i >= 0) this.#counts[i]!++;
  }

  snapshot(): HistogramSnapshot {
    let running = 0;
    return {
      bounds: this.#bounds,
      cumulative: this.#counts.map((c) => (running += c)),
      count: this.#count,
      sum: this.#sum,
    };
  }
}
