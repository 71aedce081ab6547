/**
 * 5.7 GPU Device: feature bits, virtqueues, configuration layout, the control and cursor command
 * and response codes, the request structures' offsets and sizes, and the pixel formats.
 * Constants only (2D mode; the 3D and blob numbers are listed so both sides can name them).
 */
import { defineConfigLayout } from './config-layout.js';
import { bit } from './features.js';

/** 5.7.3 Feature bits (bit numbers). */
export const GpuFeatureBit = {
  VIRGL: 0,
  EDID: 1,
  RESOURCE_UUID: 2,
  RESOURCE_BLOB: 3,
  CONTEXT_INIT: 4,
  BLOB_ALIGNMENT: 5,
} as const;

/** 5.7.3 Feature bits as masks. */
export const GpuF = {
  VIRGL: bit(GpuFeatureBit.VIRGL),
  EDID: bit(GpuFeatureBit.EDID),
  RESOURCE_UUID: bit(GpuFeatureBit.RESOURCE_UUID),
  RESOURCE_BLOB: bit(GpuFeatureBit.RESOURCE_BLOB),
  CONTEXT_INIT: bit(GpuFeatureBit.CONTEXT_INIT),
  BLOB_ALIGNMENT: bit(GpuFeatureBit.BLOB_ALIGNMENT),
} as const;

/** 5.7.2 Virtqueues. */
export const GpuQueue = {
  CONTROLQ: 0,
  CURSORQ: 1,
} as const;

/** 5.7.4.2 VIRTIO_GPU_EVENT_DISPLAY: the display configuration changed. */
export const GPU_EVENT_DISPLAY = 1;

/** 5.7.4 struct virtio_gpu_config (20 bytes). */
export const GpuConfig = {
  SIZE: 20,
  EVENTS_READ: 0,
  EVENTS_CLEAR: 4,
  NUM_SCANOUTS: 8,
  NUM_CAPSETS: 12,
  BLOB_ALIGNMENT: 16,
} as const;

/** 5.7.4: the driver writes events_clear only; blob_alignment exists with BLOB_ALIGNMENT. */
export const GPU_CONFIG_LAYOUT = defineConfigLayout(GpuConfig.SIZE, [
  { name: 'eventsRead', offset: GpuConfig.EVENTS_READ, width: 4, feature: null, access: 'ro' },
  { name: 'eventsClear', offset: GpuConfig.EVENTS_CLEAR, width: 4, feature: null, access: 'rw' },
  { name: 'numScanouts', offset: GpuConfig.NUM_SCANOUTS, width: 4, feature: null, access: 'ro' },
  { name: 'numCapsets', offset: GpuConfig.NUM_CAPSETS, width: 4, feature: null, access: 'ro' },
  { name: 'blobAlignment', offset: GpuConfig.BLOB_ALIGNMENT, width: 4, feature: GpuF.BLOB_ALIGNMENT, access: 'ro' },
] as const);
/** The field names of GPU_CONFIG_LAYOUT: the keys of the values encodeConfig takes for it. */
export type GpuConfigField = (typeof GPU_CONFIG_LAYOUT.fields)[number]['name'];

/** 5.7.6.7 enum virtio_gpu_ctrl_type. */
export const GpuCmd = {
  GET_DISPLAY_INFO: 0x0100,
  RESOURCE_CREATE_2D: 0x0101,
  RESOURCE_UNREF: 0x0102,
  SET_SCANOUT: 0x0103,
  RESOURCE_FLUSH: 0x0104,
  TRANSFER_TO_HOST_2D: 0x0105,
  RESOURCE_ATTACH_BACKING: 0x0106,
  RESOURCE_DETACH_BACKING: 0x0107,
  GET_CAPSET_INFO: 0x0108,
  GET_CAPSET: 0x0109,
  GET_EDID: 0x010a,
  RESOURCE_ASSIGN_UUID: 0x010b,
  RESOURCE_CREATE_BLOB: 0x010c,
  SET_SCANOUT_BLOB: 0x010d,
  CTX_CREATE: 0x0200,
  CTX_DESTROY: 0x0201,
  CTX_ATTACH_RESOURCE: 0x0202,
  CTX_DETACH_RESOURCE: 0x0203,
  RESOURCE_CREATE_3D: 0x0204,
  TRANSFER_TO_HOST_3D: 0x0205,
  TRANSFER_FROM_HOST_3D: 0x0206,
  SUBMIT_3D: 0x0207,
  RESOURCE_MAP_BLOB: 0x0208,
  RESOURCE_UNMAP_BLOB: 0x0209,
  UPDATE_CURSOR: 0x0300,
  MOVE_CURSOR: 0x0301,
} as const;

/** 5.7.6.7 success and error responses. */
export const GpuResp = {
  OK_NODATA: 0x1100,
  OK_DISPLAY_INFO: 0x1101,
  OK_CAPSET_INFO: 0x1102,
  OK_CAPSET: 0x1103,
  OK_EDID: 0x1104,
  OK_RESOURCE_UUID: 0x1105,
  OK_MAP_INFO: 0x1106,
  ERR_UNSPEC: 0x1200,
  ERR_OUT_OF_MEMORY: 0x1201,
  ERR_INVALID_SCANOUT_ID: 0x1202,
  ERR_INVALID_RESOURCE_ID: 0x1203,
  ERR_INVALID_CONTEXT_ID: 0x1204,
  ERR_INVALID_PARAMETER: 0x1205,
} as const;

/** 5.7.6.7 header flags. */
export const GPU_FLAG_FENCE = 1;
/** 5.7.6.7 VIRTIO_GPU_FLAG_INFO_RING_IDX: ring_idx of the header is valid (context fences). */
export const GPU_FLAG_INFO_RING_IDX = 2;

/** 5.7.6.7 struct virtio_gpu_ctrl_hdr (24 bytes). */
export const GpuHdr = {
  TYPE: 0,
  FLAGS: 4,
  FENCE_ID: 8,
  CTX_ID: 16,
  RING_IDX: 20,
  SIZE: 24,
} as const;

/** 5.7.6.8 VIRTIO_GPU_MAX_SCANOUTS. */
export const GPU_MAX_SCANOUTS = 16;

/** 5.7.6.8 struct virtio_gpu_rect: offsets inside the rect (16 bytes). */
export const GpuRect = { X: 0, Y: 4, WIDTH: 8, HEIGHT: 12, SIZE: 16 } as const;

/** 5.7.6.8 struct virtio_gpu_resp_display_info: the header, then 16 of { rect, enabled, flags }. */
export const GpuDisplayInfo = {
  ONE_SIZE: 24,
  ENABLED: 16,
  FLAGS: 20,
  SIZE: GpuHdr.SIZE + GPU_MAX_SCANOUTS * 24,
} as const;

/** 5.7.6.8 struct virtio_gpu_get_edid / virtio_gpu_resp_edid. */
export const GpuEdid = {
  REQ_SCANOUT: 24,
  REQ_SIZE: 32,
  RESP_SIZE_FIELD: 24,
  RESP_DATA: 32,
  MAX_BYTES: 1024,
  RESP_SIZE: 32 + 1024,
} as const;

/** 5.7.6.8 struct virtio_gpu_resource_create_2d. */
export const GpuCreate2d = { RESOURCE_ID: 24, FORMAT: 28, WIDTH: 32, HEIGHT: 36, SIZE: 40 } as const;

/** 5.7.6.8 struct virtio_gpu_resource_unref / detach_backing / assign_uuid (resource_id, padding). */
export const GpuResourceReq = { RESOURCE_ID: 24, SIZE: 32 } as const;

/** 5.7.6.8 struct virtio_gpu_set_scanout. */
export const GpuSetScanout = { RECT: 24, SCANOUT_ID: 40, RESOURCE_ID: 44, SIZE: 48 } as const;

/** 5.7.6.8 struct virtio_gpu_resource_flush. */
export const GpuFlush = { RECT: 24, RESOURCE_ID: 40, SIZE: 48 } as const;

/** 5.7.6.8 struct virtio_gpu_transfer_to_host_2d. */
export const GpuTransfer2d = { RECT: 24, OFFSET: 40, RESOURCE_ID: 48, SIZE: 56 } as const;

/** 5.7.6.8 struct virtio_gpu_resource_attach_backing, then nr_entries of struct virtio_gpu_mem_entry. */
export const GpuAttachBacking = { RESOURCE_ID: 24, NR_ENTRIES: 28, SIZE: 32 } as const;
/** 5.7.6.8 struct virtio_gpu_mem_entry: le64 addr, le32 length, le32 padding. */
export const GpuMemEntry = { ADDR: 0, LENGTH: 8, SIZE: 16 } as const;

/** 5.7.6.8 struct virtio_gpu_get_capset_info / virtio_gpu_resp_capset_info. */
export const GpuCapsetInfo = { REQ_INDEX: 24, REQ_SIZE: 32, RESP_SIZE: 40 } as const;

/** 5.7.6.10 struct virtio_gpu_update_cursor (also MOVE_CURSOR): pos, resource_id, hot_x, hot_y. */
export const GpuCursor = {
  SCANOUT_ID: 24,
  X: 28,
  Y: 32,
  RESOURCE_ID: 40,
  HOT_X: 44,
  HOT_Y: 48,
  SIZE: 56,
} as const;

/** 5.7.6.10: a cursor image is a 64x64 resource. */
export const GPU_CURSOR_SIZE = 64;

/** 5.7.6.8 enum virtio_gpu_formats (named by byte order in memory). */
export const GpuFormat = {
  B8G8R8A8_UNORM: 1,
  B8G8R8X8_UNORM: 2,
  A8R8G8B8_UNORM: 3,
  X8R8G8B8_UNORM: 4,
  R8G8B8A8_UNORM: 67,
  X8B8G8R8_UNORM: 68,
  A8B8G8R8_UNORM: 121,
  R8G8B8X8_UNORM: 134,
} as const;
export type GpuFormat = (typeof GpuFormat)[keyof typeof GpuFormat];

/**
 * Where red, green, blue and alpha sit in one 4-byte pixel of `format` (alpha -1: an X format,
 * opaque), or null for a value that is not a format of 5.7.6.8.
 */
export function gpuFormatChannels(format: number): readonly [number, number, number, number] | null {
  switch (format) {
    case GpuFormat.B8G8R8A8_UNORM:
      return [2, 1, 0, 3];
    case GpuFormat.B8G8R8X8_UNORM:
      return [2, 1, 0, -1];
    case GpuFormat.A8R8G8B8_UNORM:
      return [1, 2, 3, 0];
    case GpuFormat.X8R8G8B8_UNORM:
      return [1, 2, 3, -1];
    case GpuFormat.R8G8B8A8_UNORM:
      return [0, 1, 2, 3];
    case GpuFormat.X8B8G8R8_UNORM:
      return [3, 2, 1, -1];
    case GpuFormat.A8B8G8R8_UNORM:
      return [3, 2, 1, 0];
    case GpuFormat.R8G8B8X8_UNORM:
      return [0, 1, 2, -1];
    default:
      return null;
  }
}

/** Every format takes 4 bytes per pixel. */
export const GPU_BYTES_PER_PIXEL = 4;
