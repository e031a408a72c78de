import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import type { Backend, BackendInfo, PrepareContext } from "@coil/core";
import { CoilError } from "@coil/errors";
import type { Interpreter } from "@coil/native";
import { inject, injectable, type InjectionToken } from "tsyringe";

export interface CpuBackendOptions {
  /** torch intra-op threads per interpreter. Default: the cores divided among the
   * pool's interpreters (1 each when there are as many interpreters as cores). */
  threadsPerInterpreter?: number;
  /** torch inter-op threads per interpreter. Default 1. */
  interopThreads?: number;
}

export const CPU_BACKEND_OPTIONS = Symbol.for("coil.CpuBackendOptions") as InjectionToken<CpuBackendOptions>;

const PYTHON_SIDE = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "python", "coil_backend_cpu.py");

/** Runs models with torch on the CPU cores, the interpreters sharing them. */
@injectable()
export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly requiredModules = ["torch"] as const;

  constructor(@inject(CPU_BACKEND_OPTIONS) private readonly options: CpuBackendOptions = {}) {
    const { threadsPerInterpreter, interopThreads } = options;
    for (const [name, value] of Object.entries({ threadsPerInterpreter, interopThreads })) {
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new CoilError("INVALID_ARGUMENT", `cpu backend: ${name} must be a positive integer, got ${value}`);
      }
    }
  }

  async prepareInterpreter(interpreter: Interpreter, { poolSize }: PrepareContext): Promise<BackendInfo> {
    const cores = availableParallelism();
    const threads = this.options.threadsPerInterpreter ?? Math.max(1, Math.floor(cores / poolSize));
    return interpreter.call<BackendInfo>("run_hook", [
      PYTHON_SIDE,
      "prepare",
      { threads, interop_threads: this.options.interopThreads ?? 1 },
    ]);
  }
}
