import type { DependencyContainer } from "tsyringe";

import type { BridgeFunction, CallOptions, Interpreter } from "@coil/native";

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
  /** Where it listens once started (e.g. http://127.0.0.1:8000), for logs; optional. */
  readonly url?: string;
  start(): Promise<void>;
  /** Stop accepting, finish what is in flight, release resources. */
  stop(): Promise<void>;
}

/** Chooses the interpreter for the next call. */
export interface Scheduler {
  pick(interpreters: readonly Interpreter[]): Interpreter;
}

/**
 * What a replicated object needs from whatever holds its interpreters (a pool): the
 * interpreters, the scheduler's pick, and a counted way to run on one of them. Narrow
 * on purpose, so objects and models depend on this contract, not on the pool class.
 */
export interface InterpreterHost {
  readonly interpreters: readonly Interpreter[];
  readonly closed: boolean;
  /** The interpreter the scheduler picks for the next call. */
  pick(): Interpreter;
  /** Runs a bridge function on `interpreter`, counted so the host can drain it on close. */
  runOn<T = unknown>(interpreter: Interpreter, fn: BridgeFunction, args: unknown[], options?: CallOptions): Promise<T>;
}

/**
 * A plugin: registers what it brings into the runtime's container (a backend under
 * TOKENS.Backend, adapters under TOKENS.Adapter, a scheduler under TOKENS.Scheduler),
 * like a fastify plugin. A plugin package default-exports one.
 */
export type CoilPlugin<Options = any> = (container: DependencyContainer, options: Options) => unknown;
