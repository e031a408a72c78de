import {
  ModelQueue,
  Tensor,
  type InferenceRequest,
  type InferenceResponse,
  type InferenceService,
  type InterpreterPool,
  type LoadArchiveOptions,
  type LoadedModel,
  type ModelIndexEntry,
  type ModelQueueOptions,
  type ModelState,
  type NamedTensor,
  type ServedModel,
  type ServerMetadata,
  type TensorSignature,
} from "@coil/core";
import { CoilError, isCoilError } from "@coil/errors";

import { scanRepository, type RepositoryEntry } from "./model-repository.js";

export interface ServingRuntimeOptions {
  pool: InterpreterPool;
  /** The model repository folder (see scanRepository). */
  repository: string;
  /** Queue, deadline and batching settings for every model. */
  queue?: ModelQueueOptions;
  /** How archives are checked when loaded (hashes, signatures). */
  archive?: Pick<LoadArchiveOptions, "verifyHashes" | "requireSignature" | "publicKey">;
  serverName?: string;
  serverVersion?: string;
}

interface Version {
  entry: RepositoryEntry;
  state: ModelState;
  reason?: string;
  model?: LoadedModel;
  queue?: ModelQueue;
  inputs: TensorSignature[];
  outputs: TensorSignature[];
}

interface Counters {
  success: number;
  failure: number;
  computeSeconds: number;
}

/**
 * Serves the archives of a model repository from one interpreter pool, each model
 * behind its own ModelQueue (bounded, with deadlines and optional dynamic batching).
 * Implements the InferenceService that protocol adapters expose.
 */
export class ServingRuntime implements InferenceService {
  readonly #options: ServingRuntimeOptions;
  readonly #models = new Map<string, Version[]>();
  readonly #counters = new Map<string, Counters>();
  #closed = false;

  constructor(options: ServingRuntimeOptions) {
    this.#options = options;
  }

  /** Scans the repository and loads every model found (failures are recorded as UNAVAILABLE). */
  async start(): Promise<void> {
    for (const entry of await scanRepository(this.#options.repository)) {
      await this.#load(entry);
    }
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
    return !this.#closed && [...this.#models.values()].every((vs) => vs.some((v) => v.state === "READY"));
  }

  modelIndex(): ModelIndexEntry[] {
    return [...this.#models.values()].flat().map((v) => ({
      name: v.entry.name,
      version: v.entry.version,
      state: v.state,
      ...(v.reason !== undefined && { reason: v.reason }),
    }));
  }

  model(name: string, version?: string): ServedModel {
    const v = this.#version(name, version);
    return {
      name,
      versions: this.#models.get(name)!.map((x) => x.entry.version),
      platform: "coil",
      inputs: v.inputs,
      outputs: v.outputs,
    };
  }

  isModelReady(name: string, version?: string): boolean {
    return this.#version(name, version).state === "READY";
  }

  async infer(name: string, version: string | undefined, request: InferenceRequest): Promise<InferenceResponse> {
    const v = this.#version(name, version);
    if (v.state !== "READY" || !v.queue) {
      throw new CoilError("MODEL_NOT_READY", `model ${name} version ${v.entry.version} is not ready (${v.state}${v.reason ? `: ${v.reason}` : ""})`);
    }
    const key = `${name}\0${v.entry.version}`;
    const counters = this.#counters.get(key) ?? { success: 0, failure: 0, computeSeconds: 0 };
    this.#counters.set(key, counters);
    const started = performance.now();
    try {
      const inputs = orderInputs(v.inputs, request.inputs);
      const output = await v.queue.infer(inputs, {
        ...(request.timeoutMs !== undefined && { timeoutMs: request.timeoutMs }),
        ...(request.signal && { signal: request.signal }),
      });
      const outputs = nameOutputs(v.outputs, output, request.outputs);
      counters.success++;
      return { ...(request.id !== undefined && { id: request.id }), modelName: name, modelVersion: v.entry.version, outputs };
    } catch (error) {
      counters.failure++;
      throw error;
    } finally {
      counters.computeSeconds += (performance.now() - started) / 1000;
    }
  }

  /** Rescans the repository for `name` and (re)loads its versions. */
  async loadModel(name: string): Promise<void> {
    const entries = (await scanRepository(this.#options.repository)).filter((e) => e.name === name);
    if (entries.length === 0) throw new CoilError("MODEL_NOT_FOUND", `no model ${name} in ${this.#options.repository}`);
    await this.unloadModel(name).catch(() => undefined);
    this.#models.delete(name);
    for (const entry of entries) await this.#load(entry);
  }

  /** Finishes the model's requests in flight, then unloads it; it stays listed as UNAVAILABLE. */
  async unloadModel(name: string): Promise<void> {
    const versions = this.#models.get(name);
    if (!versions) throw new CoilError("MODEL_NOT_FOUND", `no model ${name}`);
    for (const v of versions) {
      const { queue, model } = v;
      v.state = "UNAVAILABLE";
      v.reason = "unloaded";
      delete v.queue;
      delete v.model;
      await queue?.close();
      await model?.unload();
    }
  }

  metrics(): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [Record<string, string>, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) {
        const text = Object.entries(labels)
          .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`)
          .join(",");
        lines.push(`${name}{${text}} ${value}`);
      }
    };
    const versions = [...this.#models.values()].flat();
    const labelled = (fn: (v: Version, c: Counters) => number) =>
      versions.map((v): [Record<string, string>, number] => {
        const c = this.#counters.get(`${v.entry.name}\0${v.entry.version}`) ?? { success: 0, failure: 0, computeSeconds: 0 };
        return [{ model: v.entry.name, version: v.entry.version }, fn(v, c)];
      });
    metric("coil_inference_success_total", "counter", "Inference requests answered", labelled((_, c) => c.success));
    metric("coil_inference_failure_total", "counter", "Inference requests that failed", labelled((_, c) => c.failure));
    metric("coil_inference_duration_seconds_total", "counter", "Time from accepting requests to answering them", labelled((_, c) => c.computeSeconds));
    metric("coil_queue_refused_total", "counter", "Requests refused because the queue was full", labelled((v) => v.queue?.stats().refusedFull ?? 0));
    metric("coil_batches_total", "counter", "Calls made to the model (batches)", labelled((v) => v.queue?.stats().batches ?? 0));
    metric("coil_batch_rows_total", "counter", "Rows over all batches (mean batch size = rows / batches)", labelled((v) => v.queue?.stats().batchedRows ?? 0));
    metric("coil_queue_pending", "gauge", "Requests waiting or running", labelled((v) => v.queue?.pending ?? 0));
    metric(
      "coil_interpreter_load",
      "gauge",
      "Calls queued on or running in each interpreter",
      this.#options.pool.interpreters.map((i) => [{ interpreter: String(i.index) }, i.load]),
    );
    return `${lines.join("\n")}\n`;
  }

  /** Stops serving: drains every model, then closes the pool. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const name of this.#models.keys()) await this.unloadModel(name).catch(() => undefined);
    await this.#options.pool.close();
  }

  async #load(entry: RepositoryEntry): Promise<void> {
    const versions = this.#models.get(entry.name) ?? [];
    this.#models.set(entry.name, versions);
    const v: Version = { entry, state: "LOADING", inputs: [], outputs: [] };
    versions.push(v);
    try {
      const model = await this.#options.pool.loadArchive(entry.path, { ...this.#options.archive, eager: true });
      v.inputs = (model.manifest?.inputs ?? []).map((s) => ({ name: s.name, dtype: s.dtype, shape: [...s.shape] }));
      v.outputs = (model.manifest?.outputs ?? []).map((s) => ({ name: s.name, dtype: s.dtype, shape: [...s.shape] }));
      v.model = model;
      v.queue = new ModelQueue(model, this.#options.queue);
      v.state = "READY";
    } catch (error) {
      v.state = "UNAVAILABLE";
      v.reason = isCoilError(error) ? `${error.code}: ${error.message}` : String(error);
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

/** The request's tensors in the order the model takes them, checked against its signature. */
function orderInputs(signature: TensorSignature[], inputs: NamedTensor[]): Tensor[] {
  if (signature.length === 0) return inputs.map((i) => i.tensor); // no manifest: request order
  const byName = new Map(inputs.map((i) => [i.name, i.tensor]));
  const unknown = inputs.filter((i) => !signature.some((s) => s.name === i.name)).map((i) => i.name);
  if (unknown.length > 0) throw new CoilError("INVALID_ARGUMENT", `unknown input(s) ${unknown.join(", ")}; the model takes ${signature.map((s) => s.name).join(", ")}`);
  return signature.map((s) => {
    const t = byName.get(s.name);
    if (!t) throw new CoilError("INVALID_ARGUMENT", `missing input "${s.name}"`);
    if (t.dtype !== s.dtype) throw new CoilError("UNSUPPORTED_DTYPE", `input "${s.name}" must be ${s.dtype}, got ${t.dtype}`);
    const fits = t.shape.length === s.shape.length && s.shape.every((d, i) => d === -1 || d === t.shape[i]);
    if (!fits) {
      throw new CoilError("SHAPE_MISMATCH", `input "${s.name}" must have shape [${s.shape.join(", ")}] (-1: any), got [${t.shape.join(", ")}]`);
    }
    return t;
  });
}

/** Names a model's result: a tensor, a list of tensors, or a dict of them. */
function nameOutputs(signature: TensorSignature[], output: unknown, wanted: string[] | undefined): NamedTensor[] {
  let named: NamedTensor[];
  if (output instanceof Tensor) named = [{ name: signature[0]?.name ?? "output__0", tensor: output }];
  else if (Array.isArray(output) && output.every((t) => t instanceof Tensor)) {
    named = output.map((tensor, i) => ({ name: signature[i]?.name ?? `output__${i}`, tensor }));
  } else if (output !== null && typeof output === "object" && Object.values(output).every((t) => t instanceof Tensor)) {
    named = Object.entries(output as Record<string, Tensor>).map(([name, tensor]) => ({ name, tensor }));
  } else {
    throw new CoilError("INVALID_ARGUMENT", "a served model must return a tensor, or a list or dict of tensors");
  }
  if (!wanted) return named;
  const missing = wanted.filter((w) => !named.some((n) => n.name === w));
  if (missing.length > 0) throw new CoilError("INVALID_ARGUMENT", `unknown output(s) ${missing.join(", ")}; the model returns ${named.map((n) => n.name).join(", ")}`);
  return named.filter((n) => wanted.includes(n.name));
}
