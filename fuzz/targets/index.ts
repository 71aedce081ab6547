/** The fuzz targets, by name (each is fuzz/targets/<name>.ts exporting `target`). */
export const TARGETS = [
  'vhost-user-messages',
  'split-ring',
  'packed-ring',
  'blk-requests',
  'mmio-registers',
  'pci-registers',
  'ccw-commands',
  'net-header-ctrl',
  'scsi-cdbs',
  'vsock-packets',
  'fuse-requests',
  '9p-messages',
  'crypto-requests',
  'gpu-commands',
  'sound-requests',
  'input-events',
  'console-ports',
] as const;
export type TargetName = (typeof TARGETS)[number];
