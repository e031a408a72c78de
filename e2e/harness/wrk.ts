// wrk, the load generator: JSON infer requests (e2e/wrk/infer.lua), for a time or for
// a number of requests.
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { E2E } from "./paths.js";
import { childEnv, start, type Started } from "./process.js";

/** What infer.lua's done() writes. */
export interface WrkSummary {
  requests: number;
  duration_us: number;
  bytes: number;
  rps: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latency_us: { mean: number; stdev: number; min: number; max: number; p50: number; p90: number; p99: number; p999: number };
}

export interface WrkRun {
  url: string;
  /** The JSON request body, sent by every request. */
  bodyFile: string;
  threads: number;
  connections: number;
  /** How long wrk runs; with maxRequests, the most it may run. */
  seconds: number;
  /** Stop once this many responses came back (split over the threads). */
  maxRequests?: number;
  /** A folder of its own for this run's files. */
  workDir: string;
}

export interface WrkResult {
  summary: WrkSummary;
  /** wrk's own report (latency distribution). */
  report: string;
}

export function wrkHadErrors(summary: WrkSummary): boolean {
  const e = summary.errors;
  return e.connect + e.read + e.write + e.status + e.timeout > 0;
}

export async function runWrk(options: WrkRun): Promise<WrkResult> {
  mkdirSync(options.workDir, { recursive: true });
  const json = join(options.workDir, "wrk.json");
  const stopDir = join(options.workDir, "stop");
  mkdirSync(stopDir, { recursive: true });
  const env: NodeJS.ProcessEnv = { BODY_FILE: options.bodyFile, WRK_JSON: json };
  const args = [`-t${options.threads}`, `-c${options.connections}`, `-d${options.seconds}s`, "--latency"];
  if (options.maxRequests !== undefined) {
    env["MAX_PER_THREAD"] = String(Math.ceil(options.maxRequests / options.threads));
    env["STOP_DIR"] = stopDir;
    args.push("--timeout", "10s");
  }
  const wrk = start("wrk", [...args, "-s", join(E2E, "wrk/infer.lua"), options.url], { env: childEnv(env) });
  if (options.maxRequests !== undefined) await stopWhenCounted(wrk, stopDir, options.threads);
  const result = await wrk.done;
  return { summary: JSON.parse(readFileSync(json, "utf8")) as WrkSummary, report: result.stdout + result.stderr };
}

/**
 * wrk runs for its whole -d even when its threads stop; infer.lua marks each thread
 * that reached its count in `stopDir`, and SIGINT then makes wrk report and exit.
 */
async function stopWhenCounted(wrk: Started, stopDir: string, threads: number): Promise<void> {
  let exited = false;
  void wrk.done.then(
    () => (exited = true),
    () => (exited = true),
  );
  while (!exited) {
    if (readdirSync(stopDir).length >= threads) {
      wrk.child.kill("SIGINT");
      return;
    }
    await sleep(200);
  }
}
