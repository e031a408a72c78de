import type { ServedDType, ServedTensor } from "./datatypes.js";

/**
 * The contract between a runtime that serves models and the protocol adapters that
 * expose it (Open Inference Protocol over HTTP, gRPC, ...). Adapters know this
 * interface only; the runtime implements it.
 */

/** A named tensor in a model's signature; -1 marks a dynamic dimension. */
export interface TensorSignature {
  name: string;
  dtype: ServedDType;
  shape: number[];
}

export type ModelState = "READY" | "LOADING" | "UNAVAILABLE";

export interface ModelIndexEntry {
  name: string;
  version: string;
  state: ModelState;
  /** Why a model is UNAVAILABLE (its load failed, ...). */
  reason?: string;
}

export interface ServedModel {
  name: string;
  /** Versions available, newest last. */
  versions: string[];
  platform: string;
  inputs: TensorSignature[];
  outputs: TensorSignature[];
  /** More about the model, as the Open Inference Protocol's `parameters` (e.g. its
   * accelerator: accelerator, accelerator_active, accelerator_reason). */
  parameters?: Record<string, string | number | boolean>;
}

export interface NamedTensor {
  name: string;
  tensor: ServedTensor;
}

export interface InferenceRequest {
  id?: string;
  inputs: NamedTensor[];
  /** Outputs to return, by name; all when absent. */
  outputs?: string[];
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface InferenceResponse {
  id?: string;
  modelName: string;
  modelVersion: string;
  outputs: NamedTensor[];
}

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

/**
 * What a serving runtime offers its adapters. Methods throw (or reject with)
 * CoilErrors: MODEL_NOT_FOUND, MODEL_NOT_READY, INVALID_ARGUMENT, SHAPE_MISMATCH,
 * UNSUPPORTED_DTYPE, QUEUE_FULL, DEADLINE_EXCEEDED, PYTHON_ERROR, ...; adapters map
 * the codes to their protocol's statuses (see `httpStatusFor`).
 */
export interface InferenceService {
  serverMetadata(): ServerMetadata;
  isLive(): boolean;
  isReady(): boolean;
  /** Every model the repository knows, with its state. */
  modelIndex(): ModelIndexEntry[];
  /** A model's metadata; version defaults to the newest. */
  model(name: string, version?: string): ServedModel;
  isModelReady(name: string, version?: string): boolean;
  infer(name: string, version: string | undefined, request: InferenceRequest): Promise<InferenceResponse>;
  loadModel(name: string): Promise<void>;
  unloadModel(name: string): Promise<void>;
  /** Metrics in the Prometheus text exposition format. */
  metrics(): string;
}

/** The HTTP status an Open Inference Protocol server answers a CoilError code with. */
export function httpStatusFor(code: string): number {
  switch (code) {
    case "INVALID_ARGUMENT":
    case "SHAPE_MISMATCH":
    case "UNSUPPORTED_DTYPE":
    case "RESPONSE_TOO_LARGE":
      return 400;
    case "UNAUTHENTICATED":
      return 401;
    case "PERMISSION_DENIED":
      return 403;
    case "MODEL_NOT_FOUND":
      return 404;
    case "QUEUE_FULL":
    case "MODEL_NOT_READY":
    case "CLOSED":
      return 503;
    case "DEADLINE_EXCEEDED":
      return 504;
    default:
      return 500;
  }
}
