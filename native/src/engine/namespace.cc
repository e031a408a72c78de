#include "namespace.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace coil {

namespace {

// The root finds its dependency by this name in its own directory ($ORIGIN): it was
// linked against a placeholder of that name (native/CMakeLists.txt).
constexpr const char* kRootName = "libcoil-namespace.so";
constexpr const char* kLibpythonName = "libcoil-python.so";

std::string TempRoot() {
  const char* dir = getenv("TMPDIR");
  return dir != nullptr && dir[0] == '/' ? dir : "/tmp";
}

}  // namespace

void* OpenNamespace(const std::string& root, const std::string& library, std::string* error) {
  if (root.empty()) {
    void* handle = dlmopen(LM_ID_NEWLM, library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) *error = dlerror();
    return handle;
  }
  // A private directory of two links, the root and libpython under the name the root
  // needs; gone once loaded (the mappings stay). Links, not copies: the files mapped
  // are the originals, so a noexec temporary directory does not matter.
  if (library.find('/') == std::string::npos) {
    // A link cannot stand for a name the loader would search for.
    *error = "the library must be given as a path, not a name to search for: " + library;
    return nullptr;
  }
  char real_library[PATH_MAX];
  if (realpath(library.c_str(), real_library) == nullptr) {
    *error = library + ": " + strerror(errno);
    return nullptr;
  }
  char real_root[PATH_MAX];
  if (realpath(root.c_str(), real_root) == nullptr) {
    *error = "the namespace root " + root + ": " + strerror(errno);
    return nullptr;
  }
  std::string pattern = TempRoot() + "/coil-namespace-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    *error = "cannot make a directory in " + TempRoot() + " for the namespace's links (" + strerror(errno) +
             "); set TMPDIR to a writable directory";
    return nullptr;
  }
  const std::string root_link = pattern + "/" + kRootName;
  const std::string library_link = pattern + "/" + kLibpythonName;
  void* handle = nullptr;
  if (symlink(real_root, root_link.c_str()) != 0 || symlink(real_library, library_link.c_str()) != 0) {
    *error = "cannot link the namespace root in " + pattern + ": " + strerror(errno);
  } else {
    handle = dlmopen(LM_ID_NEWLM, root_link.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) *error = dlerror();
  }
  unlink(library_link.c_str());
  unlink(root_link.c_str());
  rmdir(pattern.c_str());
  return handle;
}

}  // namespace coil
