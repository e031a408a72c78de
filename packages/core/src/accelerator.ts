import { CoilError } from "@coil/errors";

import type { TensorSignature } from "./serving.js";

/** How close an accelerated output must be to eager's, leaf by leaf: |a - e| <= atol + rtol * |e|. */
export interface Tolerance {
  rtol: number;
  atol: number;
}

/** What an accelerator is told about the model it prepares. */
export interface AcceleratedModelInfo {
  /** A key of the model's content (the archive's record hashes, or the file and its
   * arguments): what a cache of its compiled or exported form is keyed by. */
  cacheKey: string;
}

/**
 * An accelerator (torch.compile, ONNX Runtime, ...): in each interpreter, its Python
 * hook turns the loaded model into a faster callable, `hook(model, request)`, where
 * request is coil_bridge.AccelerationRequest (example inputs made from the model's
 * signature, its dynamic dimensions, the options below). The bridge keeps the result
 * only if it equals eager within `tolerance` on the example inputs; otherwise, or if
 * the hook raises, the model stays eager and the reason is reported. Chosen per model
 * by name, like backends; a plugin registers one under TOKENS.Accelerator.
 */
export interface Accelerator {
  /** The name configuration uses ("compile", "onnxruntime", ...). */
  readonly name: string;
  /** The Python side: a file and the function in it. */
  readonly hook: { readonly file: string; readonly function: string };
  readonly tolerance: Tolerance;
  /** The hook's options for one model (JSON values). */
  hookOptions(model: AcceleratedModelInfo): Record<string, unknown>;
}

/** An accelerator as code chooses it: by name (one the pool knows) or the object itself. */
export type AcceleratorChoice = string | Accelerator;

/** What each interpreter's instance of an object is to be accelerated with. */
export interface AccelerationPlan {
  accelerator: Accelerator;
  /** The model's inputs, in call order; example inputs are made from them (none: the
   * model stays eager, as there is nothing to check the accelerated form on). */
  inputs: readonly TensorSignature[];
  cacheKey: string;
}

/** Where a model's acceleration stands. */
export interface AccelerationStatus {
  accelerator: string;
  /** Every interpreter that instantiated the model runs the accelerated form. */
  active: boolean;
  /** Why it stays eager (the first interpreter's reason), when it does. */
  reason?: string;
  /** Interpreters that instantiated the model, and how many of them accelerated it. */
  interpreters: number;
  accelerated: number;
  /** What the accelerator reported about its accelerated form (the first interpreter's), e.g. the ONNX exporter used. */
  details?: Record<string, unknown>;
  /** Calls the accelerated form failed on (or whose input shapes it had failed on
   * before), answered by eager instead, over the interpreters -- as of the last
   * sampleAcceleration(); absent before any sample. */
  fallbackCalls?: number;
  /** The accelerated form's last error on a call, when it had one. */
  fallbackError?: string;
}

/** What acceleration_fallbacks returns, per interpreter. */
export interface InterpreterFallbacks {
  calls: number;
  shapes: number;
  error: string | null;
}

/** What accelerate_object returns, per interpreter. */
export interface InterpreterAcceleration {
  accelerated: boolean;
  reason: string | null;
  details?: Record<string, unknown> | null;
}

/** The Accelerator `choice` names, among those `known`; an unknown name fails naming the package to install. */
export function resolveAccelerator(choice: AcceleratorChoice, known: readonly Accelerator[]): Accelerator {
  if (typeof choice !== "string") {
    if (typeof choice?.name !== "string" || typeof choice.hook?.file !== "string" || typeof choice.hookOptions !== "function") {
      throw new CoilError("INVALID_ARGUMENT", "an accelerator is a name or an Accelerator ({ name, hook, tolerance, hookOptions })");
    }
    return choice;
  }
  const found = known.find((a) => a.name === choice);
  if (!found) {
    const names = known.map((a) => a.name);
    throw new CoilError(
      "PLUGIN_FAILED",
      `unknown accelerator "${choice}" (${names.length ? `known: ${names.join(", ")}` : "none registered"}): ` +
        `install and register its plugin, @coil/accelerator-${choice} (npm install @coil/accelerator-${choice})`,
      { details: { accelerator: choice, module: `@coil/accelerator-${choice}` } },
    );
  }
  return found;
}

/** The status over interpreters' results (undefined before any interpreter has one). */
export function summarizeAcceleration(
  accelerator: string,
  results: readonly InterpreterAcceleration[],
  fallbacks: readonly InterpreterFallbacks[] = [],
): AccelerationStatus {
  const accelerated = results.filter((r) => r.accelerated).length;
  const reason = results.find((r) => !r.accelerated)?.reason ?? undefined;
  const details = results.find((r) => r.accelerated && r.details)?.details ?? undefined;
  const fallbackError = fallbacks.find((f) => f.error !== null)?.error ?? undefined;
  return {
    accelerator,
    active: results.length > 0 && accelerated === results.length,
    ...(reason !== undefined && { reason }),
    interpreters: results.length,
    accelerated,
    ...(details !== undefined && { details }),
    ...(fallbacks.length > 0 && { fallbackCalls: fallbacks.reduce((sum, f) => sum + f.calls, 0) }),
    ...(fallbackError !== undefined && { fallbackError }),
  };
}
