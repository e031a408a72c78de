// The few libuv functions the addon calls, declared here: the addon builds against
// node-api-headers alone (nothing downloaded), which carry no uv.h. Node exports
// libuv's symbols, and libuv keeps its ABI within 1.x. Handles are opaque storage
// here, checked at start against uv_handle_size (main thread: AsyncWake).
#pragma once

#include <cstddef>

struct uv_loop_s;
struct uv_handle_s;
struct uv_async_s;

extern "C" {
using uv_async_cb = void (*)(uv_async_s* handle);
using uv_close_cb = void (*)(uv_handle_s* handle);
int uv_async_init(uv_loop_s* loop, uv_async_s* handle, uv_async_cb callback);
int uv_async_send(uv_async_s* handle);
void uv_close(uv_handle_s* handle, uv_close_cb callback);
void uv_ref(uv_handle_s* handle);
void uv_unref(uv_handle_s* handle);
size_t uv_handle_size(int type);
}

namespace coil {

constexpr int kUvAsync = 1;  // uv_handle_type's UV_ASYNC

// A uv_async_t with room to spare (128 bytes on 64-bit Linux), and its owner: the
// storage comes first, so the handle's address is this object's.
template <typename Owner>
struct AsyncWake {
  alignas(16) unsigned char storage[256];
  Owner* owner = nullptr;

  uv_async_s* async() { return reinterpret_cast<uv_async_s*>(storage); }
  uv_handle_s* handle() { return reinterpret_cast<uv_handle_s*>(storage); }
  static Owner* OwnerOf(void* handle) { return static_cast<AsyncWake*>(handle)->owner; }
  static bool Fits() { return uv_handle_size(kUvAsync) <= sizeof(storage); }
};

}  // namespace coil
