{
  "targets": [
    {
      "target_name": "virtio_ts_platform",
      "sources": [
        "native/platform.c",
        "native/napi-args.c",
        "native/unix-sockets.c",
        "native/fd-watch.c",
        "native/shared-memory.c",
        "native/fds.c",
        "native/memory-advice.c"
      ],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
