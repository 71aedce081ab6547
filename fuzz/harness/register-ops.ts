/**
 * Register and command sequences for the transport targets. Each step of the input is one
 * access: read or write of a register space (offset from the space's list of defined registers,
 * or any offset), a width (mostly the right one, sometimes 1/2/8/3), a value (small, any u32,
 * a guest address, or a status / feature-looking constant); or a write of guest memory (ring
 * contents), or a turn of the event loop. The step count is bounded (the harness's step budget).
 */
import type { ByteReader } from '../engine/byte-reader.js';
import { ByteWriter } from '../engine/byte-reader.js';
import { check } from '../engine/target.js';
import { GUEST_BASE, GUEST_SIZE } from './core-rig.js';
import type { GuardedMemory } from './guarded-memory.js';

export const MAX_STEPS = 64;

export interface RegisterSpace {
  readonly name: string;
  /** Defined register offsets (the fuzzer picks among them most of the time). */
  readonly offsets: readonly number[];
  read(offset: number, width: number): number;
  write(offset: number, width: number, value: number): void;
}

const WIDTHS = [4, 4, 4, 2, 1, 8, 3, 0];
const CONSTANTS = [0, 1, 2, 3, 4, 7, 8, 0xb, 0xf, 0x40, 0x80, 0xff, 0xffff, 0xffff_ffff, 256, 4096, 32768];

export const StepKind = { WRITE: 0, READ: 1, MEMORY: 2, SETTLE: 3 } as const;

export function readValue(r: ByteReader): number {
  switch (r.below(4)) {
    case 0:
      return r.u8();
    case 1:
      return r.u32();
    case 2:
      return GUEST_BASE + r.u16();
    default:
      return r.pick(CONSTANTS);
  }
}

export async function runRegisterSteps(spaces: readonly RegisterSpace[], mem: GuardedMemory, r: ByteReader, settle: () => Promise<void>): Promise<void> {
  for (let s = 0; s < MAX_STEPS && !r.done; s++) {
    const op = r.u8();
    const kind = op & 3;
    if (kind === StepKind.MEMORY) {
      const off = r.u16() % GUEST_SIZE;
      const data = r.bytes(1 + r.below(32));
      mem.bytes.set(data.subarray(0, Math.min(data.length, GUEST_SIZE - off)), off);
      continue;
    }
    if (kind === StepKind.SETTLE) {
      await settle();
      continue;
    }
    const space = spaces[(op >> 2) % spaces.length]!;
    const offset = (op & 0x80) !== 0 ? r.u16() & 0xfff : r.pick(space.offsets);
    const width = WIDTHS[(op >> 4) & 7]!;
    const w = width === 0 ? 4 : width;
    if (kind === StepKind.WRITE) space.write(offset, w, readValue(r));
    else {
      const v = space.read(offset, w);
      check(Number.isFinite(v), 'protocol', `${space.name} read ${offset}/${w} returned ${v}`);
    }
  }
  await settle();
}

/** Builds a step sequence for seeds, mirroring runRegisterSteps's decoding. */
export class StepWriter {
  private readonly w = new ByteWriter();

  constructor(private readonly spaces: readonly { readonly offsets: readonly number[] }[]) {}

  /** A write of `value` (as a 'u32' value) at defined register `offset` of space `space`, width 4/2/1. */
  write(space: number, offset: number, value: number, width: 4 | 2 | 1 = 4): this {
    const idx = this.spaces[space]!.offsets.indexOf(offset);
    if (idx < 0) throw new RangeError(`offset ${offset} not listed`);
    const widthCode = width === 4 ? 0 : width === 2 ? 3 : 4;
    this.w.u8(StepKind.WRITE | (space << 2) | (widthCode << 4)).u8(idx).u8(1).u32(value);
    return this;
  }

  read(space: number, offset: number): this {
    this.w.u8(StepKind.READ | (space << 2)).u8(this.spaces[space]!.offsets.indexOf(offset));
    return this;
  }

  memory(guestOffset: number, bytes: Uint8Array): this {
    for (let i = 0; i < bytes.length; i += 32) {
      const part = bytes.subarray(i, i + 32);
      this.w.u8(StepKind.MEMORY).u16(guestOffset + i).u8(part.length - 1).bytes(part);
    }
    return this;
  }

  settle(): this {
    this.w.u8(StepKind.SETTLE);
    return this;
  }

  finish(): Uint8Array {
    return this.w.finish();
  }
}
