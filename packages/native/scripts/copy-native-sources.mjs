#!/usr/bin/env node
// Before `npm pack`: copy the engine's sources into the package, so that
// `npm install @coil/native` can build the addon on the user's machine. After it
// (--remove): delete the copy, which would otherwise shadow the sources in a checkout.
// src/ holds all that the addon builds from: engine/, namespace/, codecs/ and addon/ (the native
// tests in test/ stay behind). The copy is checked against the sources CMakeLists.txt
// names, so that one added there cannot be left out of the tarball.
import { cpSync, existsSync, readFileSync, rmSync } from "node:fs";
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
const named = readFileSync(join(source, "CMakeLists.txt"), "utf8").match(/[\w./-]+\.(?:cc|c|h)\b/g) ?? [];
const missing = named.filter((file) => !file.startsWith("test/") && !existsSync(join(target, file)));
if (missing.length > 0) {
  console.error(`@coil/native: the packed sources lack ${missing.join(", ")}`);
  process.exit(1);
}
