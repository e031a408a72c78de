import type { Interpreter } from "@coil/native";

/** What a backend reports about one prepared interpreter. */
export interface BackendInfo {
  backend: string;
  python: string;
  torch?: string;
  cores: number;
  /** torch intra-op threads this interpreter uses. */
  threads: number;
  [key: string]: unknown;
}

export interface PrepareContext {
  /** Position of the interpreter in its pool, 0-based. */
  index: number;
  poolSize: number;
}

/**
 * A device backend (CPU, CUDA, ...): one contract per device, chosen by name, like
 * onnxruntime's execution providers or Triton's backends. Core knows this
 * contract, never a concrete backend.
 */
export interface Backend {
  /** The name configuration uses ("cpu", "cuda", ...). */
  readonly name: string;
  /** Python modules the backend needs; Python discovery picks one that has them. */
  readonly requiredModules: readonly string[];
  /** Makes a fresh (or freshly reset) interpreter ready for this device: imports,
   * threads, placement hooks. Runs once per interpreter per pool. */
  prepareInterpreter(interpreter: Interpreter, context: PrepareContext): Promise<BackendInfo>;
}

/**
 * A protocol adapter (HTTP, gRPC, ...) that exposes a runtime's models. Started
 * and stopped by the runtime that registers it.
 */
export interface Adapter {
  readonly name: string;
  start(): Promise<void>;
  /** Stop accepting, finish what is in flight, release resources. */
  stop(): Promise<void>;
}

/** Chooses the interpreter for the next call. */
export interface Scheduler {
  pick(interpreters: readonly Interpreter[]): Interpreter;
}
