export { GpuDevice, GPU_DEFAULT_LIMITS, type GpuDeviceOptions, type GpuDisplaySpec, type GpuScanoutListener, type GpuCursorListener } from './gpu-device.js';
export type { GpuLimits } from './gpu-control.js';
export type { GpuScanoutView, GpuRectangle } from './gpu-scanout.js';
export type { GpuCursorView } from './gpu-cursor.js';
export { GpuDriver, GpuCommandError, GPU_FALLBACK_MODE, type GpuDriverOptions, type GpuDriverConfig, type GpuDisplayInfoEntry, type GpuFramebuffer } from './gpu-driver.js';
export { buildEdid, edidBaseBlockValid, edidPreferredSize, EDID_BLOCK_SIZE, type EdidOptions } from './gpu-edid.js';
export { encodePng } from './gpu-png.js';
export { GPU_TYPE, type GpuDeviceArgs } from './gpu-type.js';
