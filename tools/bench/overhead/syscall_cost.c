// What this machine charges for the kernel work a Coil call's crossing needs
// (docs/engine.md, "Where a call's time goes"): one bare system call, and a round
// trip between two threads through a mutex + condition variable (two wake-ups), the
// way a job reaches an interpreter's thread and its completion comes back.
//
//   cc -O2 -pthread tools/bench/overhead/syscall_cost.c -o /tmp/syscall_cost && /tmp/syscall_cost
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { SYSCALLS = 1000000, ROUND_TRIPS = 100000 };

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int turn;  // 1: the other thread's, 0: main's

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void* answer(void* unused) {
  (void)unused;
  for (int i = 0; i < ROUND_TRIPS; i++) {
    pthread_mutex_lock(&mutex);
    while (turn != 1) pthread_cond_wait(&changed, &mutex);
    turn = 0;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&mutex);
  }
  return NULL;
}

int main(void) {
  double start = now();
  for (int i = 0; i < SYSCALLS; i++) syscall(SYS_getppid);
  printf("one system call (getppid): %.0f ns\n", (now() - start) / SYSCALLS * 1e9);

  pthread_t other;
  pthread_create(&other, NULL, answer, NULL);
  start = now();
  for (int i = 0; i < ROUND_TRIPS; i++) {
    pthread_mutex_lock(&mutex);
    turn = 1;
    pthread_cond_signal(&changed);
    while (turn != 0) pthread_cond_wait(&changed, &mutex);
    pthread_mutex_unlock(&mutex);
  }
  printf("condvar round trip between two threads: %.1f us\n", (now() - start) / ROUND_TRIPS * 1e6);
  pthread_join(other, NULL);
  return 0;
}
