/**
 * @coil/core — the interpreter pool, replicated objects, scheduling, and the
 * contracts (Backend, Adapter, Scheduler, Accelerator) plugins implement, with their DI tokens.
 */
export {
  resolveAccelerator,
  summarizeAcceleration,
  type AcceleratedModelInfo,
  type AccelerationPlan,
  type AccelerationStatus,
  type Accelerator,
  type AcceleratorChoice,
  type InterpreterAcceleration,
  type InterpreterFallbacks,
  type Tolerance,
} from "./accelerator.js";
export type { Adapter, Backend, BackendInfo, CoilPlugin, InterpreterHost, PrepareContext, Scheduler } from "./contracts.js";
export { createCoilContainer, createPoolFromContainer, PoolFactory } from "./container.js";
export { LoadedModel, type LoadArchiveOptions, type ReplicateCreation } from "./loaded-model.js";
export {
  DEFAULT_STUCK_AFTER_MS,
  InterpreterPool,
  type InterpreterMemory,
  type PoolCloseOptions,
  type PoolCreateOptions,
  type PoolOptions,
} from "./pool.js";
export { defaultInstances, ModelGroups, type GroupInfo, type ModelGroupSettings, type ModelGroupsOptions } from "./model-groups.js";
export { ReplicatedObject, type Creation, type ReplicatedCallOptions, type ReplicatedObjectSpec } from "./replicated-object.js";
export { concatRows, splitRows } from "./batch-tensors.js";
export { BytesTensor, decodeBytesElements, encodeBytesElements } from "./bytes-tensor.js";
export {
  dtypeOfDatatype,
  isBytesTensor,
  protocolDatatype,
  type ServedDType,
  type ServedTensor,
} from "./datatypes.js";
export {
  ModelQueue,
  type BatchingOptions,
  type InferOptions,
  type ModelQueueOptions,
  type ModelQueueStats,
} from "./model-queue.js";
export { BATCH_BOUNDS, Histogram, SECONDS_BOUNDS, type HistogramSnapshot } from "./histogram.js";
export { LeastLoadedScheduler } from "./scheduler.js";
export { checkShape, countElements, tensorFromRawBytes, tensorFromValues, wireInteger } from "./tensor-codec.js";
export { SignatureBinding } from "./signature-binding.js";
export {
  httpStatusFor,
  type InferenceRequest,
  type InferenceResponse,
  type InferenceService,
  type ModelIndexEntry,
  type ModelState,
  type NamedTensor,
  type ServedModel,
  type ServerMetadata,
  type TensorSignature,
} from "./serving.js";
export { TOKENS } from "./tokens.js";
export { ACCESS_CONTROL, OPEN_ACCESS, type AccessControl, type AccessKind, type AccessRequest } from "./access-control.js";
// The boundary types, re-exported so most users need only @coil/core.
export {
  DTYPES,
  dtypeSize,
  Interpreter,
  Tensor,
  type CallOptions,
  type CallTimings,
  type DType,
  type PythonInstallation,
  type TypedArrayOf,
} from "@coil/native";
export { CoilError, isCoilError, type CoilErrorCode } from "@coil/errors";
