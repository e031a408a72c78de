// One `coil serve` for a test file: started before its tests, over the repository of
// example models, stopped after them.
import { afterAll, beforeAll } from "vitest";

import { installedContext, type E2eContext } from "./context.js";
import { reference, type Reference } from "./reference.js";
import { ensureRepository, type ExampleName, type RepositoryNeeds } from "./repository.js";
import { CoilServer, type ServeOptions } from "./server.js";

export interface FileServer {
  readonly context: E2eContext;
  readonly server: CoilServer;
  readonly reference: Reference;
}

/** `name` names its logs; `needs`, the example models its tests use (or the models of
 * another repository). */
export function serveForThisFile(name: string, needs: readonly ExampleName[] | RepositoryNeeds, options: Omit<ServeOptions, "name" | "repository"> = {}): FileServer {
  let state: FileServer | undefined;
  beforeAll(async () => {
    const context = installedContext();
    const repository = await ensureRepository(context, needs);
    const server = await CoilServer.start(context, { name, repository, ...options });
    state = { context, server, reference: reference(context) };
  });
  afterAll(async () => {
    await state?.server.stop();
  });
  const started = () => {
    if (!state) throw new Error("the server of this file did not start (see beforeAll's error)");
    return state;
  };
  return {
    get context() {
      return started().context;
    },
    get server() {
      return started().server;
    },
    get reference() {
      return started().reference;
    },
  };
}
