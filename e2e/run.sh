#!/usr/bin/env bash
# End-to-end suite of Coil: build, npm pack every publishable package, install the
# tarballs into a scratch project (building the native addon from the tarball), then
# with that installed `coil`: pack, inspect, serve, HTTP/gRPC checks against eager
# PyTorch, a wrk load test, a bounded soak with a private-memory check, SIGTERM drain.
# Writes bench-results/e2e.json. Exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E2E="$ROOT/e2e"
source "$ROOT/tools/as-root.sh"
PY=/usr/bin/python3
INTERPRETERS=${E2E_INTERPRETERS:-2}
LOAD_SECONDS=${E2E_LOAD_SECONDS:-10}
SOAK_REQUESTS=${E2E_SOAK_REQUESTS:-100000}
SOAK_MAX_SECONDS=${E2E_SOAK_MAX_SECONDS:-120}
# Growth allowed in the serving process's private memory (Private_Clean + Private_Dirty)
# between "after warm-up" and "after soak". See the README in e2e/ for the reasoning.
MEM_GROWTH_LIMIT_PCT=${E2E_MEM_GROWTH_LIMIT_PCT:-10}

WORK=$(mktemp -d /tmp/coil-e2e.XXXXXX)
SERVER_PID=""
PASSED=0
FAILED=0
FAILURES=()
START_TS=$(date +%s)

log() { printf '\n== %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf '  PASS  %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); printf '  FAIL  %s\n' "$1"; }
# check NAME CMD...: runs CMD, records pass/fail, never aborts the suite.
check() {
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
summary() {
  echo
  for f in "${FAILURES[@]+"${FAILURES[@]}"}"; do echo "failed: $f"; done
  echo "elapsed: $(( $(date +%s) - START_TS ))s, work dir: $WORK"
  echo "$PASSED passed, $FAILED failed"
}
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    sleep 2
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
# A fatal setup step: record, print the summary, exit 1.
die() { fail "$1"; summary; exit 1; }

# ---------------------------------------------------------------- 1. tools
log "1. tools"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
$PY -c 'import grpc' 2>/dev/null || missing+=(python3-grpcio)
$PY -c 'import grpc_tools.protoc' 2>/dev/null || missing+=(python3-grpc-tools)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "wrk, curl, python3-grpcio, python3-grpc-tools present"
fi
$PY -c 'import torch' || die "torch importable by $PY"

# ---------------------------------------------------------------- 2. build, pack, install
log "2. build the workspace"
(cd "$ROOT" && NX_DAEMON=false NX_NO_CLOUD=true npx nx run-many -t build --output-style=static >"$WORK/build.log" 2>&1) \
  || { tail -40 "$WORK/build.log"; die "workspace build"; }
tail -3 "$WORK/build.log"
pass "workspace build"

log "2. npm pack every publishable package"
mkdir -p "$WORK/tarballs"
PKGS=()
for dir in "$ROOT"/packages/*/; do
  [[ -f "$dir/package.json" ]] || continue
  read -r name private < <(node -e 'const p=require(process.argv[1]);console.log(p.name, p.private===true)' "$dir/package.json")
  [[ "$private" == true ]] && { echo "  skip private $name"; continue; }
  PKGS+=("$name")
  (cd "$ROOT" && npm pack --workspace "$name" --pack-destination "$WORK/tarballs" --silent >/dev/null 2>>"$WORK/pack.log") \
    || { cat "$WORK/pack.log"; die "npm pack $name"; }
done
ls "$WORK/tarballs"
[[ $(ls "$WORK/tarballs"/*.tgz | wc -l) -eq ${#PKGS[@]} ]] && pass "npm pack (${#PKGS[@]} packages)" || die "npm pack count"
tar -tzf "$WORK/tarballs"/coil-native-*.tgz | grep -q 'package/native/CMakeLists.txt' \
  && pass "@coil/native tarball carries the C++ sources" || fail "@coil/native tarball carries the C++ sources"

log "2. install the tarballs into a scratch project"
PROJ="$WORK/project"
mkdir -p "$PROJ"
(cd "$PROJ" && npm init -y >/dev/null)
# npm 11.19 checks dependencies' install scripts against the project's allowScripts.
# A package installed from a tarball is matched by its spec, "file:<path to .tgz>",
# not by its name ("@coil/native": true does not cover it; `npm install-scripts approve
# @coil/native` writes the file: key). Without strict-allow-scripts npm only warns and
# runs them anyway; --strict-allow-scripts makes this install prove the approval works.
# @coil/native's install script builds the addon; protobufjs (of @grpc/grpc-js) has a postinstall.
NATIVE_TGZ=$(ls "$WORK"/tarballs/coil-native-*.tgz)
node -e '
  const fs = require("fs"), [f, tgz] = process.argv.slice(1), p = JSON.parse(fs.readFileSync(f));
  p.allowScripts = { ["file:" + tgz]: true, "protobufjs": true };
  fs.writeFileSync(f, JSON.stringify(p, null, 2));' -- "$PROJ/package.json" "$NATIVE_TGZ"
(cd "$PROJ" && npm install --strict-allow-scripts --foreground-scripts --no-audit --no-fund "$WORK"/tarballs/*.tgz >"$WORK/install.log" 2>&1) \
  || { tail -60 "$WORK/install.log"; die "npm install of the tarballs"; }
grep -E '^added|install-scripts|Linking CXX shared' "$WORK/install.log" | head -10 || true
! grep -q 'not yet covered by allowScripts' "$WORK/install.log" \
  && pass "allowScripts covers every install script (--strict-allow-scripts)" || fail "allowScripts covers every install script"
ADDON="$PROJ/node_modules/@coil/native/build/Release/coil_native.node"
[[ -f "$ADDON" && -f "$PROJ/node_modules/@coil/native/build/CMakeCache.txt" ]] \
  && pass "@coil/native addon built from the tarball by its install script" \
  || die "@coil/native addon built from the tarball (see $WORK/install.log)"
COIL="$PROJ/node_modules/.bin/coil"
[[ -x "$COIL" ]] || die "node_modules/.bin/coil exists"
# Run from outside the monorepo, so nothing resolves back into the workspace.
cd "$WORK"
node -e 'const r=require.resolve("@coil/runtime/package.json",{paths:[process.argv[1]]});if(!r.startsWith(process.argv[1]))process.exit(1)' "$PROJ" \
  && pass "@coil/runtime resolves inside the scratch project" || fail "@coil/runtime resolves inside the scratch project"

# ---------------------------------------------------------------- 3. pack, inspect, serve
log "3. coil pack / inspect (installed coil)"
REPO="$WORK/repo"
mkdir -p "$REPO"
MODELS="$ROOT/examples/models"
check "coil pack mlp" "$COIL" pack "$MODELS/mlp.py:build" -o "$REPO/mlp.coil" --python $PY --quiet \
  --input x:float32:-1,64 --output-spec y:float32:-1,10
check "coil pack resnet18 (--extern torchvision.**)" "$COIL" pack "$MODELS/resnet18.py:build" -o "$REPO/resnet18.coil" \
  --python $PY --quiet --extern 'torchvision.**' --input image:float32:-1,3,224,224 --output-spec logits:float32:-1,1000
check "coil pack text_classifier (BYTES input)" "$COIL" pack "$MODELS/text_classifier.py:build" -o "$REPO/text_classifier.coil" \
  --python $PY --quiet --input text:bytes:-1 --output-spec logits:float32:-1,4
"$COIL" inspect "$REPO/mlp.coil" | tee "$WORK/inspect.txt" || true
check "coil inspect mlp (signature, hashes)" grep -q 'inputs: x float32\[-1, 64\]' "$WORK/inspect.txt"
"$COIL" inspect "$REPO/resnet18.coil" --json >"$WORK/inspect-resnet.json" \
  && check "coil inspect resnet18 --json" node -e 'const r=require(process.argv[1]);if(!JSON.stringify(r).includes("torchvision"))process.exit(1)' "$WORK/inspect-resnet.json" \
  || fail "coil inspect resnet18 --json"

log "3. eager PyTorch reference"
$PY "$E2E/helpers.py" ref "$MODELS" "$WORK" || die "eager reference"

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
while [[ "$GRPC_PORT" == "$HTTP_PORT" ]]; do GRPC_PORT=$(free_port); done
BASE="http://127.0.0.1:$HTTP_PORT"

log "3. coil serve (http $HTTP_PORT, grpc $GRPC_PORT, $INTERPRETERS interpreters)"
env -u GLIBC_TUNABLES "$COIL" serve "$REPO" --host 127.0.0.1 --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" \
  --interpreters "$INTERPRETERS" --python $PY >"$WORK/serve.log" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 240); do
  grep -q '"msg":"serving"' "$WORK/serve.log" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.5
done
if ! grep -q '"msg":"serving"' "$WORK/serve.log"; then
  cat "$WORK/serve.log" "$WORK/serve.err"; die "coil serve reaches \"serving\""
fi
grep '"msg":"serving"' "$WORK/serve.log"
pass "coil serve logs \"serving\""
check "model ready: mlp" grep -q '"model":"mlp".*"msg":"model ready"' "$WORK/serve.log"
check "model ready: resnet18" grep -q '"model":"resnet18".*"msg":"model ready"' "$WORK/serve.log"
CHILD_PID=$(pgrep -P "$SERVER_PID" -n node || true)
if [[ -n "$CHILD_PID" ]] && tr '\0' '\n' <"/proc/$CHILD_PID/environ" | grep -q '^GLIBC_TUNABLES=.*glibc.rtld.nns='; then
  pass "re-exec'd child (pid $CHILD_PID) has GLIBC_TUNABLES"
else
  fail "re-exec'd child found with GLIBC_TUNABLES"; CHILD_PID=$SERVER_PID
fi
echo "  parent pid $SERVER_PID, serving child pid $CHILD_PID"

private_kb() { awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }
rss_kb() { awk '/^Rss:/ {print $2}' "/proc/$1/smaps_rollup"; }
MEM_START=$(private_kb "$CHILD_PID"); RSS_START=$(rss_kb "$CHILD_PID")
echo "  private memory at start: $MEM_START kB (rss $RSS_START kB)"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect_code() { local want=$1; shift; local got; got=$(code "$@"); [[ "$got" == "$want" ]] || { echo "    got $got, want $want"; return 1; }; }

log "3. HTTP"
check "GET /v2/health/live 200" expect_code 200 "$BASE/v2/health/live"
check "GET /v2/health/ready 200" expect_code 200 "$BASE/v2/health/ready"
curl -s "$BASE/v2" >"$WORK/server-meta.json"; echo "  $(cat "$WORK/server-meta.json")"
check "GET /v2 server metadata" node -e 'const m=require(process.argv[1]);if(!m.name||!Array.isArray(m.extensions))process.exit(1)' "$WORK/server-meta.json"
curl -s "$BASE/v2/models/mlp" >"$WORK/mlp-meta.json"; echo "  $(cat "$WORK/mlp-meta.json")"
check "GET /v2/models/mlp metadata" node -e '
  const m=require(process.argv[1]);
  if(m.name!=="mlp"||m.inputs[0].name!=="x"||m.inputs[0].datatype!=="FP32"||JSON.stringify(m.inputs[0].shape)!=="[-1,64]"||JSON.stringify(m.outputs[0].shape)!=="[-1,10]")process.exit(1)' "$WORK/mlp-meta.json"
check "GET /v2/models/resnet18/ready 200" expect_code 200 "$BASE/v2/models/resnet18/ready"
curl -s -X POST -H 'Content-Type: application/json' --data-binary @"$WORK/infer.json" "$BASE/v2/models/mlp/infer" >"$WORK/infer-resp.json"
check "JSON infer on mlp == eager (1e-5)" $PY "$E2E/helpers.py" cmp-json "$WORK/infer-resp.json" "$WORK/expected.json"
HDRLEN=$(cat "$WORK/infer.bin.hdrlen")
curl -s -X POST -H "Inference-Header-Content-Length: $HDRLEN" -H 'Content-Type: application/octet-stream' \
  --data-binary @"$WORK/infer.bin" -D "$WORK/bin-headers.txt" -o "$WORK/bin-resp.bin" "$BASE/v2/models/mlp/infer"
RESP_HDRLEN=$(awk -F': ' 'tolower($1)=="inference-header-content-length" {gsub("\r",""); print $2}' "$WORK/bin-headers.txt")
check "binary-extension infer: sizes and values" $PY "$E2E/helpers.py" cmp-bin "$WORK/bin-resp.bin" "${RESP_HDRLEN:-0}" "$WORK/expected.json"
# resnet18 through the binary extension: zeros image, 1000 logits back
$PY - "$WORK" <<'PY'
import json, sys
raw = bytes(4 * 3 * 224 * 224)
h = json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, 224, 224], "parameters": {"binary_data_size": len(raw)}}],
                "outputs": [{"name": "logits", "parameters": {"binary_data_output": True}}]}).encode()
open(sys.argv[1] + "/resnet.bin", "wb").write(h + raw)
open(sys.argv[1] + "/resnet.bin.hdrlen", "w").write(str(len(h)))
PY
curl -s -X POST -H "Inference-Header-Content-Length: $(cat "$WORK/resnet.bin.hdrlen")" --data-binary @"$WORK/resnet.bin" \
  -D "$WORK/resnet-headers.txt" -o "$WORK/resnet-resp.bin" "$BASE/v2/models/resnet18/infer"
R_HDR=$(awk -F': ' 'tolower($1)=="inference-header-content-length" {gsub("\r",""); print $2}' "$WORK/resnet-headers.txt")
check "resnet18 binary infer: 1000 float32 logits" $PY -c '
import json, sys
b = open(sys.argv[1], "rb").read(); n = int(sys.argv[2]); h = json.loads(b[:n]); o = h["outputs"][0]
print("  resnet18:", o["name"], o["shape"], o["parameters"]["binary_data_size"], "B")
assert o["shape"] == [1, 1000] and o["parameters"]["binary_data_size"] == 4000 and len(b) == n + 4000' "$WORK/resnet-resp.bin" "${R_HDR:-0}"

curl -s -X POST -H 'Content-Type: application/json' "$BASE/v2/models/text_classifier/infer" \
  -d '{"inputs":[{"name":"text","datatype":"BYTES","shape":[3],"data":["hello","wörld 🐍",""]}]}' >"$WORK/text-resp.json"
check "BYTES JSON infer on text_classifier == eager (1e-5)" $PY -c '
import json, sys, torch
sys.path.insert(0, sys.argv[2]); import text_classifier
with torch.no_grad(): want = text_classifier.build()([b"hello", "wörld 🐍".encode(), b""]).flatten().tolist()
o = json.load(open(sys.argv[1]))["outputs"][0]
print("  text_classifier:", o["name"], o["datatype"], o["shape"])
assert o["shape"] == [3, 4] and max(abs(a - b) for a, b in zip(o["data"], want)) <= 1e-5' "$WORK/text-resp.json" "$MODELS"

log "3. gRPC (Python client, stubs from the installed @coil/adapter-grpc proto)"
PROTO_DIR="$PROJ/node_modules/@coil/adapter-grpc/proto"
mkdir -p "$WORK/stubs"
if $PY -m grpc_tools.protoc -I "$PROTO_DIR" --python_out="$WORK/stubs" --grpc_python_out="$WORK/stubs" "$PROTO_DIR/grpc_service.proto"; then
  pass "grpc_tools.protoc stubs from the installed proto"
  check "gRPC ServerLive + ModelInfer (raw contents) == eager" \
    $PY "$E2E/grpc_client.py" "$WORK/stubs" "127.0.0.1:$GRPC_PORT" "$WORK/input.f32" "$WORK/expected.json"
else
  fail "grpc_tools.protoc stubs from the installed proto"
fi

log "3. malformed requests get 4xx, the server keeps serving"
INFER="$BASE/v2/models/mlp/infer"
check "malformed JSON -> 400" expect_code 400 -X POST -H 'Content-Type: application/json' -d '{"inputs": [' "$INFER"
check "wrong shape -> 400" expect_code 400 -X POST -H 'Content-Type: application/json' \
  -d '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,64],"data":[1,2,3]}]}' "$INFER"
check "unsupported datatype -> 400" expect_code 400 -X POST -H 'Content-Type: application/json' \
  -d '{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["a"]}]}' "$INFER"
check "unknown field -> 400" expect_code 400 -X POST -H 'Content-Type: application/json' -d '{"inputz":[]}' "$INFER"
check "binary header length past the body -> 400" expect_code 400 -X POST -H 'Inference-Header-Content-Length: 99999' \
  --data-binary @"$WORK/infer.bin" "$INFER"
check "binary_data_size mismatch -> 400" expect_code 400 -X POST -H "Inference-Header-Content-Length: $HDRLEN" \
  --data-binary @"$WORK/infer.json" "$INFER"
check "unknown model -> 404" expect_code 404 -X POST -H 'Content-Type: application/json' --data-binary @"$WORK/infer.json" "$BASE/v2/models/nope/infer"
check "still ready after bad requests" expect_code 200 "$BASE/v2/health/ready"
curl -s -X POST -H 'Content-Type: application/json' --data-binary @"$WORK/infer.json" "$INFER" >"$WORK/infer-resp2.json"
check "JSON infer still == eager after bad requests" $PY "$E2E/helpers.py" cmp-json "$WORK/infer-resp2.json" "$WORK/expected.json"

# ---------------------------------------------------------------- 4. load
log "4. load: wrk -t2 -c16 -d${LOAD_SECONDS}s (JSON infer on the mlp)"
BODY_FILE="$WORK/infer.json" WRK_JSON="$WORK/wrk-load.json" \
  wrk -t2 -c16 -d"${LOAD_SECONDS}s" --latency -s "$E2E/infer.lua" "$INFER" | tee "$WORK/wrk-load.txt"
check "load: no errors, no non-2xx" node -e '
  const r=require(process.argv[1]); const e=r.errors;
  console.log(`  load: ${r.requests} requests, ${r.rps.toFixed(0)} req/s, p50 ${r.latency_us.p50} us, p99 ${r.latency_us.p99} us`);
  if(r.requests<1||e.status||e.connect||e.read||e.write||e.timeout)process.exit(1)' "$WORK/wrk-load.json"
MEM_WARM=$(private_kb "$CHILD_PID"); RSS_WARM=$(rss_kb "$CHILD_PID")
echo "  private memory after warm-up (load phase): $MEM_WARM kB (rss $RSS_WARM kB)"

# ---------------------------------------------------------------- 5. soak
log "5. soak: $SOAK_REQUESTS requests (wrk, 2 threads x 16 connections, at most ${SOAK_MAX_SECONDS}s)"
PER_THREAD=$(( (SOAK_REQUESTS + 1) / 2 ))
MEM_SAMPLES="$WORK/mem-samples.txt"; : >"$MEM_SAMPLES"
( while kill -0 "$CHILD_PID" 2>/dev/null; do echo "$(date +%s.%N) $(private_kb "$CHILD_PID")" >>"$MEM_SAMPLES"; sleep 2; done ) &
SAMPLER=$!
# wrk runs for its whole -d even when its threads stop; infer.lua marks each thread
# that reached its count in $STOP_DIR, and SIGINT makes wrk report and exit early.
STOP_DIR="$WORK/soak-stop"; mkdir -p "$STOP_DIR"
BODY_FILE="$WORK/infer.json" WRK_JSON="$WORK/wrk-soak.json" MAX_PER_THREAD=$PER_THREAD STOP_DIR="$STOP_DIR" \
  wrk -t2 -c16 -d"${SOAK_MAX_SECONDS}s" --timeout 10s --latency -s "$E2E/infer.lua" "$INFER" >"$WORK/wrk-soak.txt" 2>&1 &
WRK_PID=$!
while kill -0 "$WRK_PID" 2>/dev/null; do
  if [[ $(ls "$STOP_DIR" | wc -l) -ge 2 ]]; then kill -INT "$WRK_PID" 2>/dev/null || true; break; fi
  sleep 0.2
done
wait "$WRK_PID" || true
cat "$WORK/wrk-soak.txt"
kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
sleep 1
MEM_END=$(private_kb "$CHILD_PID"); RSS_END=$(rss_kb "$CHILD_PID")
check "soak: >= $SOAK_REQUESTS requests, no errors" node -e '
  const r=require(process.argv[1]); const e=r.errors;
  console.log(`  soak: ${r.requests} requests in ${(r.duration_us/1e6).toFixed(1)} s, ${r.rps.toFixed(0)} req/s, p99 ${r.latency_us.p99} us`);
  if(r.requests<Number(process.argv[2])||e.status||e.connect||e.read||e.write||e.timeout)process.exit(1)' "$WORK/wrk-soak.json" "$SOAK_REQUESTS"
GROWTH_PCT=$(node -e 'console.log(((process.argv[2]-process.argv[1])/process.argv[1]*100).toFixed(2))' -- "$MEM_WARM" "$MEM_END")
MEM_PEAK=$(awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$MEM_SAMPLES")
echo "  private memory: start $MEM_START kB, after warm-up $MEM_WARM kB, peak during soak $MEM_PEAK kB, after soak $MEM_END kB -> growth after warm-up ${GROWTH_PCT}% (limit ${MEM_GROWTH_LIMIT_PCT}%)"
check "soak: private memory growth after warm-up <= ${MEM_GROWTH_LIMIT_PCT}%" \
  node -e 'process.exit(Number(process.argv[1]) <= Number(process.argv[2]) ? 0 : 1)' -- "$GROWTH_PCT" "$MEM_GROWTH_LIMIT_PCT"
check "server still answers after soak" $PY "$E2E/helpers.py" cmp-json <(curl -s -X POST --data-binary @"$WORK/infer.json" "$INFER") "$WORK/expected.json"

# ---------------------------------------------------------------- 6. SIGTERM
log "6. SIGTERM: drain and exit 0"
# a request in flight while the signal arrives must still be answered
curl -s -o "$WORK/inflight.json" -w '%{http_code}' -X POST --data-binary @"$WORK/resnet.bin" \
  -H "Inference-Header-Content-Length: $(cat "$WORK/resnet.bin.hdrlen")" "$BASE/v2/models/resnet18/infer" >"$WORK/inflight.code" &
CURL_PID=$!
sleep 0.05
kill -TERM "$SERVER_PID"
set +e; wait "$SERVER_PID"; EXIT_CODE=$?; set -e
wait "$CURL_PID" || true
SERVER_PID=""
echo "  coil serve exited with $EXIT_CODE; in-flight request got $(cat "$WORK/inflight.code")"
check "coil serve exits 0 on SIGTERM" test "$EXIT_CODE" -eq 0
check "logs \"stopped\" after draining" grep -q '"msg":"stopped"' "$WORK/serve.log"
check "request in flight at SIGTERM answered 200" grep -qx 200 "$WORK/inflight.code"
! kill -0 "$CHILD_PID" 2>/dev/null && pass "serving child exited too" || fail "serving child exited too"

# ---------------------------------------------------------------- results
mkdir -p "$ROOT/bench-results"
node -e '
  const fs = require("fs"); const [out, load, soak, samples, ...m] = process.argv.slice(1);
  const [start, warm, end, peak, rs, rw, re, growth, limit, interp, passed, failed] = m.map(Number);
  const r = {
    date: new Date().toISOString(), node: process.version, interpreters: interp,
    load: { tool: "wrk -t2 -c16", ...JSON.parse(fs.readFileSync(load, "utf8")) },
    soak: { tool: "wrk -t2 -c16 (request-bounded)", ...JSON.parse(fs.readFileSync(soak, "utf8")) },
    memory: {
      measure: "Private_Clean + Private_Dirty (kB) of the serving (re-exec child) process, /proc/PID/smaps_rollup",
      start_kb: start, after_warmup_kb: warm, after_soak_kb: end, peak_during_soak_kb: peak, rss_start_kb: rs, rss_after_warmup_kb: rw, rss_after_soak_kb: re,
      growth_after_warmup_pct: growth, limit_pct: limit,
      soak_samples: fs.readFileSync(samples, "utf8").trim().split("\n").filter(Boolean).map((l) => { const [t, kb] = l.split(" "); return { t: Number(t), kb: Number(kb) }; }),
    },
    result: { passed, failed },
  };
  fs.writeFileSync(out, JSON.stringify(r, null, 2) + "\n");' \
  -- "$ROOT/bench-results/e2e.json" "$WORK/wrk-load.json" "$WORK/wrk-soak.json" "$MEM_SAMPLES" \
  "$MEM_START" "$MEM_WARM" "$MEM_END" "$MEM_PEAK" "$RSS_START" "$RSS_WARM" "$RSS_END" "$GROWTH_PCT" "$MEM_GROWTH_LIMIT_PCT" "$INTERPRETERS" "$PASSED" "$FAILED" \
  && echo "wrote bench-results/e2e.json"

summary
if ((FAILED == 0)) && [[ -z "${E2E_KEEP:-}" ]]; then rm -rf "$WORK"; fi
((FAILED == 0))
