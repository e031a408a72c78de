// Linked into the namespace root only for its name: the root's DT_NEEDED entry
// "libcoil-python.so", which at run time is a link to the interpreter's real libpython
// in the directory the root is loaded from (native/src/engine/namespace.cc).
