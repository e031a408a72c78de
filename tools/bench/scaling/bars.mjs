// The scaling benchmark's bars: the claims the README makes, each PASS, FAIL or SKIP,
// flagged when other processes disturbed the measurements it rests on.
import { formatInt, formatRate, formatRatio } from "../lib/format.mjs";
import { DISTURBED } from "../lib/quiet.mjs";

/** The bars, judged from the results; `N`: the most interpreters measured. */
export function scalingBars(res, N) {
  const out = [];
  // `rows`: the measurements the bar rests on; a bar is flagged when other
  // processes took CPU during any of them (its verdict is then not to be trusted).
  const bar = (name, measured, pass, detail, rows = []) => {
    const noise = Math.max(0, ...rows.map((r) => r?.otherCpu ?? 0));
    const disturbed = noise > DISTURBED;
    out.push({
      bar: name,
      measured,
      status: pass === null ? "SKIP" : pass ? "PASS" : "FAIL",
      detail: detail + (disturbed ? `; DISTURBED: other processes used up to ${noise.toFixed(2)} cores meanwhile` : ""),
      disturbed,
    });
  };
  const find = (rows, method, workers) => rows?.find((r) => r.method === method && r.workers === workers && !r.error);

  const pb = res.workloads["python-bound"];
  if (pb) {
    const c1 = find(pb, "coil", 1);
    const c2 = find(pb, "coil", 2);
    const ratio = c1 && c2 ? c2.callsPerSecond / c1.callsPerSecond : null;
    bar(
      "python-bound: 2 interpreters >= 1.8x of 1",
      ratio,
      ratio === null ? null : ratio >= 1.8,
      c1 && c2 ? `${formatRate(c2.callsPerSecond)} vs ${formatRate(c1.callsPerSecond)} calls/s` : "needs --max-interpreters >= 2",
      [c1, c2],
    );
    const t1 = find(pb, "threads", 1);
    const tN = find(pb, "threads", N);
    const tRatio = t1 && tN && N > 1 ? tN.callsPerSecond / t1.callsPerSecond : null;
    bar(
      `python-bound: 1 interpreter with ${N} threads <= 1.1x of 1 thread`,
      tRatio,
      tRatio === null ? null : tRatio <= 1.1,
      t1 && tN && N > 1
        ? `${formatRate(tN.callsPerSecond)} vs ${formatRate(t1.callsPerSecond)} calls/s` +
            (c1 ? ` (${formatRatio(tN.callsPerSecond / c1.callsPerSecond)} of Coil with 1 interpreter)` : "")
        : "needs --max-interpreters >= 2",
      [t1, tN],
    );
  }
  for (const [name, rows] of Object.entries(res.workloads)) {
    const c1 = find(rows, "coil", 1);
    const p1 = find(rows, "python", 1);
    const shared = find(rows, "python-shared", 1);
    const ratio = c1 && p1 ? c1.callsPerSecond / p1.callsPerSecond : null;
    bar(
      `${name}: Coil 1 interpreter >= 0.95x plain Python`,
      ratio,
      ratio === null ? null : ratio >= 0.95,
      c1 && p1
        ? `${formatRate(c1.callsPerSecond)} vs ${formatRate(p1.callsPerSecond)} calls/s` +
            (shared ? `; plain Python on the shared libpython: ${formatRatio(shared.vsPlain)}` : "")
        : "a row is missing",
      [c1, p1],
    );
  }
  const noop2 = res.noop.find((r) => r.via === "pool.run" && r.interpreters === 2 && r.concurrency > 1 && !r.error);
  bar(
    "no-op: >= 100,000 calls/s with 2 interpreters (pool.run)",
    noop2?.callsPerSecond ?? null,
    noop2 ? noop2.callsPerSecond >= 100_000 : null,
    noop2 ? `${formatRate(noop2.callsPerSecond)} calls/s, ${noop2.concurrency} outstanding` : "needs --max-interpreters >= 2",
    [noop2],
  );
  const s = res.startup;
  bar(
    "15 interpreters importing torch start in one process",
    s?.skipped ? null : s?.seconds ?? null,
    s?.skipped ? null : Boolean(s?.started),
    s?.skipped ? s.reason : s?.started ? `in ${s.seconds.toFixed(1)} s, ${formatInt(s.privateMb)} MB private` : s?.error ?? "did not start",
  );
  return out;
}

export function printBars(list) {
  console.log("\n== bars");
  for (const b of list) {
    const measured =
      b.measured === null
        ? "-"
        : b.bar.startsWith("no-op")
        ? formatRate(b.measured)
        : b.bar.startsWith("15 ")
        ? `${b.measured.toFixed(1)} s`
        : formatRatio(b.measured);
    console.log(`   ${b.status.padEnd(4)}  ${b.bar}: ${measured}  (${b.detail})`);
  }
}
