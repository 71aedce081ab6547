/**
 * 5.21 SPI Controller Device, driver side: reads the controller's capabilities and sends
 * transfers on the request queue as head, tx_buf, rx_buf, result in that order (driver/spi/1,
 * driver/spi/2, driver/spi/3), full duplex only with buffers of the same size (driver/spi/4),
 * and hands back rx_buf only when the result is VIRTIO_SPI_TRANS_OK (driver/spi/5). A transfer
 * is checked against the configuration first (the device would answer PARAM_ERR).
 */
import { type DeviceDriver, type DeviceDriverType, checkDriverContext } from '../../driver/device-driver.js';
import { RequestQueue } from '../../driver/request-queue.js';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { Segment } from '../../queue/types.js';
import { readConfigFields } from '../../spec/config-layout.js';
import { DeviceId } from '../../spec/device-id.js';
import { SPI_CONFIG_LAYOUT, SPI_FEATURES, SPI_REQUESTQ, SPI_RESULT_SIZE, type SpiConfigField, SpiResult, SpiTransferHead } from '../../spec/spi.js';

/** One transfer. `tx` only: half-duplex write; `rxLength` only: half-duplex read; both (equal): full duplex. */
export interface SpiTransfer {
  /** Chip select of the target, below the config's cs_max_number. */
  readonly chipSelect: number;
  /** Bytes to clock out (tx_buf). */
  readonly tx?: Uint8Array;
  /** Bytes to clock in (rx_buf size); equal to `tx.length` when both are given. */
  readonly rxLength?: number;
  /** Default 8. */
  readonly bitsPerWord?: number;
  /** 1: deassert chip select after this transfer. Default 0. */
  readonly csChange?: 0 | 1;
  /** 0 or 1 single, 2 dual, 4 quad, 8 octal. Default 1. */
  readonly txNbits?: number;
  /** Receive lines: 0 or 1 single, 2 dual, 4 quad, 8 octal. Default 1. */
  readonly rxNbits?: number;
  /** SpiMode bits. Default 0. */
  readonly mode?: number;
  /** Hz. Default: the controller's maximum (1 MHz when it has none). */
  readonly freqHz?: number;
  /** Delay between words (ns), at most the config's max_word_delay_ns. Default 0. */
  readonly wordDelayNs?: number;
  /** Delay from chip select assert to the first clock (ns). Default 0. */
  readonly csSetupNs?: number;
  /** Delay from the last clock to chip select deassert (ns). Default 0. */
  readonly csHoldNs?: number;
  /** Time chip select stays deasserted after the transfer, with csChange (ns). Default 0. */
  readonly csInactiveNs?: number;
}

/** What the device answered to one transfer (5.21.6.1). */
export interface SpiTransferResult {
  /** VIRTIO_SPI_TRANS_OK, PARAM_ERR or TRANS_ERR. */
  readonly result: number;
  /** rx_buf, only with TRANS_OK (driver/spi/5). */
  readonly rx?: Uint8Array;
}

/** A transfer answered with PARAM_ERR or TRANS_ERR. */
export class SpiTransferError extends VirtioError {
  constructor(
    /** VIRTIO_SPI_PARAM_ERR or VIRTIO_SPI_TRANS_ERR (or an unknown value the device wrote). */
    readonly result: number,
  ) {
    super(ErrorCode.REQUEST_FAILED, `virtio-spi transfer: ${result === SpiResult.PARAM_ERR ? 'PARAM_ERR' : result === SpiResult.TRANS_ERR ? 'TRANS_ERR' : `result ${result}`}`);
  }
}

/** The device configuration as the driver read it (5.21.4): each field by name. */
export type SpiDriverConfig = Record<SpiConfigField, number>;

/**
 * The virtio-spi driver (5.21): typed requests over the device's queues. Construct it on a
 * DriverContext, or start it with startDeviceDriver and its static `type`.
 */
export class SpiDriver implements DeviceDriver {
  /**
   * The DeviceDriver contract: the device id, the feature bits this driver can use and needs,
   * and how to attach it (startDeviceDriver).
   */
  static readonly type: DeviceDriverType<SpiDriver, undefined> = {
    name: 'virtio-spi',
    deviceId: DeviceId.SPI,
    wantedFeatures: SPI_FEATURES,
    requiredFeatures: 0n,
    attach: (ctx) => new SpiDriver(ctx),
  };

  /** The configuration as read at attach (chip selects, modes, limits). */
  readonly config: Readonly<SpiDriverConfig>;
  private readonly ctx: DriverContext;
  private readonly le: boolean;
  private readonly queue: RequestQueue;

  constructor(ctx: DriverContext) {
    checkDriverContext(SpiDriver.type, ctx);
    this.ctx = ctx;
    this.le = ctx.littleEndian;
    this.config = readConfigFields(SPI_CONFIG_LAYOUT, SPI_CONFIG_LAYOUT.fields.map((f) => f.name), (o, l) => ctx.readConfig(o, l), this.le) as SpiDriverConfig;
    this.queue = new RequestQueue(ctx, SPI_REQUESTQ);
  }

  detach(): void {
    this.queue.detach();
  }

  /** Encodes struct virtio_spi_transfer_head. */
  encodeHead(t: SpiTransfer): Uint8Array {
    const h = new Uint8Array(SpiTransferHead.SIZE);
    const v = new DataView(h.buffer);
    h[SpiTransferHead.CHIP_SELECT_ID] = t.chipSelect;
    h[SpiTransferHead.BITS_PER_WORD] = t.bitsPerWord ?? 8;
    h[SpiTransferHead.CS_CHANGE] = t.csChange ?? 0;
    h[SpiTransferHead.TX_NBITS] = t.txNbits ?? 1;
    h[SpiTransferHead.RX_NBITS] = t.rxNbits ?? 1;
    v.setUint32(SpiTransferHead.MODE, t.mode ?? 0, this.le);
    v.setUint32(SpiTransferHead.FREQ, t.freqHz ?? (this.config.maxFreqHz || 1_000_000), this.le);
    v.setUint32(SpiTransferHead.WORD_DELAY_NS, t.wordDelayNs ?? 0, this.le);
    v.setUint32(SpiTransferHead.CS_SETUP_NS, t.csSetupNs ?? 0, this.le);
    v.setUint32(SpiTransferHead.CS_DELAY_HOLD_NS, t.csHoldNs ?? 0, this.le);
    v.setUint32(SpiTransferHead.CS_CHANGE_DELAY_INACTIVE_NS, t.csInactiveNs ?? 0, this.le);
    return h;
  }

  /** Sends one transfer and returns the device's result (rx_buf only with TRANS_OK). */
  async transferRaw(t: SpiTransfer): Promise<SpiTransferResult> {
    const txLen = t.tx?.length ?? 0;
    const rxLen = t.rxLength ?? 0;
    if (!Number.isInteger(rxLen) || rxLen < 0) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `rxLength ${rxLen}`);
    // driver/spi/4: full duplex with buffers of the same size.
    if (txLen > 0 && rxLen > 0 && txLen !== rxLen) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `full duplex with tx ${txLen} and rx ${rxLen} bytes (driver/spi/4)`);
    if (t.chipSelect < 0 || t.chipSelect >= this.config.csMaxNumber) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `chip select ${t.chipSelect} of ${this.config.csMaxNumber}`);
    const headAddr = this.ctx.dma.alloc(SpiTransferHead.SIZE + txLen + rxLen + SPI_RESULT_SIZE, 8);
    try {
      const txAddr = headAddr + SpiTransferHead.SIZE;
      const rxAddr = txAddr + txLen;
      const resAddr = rxAddr + rxLen;
      this.ctx.memory.write(headAddr, this.encodeHead(t));
      if (t.tx) this.ctx.memory.write(txAddr, t.tx);
      this.ctx.memory.fill(resAddr, 1, 0xff);
      // driver/spi/1..3: head, tx_buf, rx_buf, result, in that order.
      const out: Segment[] = [{ addr: headAddr, len: SpiTransferHead.SIZE }];
      if (txLen > 0) out.push({ addr: txAddr, len: txLen });
      const inn: Segment[] = [];
      if (rxLen > 0) inn.push({ addr: rxAddr, len: rxLen });
      inn.push({ addr: resAddr, len: SPI_RESULT_SIZE });
      const used = await this.queue.submit(out, inn);
      const r = new Uint8Array(1);
      this.ctx.memory.read(resAddr, r);
      const result = used >= rxLen + SPI_RESULT_SIZE ? r[0]! : SpiResult.TRANS_ERR;
      // driver/spi/5: rx_buf is used only after TRANS_OK.
      if (result !== SpiResult.TRANS_OK || rxLen === 0) return { result };
      const rx = new Uint8Array(rxLen);
      this.ctx.memory.read(rxAddr, rx);
      return { result, rx };
    } finally {
      this.ctx.dma.free(headAddr);
    }
  }

  /** One transfer; throws SpiTransferError unless TRANS_OK; resolves with rx_buf (empty for a write). */
  async transfer(t: SpiTransfer): Promise<Uint8Array> {
    const r = await this.transferRaw(t);
    if (r.result !== SpiResult.TRANS_OK) throw new SpiTransferError(r.result);
    return r.rx ?? new Uint8Array(0);
  }

  /**
   * A message: the transfers in order with chip select kept asserted between them and
   * deasserted after the last (cs_change 0 then 1). Resolves with each transfer's rx_buf.
   */
  async message(transfers: readonly SpiTransfer[]): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (let i = 0; i < transfers.length; i++) out.push(await this.transfer({ ...transfers[i]!, csChange: i === transfers.length - 1 ? 1 : 0 }));
    return out;
  }
}
