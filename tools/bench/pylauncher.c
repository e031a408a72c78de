/* A `python3` that runs on the shared libpython, as Coil's interpreters do.
 * Debian's /usr/bin/python3 links libpython statically, and the shared library
 * (built with -fPIC, calls between its functions going through the PLT) runs
 * Python code measurably slower; scaling.mjs builds this launcher to measure that
 * part of the gap between Coil and plain Python separately from Coil's own costs.
 * Built with: cc -O2 -o <out> pylauncher.c <path of libpython3.X.so> */
extern int Py_BytesMain(int argc, char **argv);

int main(int argc, char **argv) { return Py_BytesMain(argc, argv); }
