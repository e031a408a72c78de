// The load generator: a closed loop, each caller awaiting its call before the next.
import { otherCpu, sampleCpu, threadBusy } from "./proc.mjs";
import { percentile, Samples } from "./stats.mjs";

/**
 * The rate of calls that completed at `firstMs` .. `lastMs` (`calls` of them) in a
 * window of `windowMs`: the calls after the first over the time between the first and
 * the last completion. Counting every call over the whole window is biased where a
 * window holds few calls: a window that ends at a completion cuts the calls still
 * running on the other servers (two interpreters in step, 3 calls of 10 s: 3 / 20 s
 * where they complete 2 per 10 s), and its first call began before the window. Between
 * completions, N servers in step, or a single one, give the true rate whenever the calls
 * after the first are a multiple of N (zoo/interleaved.mjs: roundMinCalls).
 */
export function completionRate({ calls, firstMs, lastMs, windowMs }) {
  if (calls >= 2 && lastMs > firstMs) return ((calls - 1) * 1e3) / (lastMs - firstMs);
  return windowMs > 0 ? (calls * 1e3) / windowMs : 0;
}

/**
 * `concurrency` callers run `call(callerIndex)` back to back for warm-up + duration;
 * counts the calls that complete inside the measured window (calls still in flight
 * at its end are not counted), and their rate between the first and the last of
 * those completions (`completionRate`). The window stays open past `durationMs` until
 * `minCalls` calls completed in it, so a model slower than the window (a detector, a
 * batch of 8 on a busy machine) gets a rate over a longer window rather than none. With `tids` (the interpreters' OS threads), also how
 * busy they and Node's main thread were, and how much CPU other processes took.
 */
export async function closedLoop(call, { concurrency, warmupMs = 0, durationMs, minCalls = 3, tids = [] }) {
  const latencies = new Samples();
  const start = performance.now() + warmupMs;
  const end = start + durationMs;
  let windowEnd = end; // later than `end` when the window waited for `minCalls`
  let firstDone = Infinity; // the first and the last counted completion
  let lastDone = -Infinity;
  // CPU use over the measured window: the machine's, Node's main thread's (its tid
  // is the pid) and the interpreters' threads'. Sampled by the first caller that sees
  // the window open or close -- not by timers: under load, completions keep the event
  // loop from reaching its timers for hundreds of ms.
  const sampled = [process.pid, ...tids];
  let cpuBefore;
  let cpuAfter;
  let failure;
  const caller = async (index) => {
    while (failure === undefined) {
      const begin = performance.now();
      if (begin >= start && cpuBefore === undefined) cpuBefore = sampleCpu(sampled);
      if (begin >= end && latencies.length >= minCalls) {
        cpuAfter ??= sampleCpu(sampled);
        return;
      }
      try {
        await call(index);
      } catch (error) {
        failure = error;
        return;
      }
      const done = performance.now();
      if (done >= start && (done <= end || latencies.length < minCalls)) {
        latencies.push(done - begin);
        windowEnd = Math.max(windowEnd, done);
        firstDone = Math.min(firstDone, done);
        lastDone = Math.max(lastDone, done);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => caller(i)));
  if (failure !== undefined) throw failure;
  const sorted = latencies.sorted();
  const busy = cpuBefore && cpuAfter ? threadBusy(cpuBefore, cpuAfter) : [];
  return {
    calls: sorted.length,
    seconds: (windowEnd - start) / 1e3,
    callsPerSecond: completionRate({ calls: sorted.length, firstMs: firstDone, lastMs: lastDone, windowMs: windowEnd - start }),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    otherCpu: cpuBefore && cpuAfter ? otherCpu(cpuBefore, cpuAfter) : null,
    mainThreadBusy: busy[0] ?? null,
    interpreterBusy: busy.length > 1 ? busy.slice(1).reduce((a, b) => a + b, 0) / (busy.length - 1) : null,
  };
}
