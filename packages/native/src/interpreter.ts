import { CoilError } from "@coil/errors";

import type { NativeInterpreter } from "./addon.js";
import type { PythonInstallation } from "./python.js";

/** Functions of the Python bridge (native/python/coil_bridge.py) a job can run. */
export type BridgeFunction =
  | "noop"
  | "echo"
  | "exec_source"
  | "eval_expr"
  | "load_module"
  | "create_object"
  | "call_object"
  | "drop_object"
  | "export_package"
  | "load_package"
  | "run_hook"
  | "accelerate_object"
  | "acceleration_fallbacks"
  | "reset"
  | "info";

export interface CallOptions {
  /** Milliseconds from now. Past it the call rejects with DEADLINE_EXCEEDED; a call
   * still queued never starts, a running one is interrupted at its next Python
   * bytecode, and the interpreter serves the next call. Beyond MAX_TIMEOUT_MS (about
   * 24.8 days, what a Node timer can wait) there is no deadline. */
  timeoutMs?: number;
  /** Aborting rejects with CANCELLED, with the same effect on the interpreter. */
  signal?: AbortSignal;
  /** Filled in when the call settles: how long it waited in the interpreter's
   * queue and how long it ran (both 0 for a call that never started). */
  timings?: CallTimings;
}

export interface CallTimings {
  queuedSeconds: number;
  runSeconds: number;
}

/** The longest a Node timer waits (2^31 - 1 ms); longer timeouts mean none. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

let lastJobId = 0;
export function nextJobId(): number {
  return ++lastJobId;
}

/**
 * One isolated CPython interpreter, lent to its holder until released. Calls run
 * in order on the interpreter's own thread.
 */
export class Interpreter {
  #native: NativeInterpreter;
  #closed = false;

  constructor(
    native: NativeInterpreter,
    /** The Python it runs. */
    readonly python: PythonInstallation,
    /** CPython's version string, as Py_GetVersion gives it. */
    readonly pythonVersion: string,
  ) {
    this.#native = native;
  }

  /** 0..14: which of the process's interpreters this is. */
  get index(): number {
    return this.#native.index;
  }

  /** Calls queued on this interpreter plus the one running. */
  get load(): number {
    return this.#native.load;
  }

  /** Seconds this interpreter's thread has spent running calls, since it started
   * (it outlives pools: compare differences). */
  get busySeconds(): number {
    return this.#native.busySeconds;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs a bridge function with these arguments (converted to Python values;
   * Tensors become torch tensors over the same memory). */
  call<T = unknown>(fn: BridgeFunction, args: unknown[] = [], options?: CallOptions): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new CoilError("CLOSED", `interpreter ${this.index} was released; calls after close are refused`));
    }
    const id = nextJobId();
    if (options?.signal?.aborted) return Promise.reject(cancelledError(options.signal));
    let promise: Promise<unknown>;
    try {
      const timings = options?.timings;
      if (timings) {
        const seconds = new Float64Array(2);
        const record = () => {
          timings.queuedSeconds = seconds[0]!;
          timings.runSeconds = seconds[1]!;
        };
        promise = this.#native.call(fn, args, id, seconds).then(
          (value) => {
            record();
            return value;
          },
          (error: unknown) => {
            record();
            throw error;
          },
        );
      } else {
        promise = this.#native.call(fn, args, id);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const timed = options?.timeoutMs !== undefined && options.timeoutMs <= MAX_TIMEOUT_MS;
    if (!timed && options?.signal === undefined) return promise as Promise<T>;
    return this.#guard(promise, id, options) as Promise<T>;
  }

  /** Cancels every call queued or running here (each rejects with CANCELLED);
   * returns how many. */
  cancelAll(reason = "cancelled"): number {
    return this.#native.cancelAll("CANCELLED", `call cancelled: ${reason}`);
  }

  /** Runs Python statements in this interpreter's own namespace. */
  exec(source: string, filename = "<coil>"): Promise<void> {
    return this.call("exec_source", [source, filename]);
  }

  /** Evaluates a Python expression in that namespace and returns its value. */
  eval<T = unknown>(expression: string, options?: CallOptions): Promise<T> {
    return this.call<T>("eval_expr", [expression], options);
  }

  /** @internal The registry takes the interpreter back. */
  markClosed(): void {
    this.#closed = true;
  }

  #guard(promise: Promise<unknown>, id: number, options: CallOptions): Promise<unknown> {
    const { timeoutMs, signal } = options;
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined && timeoutMs <= MAX_TIMEOUT_MS) {
      timer = setTimeout(
        () => this.#native.cancel(id, "DEADLINE_EXCEEDED", `call exceeded its deadline of ${timeoutMs} ms`),
        Math.max(0, timeoutMs),
      );
    }
    const onAbort = () => this.#native.cancel(id, "CANCELLED", cancelledError(signal!).message);
    signal?.addEventListener("abort", onAbort, { once: true });
    return promise.finally(() => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    });
  }
}

function cancelledError(signal: AbortSignal): CoilError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? "aborted");
  return new CoilError("CANCELLED", `call cancelled: ${reason}`);
}
