import { resolve } from "node:path";

import { CoilError } from "@coil/errors";
import type { BridgeFunction, CallOptions, Interpreter } from "@coil/native";

import { BytesTensor } from "./bytes-tensor.js";
import type { InterpreterHost } from "./contracts.js";

export interface ReplicatedObjectSpec {
  /** A Python source file. */
  file: string;
  /** The callable in it that builds the object (a class or a factory function). */
  factory: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
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
  #disposed = false;

  /** Made by InterpreterPool.replicate() and loadArchive(), or by any other InterpreterHost. */
  constructor(host: InterpreterHost, id: number, creation: Creation, onDispose: (object: ReplicatedObject) => void = () => {}) {
    this.#host = host;
    this.id = id;
    this.#creation = creation;
    this.#onDispose = onDispose;
  }

  /** The creation recipe for a Python file and factory. */
  static fromSpec(spec: ReplicatedObjectSpec): Creation {
    if (typeof spec?.file !== "string" || typeof spec.factory !== "string" || spec.factory === "") {
      throw new CoilError("INVALID_ARGUMENT", "a replicated object needs { file, factory }");
    }
    return { fn: "create_object", args: [resolve(spec.file), spec.factory, spec.args ?? [], spec.kwargs ?? {}] };
  }

  /** Calls the object itself: obj(*args). Tensors reach it as torch tensors over
   * the same memory, BytesTensors as nested lists of bytes. */
  call<T = unknown>(args: unknown[] = [], options?: ReplicatedCallOptions): Promise<T> {
    return this.callMethod<T>(null, args, options);
  }

  /** Calls one of its methods: obj.method(*args, **kwargs); null calls the object. */
  callMethod<T = unknown>(method: string | null, args: unknown[] = [], options: ReplicatedCallOptions = {}): Promise<T> {
    if (this.#disposed) return Promise.reject(new CoilError("CLOSED", `replicated object ${this.id} was disposed`));
    const interpreter = this.#host.pick();
    const created = this.#instantiate(interpreter);
    const { kwargs = {}, ...callOptions } = options;
    // Queued right behind the instantiation: an interpreter runs its jobs in order.
    const result = this.#host.runOn<T>(interpreter, "call_object", [this.id, method, toPython(args), kwargs], callOptions);
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

  /** Drops every instance; later calls fail with CLOSED. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#onDispose(this);
    const interpreters = [...this.#instances.keys()];
    this.#instances.clear();
    if (!this.#host.closed) {
      await Promise.all(interpreters.map((i) => this.#host.runOn(i, "drop_object", [this.id]).catch(() => {})));
    }
  }

  #instantiate(interpreter: Interpreter): Promise<unknown> {
    let created = this.#instances.get(interpreter);
    if (!created) {
      const { fn, args, onCreated, mapError } = this.#creation;
      created = this.#host.runOn(interpreter, fn, [this.id, ...(typeof args === "function" ? args(interpreter) : args)]);
      if (onCreated || mapError) {
        created = created.then(onCreated, (error: unknown) => {
          throw mapError ? mapError(error) : error;
        });
      }
      this.#instances.set(interpreter, created);
      // A failed instantiation is retried by the next call, not cached.
      created.catch(() => {
        if (this.#instances.get(interpreter) === created) this.#instances.delete(interpreter);
      });
    }
    return created;
  }
}

/** BytesTensor arguments as the nested lists of bytes Python receives. */
function toPython(args: unknown[]): unknown[] {
  return args.some((a) => a instanceof BytesTensor) ? args.map((a) => (a instanceof BytesTensor ? a.toNested() : a)) : args;
}
