// Test files run one at a time (one server at a time on 2 cores) in this order: the
// install first, the checks of a live server next, the plugin (which adds a package to
// the scratch project) last. Files not listed run after these, by name.
import { BaseSequencer, type TestSpecification } from "vitest/node";

const ORDER = ["install", "pack", "http", "grpc", "metadata-clients", "transformers", "load-soak", "signals", "plugin"];

function rank(spec: TestSpecification): number {
  const name = spec.moduleId.split("/").pop()!.replace(/\.test\.ts$/, "");
  const index = ORDER.indexOf(name);
  return index === -1 ? ORDER.length : index;
}

export default class FileOrder extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => rank(a) - rank(b) || a.moduleId.localeCompare(b.moduleId));
  }
}
