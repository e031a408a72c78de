#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
source tools/env.sh
exec node tools/bench/scaling.mjs "$@"
