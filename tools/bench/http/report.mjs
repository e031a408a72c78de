// The HTTP benchmark's summary table and its bar.
import { formatFixed } from "../lib/format.mjs";
import { summarize } from "../lib/stats.mjs";
import { printTable } from "../lib/table.mjs";

/** One row per connection count and target: the mean over its rounds. */
export function summarizeRuns(allRuns, targets, concurrency) {
  const summary = [];
  for (const c of concurrency) {
    for (const t of targets) {
      const runs = allRuns.filter((r) => r.target === t.key && r.connections === c);
      const over = (field) => summarize(runs.map((r) => r[field]));
      const total = (field) => runs.reduce((a, r) => a + r[field], 0);
      summary.push({
        target: t.key,
        connections: c,
        requestsPerSecond: over("requestsPerSecond").mean,
        p50Ms: over("p50Ms").mean,
        p90Ms: over("p90Ms").mean,
        p99Ms: over("p99Ms").mean,
        worstP99Ms: over("p99Ms").max,
        errors: total("errors"),
        ...(t.key !== "fastapi" && { cpuMsPerRequest: (1000 * total("coilProcessCpuSeconds")) / total("requests") }),
        perRound: runs.map((r) => r.requestsPerSecond),
      });
    }
  }
  return summary;
}

export function printSummary(summary, targets) {
  const labels = Object.fromEntries(targets.map((t) => [t.key, t.label]));
  printTable(
    [
      ["server", (r) => labels[r.target], "l"],
      ["conns", (r) => r.connections],
      ["req/s", (r) => formatFixed(r.requestsPerSecond, 0)],
      ["p50 ms", (r) => formatFixed(r.p50Ms, 2)],
      ["p90 ms", (r) => formatFixed(r.p90Ms, 2)],
      ["p99 ms", (r) => formatFixed(r.p99Ms, 2)],
      ["errors", (r) => r.errors],
      ["(req/s per round)", (r) => `(${r.perRound.map((x) => x.toFixed(0)).join(", ")})`, "l"],
    ],
    summary,
  );
}

/** The bar: Coil >= 2x FastAPI's req/s with a lower p99 and no errors, at every
 * concurrency (Coil with batching is printed too, not counted). Prints each row. */
export function judge(summary, { interpreters, workers, concurrency }) {
  console.log(
    `\nbar: Coil (${interpreters} interpreters) >= 2x FastAPI+uvicorn (${workers} workers) req/s, and lower p99, at every concurrency`,
  );
  const rows = [];
  let pass = true;
  for (const c of concurrency) {
    const f = summary.find((r) => r.target === "fastapi" && r.connections === c);
    for (const key of ["coil", "coil-batched"]) {
      const k = summary.find((r) => r.target === key && r.connections === c);
      if (!k) continue;
      const ratio = k.requestsPerSecond / f.requestsPerSecond;
      const ok = ratio >= 2 && k.p99Ms < f.p99Ms && k.errors === 0;
      if (key === "coil") pass &&= ok;
      rows.push({ target: key, connections: c, ratio, coilP99Ms: k.p99Ms, fastapiP99Ms: f.p99Ms, pass: ok, counted: key === "coil" });
      console.log(
        `   c=${String(c).padEnd(3)} ${key.padEnd(13)} ${ratio.toFixed(2)}x req/s (${ratio >= 2 ? "ok" : "< 2x"}), ` +
          `p99 ${k.p99Ms.toFixed(2)} vs ${f.p99Ms.toFixed(2)} ms (${k.p99Ms < f.p99Ms ? "lower" : "NOT lower"})` +
          `${k.errors ? `, ${k.errors} errors` : ""}  ${ok ? "PASS" : "FAIL"}${key === "coil" ? "" : "  (extra row, not the bar)"}`,
      );
    }
  }
  console.log(`   => ${pass ? "PASS" : "FAIL"}\n`);
  return { pass, rows };
}
