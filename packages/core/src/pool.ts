import { availableParallelism } from "node:os";

import { CoilError, isCoilError } from "@coil/errors";
import {
  acquireInterpreters,
  discoverPython,
  explainTlsExhaustion,
  interpreterBudget,
  releaseInterpreters,
  type BridgeFunction,
  type CallOptions,
  type Interpreter,
  type PythonInstallation,
} from "@coil/native";

import { resolveAccelerator, type Accelerator, type AcceleratorChoice } from "./accelerator.js";
import type { Backend, BackendInfo, InterpreterHost, Scheduler } from "./contracts.js";
import { LoadedModel, type LoadArchiveOptions } from "./loaded-model.js";
import { ReplicatedObject, type Creation, type ReplicatedObjectSpec } from "./replicated-object.js";
import { LeastLoadedScheduler } from "./scheduler.js";

export interface PoolOptions {
  /** Interpreters in the pool, 1..15. Default: the number of cores, within what
   * the process may hold (see GLIBC_TUNABLES in the README). */
  size?: number;
  /** The Python executable whose shared libpython and sys.path to use. Default:
   * $COIL_PYTHON, else the first of python3 / /usr/bin/python3 with the backend's modules. */
  python?: string;
  /** How long an interpreter may go on with a call that was cancelled or ran past its
   * deadline (and so was to be interrupted) before it counts as stuck. Default 1000 ms. */
  stuckAfterMs?: number;
}

/** An interrupt lands at the call's next Python bytecode, within microseconds; a call
 * still running a second later is inside C code (a sleep, a long kernel) the interrupt
 * cannot reach. */
export const DEFAULT_STUCK_AFTER_MS = 1000;

/** What an interpreter's own malloc holds (see the bridge's info()). */
export interface InterpreterMemory {
  /** Bytes in use in the interpreter's libc malloc (mallinfo2: uordblks + hblkhd);
   * undefined where that libc lacks mallinfo2. */
  heapBytes: number | undefined;
}

export interface PoolCreateOptions extends PoolOptions {
  backend: Backend;
  scheduler?: Scheduler;
  /** The accelerators models may name (`accelerator: "compile"`); an Accelerator object needs no registering. */
  accelerators?: readonly Accelerator[];
}

export interface PoolCloseOptions {
  /** true (default): calls already accepted finish first. false: they are cancelled. */
  drain?: boolean;
}

/**
 * A pool of isolated CPython interpreters, each with its own GIL on its own
 * thread, prepared by one backend. The interpreters are borrowed from the process
 * and go back, reset, when the pool closes.
 */
export class InterpreterPool {
  readonly interpreters: readonly Interpreter[];
  readonly python: PythonInstallation;
  readonly backend: Backend;
  /** What the backend found in each interpreter. */
  readonly backendInfo: readonly BackendInfo[];
  /** The accelerators models of this pool may name. */
  readonly accelerators: readonly Accelerator[];
  #scheduler: Scheduler;
  #objects = new Set<ReplicatedObject>();
  #inFlight = 0;
  #drained: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #nextObjectId = 1;
  readonly #stuckAfterMs: number;
  /** Per interpreter: when a call of it was cancelled or timed out, and how busy the
   * interpreter was then. It is stuck while no call has finished since (busySeconds
   * unchanged) past stuckAfterMs. */
  readonly #abandoned = new Map<Interpreter, { since: number; busyAt: number }>();
  readonly #memory = new Map<Interpreter, InterpreterMemory>();
  readonly #sampling = new Map<Interpreter, Promise<void>>();
  /** What the pool's objects run through: the pool's hot path, not its public API. */
  readonly #host: InterpreterHost;

  private constructor(
    interpreters: Interpreter[],
    python: PythonInstallation,
    backend: Backend,
    info: BackendInfo[],
    scheduler: Scheduler,
    accelerators: readonly Accelerator[],
    stuckAfterMs: number,
  ) {
    this.#stuckAfterMs = stuckAfterMs;
    this.accelerators = Object.freeze([...accelerators]);
    this.interpreters = Object.freeze(interpreters);
    this.python = python;
    this.backend = backend;
    this.backendInfo = Object.freeze(info);
    this.#scheduler = scheduler;
    const pool = this;
    this.#host = {
      interpreters: this.interpreters,
      get closed() {
        return pool.closed;
      },
      pick: () => this.#scheduler.pick(this.interpreters),
      runOn: (interpreter, fn, args, options) => this.#runOn(interpreter, fn, args, options),
    };
  }

  static async create(options: PoolCreateOptions): Promise<InterpreterPool> {
    const size = options.size ?? Math.max(1, Math.min(availableParallelism(), interpreterBudget()));
    const python = await discoverPython({
      ...(options.python !== undefined && { python: options.python }),
      requiredModules: [...options.backend.requiredModules],
    });
    const interpreters = await acquireInterpreters(size, python);
    let info: BackendInfo[];
    try {
      info = await Promise.all(
        interpreters.map((interpreter, index) => options.backend.prepareInterpreter(interpreter, { index, poolSize: size })),
      );
    } catch (error) {
      await releaseInterpreters(interpreters);
      // Backends import torch here, where too few namespaces' static TLS shows first.
      throw explainTlsExhaustion(error);
    }
    return new InterpreterPool(
      interpreters,
      python,
      options.backend,
      info,
      options.scheduler ?? new LeastLoadedScheduler(),
      options.accelerators ?? [],
      options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS,
    );
  }

  get size(): number {
    return this.interpreters.length;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * An object each interpreter builds from `spec` the first time it runs one of
   * its calls (or at once, with `materialize()`), like torch::deploy's ReplicatedObj.
   */
  replicate(spec: ReplicatedObjectSpec): ReplicatedObject {
    this.#assertOpen();
    const accelerator = spec?.accelerator === undefined ? undefined : this.accelerator(spec.accelerator);
    return this.#replicate(ReplicatedObject.fromSpec(spec, accelerator && { accelerator }));
  }

  #replicate = (creation: Creation): ReplicatedObject => {
    const object = new ReplicatedObject(this.#host, this.#nextObjectId++, creation, this.#forget);
    this.#objects.add(object);
    return object;
  };

  /**
   * Loads a model archive (torch.package-compatible, see @coil/format-reader): the
   * archive is validated (structure, hashes, signature), then each interpreter maps
   * it and unpickles the entry object with its tensors over its mapping. The
   * mappings share their pages, so the weights are in memory once. Lazy per
   * interpreter, or everywhere at once with `eager`.
   */
  async loadArchive(path: string, options: LoadArchiveOptions = {}): Promise<LoadedModel> {
    this.#assertOpen();
    const accelerator = options.accelerator === undefined ? undefined : this.accelerator(options.accelerator);
    const model = await LoadedModel.open(path, options, this.#replicate, accelerator);
    if (options.eager) {
      try {
        await model.materialize();
      } catch (error) {
        await model.unload();
        throw error;
      }
    }
    return model;
  }

  /** The accelerator `choice` names among this pool's (an Accelerator object as it is). */
  accelerator(choice: AcceleratorChoice): Accelerator {
    return resolveAccelerator(choice, this.accelerators);
  }

  #forget = (object: ReplicatedObject): void => {
    this.#objects.delete(object);
  };

  /** Runs a bridge function on the interpreter the scheduler picks (by default a
   * free one first, else the least loaded). */
  run<T = unknown>(fn: BridgeFunction, args: unknown[], options?: CallOptions): Promise<T> {
    return this.#runOn(this.#host.pick(), fn, args, options);
  }

  /** Runs on a given interpreter, counted so close() can drain. This is the hot
   * path: no per-call signals or timers unless the caller asks for them. */
  #runOn<T = unknown>(interpreter: Interpreter, fn: BridgeFunction, args: unknown[], options?: CallOptions): Promise<T> {
    if (this.#closing) return Promise.reject(closedError());
    const call = interpreter.call<T>(fn, args, options);
    this.#inFlight++;
    call.then(this.#settled, this.#settled);
    // Only a call with a deadline or a signal can be abandoned while it runs.
    if (options?.timeoutMs !== undefined || options?.signal) call.catch((error: unknown) => this.#noteAbandoned(interpreter, error));
    return call;
  }

  #noteAbandoned(interpreter: Interpreter, error: unknown): void {
    if (!isCoilError(error, "DEADLINE_EXCEEDED") && !isCoilError(error, "CANCELLED")) return;
    if (!this.#abandoned.has(interpreter)) this.#abandoned.set(interpreter, { since: performance.now(), busyAt: interpreter.busySeconds });
  }

  /**
   * Whether `interpreter` is stuck: a call of this pool was cancelled or ran past its
   * deadline, and for stuckAfterMs since then the interpreter has finished no call
   * while it still has one (the interrupt did not reach it: it waits in C code). A
   * call queued behind a long one that expires marks it too, as it did not move.
   */
  isStuck(interpreter: Interpreter): boolean {
    const mark = this.#abandoned.get(interpreter);
    if (!mark) return false;
    if (interpreter.busySeconds !== mark.busyAt || interpreter.load === 0) {
      this.#abandoned.delete(interpreter);
      return false;
    }
    return performance.now() - mark.since >= this.#stuckAfterMs;
  }

  /** Every interpreter of the pool is stuck: nothing it is given can run. */
  get allStuck(): boolean {
    return this.interpreters.every((i) => this.isStuck(i));
  }

  /** The last memory sample of `interpreter` (see sampleMemory). */
  memory(interpreter: Interpreter): InterpreterMemory | undefined {
    return this.#memory.get(interpreter);
  }

  /**
   * Samples each interpreter's memory (a short call, behind those queued there); one
   * sample per interpreter at a time, so a stuck one is asked once. Not counted as the
   * pool's work: close() does not wait for it.
   */
  sampleMemory(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return Promise.all(
      this.interpreters.map((interpreter) => {
        let sample = this.#sampling.get(interpreter);
        if (!sample) {
          sample = interpreter
            .call<{ heap_bytes?: number | null }>("info")
            .then(
              (info) => void this.#memory.set(interpreter, { heapBytes: info?.heap_bytes ?? undefined }),
              () => undefined,
            )
            .finally(() => this.#sampling.delete(interpreter));
          this.#sampling.set(interpreter, sample);
        }
        return sample;
      }),
    ).then(() => undefined);
  }

  #settled = (): void => {
    if (--this.#inFlight === 0) this.#drained?.();
  };

  /** Stops taking calls, drains (or cancels) those accepted, then returns the
   * interpreters to the process, reset. Idempotent. */
  close(options: PoolCloseOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options.drain ?? true);
    return this.#closing;
  }

  async #close(drain: boolean): Promise<void> {
    if (!drain) for (const interpreter of this.interpreters) interpreter.cancelAll("the pool was closed");
    // Until every accepted call has settled. A call cancelled or past its deadline
    // has settled even if its Python code is still unwinding; the release's reset
    // queues behind it.
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    this.#objects.clear();
    await releaseInterpreters([...this.interpreters]);
  }

  #assertOpen(): void {
    if (this.#closing) throw closedError();
  }
}

function closedError(): CoilError {
  return new CoilError("CLOSED", "the pool is closed");
}
