/*
 * virtio-ts platform addon: the only code of the project that makes system calls Node cannot
 * make by itself. Kept small on purpose: every policy decision lives in
 * src/platform/native-platform.ts; the addon only maps JS values to syscalls and back.
 * One file per concept (unix-sockets.c, fd-watch.c, shared-memory.c, fds.c, ...); each
 * registers its own functions here. Conventions: napi-args.h.
 */
#include "napi-args.h"

static napi_value init(napi_env env, napi_value exports) {
  if (!register_unix_sockets(env, exports)) return NULL;
  if (!register_fd_watch(env, exports)) return NULL;
  if (!register_shared_memory(env, exports)) return NULL;
  if (!register_fds(env, exports)) return NULL;
  if (!register_pty(env, exports)) return NULL;
  if (!register_fs_at(env, exports)) return NULL;
  if (!register_fs_io(env, exports)) return NULL;
  if (!register_tap(env, exports)) return NULL;
  if (!register_seqpacket(env, exports)) return NULL;
  if (!register_memory_advice(env, exports)) return NULL;
  if (!register_io_uring(env, exports)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
