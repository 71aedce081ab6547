/*
 * The C floor for virtio-ts's ring benchmark: a minimal split virtqueue (2.7) moved by a driver
 * and a device, one descriptor per chain, in one thread and across two threads (acquire/release
 * on the indices). It does the same work per chain as bench/ring-bench.ts: the driver fills a
 * descriptor and an avail entry and publishes avail->idx; the device reads avail->idx, the avail
 * entry and the descriptor, writes a used element and publishes used->idx; the driver reads the
 * used element back. Prints ns per chain. Built by bench/run.mjs with the machine's gcc -O2.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QSZ 256
struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct avail { uint16_t flags, idx, ring[QSZ], used_event; };
struct used_elem { uint32_t id, len; };
struct used { uint16_t flags, idx; struct used_elem ring[QSZ]; uint16_t avail_event; };

static struct desc d[QSZ] __attribute__((aligned(64)));
static struct avail av __attribute__((aligned(64)));
static struct used us __attribute__((aligned(64)));
static volatile uint64_t sink;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Device side state. */
static uint16_t dev_last_avail, dev_used;
static int device_poll(int max) {
  uint16_t a = __atomic_load_n(&av.idx, __ATOMIC_ACQUIRE);
  int n = 0;
  while (dev_last_avail != a && n < max) {
    uint16_t head = av.ring[dev_last_avail % QSZ];
    if (head >= QSZ) abort();
    struct desc *x = &d[head];
    sink += x->addr + x->len;
    us.ring[dev_used % QSZ].id = head;
    us.ring[dev_used % QSZ].len = x->len;
    dev_used++;
    dev_last_avail++;
    n++;
  }
  if (n) __atomic_store_n(&us.idx, dev_used, __ATOMIC_RELEASE);
  return n;
}

/* Driver side state. */
static uint16_t drv_avail, drv_last_used, free_head;
static void driver_add(int batch) {
  for (int i = 0; i < batch; i++) {
    uint16_t h = free_head;
    free_head = (free_head + 1) % QSZ;
    d[h].addr = 0x1000 + h * 4096;
    d[h].len = 4096;
    d[h].flags = 0;
    av.ring[drv_avail % QSZ] = h;
    drv_avail++;
  }
  __atomic_store_n(&av.idx, drv_avail, __ATOMIC_RELEASE);
}
static int driver_reap(void) {
  uint16_t u = __atomic_load_n(&us.idx, __ATOMIC_ACQUIRE);
  int n = 0;
  while (drv_last_used != u) {
    sink += us.ring[drv_last_used % QSZ].id;
    drv_last_used++;
    n++;
  }
  return n;
}

static void one_thread(long chains, int batch) {
  double t0 = now();
  for (long done = 0; done < chains;) {
    driver_add(batch);
    device_poll(batch);
    done += driver_reap();
  }
  printf("c-floor split one-thread batch=%d ns/chain=%.2f\n", batch, (now() - t0) / chains);
}

static long target;
static void *device_thread(void *arg) {
  (void)arg;
  long done = 0;
  while (done < target) done += device_poll(QSZ);
  return NULL;
}
static void two_threads(long chains, int batch) {
  memset(&av, 0, sizeof av);
  memset(&us, 0, sizeof us);
  dev_last_avail = dev_used = drv_avail = drv_last_used = free_head = 0;
  target = chains;
  pthread_t t;
  double t0 = now();
  pthread_create(&t, NULL, device_thread, NULL);
  long added = 0, done = 0;
  while (done < chains) {
    uint16_t inflight = drv_avail - drv_last_used;
    if (added < chains && inflight + batch <= QSZ) {
      driver_add(batch);
      added += batch;
    }
    done += driver_reap();
  }
  pthread_join(t, NULL);
  printf("c-floor split two-threads batch=%d ns/chain=%.2f\n", batch, (now() - t0) / chains);
}

int main(int argc, char **argv) {
  long chains = argc > 1 ? atol(argv[1]) : 10000000;
  one_thread(chains, 1);
  one_thread(chains, 32);
  two_threads(chains, 1);
  two_threads(chains, 32);
  return 0;
}
