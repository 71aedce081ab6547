/** 4.3 Virtio Over Channel I/O: command codes, structures and results. */

/** 4.3.1: virtio-ccw proxy devices identify as control unit type 0x3832. */
export const CCW_CONTROL_UNIT_TYPE = 0x3832;

/** 4.3.2 channel command codes. */
export const CcwCmd = {
  SET_VQ: 0x13,
  VDEV_RESET: 0x33,
  SET_IND: 0x43,
  SET_CONF_IND: 0x53,
  SET_IND_ADAPTER: 0x73,
  READ_FEAT: 0x12,
  WRITE_FEAT: 0x11,
  READ_CONF: 0x22,
  WRITE_CONF: 0x21,
  WRITE_STATUS: 0x31,
  READ_VQ_CONF: 0x32,
  SET_VIRTIO_REV: 0x83,
  READ_STATUS: 0x72,
} as const;

/** CCW flags (z/Architecture): chain data, chain command, suppress length indication, skip. */
export const CcwFlag = {
  CD: 0x80,
  CC: 0x40,
  SLI: 0x20,
  SKIP: 0x10,
} as const;

/** How the device ended a channel command. */
export const CcwStatus = {
  /** Channel end + device end. */
  OK: 'OK',
  /** Unit check with sense "command reject" (unknown command, bad data, wrong revision...). */
  COMMAND_REJECT: 'COMMAND_REJECT',
  /** Subchannel status "incorrect length" (length mismatch without SLI). */
  INCORRECT_LENGTH: 'INCORRECT_LENGTH',
  /** Channel program check: the data address is not in guest memory. */
  PROGRAM_CHECK: 'PROGRAM_CHECK',
} as const;
export type CcwStatus = (typeof CcwStatus)[keyof typeof CcwStatus];

/** How the device side ended one channel command (CCW). */
export interface CcwOutcome {
  /** OK, or the channel/unit status the channel subsystem reports for the command. */
  readonly status: CcwStatus;
  /** Residual count: bytes of the CCW's count not transferred. */
  readonly residual: number;
}

/** Struct sizes in bytes. */
export const CcwSize = {
  REV_INFO: 4,
  FEATURE_DESC: 5,
  VQ_CONFIG: 4,
  VQ_INFO: 32,
  VQ_INFO_LEGACY: 16,
  INDICATOR: 8,
  THININT_AREA: 25,
  STATUS: 1,
} as const;

/** 4.3.2.1 revisions: 0 legacy, 1 virtio 1, 2 adds READ_STATUS. */
export const CCW_MAX_REVISION = 2;

/** Linux and QEMU align legacy rings to 4096 on CCW. */
export const CCW_LEGACY_ALIGN = 4096;

/** 4.3.3.2: diagnose 0x500 subcode 3 is the virtio-ccw notification hypercall. */
export const DIAG_500_NOTIFY = 3;
