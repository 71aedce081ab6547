{
  "targets": [
    {
      "target_name": "virtio_ts_platform",
      "sources": ["native/platform.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
