/** 4.1 Virtio Over PCI Bus: identifiers, capability types and structure layouts. */

export const PCI_VENDOR_VIRTIO = 0x1af4;
/** 4.1.2.1: modern device id = 0x1040 + virtio device id. */
export const PCI_MODERN_DEVICE_BASE = 0x1040;

/** 4.1.2.1 Transitional PCI Device IDs (the legacy drivers' ids), by virtio device id. */
export const TRANSITIONAL_DEVICE_IDS: Readonly<Record<number, number>> = {
  1: 0x1000, // network card
  2: 0x1001, // block device
  5: 0x1002, // memory ballooning (traditional)
  3: 0x1003, // console
  8: 0x1004, // SCSI host
  4: 0x1005, // entropy source
  9: 0x1009, // 9P transport
};

/** Virtio device id from a PCI device id (modern or transitional), or -1. */
export function virtioIdFromPciDeviceId(pciDeviceId: number, subsystemId: number): number {
  if (pciDeviceId >= 0x1040 && pciDeviceId <= 0x107f) return pciDeviceId - PCI_MODERN_DEVICE_BASE;
  if (pciDeviceId >= 0x1000 && pciDeviceId <= 0x103f) return subsystemId; // 4.1.2.3: legacy drivers read the subsystem id
  return -1;
}

/** PCI configuration header (type 0) offsets. */
export const PciCfg = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  CLASS_PROG: 0x09,
  CLASS_DEVICE: 0x0a,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  CAPABILITIES_POINTER: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  SIZE: 256,
} as const;

/** Bits of the PCI configuration space Command register (offset 0x04, PCI Local Bus spec 6.2.2). */
export const PciCommand = {
  /** I/O Space: the function decodes accesses to its I/O BARs. */
  IO: 1 << 0,
  /** Memory Space: the function decodes accesses to its memory BARs. */
  MEMORY: 1 << 1,
  /** Bus Master: the function may issue DMA (virtqueue accesses need it). */
  BUS_MASTER: 1 << 2,
  /** Interrupt Disable: the function must not assert INTx (MSI-X is unaffected). */
  INTX_DISABLE: 1 << 10,
} as const;

/** Bits of the PCI configuration space Status register (offset 0x06). */
export const PciStatus = {
  /** Interrupt Status: INTx is pending (set whatever INTX_DISABLE says). */
  INTERRUPT: 1 << 3,
  /** Capabilities List: the capability pointer at 0x34 is valid. */
  CAP_LIST: 1 << 4,
} as const;

/** Capability ID of a vendor-specific capability, the form every virtio_pci_cap takes (4.1.4). */
export const PCI_CAP_ID_VNDR = 0x09;
/** Capability ID of the MSI-X capability (PCI Local Bus 6.8.2; its virtio use in 4.1.5.1.2). */
export const PCI_CAP_ID_MSIX = 0x11;

/** 4.1.4 cfg_type values. */
export const VirtioPciCap = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
  PCI_CFG: 5,
  SHARED_MEMORY_CFG: 8,
  VENDOR_CFG: 9,
} as const;

/** struct virtio_pci_cap field offsets within the capability. */
export const CapField = {
  VNDR: 0,
  NEXT: 1,
  LEN: 2,
  CFG_TYPE: 3,
  BAR: 4,
  ID: 5,
  OFFSET: 8,
  LENGTH: 12,
  /** notify cap: notify_off_multiplier; cap64: offset_hi; pci cfg cap: pci_cfg_data. */
  EXTRA: 16,
  /** cap64: length_hi. */
  EXTRA2: 20,
} as const;

/** 4.1.4.3 struct virtio_pci_common_cfg offsets. */
export const CommonCfg = {
  DEVICE_FEATURE_SELECT: 0x00,
  DEVICE_FEATURE: 0x04,
  DRIVER_FEATURE_SELECT: 0x08,
  DRIVER_FEATURE: 0x0c,
  CONFIG_MSIX_VECTOR: 0x10,
  NUM_QUEUES: 0x12,
  DEVICE_STATUS: 0x14,
  CONFIG_GENERATION: 0x15,
  QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18,
  QUEUE_MSIX_VECTOR: 0x1a,
  QUEUE_ENABLE: 0x1c,
  QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28,
  QUEUE_DEVICE: 0x30,
  QUEUE_NOTIF_CONFIG_DATA: 0x38,
  QUEUE_RESET: 0x3a,
  ADMIN_QUEUE_INDEX: 0x3c,
  ADMIN_QUEUE_NUM: 0x3e,
  SIZE: 0x40,
} as const;

/** 4.1.4.8 legacy I/O BAR header; the MSI-X fields exist only while MSI-X is enabled. */
export const LegacyReg = {
  HOST_FEATURES: 0,
  GUEST_FEATURES: 4,
  QUEUE_PFN: 8,
  QUEUE_SIZE: 12,
  QUEUE_SELECT: 14,
  QUEUE_NOTIFY: 16,
  STATUS: 18,
  ISR: 19,
  CONFIG_MSIX_VECTOR: 20,
  QUEUE_MSIX_VECTOR: 22,
  CONFIG_NO_MSIX: 20,
  CONFIG_MSIX: 24,
} as const;

/** Legacy QueuePFN is in 4096-byte units and the ring's used part is 4096-aligned. */
export const LEGACY_PFN_SHIFT = 12;

/** 4.1.4.5 ISR status bits. */
export const IsrBit = {
  QUEUE: 1,
  CONFIG: 2,
} as const;

/** 4.1.5.1.2: "no vector". */
export const NO_VECTOR = 0xffff;

/** MSI-X capability and table layout (PCI Local Bus 6.8.2). */
export const Msix = {
  CTRL: 2,
  TABLE: 4,
  PBA: 8,
  CAP_SIZE: 12,
  CTRL_ENABLE: 1 << 15,
  CTRL_MASKALL: 1 << 14,
  CTRL_SIZE_MASK: 0x7ff,
  ENTRY_SIZE: 16,
  ENTRY_ADDR_LO: 0,
  ENTRY_ADDR_HI: 4,
  ENTRY_DATA: 8,
  ENTRY_CTRL: 12,
  ENTRY_CTRL_MASKED: 1,
  /** 4.1.5.1.2: at most 0x800 vectors. */
  MAX_VECTORS: 0x800,
} as const;

/** BARs used by this implementation (like QEMU's layout). */
export const PciBar = {
  /** Legacy I/O BAR of transitional devices. */
  LEGACY_IO: 0,
  /** MSI-X table and PBA. */
  MSIX: 1,
  /** Shared memory regions (64-bit, BAR2-3). */
  SHM: 2,
  /** Modern virtio structures (64-bit, BAR4-5). */
  MODERN: 4,
} as const;

/** Layout of the modern BAR: one 4 KiB page per structure. */
export const ModernBarLayout = {
  COMMON: 0x0000,
  ISR: 0x1000,
  DEVICE: 0x2000,
  NOTIFY: 0x3000,
  PAGE: 0x1000,
} as const;
