import type { InferenceService } from "@coil/core";

import { parseExposition, type ParsedSample } from "./exposition-parser.js";
import type { DashboardStatus, HistogramTotals, InterpreterStatus, ModelStatus, WorkersStatus } from "./status-types.js";

/**
 * The dashboard's status, read from what the runtime already keeps: the model index
 * and the Prometheus exposition (`InferenceService.metrics()`). Under `--workers` that
 * exposition covers every worker (each sample labelled `worker`) plus the primary's
 * series, so the page sees the whole server whichever worker answers, with no
 * bookkeeping of its own. Per-model figures are summed over workers; interpreters stay
 * one row each.
 */
export function readDashboardStatus(service: InferenceService, now: number = Date.now()): DashboardStatus {
  const samples = parseExposition(service.metrics());
  const byName = new Map<string, ParsedSample[]>();
  for (const sample of samples) {
    let list = byName.get(sample.name);
    if (!list) byName.set(sample.name, (list = []));
    list.push(sample);
  }
  const of = (name: string) => byName.get(name) ?? [];
  const metadata = service.serverMetadata();
  return {
    time: now,
    server: { name: metadata.name, version: metadata.version, ready: service.isReady() },
    models: service.modelIndex().map((entry) => modelStatus(entry, of)),
    interpreters: interpreterStatus(of),
    workers: workersStatus(of),
  };
}

type Lookup = (name: string) => ParsedSample[];

function modelStatus(entry: ReturnType<InferenceService["modelIndex"]>[number], of: Lookup): ModelStatus {
  const mine = (name: string) => of(name).filter((s) => s.labels.model === entry.name && s.labels.version === entry.version);
  const total = (name: string) => mine(name).reduce((sum, s) => sum + s.value, 0);
  const requests: Record<string, number> = {};
  for (const s of mine("coil_inference_requests_total")) {
    const outcome = s.labels.outcome ?? "unknown";
    requests[outcome] = (requests[outcome] ?? 0) + s.value;
  }
  const accelerator = mine("coil_model_accelerator")[0];
  const heap = mine("coil_model_heap_bytes");
  const archive = mine("coil_model_archive_bytes")[0];
  return {
    name: entry.name,
    version: entry.version,
    state: entry.state,
    ...(entry.reason !== undefined && { reason: entry.reason }),
    ...(accelerator && { accelerator: { name: accelerator.labels.accelerator ?? "", active: accelerator.labels.active === "true" } }),
    requests,
    requestSeconds: histogram(mine, "coil_request_duration_seconds"),
    queueSeconds: histogram(mine, "coil_queue_duration_seconds"),
    pending: total("coil_queue_pending"),
    refused: total("coil_queue_refused_total"),
    batches: total("coil_batches_total"),
    rows: total("coil_batch_rows_total"),
    ...(heap.length > 0 && { heapBytes: heap.reduce((sum, s) => sum + s.value, 0) }),
    ...(archive && { archiveBytes: archive.value }),
  };
}

/** A histogram's series summed over workers (same bounds everywhere: the runtime's). */
function histogram(mine: (name: string) => ParsedSample[], name: string): HistogramTotals {
  const buckets = new Map<number, number>();
  for (const s of mine(`${name}_bucket`)) {
    const le = Number(s.labels.le);
    if (Number.isFinite(le)) buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const sum = (suffix: string) => mine(`${name}_${suffix}`).reduce((total, s) => total + s.value, 0);
  return { count: sum("count"), sum: sum("sum"), buckets: [...buckets].sort((a, b) => a[0] - b[0]) };
}

function interpreterStatus(of: Lookup): InterpreterStatus[] {
  const rows = new Map<string, InterpreterStatus>();
  const row = (s: ParsedSample) => {
    const { worker, interpreter = "?", group = "" } = s.labels;
    const key = `${worker ?? ""}/${interpreter}/${group}`;
    let found = rows.get(key);
    if (!found) rows.set(key, (found = { ...(worker !== undefined && { worker }), interpreter, group, busySeconds: 0, load: 0, stuck: false }));
    return found;
  };
  for (const s of of("coil_interpreter_busy_seconds_total")) row(s).busySeconds = s.value;
  for (const s of of("coil_interpreter_load")) row(s).load = s.value;
  for (const s of of("coil_interpreter_stuck")) row(s).stuck = s.value > 0;
  for (const s of of("coil_interpreter_heap_bytes")) row(s).heapBytes = s.value;
  return [...rows.values()].sort(
    (a, b) => Number(a.worker ?? 0) - Number(b.worker ?? 0) || Number(a.interpreter) - Number(b.interpreter) || a.group.localeCompare(b.group),
  );
}

function workersStatus(of: Lookup): WorkersStatus | null {
  const alive = of("coil_workers_alive")[0];
  if (!alive) return null;
  const slots = (state: string) => of("coil_worker_slots").find((s) => s.labels.state === state)?.value ?? 0;
  return {
    alive: alive.value,
    configured: slots("configured"),
    givenUp: slots("given_up"),
    restarts: Object.fromEntries(of("coil_worker_restarts_total").map((s) => [s.labels.reason ?? "unknown", s.value])),
    residentBytes: Object.fromEntries(of("coil_worker_resident_bytes").map((s) => [s.labels.worker ?? "?", s.value])),
  };
}
