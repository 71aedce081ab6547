/**
 * Simulated SPI targets for the SPI controller device: what sits on each chip select. A target
 * sees frames: `select` when its chip select is asserted, transfers while it stays asserted (a
 * byte stream, full duplex: every byte clocked out is answered by one clocked in), `deselect`
 * when it is deasserted.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { SpiMode, SpiResult } from '../../spec/spi.js';

/** What a target knows of a transfer besides its bytes. */
export interface SpiTransferInfo {
  /** Transfer head `mode` (CPHA, CPOL, CS_HIGH, LSB_FIRST, LOOP). */
  readonly mode: number;
  /** Bits per word of the transfer (1..32). */
  readonly bitsPerWord: number;
  /** Clock frequency asked (Hz). */
  readonly freqHz: number;
}

/** A simulated SPI peripheral behind one chip select of SpiDevice. */
export interface SpiTarget {
  /** Chip select asserted: a frame begins. */
  select?(): void;
  /**
   * `length` bytes of a transfer while selected: `tx[0..length)` is what the controller clocks
   * out (null for a half-duplex read: the controller sends zeros), `rx[0..length)` receives what
   * the target clocks back (null for a half-duplex write). The arrays are the device's scratch
   * buffers, valid during the call. Returns a VIRTIO_SPI_* result (TRANS_ERR: the transfer failed).
   */
  transfer(tx: Uint8Array | null, rx: Uint8Array | null, length: number, info: SpiTransferInfo): number;
  /** Chip select deasserted: the frame ends. */
  deselect?(): void;
}

/**
 * A loopback target: in a full-duplex transfer it answers every byte with the byte it got; in a
 * half-duplex read it answers with the bytes of its last write (a 4 KiB echo buffer, then 0xff).
 */
export class SpiLoopbackTarget implements SpiTarget {
  private readonly echo = new Uint8Array(4096);
  private echoLen = 0;
  private echoPos = 0;
  /** Transfers seen (for tests). */
  transfers = 0;

  transfer(tx: Uint8Array | null, rx: Uint8Array | null, length: number): number {
    this.transfers++;
    if (tx !== null && rx !== null) {
      rx.set(tx.subarray(0, length));
    } else if (tx !== null) {
      const n = Math.min(length, this.echo.length);
      this.echo.set(tx.subarray(length - n, length));
      this.echoLen = n;
      this.echoPos = 0;
    } else if (rx !== null) {
      for (let i = 0; i < length; i++) rx[i] = this.echoPos < this.echoLen ? this.echo[this.echoPos++]! : 0xff;
    }
    return SpiResult.TRANS_OK;
  }
}

/** Commands of the flash-like target (a subset of the common SPI NOR set). */
export const SpiFlashCommand = {
  WRITE_STATUS: 0x01,
  PAGE_PROGRAM: 0x02,
  READ: 0x03,
  WRITE_DISABLE: 0x04,
  READ_STATUS: 0x05,
  WRITE_ENABLE: 0x06,
  SECTOR_ERASE: 0x20,
  READ_ID: 0x9f,
} as const;
/** Status register: write enable latch. */
export const SPI_FLASH_STATUS_WEL = 0x02;
export const SPI_FLASH_SECTOR = 4096;
export const SPI_FLASH_PAGE = 256;

/**
 * A register-file flash-like target (SPI NOR): a byte array with 24-bit addresses. A frame is
 * a command byte, then its address and data bytes:
 * READ ID (0x9f) -> 3 JEDEC bytes; READ STATUS (0x05) -> status, repeated; WRITE ENABLE
 * (0x06) / WRITE DISABLE (0x04) set / clear the write enable latch; READ (0x03) addr24 ->
 * bytes from addr (wrapping at the end); PAGE PROGRAM (0x02) addr24 data... -> each byte ANDed
 * into the array (NOR: bits go 1 -> 0), wrapping within the 256-byte page, applied at
 * deselect and only with the latch set; SECTOR ERASE (0x20) addr24 -> the 4 KiB sector to 0xff
 * at deselect, with the latch set. Programming and erasing clear the latch. Modes 1 and 2
 * (CPHA != CPOL) are not what NOR flash samples on: such a transfer fails (TRANS_ERR).
 */
export class SpiFlashTarget implements SpiTarget {
  /** The flash contents (erased: 0xff); tests may read or preset it. */
  readonly data: Uint8Array;
  /** Status register (READ STATUS, 0x05): bit 1 is the write-enable latch (SPI_FLASH_STATUS_WEL). */
  status = 0;
  private cmd = -1;
  private pos = 0;
  private addr = 0;
  private readonly page = new Uint8Array(SPI_FLASH_PAGE);
  private pageBytes = 0;
  private pageStart = 0;

  constructor(
    size = 64 * 1024,
    /** What READ JEDEC ID (0x9f) answers: manufacturer, memory type, capacity. Default a Winbond W25Q32. */
    readonly jedecId: readonly [number, number, number] = [0xef, 0x40, 0x16],
  ) {
    if (!Number.isInteger(size) || size < SPI_FLASH_SECTOR || size > 1 << 24 || size % SPI_FLASH_SECTOR !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `flash size ${size}: a multiple of 4 KiB up to 16 MiB`);
    }
    this.data = new Uint8Array(size).fill(0xff);
  }

  select(): void {
    this.cmd = -1;
    this.pos = 0;
    this.addr = 0;
    this.pageBytes = 0;
  }

  transfer(tx: Uint8Array | null, rx: Uint8Array | null, length: number, info: SpiTransferInfo): number {
    const cpha = (info.mode & SpiMode.CPHA) !== 0;
    const cpol = (info.mode & SpiMode.CPOL) !== 0;
    if (cpha !== cpol) return SpiResult.TRANS_ERR;
    for (let i = 0; i < length; i++) {
      const out = this.exchange(tx === null ? 0 : tx[i]!);
      if (rx !== null) rx[i] = out;
    }
    return SpiResult.TRANS_OK;
  }

  deselect(): void {
    const c = this.cmd;
    const wel = (this.status & SPI_FLASH_STATUS_WEL) !== 0;
    if (c === SpiFlashCommand.PAGE_PROGRAM && wel && this.pos >= 4) {
      for (let i = 0; i < this.pageBytes; i++) {
        const a = this.pageStart + ((this.addr + i) % SPI_FLASH_PAGE);
        this.data[a % this.data.length]! &= this.page[i]!;
      }
      this.status &= ~SPI_FLASH_STATUS_WEL;
    } else if (c === SpiFlashCommand.SECTOR_ERASE && wel && this.pos >= 4) {
      const start = (this.addr % this.data.length) & ~(SPI_FLASH_SECTOR - 1);
      this.data.fill(0xff, start, start + SPI_FLASH_SECTOR);
      this.status &= ~SPI_FLASH_STATUS_WEL;
    } else if (c === SpiFlashCommand.WRITE_ENABLE) {
      this.status |= SPI_FLASH_STATUS_WEL;
    } else if (c === SpiFlashCommand.WRITE_DISABLE) {
      this.status &= ~SPI_FLASH_STATUS_WEL;
    }
    this.cmd = -1;
  }

  /** One byte of the frame: the byte clocked out, the answer clocked in. */
  private exchange(b: number): number {
    const p = this.pos++;
    if (p === 0) {
      this.cmd = b;
      return 0xff;
    }
    switch (this.cmd) {
      case SpiFlashCommand.READ_ID:
        return p <= 3 ? this.jedecId[p - 1]! : 0xff;
      case SpiFlashCommand.READ_STATUS:
        return this.status;
      case SpiFlashCommand.READ:
        if (p <= 3) {
          this.addr = ((this.addr << 8) | b) & 0xffffff;
          return 0xff;
        }
        return this.data[(this.addr + p - 4) % this.data.length]!;
      case SpiFlashCommand.PAGE_PROGRAM:
        if (p <= 3) {
          this.addr = ((this.addr << 8) | b) & 0xffffff;
          if (p === 3) {
            this.pageStart = (this.addr % this.data.length) & ~(SPI_FLASH_PAGE - 1);
            this.addr &= SPI_FLASH_PAGE - 1;
            this.page.fill(0xff);
          }
          return 0xff;
        }
        // Beyond a page the address wraps within it (NOR page program).
        this.page[(p - 4) % SPI_FLASH_PAGE] = b;
        this.pageBytes = Math.min(SPI_FLASH_PAGE, p - 3);
        return 0xff;
      case SpiFlashCommand.SECTOR_ERASE:
        if (p <= 3) this.addr = ((this.addr << 8) | b) & 0xffffff;
        return 0xff;
      default:
        return 0xff;
    }
  }
}
