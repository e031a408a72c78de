import { describe, expect, it } from "vitest";

import { histogramIncrease, histogramSum, increase, quantile } from "../page/history.js";

// The page's arithmetic over the feed's totals (page/history.ts), run in Node.
describe("the page's rates and quantiles", () => {
  const before = { count: 10, sum: 1, buckets: [[0.001, 4], [0.01, 9], [0.1, 10]] as [number, number][] };
  const after = { count: 30, sum: 1.5, buckets: [[0.001, 14], [0.01, 28], [0.1, 30]] as [number, number][] };

  it("takes a counter that went down as restarted from zero", () => {
    expect(increase(5, 12)).toBe(7);
    expect(increase(12, 5)).toBe(5);
    expect(increase(undefined, 5)).toBe(5);
  });

  it("turns two readings of a histogram into the requests between them", () => {
    expect(histogramIncrease(before, after)).toEqual({ count: 20, sum: 0.5, buckets: [[0.001, 10], [0.01, 19], [0.1, 20]] });
    // A restarted histogram: the new totals are the increase.
    expect(histogramIncrease(after, before)).toBe(before);
    expect(histogramSum([before, after])).toEqual({ count: 40, sum: 2.5, buckets: [[0.001, 18], [0.01, 37], [0.1, 40]] });
  });

  it("interpolates quantiles inside buckets as histogram_quantile does", () => {
    const window = histogramIncrease(before, after); // 10 under 1 ms, 9 in (1, 10] ms, 1 in (10, 100] ms
    expect(quantile(0.5, window)).toBeCloseTo(0.001, 6);
    expect(quantile(0.95, window)).toBeCloseTo(0.01, 6);
    expect(quantile(0.99, window)).toBeCloseTo(0.01 + 0.09 * 0.8, 6);
    expect(quantile(0.25, window)).toBeCloseTo(0.0005, 6);
    expect(quantile(0.5, { count: 0, sum: 0, buckets: [] })).toBeUndefined();
    // Past the last finite bound: that bound.
    expect(quantile(0.99, { count: 10, sum: 100, buckets: [[1, 5]] })).toBe(1);
  });
});
