#!/usr/bin/env bash
# Installs what the benchmarks compare Coil against, into tools/bench/peers/node_modules
# (never the project's own dependencies):
#   onnxruntime-node   with --ignore-scripts: its install script downloads CUDA
#                      binaries, which fails offline; the CPU build ships in the package.
#   node-calls-python  built by node-gyp against PYTHON's installation (its
#                      python3-config), with this Node's own headers (no download).
# Usage: tools/bench/peers/install.sh [PYTHON]   (default: .venv-torch2/bin/python)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
python="${1:-$root/.venv-torch2/bin/python}"
log() { echo "[peers] $*"; }

cd "$here"
log "npm install --ignore-scripts (node-calls-python, onnxruntime-node)"
npm install --ignore-scripts --no-audit --no-fund --no-package-lock --loglevel=error

# The Python installation node-calls-python embeds: a venv's base (its libpython and
# python3-config); the venv's own packages reach it through sys.path at run time.
base="$("$python" -c 'import sys; print(sys.base_prefix)')"
[ -x "$base/bin/python3-config" ] || { log "no $base/bin/python3-config: node-calls-python needs a Python with its development files"; exit 1; }
node_prefix="$(node -p 'require("path").resolve(process.execPath, "../..")')"
[ -f "$node_prefix/include/node/node_version.h" ] || { log "no Node headers under $node_prefix/include/node (node-gyp would download them)"; exit 1; }
gyp="$(dirname "$(dirname "$(node -p 'require.resolve("npm/package.json", { paths: [require("path").resolve(process.execPath, "../../lib/node_modules")] })')")")/npm/node_modules/node-gyp/bin/node-gyp.js"
log "building node-calls-python against $base ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
(cd node_modules/node-calls-python && PATH="$base/bin:$PATH" node "$gyp" rebuild --nodedir="$node_prefix" --loglevel=warn >/dev/null)
log "ready: $(cd node_modules && node -p 'require("./node-calls-python/package.json").version') node-calls-python, $(cd node_modules && node -p 'require("./onnxruntime-node/package.json").version') onnxruntime-node"
