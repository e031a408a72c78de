/**
 * @coil/runtime — the `coil` command and the library functions behind it. Serving
 * (createRuntime, adapters) is built on top of these next.
 */
export { formatReport, inspectArchive, type InspectReport } from "./inspect.js";
export { packModel, parseTarget, type PackOptions, type PackResult } from "./pack.js";
export { main, parseSpec } from "./commands.js";
export { formatBytes, Progress } from "./progress.js";
export { reexecWithTunable, SERVE_NODE_FLAGS } from "./reexec.js";
export { scanRepository, type RepositoryEntry } from "./model-repository.js";
export { ServingRuntime, type ServingRuntimeOptions } from "./serving-runtime.js";
export { createRuntime, type Runtime, type RuntimeConfig } from "./create-runtime.js";
export { serve, type Server, type ServeOptions } from "./serve.js";
