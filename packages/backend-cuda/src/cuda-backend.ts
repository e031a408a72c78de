import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import type { Backend, BackendInfo, PrepareContext } from "@coil/core";
import { CoilError, isCoilError } from "@coil/errors";
import type { Interpreter } from "@coil/native";
import { inject, injectable, type InjectionToken } from "tsyringe";

import { planPlacement, validateDevices, validatePlacement, type Placement } from "./placement.js";

export interface CudaBackendOptions {
  /** Device indexes (as torch numbers them, after CUDA_VISIBLE_DEVICES) the pool may
   * use. Default: every device torch sees. */
  devices?: number[];
  /** How interpreters are spread over `devices`. Default "round-robin". */
  placement?: Placement;
  /** Copy inputs through page-locked (pinned) host buffers, reused between calls, so
   * host-to-device and device-to-host copies are asynchronous DMA on the
   * interpreter's stream. Default true. */
  pinnedStaging?: boolean;
  /** At prepare time, run a small matmul on each interpreter's device and stream, so
   * the first real call does not pay for CUDA context and cuBLAS initialisation.
   * Default false. */
  warmup?: boolean;
}

export const CUDA_BACKEND_OPTIONS = Symbol.for("coil.CudaBackendOptions") as InjectionToken<CudaBackendOptions>;

const PYTHON_SIDE = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "python", "coil_backend_cuda.py");

/** The Python exception types the Python side raises (see python/coil_backend_cuda.py). */
export const CUDA_UNAVAILABLE_TYPE = "coil_backend_cuda.CudaUnavailable";
export const CUDA_OUT_OF_MEMORY_TYPE = "coil_backend_cuda.CudaOutOfMemory";

/** What the probe finds about CUDA in one interpreter. */
export interface CudaProbe {
  torch: string;
  /** The CUDA version torch was built with (torch.version.cuda). */
  runtime: string;
  /** The driver's CUDA version, e.g. "12.4", when it can be read. */
  driver: string | null;
  cudnn: number | null;
  devices: Array<{
    index: number;
    name: string;
    capability: [number, number];
    totalMemory: number;
    freeMemory: number | null;
    multiProcessors: number;
  }>;
}

export interface CudaBackendInfo extends BackendInfo {
  backend: "cuda";
  /** The device this interpreter runs on. */
  device: number;
  deviceName: string;
  pinnedStaging: boolean;
  warmedUp: boolean;
  probe: CudaProbe;
}

/** Whether an error is a model call that ran out of device memory (the interpreter
 * stays usable; the call can be retried with a smaller batch). */
export function isCudaOutOfMemory(error: unknown): error is CoilError {
  return isCoilError(error, "PYTHON_ERROR") && error.pythonType === CUDA_OUT_OF_MEMORY_TYPE;
}

/** Throws INVALID_ARGUMENT for options the backend cannot use (devices, placement,
 * flags). Devices that do not exist are found later, when a pool is prepared. */
export function validateCudaBackendOptions(options: CudaBackendOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new CoilError("INVALID_ARGUMENT", `cuda backend: options must be an object, got ${String(options)}`);
  }
  if (options.devices !== undefined) validateDevices(options.devices);
  validatePlacement(options.placement ?? "round-robin");
  for (const key of ["pinnedStaging", "warmup"] as const) {
    if (options[key] !== undefined && typeof options[key] !== "boolean") {
      throw new CoilError("INVALID_ARGUMENT", `cuda backend: ${key} must be a boolean, got ${String(options[key])}`);
    }
  }
}

/**
 * Runs models with torch on NVIDIA GPUs: each interpreter is placed on one device
 * with a CUDA stream of its own; inputs go to the device through pinned staging,
 * replicated objects' weights move to the device once, results are synchronised
 * and brought back before a call returns. On a machine where torch sees no CUDA
 * device, preparing a pool fails with BACKEND_UNAVAILABLE saying why.
 */
@injectable()
export class CudaBackend implements Backend {
  readonly name = "cuda";
  readonly requiredModules = ["torch"] as const;
  readonly #options: Required<Pick<CudaBackendOptions, "placement" | "pinnedStaging" | "warmup">> & Pick<CudaBackendOptions, "devices">;

  constructor(@inject(CUDA_BACKEND_OPTIONS) options: CudaBackendOptions = {}) {
    validateCudaBackendOptions(options);
    this.#options = {
      ...(options.devices !== undefined && { devices: [...options.devices] }),
      placement: options.placement ?? "round-robin",
      pinnedStaging: options.pinnedStaging ?? true,
      warmup: options.warmup ?? false,
    };
  }

  async prepareInterpreter(interpreter: Interpreter, { index, poolSize }: PrepareContext): Promise<CudaBackendInfo> {
    const python = interpreter.python.executable;
    const probe = await this.#call<CudaProbe>(interpreter, "probe", { python });
    const visible = probe.devices.map((device) => device.index);
    const devices = this.#options.devices ?? visible;
    const missing = devices.filter((device) => !visible.includes(device));
    if (missing.length > 0) {
      throw new CoilError(
        "BACKEND_UNAVAILABLE",
        `cuda backend: device ${missing.join(", ")} requested, but torch in ${python} sees ` +
          `${visible.length} device(s) [${visible.join(", ")}]`,
        { details: { requested: devices, visible } },
      );
    }
    const device = planPlacement(poolSize, devices, this.#options.placement)[index]!;
    return this.#call<CudaBackendInfo>(interpreter, "prepare", {
      python,
      device,
      pinned_staging: this.#options.pinnedStaging,
      warmup: this.#options.warmup,
    });
  }

  async #call<T>(interpreter: Interpreter, fn: string, kwargs: Record<string, unknown>): Promise<T> {
    try {
      return await interpreter.call<T>("run_hook", [PYTHON_SIDE, fn, kwargs]);
    } catch (error) {
      if (isCoilError(error, "PYTHON_ERROR") && error.pythonType === CUDA_UNAVAILABLE_TYPE) {
        throw new CoilError("BACKEND_UNAVAILABLE", `cuda backend: ${error.message}`, {
          cause: error,
          details: { interpreter: interpreter.index, python: interpreter.python.executable },
        });
      }
      throw error;
    }
  }
}
