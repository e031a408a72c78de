// Load and soak with wrk: JSON infer on the mlp, 2 threads x 16 connections; the
// serving process's private memory measured after the load phase (the warm-up) and
// after a request-bounded soak. Figures go to bench-results/e2e.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { curl } from "../harness/curl.js";
import { serveForThisFile } from "../harness/file-server.js";
import { KNOBS } from "../harness/knobs.js";
import { privateKb, rssKb, sampleMemory, type MemorySample } from "../harness/memory.js";
import { ROOT } from "../harness/paths.js";
import { python } from "../harness/python.js";
import { runWrk, wrkHadErrors, type WrkSummary } from "../harness/wrk.js";

const live = serveForThisFile("load-soak", ["mlp"]);
const THREADS = 2;
const CONNECTIONS = 16;

interface Memory {
  private: number;
  rss: number;
}
const results: {
  pid?: number;
  start?: Memory;
  warm?: Memory;
  end?: Memory;
  samples?: MemorySample[];
  load?: WrkSummary;
  soak?: WrkSummary;
} = {};
const memory = (pid: number): Memory => ({ private: privateKb(pid), rss: rssKb(pid) });
const growthPct = () => ((results.end!.private - results.warm!.private) / results.warm!.private) * 100;

beforeAll(async () => {
  // coil serve restarts itself in place: the process started holds the interpreters.
  results.pid = live.server.pid;
  results.start = memory(results.pid);
});

describe("load", () => {
  it(`wrk -t${THREADS} -c${CONNECTIONS} -d${KNOBS.loadSeconds}s: no errors, no non-2xx`, { timeout: (KNOBS.loadSeconds + 60) * 1000 }, async () => {
    const { summary, report } = await runWrk({
      url: `${live.server.base}/v2/models/mlp/infer`,
      bodyFile: live.reference.inferJson,
      threads: THREADS,
      connections: CONNECTIONS,
      seconds: KNOBS.loadSeconds,
      workDir: join(live.context.work, "wrk-load"),
    });
    console.log(`${report}\nload: ${summary.requests} requests, ${summary.rps.toFixed(0)} req/s, p50 ${summary.latency_us.p50} us, p99 ${summary.latency_us.p99} us`);
    results.load = summary;
    results.warm = memory(results.pid!);
    expect(summary.requests).toBeGreaterThan(0);
    expect(wrkHadErrors(summary), JSON.stringify(summary.errors)).toBe(false);
  });
});

describe("soak", () => {
  it(`${KNOBS.soakRequests} requests (at most ${KNOBS.soakMaxSeconds} s), no errors`, { timeout: (KNOBS.soakMaxSeconds + 60) * 1000 }, async () => {
    const sampler = sampleMemory(results.pid!, 2000);
    const { summary, report } = await runWrk({
      url: `${live.server.base}/v2/models/mlp/infer`,
      bodyFile: live.reference.inferJson,
      threads: THREADS,
      connections: CONNECTIONS,
      seconds: KNOBS.soakMaxSeconds,
      maxRequests: KNOBS.soakRequests,
      workDir: join(live.context.work, "wrk-soak"),
    });
    results.samples = sampler.stop();
    await sleep(1000); // the responses' last garbage, as run.sh measured
    results.end = memory(results.pid!);
    results.soak = summary;
    console.log(`${report}\nsoak: ${summary.requests} requests in ${(summary.duration_us / 1e6).toFixed(1)} s, ${summary.rps.toFixed(0)} req/s, p99 ${summary.latency_us.p99} us`);
    expect(summary.requests).toBeGreaterThanOrEqual(KNOBS.soakRequests);
    expect(wrkHadErrors(summary), JSON.stringify(summary.errors)).toBe(false);
  });

  it(`private memory grows at most ${KNOBS.memGrowthLimitPct} % from after warm-up to after the soak`, () => {
    expect(results.warm && results.end, "the load and soak phases did not both run").toBeTruthy();
    const peak = Math.max(...results.samples!.map((sample) => sample.kb));
    console.log(
      `private memory: start ${results.start!.private} kB, after warm-up ${results.warm!.private} kB, peak during soak ${peak} kB, ` +
        `after soak ${results.end!.private} kB -> growth after warm-up ${growthPct().toFixed(2)} % (limit ${KNOBS.memGrowthLimitPct} %)`,
    );
    expect(growthPct()).toBeLessThanOrEqual(KNOBS.memGrowthLimitPct);
  });

  it("the server still answers == eager after the soak", async () => {
    const response = await curl(`${live.server.base}/v2/models/mlp/infer`, { method: "POST", dataFile: live.reference.inferJson });
    expect(response.status).toBe(200);
    await python("compare.py", ["json", response.bodyFile, live.reference.expected]);
  });
});

afterAll(() => {
  if (!results.load || !results.soak || !results.end) return; // a phase failed: no figures to keep
  const peak = Math.max(...results.samples!.map((sample) => sample.kb));
  const record = {
    date: new Date().toISOString(),
    node: process.version,
    interpreters: KNOBS.interpreters,
    load: { tool: `wrk -t${THREADS} -c${CONNECTIONS}`, ...results.load },
    soak: { tool: `wrk -t${THREADS} -c${CONNECTIONS} (request-bounded)`, ...results.soak },
    memory: {
      measure: "Private_Clean + Private_Dirty (kB) of the serving (re-exec child) process, /proc/PID/smaps_rollup",
      start_kb: results.start!.private,
      after_warmup_kb: results.warm!.private,
      after_soak_kb: results.end.private,
      peak_during_soak_kb: peak,
      rss_start_kb: results.start!.rss,
      rss_after_warmup_kb: results.warm!.rss,
      rss_after_soak_kb: results.end.rss,
      growth_after_warmup_pct: Number(growthPct().toFixed(2)),
      limit_pct: KNOBS.memGrowthLimitPct,
      soak_samples: results.samples,
    },
  };
  mkdirSync(join(ROOT, "bench-results"), { recursive: true });
  writeFileSync(join(ROOT, "bench-results/e2e.json"), `${JSON.stringify(record, null, 2)}\n`);
  console.log("wrote bench-results/e2e.json");
});
