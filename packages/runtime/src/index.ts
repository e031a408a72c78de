/**
 * @coil/runtime — the default assembly (createRuntime from plugins, serve), the model
 * repository and serving runtime, and the `coil` command (serve, pack, inspect, keygen).
 */
export { formatReport, inspectArchive, type InspectReport } from "./inspect.js";
export { packModel, parseTarget, type PackOptions, type PackResult } from "./pack.js";
export { main, parseSpec } from "./commands.js";
export { formatBytes, Progress } from "./progress.js";
export { reexecWithTunable, SERVE_NODE_FLAGS } from "./reexec.js";
export { scanRepository, type RepositoryEntry, type RepositoryScan, type ScanOptions, type SkippedFile } from "./model-repository.js";
export { ACCESS_CONTROL, AccessPolicy, MODEL_CONTROLS, type AccessPolicyOptions, type ModelControl } from "./access-policy.js";
export { securityServeOptions, type SecurityServeOptions, type SecuritySettings } from "./security-settings.js";
export { ServingRuntime, type RuntimeLogger, type ServingRuntimeOptions } from "./serving-runtime.js";
export { createRuntime, type Runtime, type RuntimeConfig } from "./create-runtime.js";
export {
  acceleratorFor,
  checkSelection,
  parseAccelerateFlags,
  registerSelectedAccelerators,
  type AcceleratorSelection,
} from "./accelerator-selection.js";
export { DEFAULT_PLUGINS, loadPlugin, registerPlugins, type PluginEntry } from "./plugins.js";
export { serve, servePlugins, type Server, type ServeOptions } from "./serve.js";
