/**
 * 5.22 Media Device (virtio-media): queues, configuration, commands, events, memory types, and
 * the V4L2 numbers and 64-bit little-endian structure layouts (Linux videodev2.h) that the
 * device and driver here use. Constants only.
 */
import { defineConfigLayout } from './config-layout.js';

/** 5.22.2 Virtqueues. */
export const MediaQueue = {
  COMMANDQ: 0,
  EVENTQ: 1,
} as const;

/** 5.22.3: no feature bits. */
export const MEDIA_FEATURES = 0n;

/** 5.22.4 struct virtio_media_config: device_caps, device_type, card[32]. */
export const MediaConfig = {
  SIZE: 40,
  DEVICE_CAPS: 0,
  DEVICE_TYPE: 4,
  CARD: 8,
  CARD_SIZE: 32,
} as const;

/** 5.22.4: the numeric fields (card is 32 bytes of UTF-8, read as bytes). */
export const MEDIA_CONFIG_LAYOUT = defineConfigLayout(MediaConfig.SIZE, [
  { name: 'deviceCaps', offset: MediaConfig.DEVICE_CAPS, width: 4, feature: null, access: 'ro' },
  { name: 'deviceType', offset: MediaConfig.DEVICE_TYPE, width: 4, feature: null, access: 'ro' },
]);

/** 5.22.6.1 commands. */
export const MediaCmd = {
  OPEN: 1,
  CLOSE: 2,
  IOCTL: 3,
  MMAP: 4,
  MUNMAP: 5,
} as const;

/** Command and response header size (le32 cmd/status, le32 reserved). */
export const MEDIA_HEADER_SIZE = 8;
/** VIRTIO_MEDIA_CMD_MMAP flags. */
export const MEDIA_MMAP_FLAG_RW = 1;
/** Shared memory region of MMAP buffers. */
export const MEDIA_SHM_ID = 0;

/** 5.22.6.2 events. */
export const MediaEvent = {
  ERROR: 0,
  DQBUF: 1,
  EVENT: 2,
} as const;
/** struct virtio_media_event_header size. */
export const MEDIA_EVENT_HEADER_SIZE = 8;
/** Most planes of a V4L2 buffer (VIDEO_MAX_PLANES). */
export const MEDIA_MAX_PLANES = 8;
/** struct virtio_media_event_dqbuf: header, v4l2_buffer, 8 v4l2_plane. */
export const MEDIA_EVENT_DQBUF_SIZE = MEDIA_EVENT_HEADER_SIZE + 88 + MEDIA_MAX_PLANES * 64;
/** struct virtio_media_event_event: header, v4l2_event. */
export const MEDIA_EVENT_EVENT_SIZE = MEDIA_EVENT_HEADER_SIZE + 136;
/** struct virtio_media_event_error: header, errno, reserved. */
export const MEDIA_EVENT_ERROR_SIZE = MEDIA_EVENT_HEADER_SIZE + 8;

/** struct virtio_media_sg_entry: le64 start, le32 len, le32 reserved. */
export const MEDIA_SG_ENTRY_SIZE = 16;

/** Linux error codes the device answers with (5.22.6). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
} as const;

/** V4L2 ioctl codes (the nr of the _IO* macro). */
export const Vidioc = {
  QUERYCAP: 0,
  ENUM_FMT: 2,
  G_FMT: 4,
  S_FMT: 5,
  REQBUFS: 8,
  QUERYBUF: 9,
  QBUF: 15,
  EXPBUF: 16,
  DQBUF: 17,
  STREAMON: 18,
  STREAMOFF: 19,
  G_JPEGCOMP: 61,
  S_JPEGCOMP: 62,
  TRY_FMT: 64,
  LOG_STATUS: 70,
  G_EXT_CTRLS: 71,
  DQEVENT: 89,
  SUBSCRIBE_EVENT: 90,
  UNSUBSCRIBE_EVENT: 91,
} as const;

/** V4L2 capabilities (device_caps) and device node type. */
export const V4l2Cap = {
  VIDEO_M2M: 0x0000_8000,
  EXT_PIX_FORMAT: 0x0020_0000,
  STREAMING: 0x0400_0000,
} as const;
/** virtio_media_device_config.device_type of a video device (Linux VFL_TYPE_VIDEO). */
export const VFL_TYPE_VIDEO = 0;

/** enum v4l2_buf_type values used here. */
export const V4l2BufType = {
  VIDEO_CAPTURE: 1,
  VIDEO_OUTPUT: 2,
} as const;

/**
 * enum v4l2_memory: how buffer memory is provided (MMAP: device's shared memory; USERPTR: guest
 * pages).
 */
export const V4l2Memory = {
  MMAP: 1,
  /** VIRTIO_MEDIA_SHARED_PAGES */
  USERPTR: 2,
  /** VIRTIO_MEDIA_OBJECT */
  DMABUF: 4,
} as const;

/** enum v4l2_field V4L2_FIELD_NONE: progressive frames. */
export const V4L2_FIELD_NONE = 1;

/** V4L2_BUF_FLAG_* bits of v4l2_buffer.flags. */
export const V4l2BufFlag = {
  MAPPED: 0x1,
  QUEUED: 0x2,
  DONE: 0x4,
  ERROR: 0x40,
  TIMESTAMP_COPY: 0x4000,
} as const;

/** v4l2_requestbuffers.capabilities */
export const V4l2BufCap = {
  SUPPORTS_MMAP: 0x1,
  SUPPORTS_USERPTR: 0x2,
} as const;

/** V4L2_EVENT_* types this device sends. */
export const V4l2EventType = {
  ALL: 0,
  EOS: 2,
  SOURCE_CHANGE: 5,
} as const;
/** V4L2_EVENT_SRC_CH_RESOLUTION: a SOURCE_CHANGE event's resolution-changed bit. */
export const V4L2_EVENT_SRC_CH_RESOLUTION = 1;

/** Two V4L2 control ids (read-only, both 1 here). */
export const V4l2Cid = {
  MIN_BUFFERS_FOR_CAPTURE: 0x0098_0927,
  MIN_BUFFERS_FOR_OUTPUT: 0x0098_0928,
} as const;

/** fourcc('N','V','1','2') and fourcc('G','R','E','Y'). */
export const V4l2PixFmt = {
  NV12: 0x3231_564e,
  GREY: 0x5945_5247,
} as const;

/** struct v4l2_fmtdesc (64 bytes). */
export const V4l2FmtDesc = { SIZE: 64, INDEX: 0, TYPE: 4, FLAGS: 8, DESCRIPTION: 12, DESCRIPTION_SIZE: 32, PIXELFORMAT: 44 } as const;

/** struct v4l2_format (208 bytes) with the single-planar v4l2_pix_format at offset 8. */
export const V4l2Format = {
  SIZE: 208,
  TYPE: 0,
  WIDTH: 8,
  HEIGHT: 12,
  PIXELFORMAT: 16,
  FIELD: 20,
  BYTESPERLINE: 24,
  SIZEIMAGE: 28,
  COLORSPACE: 32,
} as const;

/** struct v4l2_requestbuffers (20 bytes). */
export const V4l2RequestBuffers = { SIZE: 20, COUNT: 0, TYPE: 4, MEMORY: 8, CAPABILITIES: 12 } as const;

/** struct v4l2_buffer, 64-bit (88 bytes). */
export const V4l2Buffer = {
  SIZE: 88,
  INDEX: 0,
  TYPE: 4,
  BYTESUSED: 8,
  FLAGS: 12,
  FIELD: 16,
  TIMESTAMP_SEC: 24,
  TIMESTAMP_USEC: 32,
  SEQUENCE: 56,
  MEMORY: 60,
  /** union m: offset (u32) for MMAP, userptr (u64) for USERPTR, fd (s32) for DMABUF. */
  M: 64,
  LENGTH: 72,
} as const;

/** struct v4l2_event_subscription (32 bytes). */
export const V4l2EventSubscription = { SIZE: 32, TYPE: 0, ID: 4, FLAGS: 8 } as const;

/** struct v4l2_event, 64-bit (136 bytes). */
export const V4l2EventLayout = { SIZE: 136, TYPE: 0, U: 8, PENDING: 72, SEQUENCE: 76, TIMESTAMP: 80, ID: 96 } as const;

/** struct v4l2_ext_controls, 64-bit (32 bytes), then count packed struct v4l2_ext_control (20 bytes). */
export const V4l2ExtControls = { SIZE: 32, WHICH: 0, COUNT: 4, ERROR_IDX: 8, CONTROLS: 24 } as const;
/** struct v4l2_ext_control (packed, 20 bytes): id, size, then the value. */
export const V4l2ExtControl = { SIZE: 20, ID: 0, SIZE_FIELD: 4, VALUE: 12 } as const;
