import {
  Histogram,
  ModelGroups,
  ModelQueue,
  SECONDS_BOUNDS,
  SignatureBinding,
  type InferenceRequest,
  type InferenceResponse,
  type InferenceService,
  type InterpreterPool,
  type LoadArchiveOptions,
  type LoadedModel,
  type ModelIndexEntry,
  type HistogramSnapshot,
  type ModelQueueOptions,
  type ModelQueueStats,
  type ModelState,
  type ServedModel,
  type ServerMetadata,
  type TensorSignature,
} from "@coil/core";
import { CoilError, isCoilError } from "@coil/errors";
import { interpreterStats } from "@coil/native";

import { acceleratorFor, type AcceleratorSelection } from "./accelerator-selection.js";
import { Exposition, type Sample } from "./exposition.js";
import { scanRepository, type RepositoryEntry } from "./model-repository.js";

/** Where the runtime says what it skipped (pino's logger fits). */
export interface RuntimeLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  info?(fields: Record<string, unknown>, message: string): void;
}

export interface ServingRuntimeOptions {
  /** Where each model gets its interpreters: by default a pool of its own per model
   * (see ModelGroups). */
  groups?: ModelGroups;
  /** Serve every model from this one pool instead (models share its interpreters). */
  pool?: InterpreterPool;
  /** The model repository folder (see scanRepository). */
  repository: string;
  /** Queue, deadline and batching settings for every model. */
  queue?: ModelQueueOptions;
  /** How archives are checked when loaded (hashes, signatures). */
  archive?: Pick<LoadArchiveOptions, "verifyHashes" | "requireSignature" | "publicKey">;
  serverName?: string;
  serverVersion?: string;
  /** Told once about every file the repository skips, with the reason; and of each
   * model's accelerator, active or why not. */
  logger?: RuntimeLogger;
  /** The accelerator of each model (by name; "*" for the others), one the pool knows. */
  accelerate?: AcceleratorSelection;
  /** Serve symbolic links out of the repository folder too (see scanRepository). */
  followSymlinks?: boolean;
}

interface RequestStats {
  outcomes: Map<string, number>;
  seconds: Histogram;
}

interface Version {
  entry: RepositoryEntry;
  state: ModelState;
  reason?: string;
  model?: LoadedModel;
  queue?: ModelQueue;
  /** The pool of the model's group, held while the version is loaded. */
  pool?: InterpreterPool;
  binding: SignatureBinding;
  /** Why loading failed (UNAVAILABLE). */
  error?: unknown;
  /** Its group's interpreters could not be made for a reason that is no model's
   * (no backend, no Python): the runtime cannot start. */
  poolFailed?: boolean;
  /** The accelerated form's last error already logged (see #sampleFallbacks). */
  fallbackErrorLogged?: string;
}

/** Failures to make a group's pool that say the runtime can serve no model at all. */
const RUNTIME_FAILURES = new Set(["BACKEND_UNAVAILABLE", "PYTHON_NOT_FOUND", "NO_SHARED_LIBPYTHON", "PYTHON_INIT_FAILED", "NATIVE_LOAD_FAILED", "GLIBC_TUNABLE_MISSING"]);


/**
 * Serves the archives of a model repository from one interpreter pool, each model
 * behind its own ModelQueue (bounded, with deadlines and optional dynamic batching).
 * Implements the InferenceService that protocol adapters expose.
 */
export class ServingRuntime implements InferenceService {
  readonly #options: ServingRuntimeOptions;
  readonly #models = new Map<string, Version[]>();
  /** Per model version: answered requests by outcome ("success" or an error code),
   * and their durations. Kept across unload and reload, as Prometheus counters must. */
  readonly #requests = new Map<string, RequestStats>();
  /** Per model name: the last load or unload asked for (settled or not). */
  readonly #operations = new Map<string, Promise<unknown>>();
  /** Paths already reported as skipped. */
  readonly #skipped = new Set<string>();
  /** Where models get their interpreters. */
  readonly groups: ModelGroups;
  #closed = false;

  constructor(options: ServingRuntimeOptions) {
    if (!options.groups && !options.pool) throw new CoilError("INVALID_ARGUMENT", "a ServingRuntime needs groups or a pool");
    this.#options = options;
    this.groups = options.groups ?? ModelGroups.sharing(options.pool!);
  }

  /** Scans the repository and loads every model found (failures are recorded as
   * UNAVAILABLE). A model loaded or unloaded by then with loadModel/unloadModel is
   * left as that made it. */
  async start(): Promise<void> {
    const entries = await this.#scan();
    const names = [...new Set(entries.map((e) => e.name))];
    this.groups.plan(names);
    let index = 0;
    for (const name of names) {
      await this.#serialized(name, async () => {
        if (this.#closed || this.#models.has(name)) return;
        const versions: Version[] = [];
        this.#models.set(name, versions);
        for (const entry of entries) {
          if (entry.name !== name) continue;
          // Start-up progress: a server with many models (or a slow accelerator) says where it is.
          this.#options.logger?.info?.({ model: name, version: entry.version, step: ++index, of: entries.length }, "model: loading");
          versions.push(await this.#open(entry));
        }
      });
    }
    const fatal = [...this.#models.values()].flat().find((v) => v.poolFailed);
    if (fatal) throw fatal.error;
  }

  serverMetadata(): ServerMetadata {
    return {
      name: this.#options.serverName ?? "coil",
      version: this.#options.serverVersion ?? "0.0.0",
      extensions: ["binary_tensor_data", "model_repository"],
    };
  }

  isLive(): boolean {
    return !this.#closed;
  }

  isReady(): boolean {
    // Every model is ready, but for those unloaded on purpose (as Triton counts them).
    return (
      !this.#closed &&
      [...this.#models.values()].every((vs) => vs.some((v) => this.#ready(v)) || vs.every((v) => v.reason === "unloaded"))
    );
  }

  /** Every version of every model, by name and then version, whatever order they loaded in. */
  modelIndex(): ModelIndexEntry[] {
    const byName = [...this.#models].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return byName.flatMap(([, versions]) => versions).map((v) => ({
      name: v.entry.name,
      version: v.entry.version,
      state: v.state,
      ...(v.reason !== undefined && { reason: v.reason }),
    }));
  }

  model(name: string, version?: string): ServedModel {
    const v = this.#version(name, version);
    const acceleration = v.model?.acceleration;
    return {
      name,
      versions: this.#models.get(name)!.map((x) => x.entry.version),
      platform: "coil",
      inputs: [...v.binding.inputs],
      outputs: [...v.binding.outputs],
      ...(acceleration && {
        parameters: {
          accelerator: acceleration.accelerator,
          accelerator_active: acceleration.active,
          ...(acceleration.reason !== undefined && { accelerator_reason: acceleration.reason }),
        },
      }),
    };
  }

  isModelReady(name: string, version?: string): boolean {
    return this.#ready(this.#version(name, version));
  }

  /** Loaded, and not every interpreter of its group stuck in a call it could not interrupt. */
  #ready(v: Version): boolean {
    return v.state === "READY" && !v.pool?.allStuck;
  }

  /** The group `name` runs in, and its interpreters (by process index); undefined
   * while none of its versions holds interpreters. */
  groupOf(name: string): { group: string; interpreters: number[] } | undefined {
    const pool = this.#models.get(name)?.find((v) => v.pool)?.pool;
    return pool && { group: this.groups.groupOf(name), interpreters: pool.interpreters.map((i) => i.index) };
  }

  async infer(name: string, version: string | undefined, request: InferenceRequest): Promise<InferenceResponse> {
    const v = this.#version(name, version);
    if (v.state !== "READY" || !v.queue) {
      throw new CoilError("MODEL_NOT_READY", `model ${name} version ${v.entry.version} is not ready (${v.state}${v.reason ? `: ${v.reason}` : ""})`);
    }
    const key = versionKey(name, v.entry.version);
    let stats = this.#requests.get(key);
    if (!stats) this.#requests.set(key, (stats = { outcomes: new Map(), seconds: new Histogram(SECONDS_BOUNDS) }));
    const started = performance.now();
    let outcome = "success";
    try {
      const inputs = v.binding.bindInputs(request.inputs);
      const output = await v.queue.infer(inputs, {
        ...(request.timeoutMs !== undefined && { timeoutMs: request.timeoutMs }),
        ...(request.signal && { signal: request.signal }),
      });
      const outputs = v.binding.nameOutputs(output, request.outputs);
      return { ...(request.id !== undefined && { id: request.id }), modelName: name, modelVersion: v.entry.version, outputs };
    } catch (error) {
      outcome = isCoilError(error) ? error.code : "INTERNAL";
      throw error;
    } finally {
      stats.outcomes.set(outcome, (stats.outcomes.get(outcome) ?? 0) + 1);
      stats.seconds.observe((performance.now() - started) / 1000);
    }
  }

  /**
   * Rescans the repository for `name` and (re)loads its versions. A model already
   * serving keeps serving until the new versions are ready; then they take over and
   * the old ones finish the requests they accepted. If a version fails to load, the
   * old ones stay and the load rejects with that version's error.
   */
  loadModel(name: string): Promise<void> {
    return this.#serialized(name, () => this.#reload(name));
  }

  async #reload(name: string): Promise<void> {
    if (this.#closed) throw new CoilError("CLOSED", "the runtime is closed");
    const entries = (await this.#scan()).filter((e) => e.name === name);
    if (entries.length === 0) throw new CoilError("MODEL_NOT_FOUND", `no model ${name} in ${this.#options.repository}`);
    const fresh = await Promise.all(entries.map((entry) => this.#open(entry)));
    const old = this.#models.get(name) ?? [];
    const failed = fresh.find((v) => v.state !== "READY");
    if (failed && old.some((v) => v.state === "READY")) {
      await Promise.all(fresh.map((v) => this.#retire(v, "load failed")));
      throw failed.error!;
    }
    this.#models.set(name, fresh);
    await Promise.all(old.map((v) => this.#retire(v, "replaced")));
    if (failed) throw failed.error!;
  }

  /** Stops accepting requests for the model, finishes those it accepted, then
   * unloads it; it stays listed as UNAVAILABLE. */
  unloadModel(name: string): Promise<void> {
    return this.#serialized(name, async () => {
      const versions = this.#models.get(name);
      if (!versions) throw new CoilError("MODEL_NOT_FOUND", `no model ${name}`);
      await Promise.all(versions.map((v) => this.#retire(v, "unloaded")));
    });
  }

  metrics(): string {
    const exposition = new Exposition();
    const versions = [...this.#models.values()].flat();
    const labels = (v: Version) => ({ model: v.entry.name, version: v.entry.version });
    const perModel = (fn: (v: Version) => number | undefined) =>
      versions.flatMap((v): Sample[] => {
        const value = fn(v);
        return value === undefined ? [] : [[labels(v), value]];
      });
    exposition.counter(
      "coil_inference_requests_total",
      "Inference requests answered, by outcome (success, or the error code)",
      versions.flatMap((v) => {
        const outcomes = this.#requests.get(versionKey(v.entry.name, v.entry.version))?.outcomes ?? [];
        return [...outcomes].map(([outcome, n]): Sample => [{ ...labels(v), outcome }, n]);
      }),
    );
    exposition.histogram(
      "coil_request_duration_seconds",
      "Per request: from acceptance to its answer (or error)",
      versions.flatMap((v): [Record<string, string>, HistogramSnapshot][] => {
        const stats = this.#requests.get(versionKey(v.entry.name, v.entry.version));
        return stats ? [[labels(v), stats.seconds.snapshot()]] : [];
      }),
    );
    // One snapshot per version, read by every queue-side metric below.
    const queueStats = new Map(versions.map((v) => [v, v.queue?.stats()]));
    exposition.counter("coil_queue_refused_total", "Requests refused because the queue was full", perModel((v) => queueStats.get(v)?.refusedFull));
    exposition.counter("coil_batches_total", "Calls made to the model (a batch counts once)", perModel((v) => queueStats.get(v)?.batches));
    exposition.counter(
      "coil_batch_rows_total",
      "Rows over all calls (mean batch size = rows / batches; without batching a request is one row)",
      perModel((v) => queueStats.get(v)?.batchedRows),
    );
    exposition.gauge("coil_queue_pending", "Requests waiting or running", perModel((v) => v.queue?.pending));
    exposition.gauge(
      "coil_model_accelerator",
      "The accelerator each loaded model version was given; active=\"false\": it runs eager (the log says why)",
      versions.flatMap((v): Sample[] => {
        const acceleration = v.model?.acceleration;
        return acceleration ? [[{ ...labels(v), accelerator: acceleration.accelerator, active: String(acceleration.active) }, 1]] : [];
      }),
    );
    exposition.counter(
      "coil_model_accelerator_fallback_calls_total",
      "Calls the accelerated form failed on (or on input shapes it had failed on), answered by eager instead. As of the last sample, taken after each scrape",
      versions.flatMap((v): Sample[] => {
        const acceleration = v.model?.acceleration;
        return acceleration?.fallbackCalls !== undefined ? [[{ ...labels(v), accelerator: acceleration.accelerator }, acceleration.fallbackCalls]] : [];
      }),
    );
    const histograms = (fn: (stats: ModelQueueStats) => HistogramSnapshot) =>
      versions.flatMap((v): [Record<string, string>, HistogramSnapshot][] => {
        const stats = queueStats.get(v);
        return stats ? [[labels(v), fn(stats)]] : [];
      });
    exposition.histogram(
      "coil_queue_duration_seconds",
      "Per request: from acceptance until its call started in an interpreter",
      histograms((s) => s.queueSeconds),
    );
    exposition.histogram("coil_compute_duration_seconds", "Per model call: time it ran in an interpreter", histograms((s) => s.computeSeconds));
    exposition.histogram("coil_batch_requests", "Per model call: requests it answered", histograms((s) => s.batchRequests));
    this.#interpreterMetrics(exposition, versions);
    return exposition.text();
  }

  /** Per interpreter (labelled with its group) and per model: work, stuck, memory. */
  #interpreterMetrics(exposition: Exposition, versions: Version[]): void {
    const groups = this.groups.list().filter((g) => g.pool !== undefined);
    const perInterpreter = (fn: (pool: InterpreterPool, i: InterpreterPool["interpreters"][number]) => number | undefined) =>
      groups.flatMap((g) =>
        g.pool!.interpreters.flatMap((i): Sample[] => {
          const value = fn(g.pool!, i);
          return value === undefined ? [] : [[{ interpreter: String(i.index), group: g.name }, value]];
        }),
      );
    exposition.counter("coil_interpreter_busy_seconds_total", "Time each interpreter spent running calls, since it started", perInterpreter((_, i) => i.busySeconds));
    exposition.gauge("coil_interpreter_load", "Calls queued on or running in each interpreter", perInterpreter((_, i) => i.load));
    exposition.gauge(
      "coil_interpreter_stuck",
      "1 while an interpreter goes on with a call that was cancelled or ran past its deadline, for over a second: the interrupt cannot reach it (C code)",
      perInterpreter((pool, i) => (pool.isStuck(i) ? 1 : 0)),
    );
    exposition.gauge(
      "coil_interpreter_heap_bytes",
      "Bytes in use in each interpreter's own malloc (its namespace's libc, mallinfo2): tensors, buffers, Python objects over 512 bytes; not pymalloc's small-object arenas nor mapped archives. As of the last sample, taken at load and after each scrape",
      perInterpreter((pool, i) => pool.memory(i)?.heapBytes),
    );
    exposition.gauge(
      "coil_model_heap_bytes",
      "Per model: the heap of the interpreters it runs in (coil_interpreter_heap_bytes summed over its group; models sharing a group each report the group's)",
      versions.flatMap((v): Sample[] => {
        if (!v.pool || v.state !== "READY") return [];
        const heaps = v.pool.interpreters.map((i) => v.pool!.memory(i)?.heapBytes);
        if (heaps.some((h) => h === undefined)) return [];
        return [[{ model: v.entry.name, version: v.entry.version, group: this.groups.groupOf(v.entry.name) }, heaps.reduce((a, b) => a! + b!, 0)!]];
      }),
    );
    exposition.gauge(
      "coil_model_archive_bytes",
      "Per loaded model version: its archive's size; each interpreter maps it, the page cache holds it once",
      versions.flatMap((v): Sample[] => (v.model ? [[{ model: v.entry.name, version: v.entry.version }, v.model.fileSize]] : [])),
    );
    // Fresh samples for the next scrape, queued behind the calls in flight.
    for (const g of groups) void g.pool!.sampleMemory();
    for (const v of versions) if (v.model?.acceleration?.active) void this.#sampleFallbacks(v, v.model);
  }

  /** Stops serving: drains every model, then returns every group's interpreters. */
  async close(): Promise<void> {
    this.#closed = true;
    // Loads under way finish first, so that they are unloaded too.
    await Promise.all(this.#operations.values());
    for (const name of this.#models.keys()) await this.unloadModel(name).catch(() => undefined);
    await this.groups.close();
  }

  /** Runs `operation` on model `name` once the ones asked for before it have settled:
   * loads and unloads of one model (start()'s included) never interleave, so none can
   * leave a version behind that is loaded but not served. */
  #serialized<T>(name: string, operation: () => Promise<T>): Promise<T> {
    const run = (this.#operations.get(name) ?? Promise.resolve()).then(operation);
    const settled = run.catch(() => undefined);
    this.#operations.set(name, settled);
    void settled.then(() => {
      if (this.#operations.get(name) === settled) this.#operations.delete(name);
    });
    return run;
  }

  /** The repository's models; what it skips is logged, once per path. */
  async #scan(): Promise<RepositoryEntry[]> {
    const { entries, skipped } = await scanRepository(this.#options.repository, { followSymlinks: this.#options.followSymlinks ?? false });
    for (const { path, reason } of skipped) {
      if (this.#skipped.has(path)) continue;
      this.#skipped.add(path);
      this.#options.logger?.warn({ path, reason }, "repository: skipped");
    }
    return entries;
  }

  /** Loads one version; a failure is recorded in the version (UNAVAILABLE), not thrown. */
  async #open(entry: RepositoryEntry): Promise<Version> {
    const v: Version = { entry, state: "LOADING", binding: new SignatureBinding() };
    const started = performance.now();
    const rssBefore = process.memoryUsage.rss();
    try {
      v.pool = await this.groups.acquire(entry.name);
    } catch (error) {
      v.poolFailed = isCoilError(error) && RUNTIME_FAILURES.has(error.code);
      return this.#failed(v, error);
    }
    try {
      const accelerator = acceleratorFor(this.#options.accelerate, entry.name);
      const model = await v.pool.loadArchive(entry.path, {
        ...this.#options.archive,
        eager: true,
        ...(accelerator !== undefined && { accelerator }),
      });
      const signature = (specs: readonly TensorSignature[] = []) => specs.map((s) => ({ name: s.name, dtype: s.dtype, shape: [...s.shape] }));
      v.binding = new SignatureBinding(signature(model.manifest?.inputs), signature(model.manifest?.outputs));
      for (const warning of model.warnings) this.#options.logger?.warn({ model: entry.name, version: entry.version, warning }, "model: loaded with a warning");
      this.#logAcceleration(entry, model);
      v.model = model;
      v.queue = new ModelQueue(model.object, { ...this.#options.queue, binding: v.binding });
      await v.pool.sampleMemory();
      v.state = "READY";
      this.#logLoaded(entry, started, rssBefore);
    } catch (error) {
      await v.model?.unload();
      delete v.model;
      delete v.pool;
      await this.groups.release(entry.name);
      return this.#failed(v, error);
    }
    return v;
  }

  #failed(v: Version, error: unknown): Version {
    v.state = "UNAVAILABLE";
    v.reason = isCoilError(error) ? `${error.code}: ${error.message}` : String(error);
    v.error = error;
    return v;
  }

  /** One line per model loaded: how long it took and how much the process grew by
   * (resident memory; another model loading at the same time counts in both). */
  #logLoaded(entry: RepositoryEntry, started: number, rssBefore: number): void {
    const loadMs = Math.round(performance.now() - started);
    const rssAddedMb = Math.round((process.memoryUsage.rss() - rssBefore) / 2 ** 20);
    this.#options.logger?.info?.({ model: entry.name, version: entry.version, loadMs, rssAddedMb }, "model: loaded");
  }

  /** Reads how many calls fell back to eager; says so at warn once per new error of
   * the accelerated form (the calls go on, answered by eager). */
  async #sampleFallbacks(v: Version, model: LoadedModel): Promise<void> {
    await model.object.sampleAcceleration();
    const { accelerator, fallbackCalls, fallbackError } = model.acceleration ?? {};
    if (fallbackError === undefined || fallbackError === v.fallbackErrorLogged) return;
    v.fallbackErrorLogged = fallbackError;
    this.#options.logger?.warn(
      { model: v.entry.name, version: v.entry.version, accelerator, fallbackCalls, error: fallbackError },
      "model: the accelerated form failed on a call; calls of those input shapes are answered eager",
    );
  }

  /** An accelerated model at info, one that stays eager at warn with the reason. */
  #logAcceleration(entry: RepositoryEntry, model: LoadedModel): void {
    const acceleration = model.acceleration;
    if (!acceleration) return;
    const { accelerator, active, reason, details } = acceleration;
    const fields = { model: entry.name, version: entry.version, accelerator, ...(details && { details }) };
    if (active) this.#options.logger?.info?.(fields, "model: accelerated");
    else this.#options.logger?.warn({ ...fields, reason }, "model: accelerator not used, running eager");
  }

  /** Takes a version out of service: new requests are refused at once, accepted ones finish. */
  async #retire(v: Version, reason: string): Promise<void> {
    const { queue, model } = v;
    if (v.state === "READY") {
      v.state = "UNAVAILABLE";
      v.reason = reason;
    }
    const held = v.pool !== undefined;
    delete v.queue;
    delete v.model;
    delete v.pool;
    await queue?.close();
    await model?.unload();
    // The group's last version gives its interpreters back, reset.
    if (held) {
      const before = new Set(interpreterStats().heldBack);
      await this.groups.release(v.entry.name);
      const heldBack = interpreterStats().heldBack.filter((h) => !before.has(h));
      if (heldBack.length > 0) {
        this.#options.logger?.warn(
          { model: v.entry.name, version: v.entry.version, heldBack },
          "model: threads it started still run after unload; its interpreters are held back until they end",
        );
      }
      this.#options.logger?.info?.({ model: v.entry.name, version: v.entry.version, reason }, "model: unloaded");
    }
  }

  #version(name: string, version: string | undefined): Version {
    const versions = this.#models.get(name);
    if (!versions) throw new CoilError("MODEL_NOT_FOUND", `unknown model "${name}"`);
    if (version === undefined) return [...versions].reverse().find((v) => v.state === "READY") ?? versions[versions.length - 1]!;
    const found = versions.find((v) => v.entry.version === version);
    if (!found) throw new CoilError("MODEL_NOT_FOUND", `model "${name}" has no version "${version}"`);
    return found;
  }
}

function versionKey(name: string, version: string): string {
  return `${name}\0${version}`;
}
