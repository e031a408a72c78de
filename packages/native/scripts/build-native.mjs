#!/usr/bin/env node
// Builds the engine addon with cmake-js. Sources come from ./native (a packed
// @coil/native) or ../../native (the monorepo). Node-API only: cmake-js takes the
// headers from node-api-headers, so nothing is downloaded.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const source = [join(pkg, "native"), join(pkg, "..", "..", "native")].find((d) => existsSync(join(d, "CMakeLists.txt")));
if (!source) {
  console.error("@coil/native: cannot find the engine's C++ sources (native/CMakeLists.txt)");
  process.exit(1);
}
const require = createRequire(import.meta.url);
let cmakeJs;
try {
  cmakeJs = join(dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js");
} catch {
  console.error("@coil/native: cmake-js is not installed; run `npm install` first");
  process.exit(1);
}
const extra = process.argv.slice(2); // e.g. --debug, or --CDCOIL_SANITIZE=ON
const result = spawnSync(process.execPath, [cmakeJs, "compile", "--directory", source, "--out", join(pkg, "build"), ...extra], {
  stdio: "inherit",
});
if (result.status !== 0) {
  console.error(
    "@coil/native: building the native engine failed. It needs cmake (>= 3.15), make and a C++17 compiler " +
      "(Debian: apt-get install cmake g++ make), then `npm run build -w @coil/native`.",
  );
  process.exit(result.status ?? 1);
}
