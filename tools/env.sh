# Sourced by the tools/*.sh scripts: settings every Coil command needs.

# Nx must never prompt, start a daemon or reach the network (offline machines, CI).
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false

# glibc allows 16 link-map namespaces only with this tunable, and only when it is
# in the environment at process start (docs/engine.md, fact 2).
case ":${GLIBC_TUNABLES:-}:" in
  *:glibc.rtld.nns=*) ;;
  *) export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.rtld.nns=16" ;;
esac
