/* mmap of shared memory as external ArrayBuffers, and memfd. */
#include "napi-args.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Node 20 caps an external ArrayBuffer at 4 GiB: callers map larger areas in chunks. */
#define MAX_MAP_LEN ((int64_t)1 << 32)


/*
 * A mapping is named by two JS values: the external ArrayBuffer over it and an external handle.
 * Both finalizers hold a reference (refs 2 -> 0 frees the struct). The memory itself is
 * unmapped exactly once: by unmap() (which first detaches the buffer so no JS view can reach
 * the pages afterwards) or, if the program never unmaps, when the buffer is collected.
 */
typedef struct {
  void *base;   /* what mmap returned (page-aligned) */
  size_t len;   /* what was mapped */
  void *view;   /* base + (offset % page): the ArrayBuffer's first byte */
  size_t view_len;
  bool unmapped;
  int refs;
} mapping_t;

static void mapping_release(mapping_t *m) {
  if (--m->refs == 0) free(m);
}

static void mapping_buffer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping_t *m = hint;
  if (!m->unmapped) {
    m->unmapped = true;
    munmap(m->base, m->len);
  }
  mapping_release(m);
}

static void mapping_handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  mapping_release(data);
}

/* mmap(fd, offset, length) -> [ArrayBuffer, handle]; MAP_SHARED read-write. */
static napi_value js_mmap(napi_env env, napi_callback_info info) {
  napi_value argv[3], ab, ext, arr;
  int fd;
  int64_t off, len;
  if (!get_args(env, info, 3, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_uint(env, argv[1], MAX_SAFE_INT, "offset", &off) ||
      !get_uint(env, argv[2], (double)MAX_MAP_LEN, "length (map larger areas in chunks)", &len))
    return NULL;
  if (len == 0) return throw_arg(env, "length must be positive");
  /* Pages of a file beyond its end map fine but raise SIGBUS when touched: a front-end that
   * announces more memory than its memfd holds must get an error here, not crash us later. */
  struct stat st;
  if (fstat(fd, &st) < 0) return throw_errno(env, "fstat", errno);
  if (S_ISREG(st.st_mode) && (off > st.st_size || len > st.st_size - off)) return throw_errno(env, "mmap beyond the end of the file", ENXIO);
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  /* mmap needs a page-aligned file offset: map from the page below and point the view in. */
  int64_t delta = off % page;
  mapping_t *m = calloc(1, sizeof *m);
  if (m == NULL) return throw_errno(env, "mmap", ENOMEM);
  m->len = (size_t)(len + delta);
  m->base = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(off - delta));
  if (m->base == MAP_FAILED) {
    int e = errno;
    free(m);
    return throw_errno(env, "mmap", e);
  }
  m->view = (uint8_t *)m->base + delta;
  m->view_len = (size_t)len;
  m->refs = 1; /* the buffer's finalizer */
  if (napi_create_external_arraybuffer(env, m->view, m->view_len, mapping_buffer_finalize, m, &ab) != napi_ok) {
    munmap(m->base, m->len);
    free(m);
    return throw_errno(env, "napi_create_external_arraybuffer", ENOMEM);
  }
  /* From here the buffer owns the pages; on failure its finalizer unmaps them. */
  if (napi_create_external(env, m, mapping_handle_finalize, NULL, &ext) != napi_ok) return throw_errno(env, "mmap handle", ENOMEM);
  m->refs++;
  NAPI_CALL(env, napi_create_array_with_length(env, 2, &arr));
  NAPI_CALL(env, napi_set_element(env, arr, 0, ab));
  NAPI_CALL(env, napi_set_element(env, arr, 1, ext));
  return arr;
}

/* munmap(arrayBuffer, handle): detaches the buffer (byteLength 0 afterwards), then unmaps. Idempotent. */
static napi_value js_munmap(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *p = NULL, *data = NULL;
  size_t n = 0;
  bool is_ab = false;
  napi_valuetype t;
  if (!get_args(env, info, 2, argv, NULL)) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[1], &p) != napi_ok || p == NULL)
    return throw_arg(env, "not a mapping handle");
  mapping_t *m = p;
  if (m->unmapped) return NULL;
  if (napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab || napi_get_arraybuffer_info(env, argv[0], &data, &n) != napi_ok ||
      data != m->view || n != m->view_len)
    return throw_arg(env, "the ArrayBuffer does not belong to this mapping");
  NAPI_CALL(env, napi_detach_arraybuffer(env, argv[0]));
  m->unmapped = true;
  if (munmap(m->base, m->len) < 0) return throw_errno(env, "munmap", errno);
  return NULL;
}

/* memfd(name, size) -> fd: memfd_create + ftruncate */
static napi_value js_memfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[250];
  size_t n;
  int64_t size;
  if (!get_args(env, info, 2, argv, NULL)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok) return throw_arg(env, "name must be a string");
  if (!get_uint(env, argv[1], MAX_SAFE_INT, "size", &size)) return NULL;
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, "memfd_create", errno);
  if (ftruncate(fd, (off_t)size) < 0) {
    close_keep_errno(fd);
    return throw_errno(env, "ftruncate", errno);
  }
  return make_int(env, fd);
}

bool register_shared_memory(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      EXPORT_FN("mmap", js_mmap),
      EXPORT_FN("munmap", js_munmap),
      EXPORT_FN("memfd", js_memfd),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
