/**
 * 5.21 SPI Controller Device, device side: one request queue of transfers to simulated targets
 * (spi-targets.ts), one per chip select. A request is head (32 bytes, readable), tx_buf
 * (readable), rx_buf (writable), result (1 byte, writable): the readable bytes after the head
 * are tx_buf, the writable bytes before the result are rx_buf, so tx only is a half-duplex write,
 * rx only a half-duplex read, both a full-duplex transfer (equal lengths, device/spi/4).
 *
 * Every head field is checked against the configuration before any target sees the transfer
 * (device/spi/3): chip select, bits per word (and whole words), cs_change, n-bit modes, reserved
 * bytes, mode bits, frequency, delays; a failure is PARAM_ERR. The target's own failure is
 * TRANS_ERR. tx_buf is copied into a scratch buffer before the target sees it, and the device
 * writes only the writable part, so tx_buf never changes (device/spi/2).
 *
 * Chip select (5.21.6.1, cs_change): it is asserted for the first transfer to a target and stays
 * asserted across transfers while cs_change is 0; a transfer with cs_change 1 deasserts it after
 * the transfer, as does a transfer to another chip select or a device reset.
 *
 * Timing: a transfer takes cs_setup + words x (bits / freq + word_delay) + cs_hold (+ the
 * inactive delay when cs_change deasserts); from 1 ms on, the request completes after that long
 * (a timer), shorter ones at once.
 */
import { performance } from 'node:perf_hooks';
import { ErrorCode, VirtioError } from '../../errors.js';
import { QueueServer, type QueueRequest } from '../../device/queue-server.js';
import type { DeviceContext, VirtioDevice } from '../../device/types.js';
import type { Logger } from '../../log.js';
import { ChainCursor, type DescriptorChain } from '../../queue/chain.js';
import { encodeConfig } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { F } from '../../spec/features.js';
import {
  SPI_CONFIG_LAYOUT,
  SPI_MODE_DEFINED,
  SPI_MODE_FUNC_DEFINED,
  SPI_NBITS_SUPPORTED_DEFINED,
  SPI_REQUESTQ,
  SPI_RESULT_SIZE,
  SpiConfig,
  SpiMode,
  SpiModeFunc,
  SpiNbitsSupported,
  SpiResult,
  SpiTransferHead,
} from '../../spec/spi.js';
import type { SpiTarget } from './spi-targets.js';

/** The controller's capabilities (the configuration space). */
export interface SpiControllerConfig {
  /** Whether a transfer may set cs_change (deassert chip select between transfers). Default true. */
  readonly csChangeSupported?: boolean;
  /** SpiNbitsSupported bits. Default DUAL | QUAD. */
  readonly txNbitsSupported?: number;
  /** SpiNbitsSupported bits for the receive lines. Default DUAL | QUAD. */
  readonly rxNbitsSupported?: number;
  /** Bit n: bits_per_word n + 1 supported; 0: any. Default 8, 16 and 32. */
  readonly bitsPerWordMask?: number;
  /** SpiModeFunc bits. Default: CPHA 0/1, CPOL 0/1, CS_HIGH, LOOPBACK (no LSB_FIRST). */
  readonly modeFuncSupported?: number;
  /** 0: no limit. Default 50 MHz. */
  readonly maxFreqHz?: number;
  /** Longest word_delay_ns a transfer may ask (ns); longer is PARAM_ERR. Default 10 ms. */
  readonly maxWordDelayNs?: number;
  /** Longest cs_setup_ns a transfer may ask (ns). Default 10 ms. */
  readonly maxCsSetupNs?: number;
  /** Longest cs_delay_hold_ns a transfer may ask (ns). Default 10 ms. */
  readonly maxCsHoldNs?: number;
  /** Longest cs_change_delay_inactive_ns a transfer may ask (ns). Default 10 ms. */
  readonly maxCsInactiveNs?: number;
}

/** Options of SpiDevice. */
export interface SpiDeviceOptions extends SpiControllerConfig {
  /** Maximum size of the request queue. Default 256. */
  readonly queueSize?: number;
  /** Bytes moved per target call (the scratch buffers). Default 4096. */
  readonly chunkBytes?: number;
  /** Where the device logs; silent by default. */
  readonly logger?: Logger;
}

/** The controller capabilities as the configuration shows them. */
export type SpiConfigValues = Required<Omit<SpiControllerConfig, 'csChangeSupported'>> & {
  /** cs_max_number: the chip selects, one per target (5.21.4). */
  csMaxNumber: number;
  /** cs_change_supported as the config field holds it: 1 or 0. */
  csChangeSupported: number;
};

const MS = 1_000_000;

/**
 * The virtio-spi device (5.21): an SPI controller with simulated targets behind its chip selects.
 * What it implements and its normative coverage: docs/devices/spi.md.
 */
export class SpiDevice implements VirtioDevice {
  readonly deviceId = DeviceId.SPI;
  /** Transfers that wait (timing) complete out of order with others: no IN_ORDER. */
  readonly offeredFeatures = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX | F.RING_PACKED | F.RING_RESET;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = SpiConfig.SIZE;
  /** device/spi/1: every field is fixed at construction, before any driver reads it. */
  readonly config: Readonly<SpiConfigValues>;

  private readonly targets: readonly (SpiTarget | null)[];
  private readonly server: QueueServer;
  private le = true;
  /** The chip select asserted now (-1: none). */
  private selected = -1;
  private readonly reader = new ChainCursor(false);
  private readonly writer = new ChainCursor(true);
  private readonly head = new Uint8Array(SpiTransferHead.SIZE);
  private readonly headView = new DataView(this.head.buffer);
  private readonly tx: Uint8Array;
  private readonly rx: Uint8Array;
  private readonly result = new Uint8Array(SPI_RESULT_SIZE);
  private readonly info = { mode: 0, bitsPerWord: 8, freqHz: 0 };
  /** Transfers that reached a target, for stats and tests. */
  transfers = 0;
  /** Bus time of the transfer just served. */
  private durationNs = 0;

  constructor(targets: readonly (SpiTarget | null)[], opts: SpiDeviceOptions = {}) {
    if (targets.length < 1 || targets.length > 255) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${targets.length} chip selects: 1..255`);
    this.targets = targets;
    const u32 = (v: number | undefined, d: number, what: string): number => {
      const x = v ?? d;
      if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what} ${x}`);
      return x;
    };
    const nbits = (v: number | undefined, what: string): number => {
      const x = v ?? SpiNbitsSupported.DUAL | SpiNbitsSupported.QUAD;
      if ((x & ~SPI_NBITS_SUPPORTED_DEFINED) !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `${what}: reserved bits`);
      return x;
    };
    const modeFunc = u32(opts.modeFuncSupported, SpiModeFunc.CPHA_0 | SpiModeFunc.CPHA_1 | SpiModeFunc.CPOL_0 | SpiModeFunc.CPOL_1 | SpiModeFunc.CS_HIGH | SpiModeFunc.LOOPBACK, 'modeFuncSupported');
    // 5.21.4: at least one CPHA and one CPOL setting; no undefined bit.
    if ((modeFunc & ~SPI_MODE_FUNC_DEFINED) !== 0 || (modeFunc & 3) === 0 || (modeFunc & 0xc) === 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `modeFuncSupported 0x${modeFunc.toString(16)}`);
    this.config = {
      csMaxNumber: targets.length,
      csChangeSupported: opts.csChangeSupported === false ? 0 : 1,
      txNbitsSupported: nbits(opts.txNbitsSupported, 'txNbitsSupported'),
      rxNbitsSupported: nbits(opts.rxNbitsSupported, 'rxNbitsSupported'),
      bitsPerWordMask: u32(opts.bitsPerWordMask, ((1 << 7) | (1 << 15) | (1 << 31)) >>> 0, 'bitsPerWordMask'),
      modeFuncSupported: modeFunc,
      maxFreqHz: u32(opts.maxFreqHz, 50_000_000, 'maxFreqHz'),
      maxWordDelayNs: u32(opts.maxWordDelayNs, 10 * MS, 'maxWordDelayNs'),
      maxCsSetupNs: u32(opts.maxCsSetupNs, 10 * MS, 'maxCsSetupNs'),
      maxCsHoldNs: u32(opts.maxCsHoldNs, 10 * MS, 'maxCsHoldNs'),
      maxCsInactiveNs: u32(opts.maxCsInactiveNs, 10 * MS, 'maxCsInactiveNs'),
    };
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 1 || qs > 32768) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queueSize ${qs} not in 1..32768`);
    this.queueMaxSizes = [qs];
    const chunk = opts.chunkBytes ?? 4096;
    if (!Number.isInteger(chunk) || chunk < 4 || chunk > 1 << 20 || chunk % 4 !== 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `chunkBytes ${chunk}`);
    this.tx = new Uint8Array(chunk);
    this.rx = new Uint8Array(chunk);
    this.server = new QueueServer({ name: 'virtio-spi', numQueues: 1, logger: opts.logger, handler: (i) => (i === SPI_REQUESTQ ? this.serve : null) });
  }

  private readonly serve = (req: QueueRequest): number | Promise<number> => {
    const c = req.chain;
    if (c.fault !== null || c.writableBytes < SPI_RESULT_SIZE) return 0;
    this.durationNs = 0;
    const result = this.transfer(c);
    const rxLen = c.writableBytes - SPI_RESULT_SIZE;
    // On success the writer stands after rx_buf; otherwise rx_buf is zeroed (the driver must not
    // use it, driver/spi/5) so the used length covers what the device wrote.
    if (result !== SpiResult.TRANS_OK && this.writer.reset(c).fill(rxLen) !== rxLen) return 0;
    this.result[0] = result;
    const written = rxLen + this.writer.write(this.result);
    if (this.durationNs < MS) return written;
    // A timer per long transfer only (1 ms and more): the driver sees the bus time.
    const deadline = performance.now() + this.durationNs / MS;
    return new Promise((resolve) => resolveAt(deadline, resolve, written));
  };

  /** Checks the head (device/spi/3, device/spi/4) and runs the transfer; the result and its bus time. */
  private transfer(c: DescriptorChain): number {
    const rd = this.reader.reset(c);
    if (rd.read(this.head) < SpiTransferHead.SIZE) return SpiResult.PARAM_ERR;
    const h = this.head;
    const v = this.headView;
    const cfg = this.config;
    const cs = h[SpiTransferHead.CHIP_SELECT_ID]!;
    const bpw = h[SpiTransferHead.BITS_PER_WORD]!;
    const csChange = h[SpiTransferHead.CS_CHANGE]!;
    const mode = v.getUint32(SpiTransferHead.MODE, this.le);
    const freq = v.getUint32(SpiTransferHead.FREQ, this.le);
    const wordDelay = v.getUint32(SpiTransferHead.WORD_DELAY_NS, this.le);
    const csSetup = v.getUint32(SpiTransferHead.CS_SETUP_NS, this.le);
    const csHold = v.getUint32(SpiTransferHead.CS_DELAY_HOLD_NS, this.le);
    const csInactive = v.getUint32(SpiTransferHead.CS_CHANGE_DELAY_INACTIVE_NS, this.le);
    const txLen = c.readableBytes - SpiTransferHead.SIZE;
    const rxLen = c.writableBytes - SPI_RESULT_SIZE;
    if (cs >= cfg.csMaxNumber) return SpiResult.PARAM_ERR;
    if (bpw < 1 || bpw > 32 || (cfg.bitsPerWordMask !== 0 && ((cfg.bitsPerWordMask >>> (bpw - 1)) & 1) === 0)) return SpiResult.PARAM_ERR;
    if (csChange > 1 || (csChange === 1 && cfg.csChangeSupported === 0)) return SpiResult.PARAM_ERR;
    if (!nbitsOk(h[SpiTransferHead.TX_NBITS]!, cfg.txNbitsSupported) || !nbitsOk(h[SpiTransferHead.RX_NBITS]!, cfg.rxNbitsSupported)) return SpiResult.PARAM_ERR;
    if (h[SpiTransferHead.RESERVED]! !== 0 || h[SpiTransferHead.RESERVED + 1]! !== 0 || h[SpiTransferHead.RESERVED + 2]! !== 0) return SpiResult.PARAM_ERR;
    if (!modeOk(mode, cfg.modeFuncSupported)) return SpiResult.PARAM_ERR;
    if (freq === 0 || (cfg.maxFreqHz !== 0 && freq > cfg.maxFreqHz)) return SpiResult.PARAM_ERR;
    if (wordDelay > cfg.maxWordDelayNs || csSetup > cfg.maxCsSetupNs || csHold > cfg.maxCsHoldNs || csInactive > cfg.maxCsInactiveNs) return SpiResult.PARAM_ERR;
    // device/spi/4: full duplex needs equal buffers; and whole words.
    if (txLen > 0 && rxLen > 0 && txLen !== rxLen) return SpiResult.PARAM_ERR;
    const len = txLen > 0 ? txLen : rxLen;
    const wordBytes = bpw <= 8 ? 1 : bpw <= 16 ? 2 : 4;
    if (len % wordBytes !== 0) return SpiResult.PARAM_ERR;
    // Valid: the transfer happens.
    this.info.mode = mode;
    this.info.bitsPerWord = bpw;
    this.info.freqHz = freq;
    const loop = (mode & SpiMode.LOOP) !== 0;
    const target = this.targets[cs] ?? null;
    if (!loop && target === null) return SpiResult.TRANS_ERR;
    if (!loop && this.selected !== cs) {
      this.deselect();
      this.selected = cs;
      target!.select?.();
    }
    const w = this.writer.reset(c);
    let result: number = SpiResult.TRANS_OK;
    for (let done = 0; done < len && result === SpiResult.TRANS_OK; ) {
      const n = Math.min(this.tx.length, len - done);
      if (txLen > 0) rd.read(this.tx, 0, n);
      if (loop) {
        // Loopback mode: the controller's output is its input; no target is involved.
        if (rxLen > 0) {
          if (txLen > 0) this.rx.set(this.tx.subarray(0, n));
          else this.rx.fill(0, 0, n);
        }
      } else {
        // The target gets the scratch copy: whatever it does to it, tx_buf stays (device/spi/2).
        result = target!.transfer(txLen > 0 ? this.tx : null, rxLen > 0 ? this.rx : null, n, this.info);
        if (result !== SpiResult.TRANS_OK) result = SpiResult.TRANS_ERR;
      }
      if (rxLen > 0 && result === SpiResult.TRANS_OK) w.write(this.rx, 0, n);
      done += n;
    }
    this.transfers++;
    if (!loop && csChange === 1) this.deselect();
    const words = len / wordBytes;
    const bitNs = 1e9 / freq;
    this.durationNs = csSetup + words * (bpw * bitNs + wordDelay) + csHold + (csChange === 1 ? csInactive : 0);
    return result;
  }

  private deselect(): void {
    if (this.selected < 0) return;
    const t = this.targets[this.selected];
    this.selected = -1;
    t?.deselect?.();
  }

  readConfig(offset: number, dst: Uint8Array, _features: bigint, littleEndian: boolean): void {
    encodeConfig(SPI_CONFIG_LAYOUT, this.config, 0n, offset, dst, littleEndian);
  }

  /** Every field is driver-read-only (5.21.4): writes are ignored. */
  writeConfig(): void {}

  configWritable(): boolean {
    return false;
  }

  activate(ctx: DeviceContext): void {
    this.le = ctx.littleEndian;
    this.server.activate(ctx);
  }

  onQueueNotify(index: number): void {
    this.server.onQueueNotify(index);
  }

  /** Device reset: the chip select is released (the frame in progress ends). */
  reset(): void {
    this.deselect();
    this.server.reset();
  }

  resetQueue(index: number): void {
    this.server.resetQueue(index);
  }
}


/** Resolves with `value` once performance.now() reaches `deadline` (timers may fire early: re-armed). */
function resolveAt(deadline: number, resolve: (v: number) => void, value: number): void {
  const left = deadline - performance.now();
  if (left <= 0) resolve(value);
  else setTimeout(resolveAt, left, deadline, resolve, value);
}

/** tx_nbits / rx_nbits: 0 and 1 single (always), 2 / 4 / 8 when supported, others invalid. */
function nbitsOk(n: number, supported: number): boolean {
  if (n === 0 || n === 1) return true;
  if (n === 2) return (supported & SpiNbitsSupported.DUAL) !== 0;
  if (n === 4) return (supported & SpiNbitsSupported.QUAD) !== 0;
  if (n === 8) return (supported & SpiNbitsSupported.OCTAL) !== 0;
  return false;
}

/** The head's mode bits against mode_func_supported. */
function modeOk(mode: number, f: number): boolean {
  if ((mode & ~SPI_MODE_DEFINED) !== 0) return false;
  if ((f & ((mode & SpiMode.CPHA) !== 0 ? SpiModeFunc.CPHA_1 : SpiModeFunc.CPHA_0)) === 0) return false;
  if ((f & ((mode & SpiMode.CPOL) !== 0 ? SpiModeFunc.CPOL_1 : SpiModeFunc.CPOL_0)) === 0) return false;
  if ((mode & SpiMode.CS_HIGH) !== 0 && (f & SpiModeFunc.CS_HIGH) === 0) return false;
  if ((mode & SpiMode.LSB_FIRST) !== 0 && (f & SpiModeFunc.LSB_FIRST) === 0) return false;
  if ((mode & SpiMode.LOOP) !== 0 && (f & SpiModeFunc.LOOPBACK) === 0) return false;
  return true;
}
