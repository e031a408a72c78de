// A shared machine's other work distorts measurements: wait for it to leave the
// CPUs alone before measuring, and flag the measurements it disturbed anyway.
import { otherCpu, sampleCpu } from "./proc.mjs";
import { progress } from "./log.mjs";

/** Cores' worth of CPU other processes may use during a measurement before it is
 * flagged as disturbed. */
export const DISTURBED = 0.25;
/** ... and under which the machine counts as quiet enough to start one. */
export const QUIET = 0.1;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Cores' worth of CPU other processes use now, over `ms`. */
export async function otherCpuNow(ms = 1000) {
  const before = sampleCpu();
  await sleep(ms);
  return otherCpu(before, sampleCpu());
}

/** Waits, at most `maxSeconds`, until other processes use under QUIET cores. */
export async function waitForQuiet(maxSeconds) {
  if (!maxSeconds) return;
  const deadline = performance.now() + maxSeconds * 1e3;
  let announced = false;
  for (;;) {
    const other = await otherCpuNow();
    if (other < QUIET) return;
    if (performance.now() >= deadline) {
      progress(`    still busy (other processes use ${other.toFixed(2)} cores); measuring anyway`);
      return;
    }
    if (!announced) progress(`    waiting for the machine to quieten (other processes use ${other.toFixed(2)} cores)`);
    announced = true;
  }
}

/** Cores' worth of other CPU, with "!" when that disturbed the measurement. */
export function formatOtherCpu(x) {
  return x == null || Number.isNaN(x) ? "" : `${x.toFixed(2)}${x > DISTURBED ? "!" : ""}`;
}
