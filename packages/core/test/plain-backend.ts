import type { Interpreter } from "@coil/native";

import type { Backend, BackendInfo, PrepareContext } from "../src/contracts.js";

/** A real backend for core's tests: plain Python, no torch (core knows no concrete
 * backend, so it brings its own). */
export class PlainPythonBackend implements Backend {
  readonly name = "plain";
  readonly requiredModules = [] as const;
  prepared = 0;

  async prepareInterpreter(interpreter: Interpreter, context: PrepareContext): Promise<BackendInfo> {
    const info = await interpreter.call<{ python: string }>("info");
    this.prepared++;
    return { backend: this.name, python: info.python, cores: 1, threads: 1, index: context.index };
  }
}
