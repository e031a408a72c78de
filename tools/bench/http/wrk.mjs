// wrk, the HTTP load generator of the HTTP benchmark, and what it reports.
import { join } from "node:path";

import { runCommand } from "../lib/child.mjs";
import { BENCH_DIR } from "../lib/paths.mjs";

/** wrk with http.lua (the bodies in turn, exact counts and percentiles as JSON). */
export async function runWrk(url, { connections, seconds, threads, bodyFile }) {
  const argv = [`-t${Math.min(threads, connections)}`, `-c${connections}`, `-d${seconds}s`, "--timeout", "5s", "--latency"];
  argv.push("-s", join(BENCH_DIR, "http.lua"), url, "--", bodyFile);
  const { code, stdout, stderr } = await runCommand("wrk", argv, { timeoutMs: (seconds + 20) * 1000 });
  const out = stdout + stderr;
  const line = out.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (code !== 0 || !line) throw new Error(`wrk exited ${code}:\n${out}`);
  const j = JSON.parse(line.slice("WRK_JSON ".length));
  const unit = { us: 1e-3, ms: 1, s: 1e3 };
  const textPercentiles = [...out.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$/gm)].map((m) => [m[1], Number(m[2]) * unit[m[3]]]);
  return {
    requestsPerSecond: j.requests / (j.durationUs / 1e6),
    wrkRequestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    requests: j.requests,
    errors: j.connectErrors + j.readErrors + j.writeErrors + j.statusErrors + j.timeouts,
    errorDetail: { connect: j.connectErrors, read: j.readErrors, write: j.writeErrors, status: j.statusErrors, timeout: j.timeouts },
    p50Ms: j.p50Us / 1000,
    p90Ms: j.p90Us / 1000,
    p99Ms: j.p99Us / 1000,
    p999Ms: j.p999Us / 1000,
    maxMs: j.maxUs / 1000,
    meanMs: j.meanUs / 1000,
    wrkTextPercentilesMs: Object.fromEntries(textPercentiles),
  };
}
