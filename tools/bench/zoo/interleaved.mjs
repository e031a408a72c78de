// The zoo's like-for-like ratios, from interleaved rounds. This VM's speed drifts with
// its host by more than the differences the ratios measure (plain Python's loop on one
// model: ~1,600 calls/s for a minute, ~2,600 the next), so a ratio of two rates measured
// minutes apart says more about the host than about Coil. Here each group's members
// (plain Python's form and Coil's, all loaded and warm) take turns, one round of each
// after the other, the order rotated each round; a ratio is taken within a round and
// the median over rounds is reported with its range. The vCPUs themselves can differ
// (one ran this loop at 1,600 calls/s while the other ran it at 2,600, for minutes):
// where one thread does the work (one interpreter, one plain process), both sides of
// a round run on the same CPU, the next round on the next CPU.

/** [ratio, numerator member, denominator member]: what the report and the bars read. */
export const RATIOS = [
  ["coil1VsEager", "coil1", "eager"],
  ["coil1x2VsEager", "coil1x2", "eager"],
  ["coil1VsTorchscript", "coil1", "torchscript"],
  ["coilNVsProcesses", "coilN", "processes"],
  ["coil1CompileVsCompile", "coil1Compile", "compile"],
  ["coil1CompileX2VsCompile", "coil1CompileX2", "compile"],
  ["coilNOrtVsOrtNodeBest", "coilNOrt", "onnxruntimeNodeBest"],
  // A reference for the paper's claim: where plain eager itself stands against TorchScript.
  ["eagerVsTorchscript", "eager", "torchscript"],
];

/**
 * The calls a round waits for at least, for a model at `callsPerSecond` (one server's
 * rate): 20 (a rate over 3 calls moves by a third with one call more or less), but no
 * more than ~30 s of them, and never fewer than 3 -- a model of seconds a call (Debian's
 * ViT-B/16) would otherwise spend its whole time budget in the rounds. For `servers`
 * interpreters serving one loop, one more than a multiple of them: the rate is taken
 * between the first and the last completion (lib/closed-loop.mjs, completionRate), which
 * is exact for servers in step only then.
 */
export function roundMinCalls(callsPerSecond, servers = 1) {
  const calls = callsPerSecond > 0 ? Math.max(3, Math.min(20, Math.floor(30 * callsPerSecond))) : 3;
  return servers > 1 ? Math.ceil((calls - 1) / servers) * servers + 1 : calls;
}

/** A rate as the progress lines show it: a decimal below 10 (0.3/s is not 0/s). */
const shownRate = (rate) => (rate < 10 ? rate.toFixed(1) : String(Math.round(rate)));

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/**
 * Runs `rounds` rounds of each group in turn. A group is { name, open(), members,
 * close() }: `open` loads what its members need (its pools) and returns the members,
 * { name: (round) => Promise<{ callsPerSecond }> }, or a string saying why the group cannot
 * run. A member is called with the round's index. Returns { rounds, rates: { member: { median, rounds } }, ratios: { key: {
 * median, min, max, rounds } }, skipped: { group: why } }.
 */
export async function interleavedRounds(groups, rounds, progress = () => {}) {
  const perRound = {}; // member -> rate per round
  const skipped = {};
  for (const group of groups) {
    const members = await group.open();
    try {
      if (typeof members === "string") {
        skipped[group.name] = members;
        continue;
      }
      const names = Object.keys(members);
      for (const name of names) perRound[name] = [];
      for (let round = 0; round < rounds; round++) {
        // Rotated, so that no member is always the one that follows another.
        const order = names.map((_, i) => names[(i + round) % names.length]);
        for (const name of order) {
          const { callsPerSecond } = await members[name](round);
          perRound[name][round] = callsPerSecond;
        }
        progress(`${group.name} round ${round + 1}/${rounds}: ${names.map((n) => `${n} ${shownRate(perRound[n][round])}/s`).join(", ")}`);
      }
    } finally {
      await group.close?.();
    }
  }
  const rates = Object.fromEntries(Object.entries(perRound).map(([name, r]) => [name, { median: median(r), rounds: r }]));
  // The rates' method (lib/closed-loop.mjs, completionRate), so that a report can tell rows measured before it.
  return { rounds, rates, ratios: ratiosOf(perRound), skipped, rateMethod: "between completions" };
}

/** RATIOS from each member's rate per round: a ratio within each round, then its median and range. */
export function ratiosOf(perRound) {
  const ratios = {};
  for (const [key, top, bottom] of RATIOS) {
    if (!perRound[top] || !perRound[bottom]) continue;
    const each = perRound[top].map((x, i) => x / perRound[bottom][i]);
    ratios[key] = { median: median(each), min: Math.min(...each), max: Math.max(...each), rounds: each };
  }
  return ratios;
}
