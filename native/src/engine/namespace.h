#pragma once

#include <string>

namespace coil {

// Opens `library` (a shared libpython) in a new link-map namespace. With a
// `root` (the built libcoil_namespace.so), the root is the namespace's first object
// and libpython its dependency, so every dlopen in the namespace has RTLD_GLOBAL
// cleared before glibc sees it (docs/engine.md, fact 5); without one, libpython is
// loaded alone. Returns the handle (dlsym on it finds libpython's symbols), or
// nullptr with `error` set.
void* OpenNamespace(const std::string& root, const std::string& library, std::string* error);

}  // namespace coil
