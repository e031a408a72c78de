// The archive benchmark's judgement: what the measurements mean (per-interpreter
// overhead, copies of the weights) and the bars they pass or fail.
import { mb, ms } from "./units.mjs";

const MiB = 1024 * 1024;

/** Figures derived from the runs: overhead per interpreter, the memory ratios. */
export function derive(results, runs) {
  const weights = results.pack.weightsBytes / MiB;
  const base1 = runs["base-1"].memory;
  const base4 = runs["base-4"].memory;
  const perInterpreter = (base4.pss - base1.pss) / 3;
  const derived = {
    weightsMiB: weights,
    nodeOnlyPssMiB: runs["base-4"].memoryBeforePool.pss,
    perInterpreterOverheadMiB: perInterpreter,
  };
  const load4 = runs["load-4"];
  if (load4) {
    // The bar's denominator, two ways: 4 interpreters with nothing loaded measured in
    // the same process just before loading (the cleanest), and built from the parts
    // (Node + 4 x the per-interpreter overhead, from the base-1 / base-4 processes).
    const sameProcess = weights + load4.memoryBeforeLoad.pss;
    const fromParts = weights + base1.pss + 3 * perInterpreter;
    derived.memory = {
      pssLoaded4MiB: load4.memoryAfterInference.pss,
      expectedMiB: sameProcess,
      expectedFromPartsMiB: fromParts,
      ratio: load4.memoryAfterInference.pss / sameProcess,
      ratioFromParts: load4.memoryAfterInference.pss / fromParts,
      addedByModelMiB: load4.memoryAfterInference.pss - load4.memoryBeforeLoad.pss,
      weightsCopies: (load4.memoryAfterInference.pss - load4.memoryBeforeLoad.pss) / weights,
      archiveMappings: load4.archiveMappings,
    };
  }
  const copy4 = runs["copy-4"];
  if (copy4) {
    derived.copy = {
      pssLoaded4MiB: copy4.memoryAfterInference.pss,
      ratio: copy4.memoryAfterInference.pss / (weights + copy4.memoryBeforeLoad.pss),
      addedByModelMiB: copy4.memoryAfterInference.pss - copy4.memoryBeforeLoad.pss,
      weightsCopies: (copy4.memoryAfterInference.pss - copy4.memoryBeforeLoad.pss) / weights,
    };
  }
  return derived;
}

/** The bars from the issue: [{ bar, value, pass }]. */
export function bars(results) {
  const out = [];
  const { derived, runs } = results;
  if (derived.memory) {
    out.push({
      bar: `${mb(results.pack.weightsBytes)} MB of weights in 4 interpreters: Pss <= 1.1 x (weights + 4 interpreters with nothing loaded)`,
      value: `${derived.memory.ratio.toFixed(3)}x (${derived.memory.ratioFromParts.toFixed(3)}x against base-1 + 3 x overhead)`,
      pass: derived.memory.ratio <= 1.1 && derived.memory.ratioFromParts <= 1.1,
    });
  }
  const loads = Object.entries(runs).filter(([name]) => name.startsWith("load-"));
  if (loads.length) {
    // End to end, as loadArchive(path, { eager: true }) does it: the archive's one-time
    // validation (SHA-256 of every record) and mapping, then the unpickling in every
    // interpreter at once. The unpickling alone is the per-interpreter part.
    const endToEnd = (r) => r.openSeconds + r.materializeSeconds;
    const worst = Math.max(...loads.map(([, r]) => endToEnd(r)));
    const worstUnpickle = Math.max(...loads.flatMap(([, r]) => r.loadSecondsPerInterpreter));
    out.push({
      bar: "loading the model into interpreters that have torch (validate + hash + map + unpickle), every pool size: <= 0.5 s",
      value: `${worst.toFixed(3)} s at worst, of which unpickling in an interpreter ${worstUnpickle.toFixed(3)} s at worst`,
      pass: worst <= 0.5,
    });
    const one = loads.find(([name]) => name === "load-1")?.[1];
    const most = loads.reduce((a, b) => (b[1].size > a[1].size ? b : a))[1];
    if (one && most.size > 1) {
      // "Does not grow": n interpreters loading at once take no longer, end to end and
      // each, than one alone -- within 1.5x or 50 ms (timer and scheduling noise at these
      // sizes), with more interpreters than cores.
      const single = one.materializeSeconds;
      const many = Math.max(...most.loadSecondsPerInterpreter);
      const close = (a, b) => a <= Math.max(1.5 * b, b + 0.05);
      out.push({
        bar: `load time does not grow with the interpreters loading it (${most.size} at once vs 1)`,
        value:
          `end to end ${ms(endToEnd(most))} ms for ${most.size} vs ${ms(endToEnd(one))} ms for 1; ` +
          `unpickling ${ms(many)} ms each for ${most.size} vs ${ms(single)} ms for 1`,
        pass: close(endToEnd(most), endToEnd(one)) && close(many, single),
      });
    }
  }
  return out;
}
