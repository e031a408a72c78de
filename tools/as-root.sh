# Sourced by tools/bootstrap.sh; run by the e2e harness (e2e/harness/tools.ts). as_root CMD...: runs CMD as root,
# directly when this is root, else with sudo; without either it says what it needed
# and exits 1.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "need root (or sudo) to run: $*" >&2; exit 1
  fi
}
