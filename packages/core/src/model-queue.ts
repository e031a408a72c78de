import { CoilError } from "@coil/errors";
import { MAX_TIMEOUT_MS, Tensor, type CallTimings } from "@coil/native";

import { concatRows, rowSignature } from "./batch-tensors.js";
import { BytesTensor } from "./bytes-tensor.js";
import type { ServedTensor } from "./datatypes.js";
import { BATCH_BOUNDS, Histogram, SECONDS_BOUNDS, type HistogramSnapshot } from "./histogram.js";
import type { ReplicatedObject } from "./replicated-object.js";
import { SignatureBinding } from "./signature-binding.js";

export interface BatchingOptions {
  /** Most rows (sum of the requests' first dimensions) in one call. */
  maxBatchSize: number;
  /** How long the oldest request may wait for others to join its batch, in
   * microseconds (Triton's max_queue_delay_microseconds). Default 100. The wait is a
   * Node timer, and those count whole milliseconds: a delay under 1000 µs waits
   * about 1 ms when no batch fills up first. */
  maxQueueDelayMicros?: number;
}

export interface ModelQueueOptions {
  /** Requests accepted and not yet answered, at most; one more is refused at once
   * with QUEUE_FULL (HTTP 503 / gRPC RESOURCE_EXHAUSTED). Default 1024. */
  maxQueueSize?: number;
  /** Dynamic batching, for models whose inputs and outputs have a batch dimension
   * (dim 0): requests that arrive close together are stacked along it, run as one
   * call, and the outputs split back. A batched call that fails is run again request
   * by request, so that one bad request fails alone. */
  batching?: BatchingOptions;
  /** Method to call: null (default) calls the object itself. */
  method?: string | null;
  /** Batches running at once. Default: the pool's size (one per interpreter). */
  concurrency?: number;
  /** The model's signature binding: with batching, how its results split back into
   * one result per request. Default: a model without a signature. */
  binding?: SignatureBinding;
}

export interface InferOptions {
  /** Milliseconds. Past it the request rejects with DEADLINE_EXCEEDED: a request
   * still queued never runs; a running one is interrupted when it runs alone. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ModelQueueStats {
  accepted: number;
  refusedFull: number;
  expiredInQueue: number;
  batches: number;
  /** Requests and rows over all batches: their ratio to `batches` is the mean batch size. */
  batchedRequests: number;
  batchedRows: number;
  /** Per request: from acceptance until its call started running in an
   * interpreter (the batcher's wait plus the interpreter's queue). */
  queueSeconds: HistogramSnapshot;
  /** Per model call (a batch counts once): how long it ran in the interpreter. */
  computeSeconds: HistogramSnapshot;
  /** Per model call: how many requests it answered (1 without batching). */
  batchRequests: HistogramSnapshot;
}

interface Request {
  inputs: ServedTensor[];
  rows: number;
  signature: string;
  enqueuedAt: number;
  deadline: number | undefined; // performance.now() ms
  resolve(value: unknown): void;
  reject(error: unknown): void;
  settled: boolean;
  cleanup(): void;
}

/**
 * The scheduler in front of one model: a bounded queue, per-request deadlines, and
 * optional dynamic batching (as Triton's dynamic batcher). Inputs are positional
 * tensors, passed to the model as model(*inputs).
 */
export class ModelQueue<T = unknown> {
  readonly #model: ReplicatedObject;
  readonly #maxQueueSize: number;
  readonly #batching: Required<BatchingOptions> | undefined;
  readonly #method: string | null;
  readonly #concurrency: number;
  readonly #binding: SignatureBinding;
  readonly #queue: Request[] = [];
  #inFlight = 0; // requests dispatched, not yet answered
  #batchesInFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #stats = {
    accepted: 0,
    refusedFull: 0,
    expiredInQueue: 0,
    batches: 0,
    batchedRequests: 0,
    batchedRows: 0,
  };
  readonly #queueSeconds = new Histogram(SECONDS_BOUNDS);
  readonly #computeSeconds = new Histogram(SECONDS_BOUNDS);
  readonly #batchRequests = new Histogram(BATCH_BOUNDS);

  constructor(model: ReplicatedObject, options: ModelQueueOptions = {}) {
    const { maxQueueSize = 1024, batching, method = null, concurrency = model.poolSize, binding = new SignatureBinding() } = options;
    if (!Number.isInteger(maxQueueSize) || maxQueueSize < 1) {
      throw new CoilError("INVALID_ARGUMENT", `maxQueueSize must be a positive integer, got ${maxQueueSize}`);
    }
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new CoilError("INVALID_ARGUMENT", `concurrency must be a positive integer, got ${concurrency}`);
    }
    if (batching) {
      const { maxBatchSize, maxQueueDelayMicros = 100 } = batching;
      if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
        throw new CoilError("INVALID_ARGUMENT", `maxBatchSize must be a positive integer, got ${maxBatchSize}`);
      }
      if (!(maxQueueDelayMicros >= 0 && maxQueueDelayMicros <= MAX_TIMEOUT_MS * 1000)) {
        throw new CoilError("INVALID_ARGUMENT", `maxQueueDelayMicros must be 0..${MAX_TIMEOUT_MS * 1000}, got ${maxQueueDelayMicros}`);
      }
      this.#batching = { maxBatchSize, maxQueueDelayMicros };
    }
    this.#model = model;
    this.#maxQueueSize = maxQueueSize;
    this.#method = method;
    this.#concurrency = concurrency;
    this.#binding = binding;
  }

  /** Requests accepted and not yet answered. */
  get pending(): number {
    return this.#queue.length + this.#inFlight;
  }

  stats(): Readonly<ModelQueueStats> {
    return {
      ...this.#stats,
      queueSeconds: this.#queueSeconds.snapshot(),
      computeSeconds: this.#computeSeconds.snapshot(),
      batchRequests: this.#batchRequests.snapshot(),
    };
  }

  /** Runs the model on positional inputs: Tensors reach it as torch tensors,
   * BytesTensors as nested lists of bytes. */
  infer(inputs: ServedTensor[], options: InferOptions = {}): Promise<T> {
    if (this.#closed) return Promise.reject(new CoilError("CLOSED", "the model's queue is closed"));
    if (this.pending >= this.#maxQueueSize) {
      this.#stats.refusedFull++;
      return Promise.reject(
        new CoilError("QUEUE_FULL", `the model's queue is full (${this.#maxQueueSize} requests waiting or running)`, {
          details: { maxQueueSize: this.#maxQueueSize },
        }),
      );
    }
    if (options.signal?.aborted) return Promise.reject(new CoilError("CANCELLED", "request cancelled"));
    this.#stats.accepted++;
    if (!this.#batching) {
      this.#inFlight++;
      const timings: CallTimings = { queuedSeconds: 0, runSeconds: 0 };
      return this.#model
        .callMethod<T>(this.#method, inputs, {
          timings,
          ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
          ...(options.signal && { signal: options.signal }),
        })
        .finally(() => {
          this.#inFlight--;
          this.#recordCall(timings, [0], 1); // without batching a request is one row
        });
    }
    let request: Request;
    try {
      request = this.#request(inputs, options);
    } catch (error) {
      this.#stats.accepted--;
      return Promise.reject(error);
    }
    const promise = new Promise<T>((resolve, reject) => {
      request.resolve = resolve as (value: unknown) => void;
      request.reject = reject;
    });
    this.#queue.push(request);
    this.#pump();
    return promise;
  }

  /**
   * Refuses new requests (CLOSED) and finishes the accepted ones: requests waiting
   * for a batch run now, without waiting out their delay. With `drain: false` the
   * waiting ones are rejected with CLOSED instead; those running still finish.
   */
  async close(options: { drain?: boolean } = {}): Promise<void> {
    this.#closed = true;
    if (options.drain === false) {
      clearTimeout(this.#timer);
      for (const r of this.#queue.splice(0)) this.#settle(r, new CoilError("CLOSED", "the model's queue was closed"));
    } else if (this.#batching) {
      this.#pump();
    }
    while (this.pending > 0) await new Promise((r) => setTimeout(r, 5));
  }

  #request(inputs: ServedTensor[], options: InferOptions): Request {
    if (!Array.isArray(inputs) || inputs.length === 0 || !inputs.every((t) => t instanceof Tensor || t instanceof BytesTensor)) {
      throw new CoilError("INVALID_ARGUMENT", "a batched model takes one or more Tensors or BytesTensors");
    }
    const rows = inputs[0]!.shape[0];
    if (rows === undefined || inputs.some((t) => t.shape[0] !== rows)) {
      throw new CoilError("SHAPE_MISMATCH", "a batched model's inputs must share their first (batch) dimension");
    }
    // Past what a Node timer can wait (about 24.8 days) there is no deadline.
    const timeoutMs = options.timeoutMs !== undefined && options.timeoutMs <= MAX_TIMEOUT_MS ? options.timeoutMs : undefined;
    const request: Request = {
      inputs,
      rows,
      signature: inputs.map(rowSignature).join(";"),
      enqueuedAt: performance.now(),
      deadline: timeoutMs !== undefined ? performance.now() + timeoutMs : undefined,
      resolve: () => {},
      reject: () => {},
      settled: false,
      cleanup: () => {},
    };
    const expire = (error: CoilError) => {
      const queued = this.#queue.indexOf(request);
      if (queued >= 0) {
        this.#queue.splice(queued, 1);
        this.#stats.expiredInQueue++;
      }
      this.#settle(request, error);
    };
    const timer =
      timeoutMs !== undefined
        ? setTimeout(() => expire(new CoilError("DEADLINE_EXCEEDED", `request exceeded its deadline of ${timeoutMs} ms`)), timeoutMs)
        : undefined;
    const onAbort = () => expire(new CoilError("CANCELLED", "request cancelled"));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    request.cleanup = () => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    };
    return request;
  }

  /** Forms and starts batches while an interpreter is free: when enough rows wait,
   * or the oldest request has waited its delay; otherwise waits for either. */
  #pump(): void {
    const { maxBatchSize, maxQueueDelayMicros } = this.#batching!;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#queue.length > 0 && this.#batchesInFlight < this.#concurrency) {
      const waitedMicros = (performance.now() - this.#queue[0]!.enqueuedAt) * 1000;
      const rows = this.#queue.reduce((n, r) => n + r.rows, 0);
      if (rows < maxBatchSize && waitedMicros < maxQueueDelayMicros && !this.#closed) {
        this.#timer = setTimeout(() => this.#pump(), Math.max(0, (maxQueueDelayMicros - waitedMicros) / 1000));
        return;
      }
      this.#dispatch(this.#takeBatch(maxBatchSize));
    }
  }

  /** The oldest request and the next ones of the same signature, within maxBatchSize
   * rows; requests of another signature keep their place for the next batch. */
  #takeBatch(maxBatchSize: number): Request[] {
    const first = this.#queue[0]!;
    const batch: Request[] = [];
    let rows = 0;
    for (let i = 0; i < this.#queue.length; ) {
      const r = this.#queue[i]!;
      if (r.signature === first.signature && (batch.length === 0 || rows + r.rows <= maxBatchSize)) {
        batch.push(r);
        rows += r.rows;
        this.#queue.splice(i, 1);
        if (rows >= maxBatchSize) break;
      } else {
        i++;
      }
    }
    return batch;
  }

  #dispatch(batch: Request[]): void {
    this.#batchesInFlight++;
    this.#inFlight += batch.length;
    const rows = batch.map((r) => r.rows);
    const dispatchedAt = performance.now();
    const waitedSeconds = batch.map((r) => (dispatchedAt - r.enqueuedAt) / 1000);
    const timings: CallTimings = { queuedSeconds: 0, runSeconds: 0 };
    // The batch may run as long as its most patient request may wait.
    const deadlines = batch.map((r) => r.deadline);
    const timeoutMs = deadlines.includes(undefined)
      ? undefined
      : Math.max(0, Math.max(...(deadlines as number[])) - performance.now());
    let call: Promise<unknown>;
    try {
      const inputs = batch[0]!.inputs.map((_, i) => concatRows(batch.map((r) => r.inputs[i]!)));
      call = this.#model.callMethod(this.#method, inputs, { timings, ...(timeoutMs !== undefined && { timeoutMs }) });
    } catch (error) {
      call = Promise.reject(error);
    }
    // Counted before the requests settle, so whoever awaits them sees the call in stats().
    const recorded = call.finally(() => this.#recordCall(timings, waitedSeconds, rows.reduce((a, b) => a + b, 0)));
    recorded
      .then(
        (output) => {
          const pieces = batch.length === 1 ? [output] : this.#binding.splitBatch(output, rows);
          batch.forEach((r, i) => this.#settle(r, undefined, pieces[i]));
        },
        async (error: unknown) => {
          // One bad request must not fail the others: a call that failed is run again
          // request by request, so only the requests that fail alone get an error.
          if (batch.length > 1 && retriesAlone(error)) await Promise.all(batch.map((r) => this.#runAlone(r)));
          else batch.forEach((r) => this.#settle(r, error));
        },
      )
      // Outputs that do not split along the batch dimension: the model's fault, not a request's.
      .catch((error: unknown) => batch.forEach((r) => this.#settle(r, error)))
      .finally(() => {
        this.#batchesInFlight--;
        this.#inFlight -= batch.length;
        this.#pump();
      });
  }

  /** Runs one request of a failed batch by itself, within what is left of its deadline. */
  async #runAlone(request: Request): Promise<void> {
    if (request.settled) return;
    const timings: CallTimings = { queuedSeconds: 0, runSeconds: 0 };
    const timeoutMs = request.deadline === undefined ? undefined : Math.max(0, request.deadline - performance.now());
    const waited = (performance.now() - request.enqueuedAt) / 1000;
    try {
      const output = await this.#model
        .callMethod(this.#method, request.inputs, { timings, ...(timeoutMs !== undefined && { timeoutMs }) })
        .finally(() => this.#recordCall(timings, [waited], request.rows));
      this.#settle(request, undefined, output);
    } catch (error) {
      this.#settle(request, error);
    }
  }

  /** Counts one model call: each request's wait (`waitedSeconds`: before the call
   * was submitted), the call's run time, and its size. A call that never ran
   * (cancelled, expired in the interpreter's queue) is not counted. */
  #recordCall(timings: CallTimings, waitedSeconds: number[], rows: number): void {
    if (timings.runSeconds === 0) return;
    this.#stats.batches++;
    this.#stats.batchedRequests += waitedSeconds.length;
    this.#stats.batchedRows += rows;
    for (const waited of waitedSeconds) this.#queueSeconds.observe(waited + timings.queuedSeconds);
    this.#computeSeconds.observe(timings.runSeconds);
    this.#batchRequests.observe(waitedSeconds.length);
  }

  #settle(request: Request, error: unknown, value?: unknown): void {
    if (request.settled) return;
    request.settled = true;
    request.cleanup();
    if (error !== undefined) request.reject(error);
    else request.resolve(value);
  }
}

/** A call that failed for these reasons would fail alone too (or its requests are
 * already answered); any other failure (the model raised) may be one request's fault. */
function retriesAlone(error: unknown): boolean {
  return !(error instanceof CoilError && ["DEADLINE_EXCEEDED", "CANCELLED", "CLOSED"].includes(error.code));
}
