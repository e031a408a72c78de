#!/usr/bin/env bash
# The project-local venv with pip's torch 2.x: .venv-torch2/, on a CPython 3.11 that
# has a shared libpython (Coil loads libpython once per interpreter). The second test
# stack (COIL_TEST_PYTHON=.venv-torch2/bin/python) runs on it. See docs/python.md.
#
#   tools/python-envs.sh            make or repair it (quick when done: a stamp)
#   tools/python-envs.sh --check    exit 0 when it is ready, else say why and exit 1
#
# Where packages come from is pip's own configuration (pip.conf, PIP_INDEX_URL, ...);
# an interpreter is found with `pyenv root` or as python3.11 on PATH. An existing venv
# (made by hand, or by an older bootstrap) is kept and completed, never deleted.
# COIL_SKIP_VENV=1 skips this step.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${COIL_VENV:-.venv-torch2}
MINOR=3.11
# onnx, onnxscript (torch.onnx.export's exporter) and onnxruntime: the zoo's ONNX columns.
REQUIREMENTS=("torch==2.13.*" "transformers" "numpy" "onnx" "onnxscript" "onnxruntime")
STAMP="$VENV/.coil-requirements"
export PIP_RETRIES=0 # an unreachable index fails at once instead of retrying for minutes

log() { echo "[python-envs] $*"; }

# Prints the real path of the executable when $1 is CPython $MINOR with a shared
# libpython that is installed (Debian's python3.11 reports a shared build even when
# the libpython3.11 package is missing: look for the file).
shared_cpython() {
  "$1" - "$MINOR" 2>/dev/null <<'PY'
import os, sys, sysconfig
v = sysconfig.get_config_var
dirs = [v("LIBDIR") or "", os.path.join(v("LIBDIR") or "", v("MULTIARCH") or "")]
names = [n for n in (v("INSTSONAME"), v("LDLIBRARY")) if n and ".so" in n]
ok = (sys.implementation.name == "cpython" and "%d.%d" % sys.version_info[:2] == sys.argv[1]
      and v("Py_ENABLE_SHARED") and any(os.path.isfile(os.path.join(d, n)) for d in dirs for n in names))
print(os.path.realpath(sys.executable)) if ok else sys.exit(1)
PY
}

# The CPython $MINOR to build the venv on: pyenv's newest $MINOR.x, else the first
# python$MINOR on PATH that has a shared libpython.
find_base() {
  local candidates=() root dir
  if command -v pyenv >/dev/null 2>&1 && root=$(pyenv root 2>/dev/null) && [ -d "$root/versions" ]; then
    while IFS= read -r dir; do candidates+=("$dir/bin/python$MINOR"); done \
      < <(find "$root/versions" -mindepth 1 -maxdepth 1 -name "$MINOR.*" | sort -V -r)
  fi
  local IFS=:
  for dir in $PATH; do candidates+=("${dir:-.}/python$MINOR"); done
  for candidate in "${candidates[@]}"; do
    [ -x "$candidate" ] && shared_cpython "$candidate" >/dev/null && { echo "$candidate"; return 0; }
  done
  return 1
}

# Succeeds when the venv's packages satisfy REQUIREMENTS as the stamp recorded them,
# reading only metadata (importing torch takes seconds).
installed() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${REQUIREMENTS[*]}" ] || return 1
  "$VENV/bin/python" - "${REQUIREMENTS[@]}" 2>/dev/null <<'PY'
import re, sys
from importlib.metadata import version
for requirement in sys.argv[1:]:
    name, _, wanted = requirement.partition("==")
    have = version(name)  # raises when missing
    if wanted and not re.fullmatch(re.escape(wanted).replace(r"\*", ".*") + r"(\+.*)?", have):
        sys.exit(1)
PY
}

describe() {
  "$VENV/bin/python" -c 'import sys; from importlib.metadata import version as v
print("Python %s, torch %s, transformers %s, numpy %s" % (sys.version.split()[0], v("torch"), v("transformers"), v("numpy")))'
}

if [ "${1:-}" = "--check" ]; then
  if [ -x "$VENV/bin/python" ] && shared_cpython "$VENV/bin/python" >/dev/null && installed; then
    log "$VENV: $(describe)"
    exit 0
  fi
  log "$VENV is not ready (make it with tools/python-envs.sh; it needs a CPython $MINOR with a shared libpython)"
  exit 1
fi

if [ -n "${COIL_SKIP_VENV:-}" ]; then
  log "COIL_SKIP_VENV is set: $VENV left as it is"
  exit 0
fi

# (1) The venv itself, on a shared CPython $MINOR.
if [ -x "$VENV/bin/python" ] && shared_cpython "$VENV/bin/python" >/dev/null; then
  : # usable as it is (made by an earlier run or by hand)
elif minor=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) && [ "$minor" != "$MINOR" ]; then
  log "$VENV runs Python $minor, not $MINOR: left untouched. Remove it to let this script make one on CPython $MINOR."
  exit 1
else
  if ! base=$(find_base); then
    log "no CPython $MINOR with a shared libpython found (pyenv root, python$MINOR on PATH): $VENV not made."
    log "  get one: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install $MINOR   (or Debian: apt-get install python$MINOR-venv libpython$MINOR)"
    log "  the torch 2.x tests skip until then."
    exit 1
  fi
  # Without --clear: a venv whose base Python moved or broke is repaired in place and
  # keeps what is installed in it. venv stumbles on links to a Python that is gone.
  for link in "$VENV"/bin/python*; do
    if [ -L "$link" ] && [ ! -e "$link" ]; then rm -f "$link"; fi
  done
  log "${VENV}: python -m venv on $base"
  "$base" -m venv "$VENV"
fi

# (2) Its packages.
if installed; then
  log "$VENV: $(describe) (up to date)"
  exit 0
fi
log "$VENV: pip install ${REQUIREMENTS[*]}"
"$VENV/bin/python" -m pip install "${REQUIREMENTS[@]}"
echo "${REQUIREMENTS[*]}" >"$STAMP"
installed || { log "$VENV: installed, but the packages do not satisfy ${REQUIREMENTS[*]}"; rm -f "$STAMP"; exit 1; }
log "$VENV: $(describe)"
