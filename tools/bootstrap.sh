#!/usr/bin/env bash
# Installs what Coil needs (Debian/Ubuntu) and builds the workspace.
# Idempotent: when nothing is missing it only checks, then lets nx's cache skip the build.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
source tools/as-root.sh

log() { echo "[bootstrap] $*"; }

# (a) System packages: the stock CPython + torch that Coil embeds, a C++ toolchain for
# the native addon, and Python's gRPC (the gRPC adapter's tests use a real Python client).
apt_pkgs=()
if ! /usr/bin/python3 -c 'import torch, numpy, torchvision' >/dev/null 2>&1; then
  apt_pkgs+=(python3 python3-torch python3-numpy python3-torchvision)
fi
if ! /usr/bin/python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
  apt_pkgs+=(python3-grpcio python3-grpc-tools)
fi
for tool in cmake g++ make; do
  command -v "$tool" >/dev/null 2>&1 || apt_pkgs+=("$tool")
done
# Debian's Chromium: @coil/dashboard's browser test drives it headless (playwright-core).
[ -x /usr/bin/chromium ] || apt_pkgs+=(chromium)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${apt_pkgs[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${apt_pkgs[@]}"
else
  log "system packages: ok (python3 with torch/numpy/torchvision/grpc, cmake, g++, make, chromium)"
fi

# (b) npm dependencies, when missing or older than the lockfile.
stamp=node_modules/.package-lock.json
manifest_changed() {
  # A package.json edited (or a workspace package added) since the last install.
  local f
  for f in package.json packages/*/package.json examples/*/package.json; do
    [ -f "$f" ] && [ "$f" -nt "$stamp" ] && return 0
  done
  return 1
}
if [ ! -d node_modules ] || { [ -f package-lock.json ] && [ package-lock.json -nt "$stamp" ]; }; then
  if [ -f package-lock.json ]; then
    log "npm ci"
    npm ci
  else
    log "npm install (no package-lock.json yet)"
    npm install
  fi
elif [ ! -f package-lock.json ] || manifest_changed; then
  log "npm install (a package.json changed since the last install)"
  npm install
else
  log "node_modules: up to date"
fi

# (c) Build every package (the native addon through @coil/native's build target).
log "nx run-many -t build"
npx --no-install nx run-many -t build

# (d) `npx coil` in this checkout: npm links a workspace's bin only when its target
# exists, and dist/cli.js exists only after the build.
if [ ! -e node_modules/.bin/coil ]; then
  log "linking the coil command (node_modules/.bin/coil)"
  npm rebuild @coil/runtime --ignore-scripts >/dev/null
fi

# (e) The second Python stack: pip's torch 2.x in a project-local venv (.venv-torch2)
# on a CPython 3.11 with a shared libpython (docs/python.md). Not fatal: without it
# the tests on that stack are skipped, and tools/python-envs.sh says why.
bash tools/python-envs.sh || log "the torch 2.x venv is not ready (see above); the tests on it are skipped"
