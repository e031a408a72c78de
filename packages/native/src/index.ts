/**
 * @coil/native — the TypeScript face of Coil's interpreter engine: isolated CPython
 * interpreters in one Node.js process, each in its own glibc link-map namespace on
 * its own thread (see native/ and DESIGN.md).
 */
export { bridgePath, loadAddon, namespaceRootPath, type NativeAddon, type NativeInterpreter } from "./addon.js";
export {
  explainTlsExhaustion,
  GLIBC_TUNABLE,
  INTERPRETERS_WITHOUT_TUNABLE,
  interpreterBudget,
  MAX_INTERPRETERS,
  startupTunables,
} from "./capacity.js";
export { Interpreter, type BridgeFunction, type CallOptions, type CallTimings, MAX_TIMEOUT_MS } from "./interpreter.js";
export { handOff, handOffStats, type HandOffSettings, type HandOffStats } from "./hand-off.js";
export { mapFile } from "./map-file.js";
export { replaceProcess } from "./replace-process.js";
export { fileMappings, processMemory, type MemoryFields } from "./memory.js";
export { discoverPython, inspectPython, type DiscoverOptions, type PythonInstallation } from "./python.js";
export { acquireInterpreters, interpreterStats, releaseInterpreters, RESET_TIMEOUT_MS } from "./registry.js";
export {
  bfloat16BitsToNumber,
  DTYPES,
  dtypeSize,
  elementCount,
  float16BitsToNumber,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  isDType,
  Tensor,
  type DType,
  type TypedArrayOf,
} from "./tensor.js";
