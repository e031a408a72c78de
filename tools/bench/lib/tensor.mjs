// Model inputs for the benchmarks: the same numbers in every run, so runs compare.
import { Tensor } from "@coil/core";

/** float32 `shape`, uniform in [-1, 1) from a small LCG seeded with `seed`. */
export function deterministicTensor(shape, seed = 1) {
  const t = Tensor.zeros("float32", shape);
  let x = seed >>> 0;
  for (let i = 0; i < t.data.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    t.data[i] = x / 2 ** 31 - 1;
  }
  return t;
}
