import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import type { AcceleratedModelInfo, Accelerator, Tolerance } from "@coil/core";
import { CoilError } from "@coil/errors";
import { inject, injectable, type InjectionToken } from "tsyringe";

export interface OnnxRuntimeAcceleratorOptions {
  /** Where exported models are kept, one folder per model content. Default:
   * $XDG_CACHE_HOME/coil/onnx (~/.cache/coil/onnx). */
  cacheDir?: string;
  /** onnxruntime intra-op threads per interpreter. Default 1: the interpreters are the parallelism. */
  intraOpThreads?: number;
  /** onnxruntime inter-op threads per interpreter. Default 1. */
  interOpThreads?: number;
  /** How close to eager the session's outputs must be. Default rtol 1e-3, atol 1e-4. */
  tolerance?: Partial<Tolerance>;
}

export const ONNXRUNTIME_ACCELERATOR_OPTIONS = Symbol.for("coil.OnnxRuntimeAcceleratorOptions") as InjectionToken<OnnxRuntimeAcceleratorOptions>;

/** onnxruntime's kernels (fused GEMMs, GELU, attention, layer norm) round differently
 * from torch's: looser than compile's, still far tighter than a wrong graph. */
export const ONNXRUNTIME_TOLERANCE: Readonly<Tolerance> = Object.freeze({ rtol: 1e-3, atol: 1e-4 });

const PYTHON_SIDE = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "python", "coil_accelerator_onnxruntime.py");

/** The cache folder when none is configured. */
export function defaultOnnxCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env["XDG_CACHE_HOME"] || join(homedir(), ".cache"), "coil", "onnx");
}

/**
 * ONNX Runtime in each interpreter: the model is exported to ONNX once per content
 * (torch.onnx.export, torch.export-based first, else TorchScript-based; the signature's
 * -1 dimensions stay dynamic) into a cache folder, by the first interpreter to get it;
 * the others, and later processes, load the file. Each interpreter runs its own
 * InferenceSession (CPU, 1 intra-op thread by default).
 */
@injectable()
export class OnnxRuntimeAccelerator implements Accelerator {
  readonly name = "onnxruntime";
  readonly hook = Object.freeze({ file: PYTHON_SIDE, function: "accelerate" });
  readonly tolerance: Tolerance;
  readonly cacheDir: string;

  constructor(@inject(ONNXRUNTIME_ACCELERATOR_OPTIONS) private readonly options: OnnxRuntimeAcceleratorOptions = {}) {
    const { intraOpThreads, interOpThreads } = options;
    for (const [name, value] of Object.entries({ intraOpThreads, interOpThreads })) {
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new CoilError("INVALID_ARGUMENT", `onnxruntime accelerator: ${name} must be a positive integer, got ${value}`);
      }
    }
    const tolerance = { ...ONNXRUNTIME_TOLERANCE, ...options.tolerance };
    for (const [name, value] of Object.entries(tolerance)) {
      if (typeof value !== "number" || !(value >= 0)) {
        throw new CoilError("INVALID_ARGUMENT", `onnxruntime accelerator: tolerance.${name} must be a number >= 0, got ${value}`);
      }
    }
    this.tolerance = tolerance;
    this.cacheDir = resolve(options.cacheDir ?? defaultOnnxCacheDir());
  }

  hookOptions({ cacheKey }: AcceleratedModelInfo): Record<string, unknown> {
    return {
      cache_dir: this.cacheDir,
      cache_key: cacheKey,
      intra_op_threads: this.options.intraOpThreads ?? 1,
      inter_op_threads: this.options.interOpThreads ?? 1,
    };
  }
}
