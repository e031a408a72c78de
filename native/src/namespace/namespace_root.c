// The first object of every interpreter's link-map namespace (docs/engine.md, facts 5
// and 14).
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
//
// The dl* functions that take glibc's loader lock are wrapped the same way (x86-64),
// for a second trap (fact 14): a `dlsym(RTLD_DEFAULT)` that fails in a namespace leaves
// its thread's "inside a symbol lookup" flag set, and a dlopen or dlclose that frees an
// old scope array waits, holding the loader lock, until every other thread's flag is
// clear. The engine clears its threads' flags between jobs; but a job that leaks the
// flag and then loads a library itself (torch.compile: its WaitCounter, then Inductor's
// kernel) waits for that lock while the other waits for its flag: deadlock. A thread
// entering one of these functions is in no lookup, so a flag still set there is the
// leak: cleared, and the waiter woken, before the jump.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#define COIL_NOTES 32
#define COIL_NOTE_CHARS 256

// The namespace's own functions, found in the constructor below (RTLD_NEXT skips this file).
__attribute__((visibility("hidden"))) void* coil_libc_dlopen = NULL;

static atomic_uint coil_cleared;  // how many dlopen calls had RTLD_GLOBAL cleared
static char coil_note_path[COIL_NOTES][COIL_NOTE_CHARS];
static atomic_int coil_note_ready[COIL_NOTES];

#if defined(__x86_64__)
__attribute__((visibility("hidden"))) void* coil_libc_dlsym = NULL;
__attribute__((visibility("hidden"))) void* coil_libc_dlclose = NULL;
__attribute__((visibility("hidden"))) void* coil_libc_dlmopen = NULL;
__attribute__((visibility("hidden"))) void* coil_libc_dladdr = NULL;
__attribute__((visibility("hidden"))) void* coil_libc_dladdr1 = NULL;
__attribute__((visibility("hidden"))) void* coil_libc_dlinfo = NULL;

static atomic_uint coil_scope_flags_cleared;  // leaked scope flags cleared on entry

__attribute__((constructor)) static void coil_find_libc(void) {
  // dlsym is one of this file's, so glibc's is found through dlvsym, which is not:
  // the version it has had since 2.34 in libc, else the architecture's first one.
  void* (*real_dlsym)(void*, const char*) = (void* (*)(void*, const char*))dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
  if (real_dlsym == NULL) real_dlsym = (void* (*)(void*, const char*))dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
  if (real_dlsym == NULL) {
    // Not glibc as the stubs know it: every dl* call would jump to nothing. Say so
    // now, rather than crash in the first extension that looks up a symbol.
    static const char why[] = "coil: the namespace root found no glibc dlsym (GLIBC_2.34 or GLIBC_2.2.5); this libc is not supported\n";
    (void)!write(2, why, sizeof why - 1);
    abort();
  }
  coil_libc_dlsym = (void*)real_dlsym;
  // Called through the pointer from here, RTLD_NEXT still means "after this file".
  coil_libc_dlopen = real_dlsym(RTLD_NEXT, "dlopen");
  coil_libc_dlclose = real_dlsym(RTLD_NEXT, "dlclose");
  coil_libc_dlmopen = real_dlsym(RTLD_NEXT, "dlmopen");
  coil_libc_dladdr = real_dlsym(RTLD_NEXT, "dladdr");
  coil_libc_dladdr1 = real_dlsym(RTLD_NEXT, "dladdr1");
  coil_libc_dlinfo = real_dlsym(RTLD_NEXT, "dlinfo");
}

// glibc's x86-64 thread control block: `self` at 0x10, `gscope_flag` at 0x1c (0 free,
// 1 in a lookup, 2 in a lookup with a thread waiting for it to end), as the engine
// reads it (native/src/engine/interpreter.cc, ClearLeakedScopeFlag). Called from the
// stubs below only when the flag is set; a raw system call, no libc.
__attribute__((visibility("hidden"), used)) void coil_clear_scope_flag(void) {
  int old = 0;
  __asm__ volatile("xchgl %0, %%fs:0x1c" : "+r"(old) : : "memory");
  if (old == 0) return;
  if (old == 2) {
    char* self;
    __asm__("movq %%fs:0x10, %0" : "=r"(self));
    register long timeout __asm__("r10") = 0;
    long result;
    // futex(&flag, FUTEX_WAKE_PRIVATE, INT_MAX)
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "0"(202L), "D"(self + 0x1c), "S"(129L), "d"(0x7fffffffL), "r"(timeout)
                     : "rcx", "r11", "memory");
    (void)result;
  }
  atomic_fetch_add_explicit(&coil_scope_flags_cleared, 1, memory_order_relaxed);
}

// How many leaked scope flags threads of this namespace cleared entering a dl* function
// (read through ctypes, as the tests do).
unsigned coil_namespace_scope_flags_cleared(void) { return atomic_load_explicit(&coil_scope_flags_cleared, memory_order_relaxed); }
#else
__attribute__((constructor)) static void coil_find_libc(void) { coil_libc_dlopen = dlsym(RTLD_NEXT, "dlopen"); }
#endif

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

#if defined(__x86_64__)
#if defined(__CET__)
#define COIL_ENDBR "  endbr64\n"
#else
#define COIL_ENDBR
#endif

// A leaked scope flag cleared, every argument register kept (the stack 16-byte aligned
// for the call: 8 at entry, + 6 pushes + 8).
#define COIL_CLEAR_LEAKED_FLAG         \
  "  cmpl $0, %fs:0x1c\n"               \
  "  je 2f\n"                           \
  "  pushq %rdi\n  pushq %rsi\n  pushq %rdx\n" \
  "  pushq %rcx\n  pushq %r8\n  pushq %r9\n"   \
  "  subq $8, %rsp\n"                   \
  "  call coil_clear_scope_flag\n"      \
  "  addq $8, %rsp\n"                   \
  "  popq %r9\n  popq %r8\n  popq %rcx\n"      \
  "  popq %rdx\n  popq %rsi\n  popq %rdi\n"    \
  "2:\n"

// A function of glibc's with the leaked flag cleared first, then jumped to.
#define COIL_CLEARING_STUB(name)      \
  ".globl " #name "\n"                \
  ".type " #name ", @function\n"      \
  #name ":\n" COIL_ENDBR COIL_CLEAR_LEAKED_FLAG \
  "  jmp *coil_libc_" #name "(%rip)\n" \
  ".size " #name ", .-" #name "\n"

__asm__(".pushsection .text\n"
        COIL_CLEARING_STUB(dlsym)
        COIL_CLEARING_STUB(dlclose)
        COIL_CLEARING_STUB(dlmopen)
        COIL_CLEARING_STUB(dladdr)
        COIL_CLEARING_STUB(dladdr1)
        COIL_CLEARING_STUB(dlinfo)
        ".popsection\n");

// void* dlopen(const char* file, int mode)
__asm__(
    ".pushsection .text\n"
    ".globl dlopen\n"
    ".type dlopen, @function\n"
    "dlopen:\n"
    COIL_ENDBR
    COIL_CLEAR_LEAKED_FLAG
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
