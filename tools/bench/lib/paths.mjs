// Where the benchmarks find the repository, their own Python files and the published
// example models, wherever they are started from.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** tools/bench */
export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_ROOT = resolve(BENCH_DIR, "..", "..");
/** The benchmarks' own model modules (tools/bench/models). */
export const BENCH_MODELS = join(BENCH_DIR, "models");
/** The published examples (examples/models): what users run. */
export const EXAMPLE_MODELS = join(REPO_ROOT, "examples", "models");
