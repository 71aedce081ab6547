{
  "targets": [
    {
      "target_name": "virtio_ts_platform",
      "sources": ["<!@(ls -1 native/*.c)"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
