// The first object of every interpreter's link-map namespace (docs/engine.md, fact 5).
//
// glibc crashes (add_to_global_resize) when code in a namespace other than the base
// one dlopens with RTLD_GLOBAL. Python's own calls can be wrapped, but C and C++
// extensions call dlopen themselves (onnxruntime's providers). A namespace's global
// scope is the dependency list of its first object, so this library is loaded first,
// with libpython as its dependency: every `dlopen` reference resolved in the
// namespace -- libpython, extension modules, the libraries they load -- binds to the
// one below, which clears RTLD_GLOBAL and *jumps* to the namespace's libc. A jump, not
// a call: glibc takes the caller's return address to pick the caller's namespace and
// its RUNPATH, and it must see the original caller, not this file.
//
// Each cleared request is noted (path and count) so the engine can report which
// libraries asked for it. No libc call on that path: the note is plain stores.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>

#define COIL_NOTES 32
#define COIL_NOTE_CHARS 256

// The namespace's own dlopen, found in the constructor below (RTLD_NEXT skips this file).
__attribute__((visibility("hidden"))) void* coil_libc_dlopen = NULL;

static atomic_uint coil_cleared;  // how many dlopen calls had RTLD_GLOBAL cleared
static char coil_note_path[COIL_NOTES][COIL_NOTE_CHARS];
static atomic_int coil_note_ready[COIL_NOTES];

__attribute__((constructor)) static void coil_find_libc_dlopen(void) { coil_libc_dlopen = dlsym(RTLD_NEXT, "dlopen"); }

// Called from the stub below with dlopen's arguments when RTLD_GLOBAL is set.
__attribute__((visibility("hidden"), used)) void coil_note_cleared(const char* file) {
  unsigned slot = atomic_fetch_add_explicit(&coil_cleared, 1, memory_order_relaxed);
  if (slot >= COIL_NOTES) return;
  size_t i = 0;
  if (file != NULL) {
    for (; i + 1 < COIL_NOTE_CHARS && file[i] != '\0'; ++i) coil_note_path[slot][i] = file[i];
  }
  coil_note_path[slot][i] = '\0';
  atomic_store_explicit(&coil_note_ready[slot], 1, memory_order_release);
}

// How many dlopen calls in this namespace had RTLD_GLOBAL cleared; the paths of the
// first ones (NULL where a slot is unused or still being written). Read through ctypes.
unsigned coil_namespace_cleared(void) { return atomic_load_explicit(&coil_cleared, memory_order_relaxed); }

const char* coil_namespace_cleared_path(unsigned index) {
  if (index >= COIL_NOTES || !atomic_load_explicit(&coil_note_ready[index], memory_order_acquire)) return NULL;
  return coil_note_path[index];
}

// void* dlopen(const char* file, int mode)
#if defined(__x86_64__)
__asm__(
    ".pushsection .text\n"
    ".globl dlopen\n"
    ".type dlopen, @function\n"
    "dlopen:\n"
#if defined(__CET__)
    "  endbr64\n"
#endif
    "  testl $0x100, %esi\n"  // RTLD_GLOBAL
    "  jz 1f\n"
    "  pushq %rdi\n"
    "  pushq %rsi\n"
    "  subq $8, %rsp\n"  // 16-byte alignment for the call
    "  call coil_note_cleared\n"
    "  addq $8, %rsp\n"
    "  popq %rsi\n"
    "  popq %rdi\n"
    "  andl $-257, %esi\n"  // mode & ~RTLD_GLOBAL
    "1:\n"
    "  jmp *coil_libc_dlopen(%rip)\n"
    ".size dlopen, .-dlopen\n"
    ".popsection\n");
#elif defined(__aarch64__)
__asm__(
    ".pushsection .text\n"
    ".globl dlopen\n"
    ".type dlopen, %function\n"
    ".p2align 2\n"
    "dlopen:\n"
    "  tbz w1, #8, 1f\n"  // RTLD_GLOBAL is bit 8
    "  stp x29, x30, [sp, #-32]!\n"
    "  mov x29, sp\n"
    "  stp x0, x1, [sp, #16]\n"
    "  bl coil_note_cleared\n"
    "  ldp x0, x1, [sp, #16]\n"
    "  ldp x29, x30, [sp], #32\n"
    "  bic w1, w1, #0x100\n"
    "1:\n"
    "  adrp x16, coil_libc_dlopen\n"
    "  ldr x16, [x16, :lo12:coil_libc_dlopen]\n"
    "  br x16\n"
    ".size dlopen, .-dlopen\n"
    ".popsection\n");
#else
#error "the namespace root's dlopen is written for x86-64 and AArch64"
#endif
