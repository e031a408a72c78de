// Where things are in the repository.
import { join, resolve } from "node:path";

/** The repository root (the workspace). */
export const ROOT = resolve(import.meta.dirname, "../..");
export const E2E = join(ROOT, "e2e");
export const MODELS = join(ROOT, "examples/models");
