/**
 * One GPIO line of the device (5.18): its name, the direction and output value the driver set,
 * the input level the host drives, and its interrupt: trigger type (enabled when not NONE), the
 * edge latched while masked, and the eventq buffer that unmasks it (5.18.7).
 */
import { GpioDirection, GpioIrqType } from '../../spec/gpio.js';

/** How the host describes a line. */
export interface GpioLineSpec {
  /** 7-bit ASCII, unique within the device (device/gpio/5); null or absent: no name. */
  readonly name?: string | null;
  /** Direction at reset (default NONE: the driver configures it). */
  readonly direction?: GpioDirection;
  /** Input level the host drives at start (default 0). */
  readonly input?: 0 | 1;
}

/** One GPIO line's state on the device side (5.18): direction, values and interrupt. */
export class GpioLine {
  /** The current direction: set by the driver (SET_DIRECTION), `resetDirection` after a reset. */
  direction: GpioDirection;
  /** The value the driver set with SET_VALUE (driven while the direction is OUT). */
  outputValue: 0 | 1 = 0;
  /** The level the outside world (the host) drives on the line. */
  input: 0 | 1;
  /** Interrupt trigger the driver set (SET_IRQ_TYPE); NONE: the interrupt is disabled. */
  irqType: GpioIrqType = GpioIrqType.NONE;
  /** An edge seen while the interrupt was enabled and masked (device/gpio/9). */
  latched = false;

  constructor(
    /** The line's number (the `gpio` field of requests), 0..ngpio-1. */
    readonly index: number,
    /** The line's name reported by GET_LINE_NAMES; null when it has none. */
    readonly name: string | null,
    /** The direction the host configured: the line's direction after a device reset. */
    readonly resetDirection: GpioDirection,
    input: 0 | 1,
  ) {
    this.direction = resetDirection;
    this.input = input;
  }

  /** The level sensed on the line: what it drives as an output, else what the host drives. */
  get level(): 0 | 1 {
    return this.direction === GpioDirection.OUT ? this.outputValue : this.input;
  }

  /** Whether a level interrupt of the current type is active at the current level. */
  get levelActive(): boolean {
    return (this.irqType === GpioIrqType.LEVEL_HIGH && this.level === 1) || (this.irqType === GpioIrqType.LEVEL_LOW && this.level === 0);
  }

  /** Whether the trigger type is an edge (rising, falling or both) rather than a level. */
  get isEdge(): boolean {
    return (this.irqType & GpioIrqType.EDGE_BOTH) !== 0;
  }

  /** Whether a change from `from` to `to` is an edge the current type triggers on. */
  edgeMatches(from: 0 | 1, to: 0 | 1): boolean {
    if (from === to) return false;
    return to === 1 ? (this.irqType & GpioIrqType.EDGE_RISING) !== 0 : (this.irqType & GpioIrqType.EDGE_FALLING) !== 0;
  }

  /** device/gpio/8: direction NONE discards every state the driver gave the line. */
  clearDriverState(): void {
    this.direction = GpioDirection.NONE;
    this.outputValue = 0;
    this.irqType = GpioIrqType.NONE;
    this.latched = false;
  }

  /** Device reset: as the host configured it. */
  reset(): void {
    this.clearDriverState();
    this.direction = this.resetDirection;
  }
}
