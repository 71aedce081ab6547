/* madvise over a range of a mapping: giving pages back to the host (balloon, free page reporting). */
#include "napi-args.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

/* The advices the TS wrapper may ask for, by number (src/platform/memory-advice.ts). */
#define ADVICE_DONTNEED 0 /* private mappings: the pages read back zero (anonymous) or from the file */
#define ADVICE_REMOVE 1   /* shared mappings of shmem/memfd: frees the backing store, reads back zero */

/*
 * madviseRange(bytes, offset, len, advice) -> bytes advised. The range is shrunk to the whole
 * host pages inside it (a partial page at either end is left alone: its other bytes may be in
 * use), so the result can be 0. `bytes` must view an mmapped area (the wrapper's contract).
 */
static napi_value js_madvise_range(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *p;
  size_t len;
  int64_t advice;
  if (!get_args(env, info, 4, argv, NULL) || !get_range(env, argv[0], argv[1], argv[2], &p, &len) ||
      !get_uint(env, argv[3], ADVICE_REMOVE, "advice", &advice))
    return NULL;
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  uintptr_t start = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
  uintptr_t end = ((uintptr_t)p + len) & ~((uintptr_t)page - 1);
  if (p == NULL || end <= start) return make_int(env, 0);
  int how = advice == ADVICE_REMOVE ? MADV_REMOVE : MADV_DONTNEED;
  for (int i = 0; i < MAX_EINTR; i++) {
    if (madvise((void *)start, end - start, how) == 0) return make_int(env, (int64_t)(end - start));
    if (errno != EINTR && errno != EAGAIN) return throw_errno(env, "madvise", errno);
  }
  return throw_errno(env, "madvise", EAGAIN);
}

bool register_memory_advice(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("madviseRange", js_madvise_range),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
