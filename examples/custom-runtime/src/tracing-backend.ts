import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { TOKENS, type Backend, type BackendInfo, type PrepareContext } from "@coil/core";
import { CoilError } from "@coil/errors";
import type { Interpreter } from "@coil/native";
import { inject, injectable, type DependencyContainer, type InjectionToken } from "tsyringe";

export interface TracingBackendOptions {
  /** A label each interpreter reports, to tell pools apart. Default "tracing". */
  label?: string;
}

export const TRACING_BACKEND_OPTIONS = Symbol.for("example.TracingBackendOptions") as InjectionToken<TracingBackendOptions>;

const PYTHON_SIDE = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "python", "tracing_backend.py");

/** What the Python side counted in one interpreter. */
export interface Trace {
  inputs: number;
  calls: number;
  outputs: number;
  input_shapes: number[][];
}

export function validateTracingOptions(options: TracingBackendOptions): void {
  if (options.label !== undefined && (typeof options.label !== "string" || options.label === "")) {
    throw new CoilError("INVALID_ARGUMENT", "tracing backend: label must be a non-empty string");
  }
}

/**
 * A backend plugin of this example's own: torch on the CPU, one thread per
 * interpreter, every model call in inference mode -- and a trace of the tensors
 * that crossed the bridge, kept on the Python side.
 */
@injectable()
export class TracingBackend implements Backend {
  readonly name = "tracing";
  readonly requiredModules = ["torch"] as const;
  readonly #label: string;

  constructor(@inject(TRACING_BACKEND_OPTIONS) options: TracingBackendOptions = {}) {
    validateTracingOptions(options);
    this.#label = options.label ?? "tracing";
  }

  prepareInterpreter(interpreter: Interpreter, _context: PrepareContext): Promise<BackendInfo> {
    return interpreter.call<BackendInfo>("run_hook", [PYTHON_SIDE, "prepare", { label: this.#label, threads: 1 }]);
  }

  /** The trace one interpreter of a pool this backend prepared has kept. */
  static trace(interpreter: Interpreter): Promise<Trace> {
    return interpreter.call<Trace>("run_hook", [PYTHON_SIDE, "read_trace", {}]);
  }
}

/** Registers the tracing backend as the container's TOKENS.Backend. The options are
 * checked here: a constructor's CoilError would reach the caller of
 * createPoolFromContainer wrapped by tsyringe in a plain Error. */
export function registerTracingBackend(container: DependencyContainer, options: TracingBackendOptions = {}): DependencyContainer {
  validateTracingOptions(options);
  container.register(TRACING_BACKEND_OPTIONS, { useValue: options });
  container.register(TOKENS.Backend, { useClass: TracingBackend });
  return container;
}
