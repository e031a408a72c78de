import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import type { AcceleratedModelInfo, Accelerator, Tolerance } from "@coil/core";
import { CoilError } from "@coil/errors";
import { inject, injectable, type InjectionToken } from "tsyringe";

export interface CompileAcceleratorOptions {
  /** torch.compile's mode ("default", "reduce-overhead", "max-autotune-no-cudagraphs", ...). Default: torch's. */
  mode?: string;
  /** torch.compile's backend. Default "inductor". */
  backend?: string;
  /** Inductor's cache folder (TORCHINDUCTOR_CACHE_DIR), shared by every interpreter and
   * process that names it. Default: torch's, /tmp/torchinductor_<user>, shared too. */
  cacheDir?: string;
  /** Inductor's compile workers per interpreter. Default 1: compiles in the
   * interpreter's own thread, no worker processes forked from the server. */
  compileThreads?: number;
  /** How close to eager the compiled model must be. Default rtol 1e-4, atol 1e-5. */
  tolerance?: Partial<Tolerance>;
}

export const COMPILE_ACCELERATOR_OPTIONS = Symbol.for("coil.CompileAcceleratorOptions") as InjectionToken<CompileAcceleratorOptions>;

/** Inductor reorders and fuses float arithmetic: a few ulps per op, more over a deep
 * model; a wrong program is off by far more. */
export const COMPILE_TOLERANCE: Readonly<Tolerance> = Object.freeze({ rtol: 1e-4, atol: 1e-5 });

const PYTHON_SIDE = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "python", "coil_accelerator_compile.py");

/**
 * torch.compile in each interpreter, warmed up at load on the signature's shapes (one
 * graph with the dynamic dimensions symbolic, one for a batch of one) under the
 * backend's call context (inference mode), so serving never recompiles. Needs torch
 * >= 2.0: with an older torch the model stays eager, saying so.
 */
@injectable()
export class CompileAccelerator implements Accelerator {
  readonly name = "compile";
  readonly hook = Object.freeze({ file: PYTHON_SIDE, function: "accelerate" });
  readonly tolerance: Tolerance;

  constructor(@inject(COMPILE_ACCELERATOR_OPTIONS) private readonly options: CompileAcceleratorOptions = {}) {
    const { compileThreads } = options;
    if (compileThreads !== undefined && (!Number.isInteger(compileThreads) || compileThreads < 1)) {
      throw new CoilError("INVALID_ARGUMENT", `compile accelerator: compileThreads must be a positive integer, got ${compileThreads}`);
    }
    this.tolerance = checkedTolerance({ ...COMPILE_TOLERANCE, ...options.tolerance });
  }

  hookOptions(_model: AcceleratedModelInfo): Record<string, unknown> {
    const { mode, backend, cacheDir, compileThreads = 1 } = this.options;
    return {
      compile_threads: compileThreads,
      ...(mode !== undefined && { mode }),
      ...(backend !== undefined && { backend }),
      ...(cacheDir !== undefined && { cache_dir: resolve(cacheDir) }),
    };
  }
}

function checkedTolerance(tolerance: Tolerance): Tolerance {
  for (const [name, value] of Object.entries(tolerance)) {
    if (typeof value !== "number" || !(value >= 0)) {
      throw new CoilError("INVALID_ARGUMENT", `compile accelerator: tolerance.${name} must be a number >= 0, got ${value}`);
    }
  }
  return tolerance;
}
