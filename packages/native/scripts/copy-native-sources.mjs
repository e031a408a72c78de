#!/usr/bin/env node
// Before `npm pack`: copy the engine's sources into the package, so that
// `npm install @coil/native` can build the addon on the user's machine. After it
// (--remove): delete the copy, which would otherwise shadow the sources in a checkout.
import { cpSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(pkg, "..", "..", "native");
const target = join(pkg, "native");
rmSync(target, { recursive: true, force: true });
if (process.argv.includes("--remove")) process.exit(0);
for (const entry of ["CMakeLists.txt", "package.json", "src", "python"]) {
  cpSync(join(source, entry), join(target, entry), { recursive: true });
}
