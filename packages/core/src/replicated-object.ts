import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

import { CoilError } from "@coil/errors";
import type { BridgeFunction, CallOptions, Interpreter } from "@coil/native";

import { summarizeAcceleration, type AccelerationPlan, type AccelerationStatus, type AcceleratorChoice, type InterpreterAcceleration, type InterpreterFallbacks } from "./accelerator.js";
import { BytesTensor } from "./bytes-tensor.js";
import type { InterpreterHost } from "./contracts.js";
import type { TensorSignature } from "./serving.js";

export interface ReplicatedObjectSpec {
  /** A Python source file. */
  file: string;
  /** The callable in it that builds the object (a class or a factory function). */
  factory: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  /** Run it through an accelerator in each interpreter ("compile", "onnxruntime", or
   * an Accelerator): checked against eager on example inputs made from `inputs`. */
  accelerator?: AcceleratorChoice;
  /** The object's inputs, in call order (-1: a dynamic dimension), for the accelerator's example inputs. */
  inputs?: readonly TensorSignature[];
}

/** How each interpreter builds its instance: a bridge function, called with the
 * object's id followed by `args` (create_object for files, load_package for archives).
 * `args` may be made per interpreter (each gets its own mapping of an archive). */
export interface Creation {
  fn: Extract<BridgeFunction, "create_object" | "load_package">;
  args: unknown[] | ((interpreter: Interpreter) => unknown[]);
  /** Told what each interpreter's instantiation returned. */
  onCreated?: (result: unknown) => void;
  /** Turns an instantiation's error into the one to report. */
  mapError?: (error: unknown) => unknown;
  /** Then accelerated in each interpreter (queued right behind the instantiation). */
  acceleration?: AccelerationPlan;
}

export interface ReplicatedCallOptions extends CallOptions {
  kwargs?: Record<string, unknown>;
}

/**
 * One Python object, instantiated separately in each interpreter that needs it
 * (lazily on its first call there, or everywhere with materialize()). Calls go to
 * a free interpreter, else the least loaded.
 */
export class ReplicatedObject {
  readonly id: number;
  readonly #creation: Creation;
  readonly #host: InterpreterHost;
  readonly #onDispose: (object: ReplicatedObject) => void;
  // Per interpreter: the pending or finished instantiation.
  readonly #instances = new Map<Interpreter, Promise<unknown>>();
  // Interpreters whose instantiation succeeded: a call there needs no wait for it.
  readonly #ready = new Set<Interpreter>();
  // Per interpreter that instantiated it: what its accelerator made of it.
  readonly #accelerations = new Map<Interpreter, InterpreterAcceleration>();
  readonly #fallbacks = new Map<Interpreter, InterpreterFallbacks>();
  #disposed = false;

  /** Made by InterpreterPool.replicate() and loadArchive(), or by any other InterpreterHost. */
  constructor(host: InterpreterHost, id: number, creation: Creation, onDispose: (object: ReplicatedObject) => void = () => {}) {
    this.#host = host;
    this.id = id;
    this.#creation = creation;
    this.#onDispose = onDispose;
  }

  /** The creation recipe for a Python file and factory (the spec's accelerator already resolved). */
  static fromSpec(spec: ReplicatedObjectSpec, acceleration?: Omit<AccelerationPlan, "inputs" | "cacheKey">): Creation {
    if (typeof spec?.file !== "string" || typeof spec.factory !== "string" || spec.factory === "") {
      throw new CoilError("INVALID_ARGUMENT", "a replicated object needs { file, factory }");
    }
    const args = [resolve(spec.file), spec.factory, spec.args ?? [], spec.kwargs ?? {}];
    if (!acceleration) return { fn: "create_object", args };
    // The file's content, the factory's arguments and the signature key the accelerator's caches.
    const cacheKey = createHash("sha256")
      .update(readFileSync(args[0] as string))
      .update(JSON.stringify([args.slice(1), spec.inputs ?? []]))
      .digest("hex");
    return { fn: "create_object", args, acceleration: { ...acceleration, inputs: spec.inputs ?? [], cacheKey } };
  }

  /** Calls the object itself: obj(*args). Tensors reach it as torch tensors over
   * the same memory, BytesTensors as nested lists of bytes. */
  call<T = unknown>(args: unknown[] = [], options?: ReplicatedCallOptions): Promise<T> {
    return this.callMethod<T>(null, args, options);
  }

  /** Calls one of its methods: obj.method(*args, **kwargs); null calls the object. */
  callMethod<T = unknown>(method: string | null, args: unknown[] = [], options?: ReplicatedCallOptions): Promise<T> {
    if (this.#disposed) return Promise.reject(new CoilError("CLOSED", `replicated object ${this.id} was disposed`));
    const interpreter = this.#host.pick();
    const created = this.#ready.has(interpreter) ? undefined : this.#instantiate(interpreter);
    // Queued right behind the instantiation: an interpreter runs its jobs in order.
    // No kwargs cross as null, not as an empty object to convert each call; `options`
    // goes on as it is (the interpreter reads only its CallOptions).
    const result = this.#host.runOn<T>(interpreter, "call_object", [this.id, method, toPython(args), options?.kwargs ?? null], options);
    // The hot path: no promise chained on the instantiation (a promise resolved with
    // another promise costs two more turns of the microtask queue).
    if (!created) return result;
    return created.then(
      () => result,
      (error: unknown) => {
        result.catch(() => {}); // fails too ("not instantiated"); the factory's error is the one to report
        throw error;
      },
    );
  }

  /** Instantiates the object in every interpreter of the pool now. */
  async materialize(): Promise<void> {
    await Promise.all(this.#host.interpreters.map((interpreter) => this.#instantiate(interpreter)));
  }

  /** Interpreters in the pool this object belongs to. */
  get poolSize(): number {
    return this.#host.interpreters.length;
  }

  /** How many interpreters hold an instance (or are building one). */
  get instances(): number {
    return this.#instances.size;
  }

  /** The accelerator's results over the interpreters that instantiated the object;
   * undefined without an accelerator. */
  get acceleration(): AccelerationStatus | undefined {
    const plan = this.#creation.acceleration;
    return plan && summarizeAcceleration(plan.accelerator.name, [...this.#accelerations.values()], [...this.#fallbacks.values()]);
  }

  /** Reads, in each interpreter running the accelerated form, how many calls fell
   * back to eager (see AccelerationStatus.fallbackCalls): a short call queued behind
   * those in flight. */
  async sampleAcceleration(): Promise<void> {
    const running = [...this.#accelerations].filter(([, outcome]) => outcome.accelerated).map(([interpreter]) => interpreter);
    await Promise.all(
      running.map(async (interpreter) => {
        const sample = await this.#host.runOn<InterpreterFallbacks | null>(interpreter, "acceleration_fallbacks", [this.id]).catch(() => null);
        if (sample && this.#accelerations.has(interpreter)) this.#fallbacks.set(interpreter, sample);
      }),
    );
  }

  /** Drops every instance; later calls fail with CLOSED. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#onDispose(this);
    const interpreters = [...this.#instances.keys()];
    this.#instances.clear();
    this.#ready.clear();
    this.#accelerations.clear();
    this.#fallbacks.clear();
    if (!this.#host.closed) {
      await Promise.all(interpreters.map((i) => this.#host.runOn(i, "drop_object", [this.id]).catch(() => {})));
    }
  }

  #instantiate(interpreter: Interpreter): Promise<unknown> {
    let created = this.#instances.get(interpreter);
    if (!created) {
      const { fn, args, onCreated, mapError, acceleration } = this.#creation;
      created = this.#host.runOn(interpreter, fn, [this.id, ...(typeof args === "function" ? args(interpreter) : args)]);
      if (acceleration) created = this.#accelerate(interpreter, created, acceleration);
      if (onCreated || mapError) {
        created = created.then(onCreated, (error: unknown) => {
          throw mapError ? mapError(error) : error;
        });
      }
      this.#instances.set(interpreter, created);
      const instance = created;
      instance.then(
        () => {
          if (this.#instances.get(interpreter) === instance) this.#ready.add(interpreter);
        },
        // A failed instantiation is retried by the next call, not cached.
        () => {
          if (this.#instances.get(interpreter) === instance) this.#instances.delete(interpreter);
        },
      );
    }
    return created;
  }

  /** Queues the accelerator right behind the instantiation, so the interpreter's next
   * call runs the accelerated form (or eager, with the reason recorded). */
  #accelerate(interpreter: Interpreter, created: Promise<unknown>, plan: AccelerationPlan): Promise<unknown> {
    const { accelerator, inputs, cacheKey } = plan;
    const signature = inputs.map((s) => ({ name: s.name, dtype: s.dtype, shape: [...s.shape] }));
    const accelerated = this.#host
      .runOn<InterpreterAcceleration>(interpreter, "accelerate_object", [
        this.id,
        accelerator.hook.file,
        accelerator.hook.function,
        signature,
        { ...accelerator.tolerance },
        accelerator.hookOptions({ cacheKey }),
      ])
      .catch((error: unknown): InterpreterAcceleration => ({ accelerated: false, reason: `accelerate_object failed: ${(error as Error).message}` }));
    return created.then(
      async (result) => {
        const outcome = await accelerated;
        if (this.#instances.has(interpreter)) this.#accelerations.set(interpreter, outcome);
        return result;
      },
      // accelerate_object then failed too ("not instantiated"); this error is the one to report.
      (error: unknown) => Promise.reject(error),
    );
  }
}

/** BytesTensor arguments as the nested lists of bytes Python receives. */
function toPython(args: unknown[]): unknown[] {
  return args.some((a) => a instanceof BytesTensor) ? args.map((a) => (a instanceof BytesTensor ? a.toNested() : a)) : args;
}
