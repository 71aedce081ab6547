/**
 * virtio-spi (5.21): transfers on the request queue, each virtio_spi_transfer_head (chip select
 * 0 flash, 1 loopback, 2 none mostly, any byte sometimes; bits per word 8 / 16 / 32 mostly, any
 * sometimes; cs_change 0 or 1 mostly; tx and rx n-bits 0 / 1 / 2 / 4 mostly; reserved bytes zero
 * mostly; mode bits CPHA / CPOL / CS_HIGH / LSB_FIRST / LOOP mostly, any u32 sometimes; freq;
 * word delay and chip-select delays within the limits mostly, any u32 sometimes), then tx_buf:
 * a flash command (READ ID, READ STATUS, WRITE ENABLE, READ, PAGE PROGRAM, SECTOR ERASE with a
 * 24-bit address) or nothing, then raw bytes; the writable part is rx_buf then the result byte,
 * so tx only, rx only, and full duplex of equal or unequal lengths all occur.
 *
 * Timing: the device holds a transfer whose simulated bus time reaches 1 ms on a timer (up to
 * hours at a slow clock), which the chain-completion check would report and which would keep a
 * test process alive. So the configuration bounds the delays (word delay 100 ns, chip-select
 * delays 50 us each) and the shaper's valid clocks are 40 to 50 MHz (the maximum): the longest
 * transfer the harness can build (2047 bytes of rx) takes under 800 us. The clocks left out are
 * the valid ones below 40 MHz; a wrong freq is 0 or above the maximum.
 *
 * A new device and targets per input (`freshDevice`): the flash contents and status and the
 * loopback target's echo buffer are the host's and outlive a device reset.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import { SpiDevice } from '../../src/devices/spi/spi-device.js';
import { SpiFlashCommand, SpiFlashTarget, SpiLoopbackTarget } from '../../src/devices/spi/spi-targets.js';
import { SpiMode } from '../../src/spec/spi.js';

const MAX_FREQ = 50_000_000;
const MIN_FAST_FREQ = 40_000_000;
const BITS = [8, 8, 16, 32];
const NBITS = [0, 1, 2, 4];
const MODES = [0, SpiMode.CPHA | SpiMode.CPOL, SpiMode.CPHA, SpiMode.LOOP, SpiMode.CS_HIGH, SpiMode.LSB_FIRST, SpiMode.LOOP | SpiMode.CPHA | SpiMode.CPOL];
const WORD_DELAYS = [0, 100];
const CS_DELAYS = [0, 1000, 50_000];
/** tx_buf prefixes: flash commands with their address bytes (address 0x000010 or 0). */
const PREFIXES: readonly (readonly number[])[] = [
  [],
  [SpiFlashCommand.READ_ID],
  [SpiFlashCommand.READ_STATUS],
  [SpiFlashCommand.WRITE_ENABLE],
  [SpiFlashCommand.WRITE_DISABLE],
  [SpiFlashCommand.READ, 0, 0, 0x10],
  [SpiFlashCommand.PAGE_PROGRAM, 0, 0, 0x10],
  [SpiFlashCommand.SECTOR_ERASE, 0, 0, 0],
];

/**
 * Selector bits: 0 any chip select, 1 any bits per word, 2 any cs_change, 3 any n-bits, 4
 * reserved bytes, 5 any mode, 6 a wrong freq, 7 any delays.
 */
function header(_queue: number, r: ByteReader): Uint8Array {
  const sel = r.u8();
  const w = new ByteWriter()
    .u8((sel & 1) !== 0 ? r.u8() : r.below(3))
    .u8((sel & 2) !== 0 ? r.u8() : r.pick(BITS))
    .u8((sel & 4) !== 0 ? r.u8() : r.below(2));
  if ((sel & 8) !== 0) w.u8(r.u8()).u8(r.u8());
  else w.u8(r.pick(NBITS)).u8(r.pick(NBITS));
  if ((sel & 0x10) !== 0) w.bytes([r.u8(), r.u8(), r.u8()]);
  else w.bytes([0, 0, 0]);
  w.u32((sel & 0x20) !== 0 ? r.u32() : r.pick(MODES));
  if ((sel & 0x40) !== 0) w.u32(r.bool() ? 0 : MAX_FREQ + 1 + (r.u32() % (0xffff_ffff - MAX_FREQ)));
  else w.u32(MIN_FAST_FREQ + r.below(MAX_FREQ - MIN_FAST_FREQ + 1));
  if ((sel & 0x80) !== 0) w.u32(r.u32()).u32(r.u32()).u32(r.u32()).u32(r.u32());
  else w.u32(r.pick(WORD_DELAYS)).u32(r.pick(CS_DELAYS)).u32(r.pick(CS_DELAYS)).u32(r.pick(CS_DELAYS));
  return w.bytes(r.pick(PREFIXES)).finish();
}

const spec: DeviceChainsSpec = {
  device: () => ({
    device: new SpiDevice([new SpiFlashTarget(8192), new SpiLoopbackTarget(), null], {
      queueSize: 16,
      maxFreqHz: MAX_FREQ,
      maxWordDelayNs: 100,
      maxCsSetupNs: 50_000,
      maxCsHoldNs: 50_000,
      maxCsInactiveNs: 50_000,
    }),
  }),
  queues: 1,
  heldQueues: [],
  header,
  queueSize: 16,
  freshDevice: { dispose: () => {} },
};

/** Shaper input: selector 0, cs, bits index, cs_change, n-bits indices, mode index, freq offset (u32), delay indices, prefix index. */
function xfer(cs: number, csChange: number, prefix: number, mode = 0): number[] {
  return [0, cs, 0, csChange, 1, 1, MODES.indexOf(mode), ...new ByteWriter().u32(MAX_FREQ - MIN_FAST_FREQ).finish(), 0, 0, 0, 0, prefix];
}

/**
 * Seeds: flash WRITE ENABLE, PAGE PROGRAM of 4 bytes at 0x10, READ of them back (full duplex),
 * READ ID; the loopback target written and read back half duplex, and a LOOP-mode transfer on
 * the chip select with no target.
 */
function seeds(): Uint8Array[] {
  const p = (cmd: readonly number[]): number => PREFIXES.findIndex((x) => x.length === cmd.length && x.every((b, i) => b === cmd[i]));
  return [
    deviceChainsSeed(false, [[{ queue: 0, header: xfer(0, 1, p([SpiFlashCommand.WRITE_ENABLE])), writable: 1 }, { queue: 0, header: xfer(0, 1, p([SpiFlashCommand.PAGE_PROGRAM, 0, 0, 0x10])), rest: [1, 2, 3, 4], writable: 1 }], [{ queue: 0, header: xfer(0, 1, p([SpiFlashCommand.READ, 0, 0, 0x10])), rest: [0, 0, 0], writable: 8 }], [{ queue: 0, header: xfer(0, 1, p([SpiFlashCommand.READ_ID])), rest: [0, 0], writable: 4 }]], spec),
    deviceChainsSeed(true, [[{ queue: 0, header: xfer(1, 0, 0), rest: [9, 8, 7], writable: 1 }, { queue: 0, header: xfer(1, 1, 0), writable: 4 }], [{ queue: 0, header: xfer(2, 0, 0, SpiMode.LOOP), rest: [5, 6, 7], writable: 4 }]], spec),
  ];
}

export const target: FuzzTarget = { name: 'spi-transfers', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
