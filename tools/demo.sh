#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
source tools/env.sh
GLIBC_TUNABLES=glibc.rtld.nns=16 exec node tools/demo/main.mjs "$@"
