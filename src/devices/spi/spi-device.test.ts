import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { RequestQueue } from '../../driver/request-queue.js';
import { VirtioError } from '../../errors.js';
import { SPI_REQUESTQ, SpiConfig, SpiMode, SpiModeFunc, SpiResult, SpiTransferHead } from '../../spec/spi.js';
import { createTestPair, type TestPair } from '../blk/test-pair.js';
import { SpiDevice, type SpiDeviceOptions } from './spi-device.js';
import { SpiDriver, type SpiTransfer } from './spi-driver.js';
import { SPI_FLASH_STATUS_WEL, SpiFlashCommand, SpiFlashTarget, SpiLoopbackTarget, type SpiTarget } from './spi-targets.js';

const T = { timeout: 20_000 };

/** A target that records what it sees and scribbles over the tx scratch buffer it is given. */
class SpyTarget implements SpiTarget {
  readonly log: string[] = [];
  transfers = 0;
  transfer(tx: Uint8Array | null, rx: Uint8Array | null, length: number): number {
    this.transfers++;
    this.log.push(`xfer ${length}`);
    if (rx !== null) for (let i = 0; i < length; i++) rx[i] = (tx?.[i] ?? 0) ^ 0xff;
    if (tx !== null) tx.fill(0xaa, 0, length);
    return SpiResult.TRANS_OK;
  }
  select(): void {
    this.log.push('select');
  }
  deselect(): void {
    this.log.push('deselect');
  }
}

function rig(targets: (SpiTarget | null)[], opts: SpiDeviceOptions = {}, pairOpts: { littleEndian?: boolean; accept?: bigint } = {}): { device: SpiDevice; pair: TestPair; drv: SpiDriver } {
  const device = new SpiDevice(targets, opts);
  const pair = createTestPair(device, { queueSize: 16, ...pairOpts });
  return { device, pair, drv: new SpiDriver(pair.ctx) };
}

/** A transfer with a hand-made head: returns the used length, result, rx bytes and the tx bytes after. */
async function raw(pair: TestPair, head: Uint8Array, tx: Uint8Array, rxLen: number): Promise<{ used: number; result: number; rx: Uint8Array; txAfter: Uint8Array }> {
  const q = new RequestQueue(pair.ctx, SPI_REQUESTQ);
  const { ctx } = pair;
  const a = ctx.dma.alloc(head.length + tx.length + rxLen + 1, 8);
  try {
    ctx.memory.write(a, head);
    ctx.memory.write(a + head.length, tx);
    ctx.memory.fill(a + head.length + tx.length, rxLen + 1, 0xee);
    const out = [{ addr: a, len: head.length }, ...(tx.length > 0 ? [{ addr: a + head.length, len: tx.length }] : [])];
    const inn = [...(rxLen > 0 ? [{ addr: a + head.length + tx.length, len: rxLen }] : []), { addr: a + head.length + tx.length + rxLen, len: 1 }];
    const used = await q.submit(out, inn);
    return {
      used,
      result: ctx.memory.slice(a + head.length + tx.length + rxLen, 1)[0]!,
      rx: ctx.memory.slice(a + head.length + tx.length, rxLen).slice(),
      txAfter: ctx.memory.slice(a + head.length, tx.length).slice(),
    };
  } finally {
    ctx.dma.free(a);
  }
}

describe('SpiDevice', T, () => {
  it('device/spi/1: every configuration field is set before the driver reads it (from construction, before DRIVER_OK)', () => {
    const opts = { csChangeSupported: false, txNbitsSupported: 1, rxNbitsSupported: 7, bitsPerWordMask: 0xff, modeFuncSupported: 0x15, maxFreqHz: 1234567, maxWordDelayNs: 11, maxCsSetupNs: 22, maxCsHoldNs: 33, maxCsInactiveNs: 44 };
    const device = new SpiDevice([null, null, null], opts);
    const cfg = new Uint8Array(SpiConfig.SIZE);
    device.readConfig(0, cfg, 0n, true);
    const v = new DataView(cfg.buffer);
    assert.deepEqual(
      [cfg[0], cfg[1], cfg[2], cfg[3], v.getUint32(4, true), v.getUint32(8, true), v.getUint32(12, true), v.getUint32(16, true), v.getUint32(20, true), v.getUint32(24, true), v.getUint32(28, true)],
      [3, 0, 1, 7, 0xff, 0x15, 1234567, 11, 22, 33, 44],
    );
    const { drv } = rig([new SpiLoopbackTarget()]);
    assert.deepEqual(drv.config, {
      csMaxNumber: 1,
      csChangeSupported: 1,
      txNbitsSupported: 3,
      rxNbitsSupported: 3,
      bitsPerWordMask: 0x80008080,
      modeFuncSupported: SpiModeFunc.CPHA_0 | SpiModeFunc.CPHA_1 | SpiModeFunc.CPOL_0 | SpiModeFunc.CPOL_1 | SpiModeFunc.CS_HIGH | SpiModeFunc.LOOPBACK,
      maxFreqHz: 50_000_000,
      maxWordDelayNs: 10_000_000,
      maxCsSetupNs: 10_000_000,
      maxCsHoldNs: 10_000_000,
      maxCsInactiveNs: 10_000_000,
    });
    assert.throws(() => new SpiDevice([null], { modeFuncSupported: 0x0c }), VirtioError, 'no CPHA setting');
    assert.throws(() => new SpiDevice([null], { txNbitsSupported: 8 }), VirtioError, 'reserved nbits bit');
  });

  it('device/spi/2: tx_buf is never changed, even by a target that writes into what it is given', async () => {
    const spy = new SpyTarget();
    const { pair, drv } = rig([spy], { chunkBytes: 16 });
    const tx = Uint8Array.from({ length: 40 }, (_, i) => i + 1);
    for (const rxLen of [40, 0]) {
      const r = await raw(pair, drv.encodeHead({ chipSelect: 0, csChange: 1 }), tx, rxLen);
      assert.equal(r.result, SpiResult.TRANS_OK);
      assert.deepEqual(r.txAfter, tx, 'tx_buf unchanged');
      if (rxLen > 0) assert.deepEqual([...r.rx], [...tx].map((b) => b ^ 0xff), 'rx from the target, across 16-byte chunks');
    }
  });

  it('device/spi/3: a head field that is invalid or needs an unsupported capability gets PARAM_ERR; the target never sees it', async () => {
    const spy = new SpyTarget();
    const { pair, drv } = rig([spy, new SpiLoopbackTarget()]);
    const head = (t: Partial<SpiTransfer>, patch?: (h: Uint8Array) => void): Uint8Array => {
      const h = drv.encodeHead({ chipSelect: 0, ...t });
      patch?.(h);
      return h;
    };
    const cases: [string, Uint8Array, number?][] = [
      ['chip select 2 of 2', head({ chipSelect: 2 })],
      ['bits_per_word 0', head({ bitsPerWord: 0 })],
      ['bits_per_word 7 (not in the mask)', head({ bitsPerWord: 7 })],
      ['bits_per_word 33', head({ bitsPerWord: 33 })],
      ['cs_change 2', head({}, (h) => (h[SpiTransferHead.CS_CHANGE] = 2))],
      ['tx_nbits 3', head({ txNbits: 3 })],
      ['tx_nbits 8 (octal not supported)', head({ txNbits: 8 })],
      ['rx_nbits 16', head({ rxNbits: 16 })],
      ['reserved byte', head({}, (h) => (h[SpiTransferHead.RESERVED + 1] = 1))],
      ['undefined mode bit', head({ mode: 1 << 5 })],
      ['LSB_FIRST not supported', head({ mode: SpiMode.LSB_FIRST })],
      ['freq 0', head({ freqHz: 0 })],
      ['freq above max_freq_hz', head({ freqHz: 50_000_001 })],
      ['word delay above max', head({ wordDelayNs: 10_000_001 })],
      ['cs setup above max', head({ csSetupNs: 10_000_001 })],
      ['cs hold above max', head({ csHoldNs: 10_000_001 })],
      ['cs inactive above max', head({ csInactiveNs: 10_000_001 })],
      ['not whole 16-bit words', head({ bitsPerWord: 16 }), 3],
      ['head shorter than 32 bytes', head({}).subarray(0, 31), 0],
    ];
    for (const [what, h, n] of cases) {
      const r = await raw(pair, h, new Uint8Array(n ?? 4), 0);
      assert.equal(r.result, SpiResult.PARAM_ERR, what);
    }
    assert.equal(spy.transfers, 0, 'no refused transfer reached the target');
    // Capabilities the device lacks: CPHA=1 only with CPHA_1, cs_change only when supported.
    const narrow = rig([spy], { modeFuncSupported: SpiModeFunc.CPHA_0 | SpiModeFunc.CPOL_0, csChangeSupported: false });
    for (const [what, t] of [
      ['CPHA=1', { mode: SpiMode.CPHA }],
      ['CPOL=1', { mode: SpiMode.CPOL }],
      ['CS_HIGH', { mode: SpiMode.CS_HIGH }],
      ['LOOP', { mode: SpiMode.LOOP }],
      ['cs_change 1', { csChange: 1 }],
    ] as const) {
      assert.equal((await raw(narrow.pair, narrow.drv.encodeHead({ chipSelect: 0, ...t }), new Uint8Array(2), 0)).result, SpiResult.PARAM_ERR, what);
    }
    assert.equal(spy.transfers, 0);
  });

  it('device/spi/4 device/spi/5: a full-duplex transfer with tx_buf and rx_buf of different sizes gets PARAM_ERR', async () => {
    const spy = new SpyTarget();
    const { pair, drv } = rig([spy]);
    const r = await raw(pair, drv.encodeHead({ chipSelect: 0 }), new Uint8Array(8), 6);
    assert.equal(r.result, SpiResult.PARAM_ERR);
    assert.deepEqual([...r.rx], [0, 0, 0, 0, 0, 0], 'rx_buf zeroed, not data');
    assert.equal(r.used, 7);
    assert.equal(spy.transfers, 0);
    const ok = await raw(pair, drv.encodeHead({ chipSelect: 0 }), new Uint8Array(6), 6);
    assert.equal(ok.result, SpiResult.TRANS_OK);
  });

  it('half-duplex write, half-duplex read and full duplex on the loopback target; LOOP mode echoes without the target', async () => {
    const loop = new SpiLoopbackTarget();
    const { drv } = rig([loop]);
    await drv.transfer({ chipSelect: 0, tx: Uint8Array.of(1, 2, 3, 4) });
    assert.deepEqual([...(await drv.transfer({ chipSelect: 0, rxLength: 6 }))], [1, 2, 3, 4, 0xff, 0xff], 'read answers the last write');
    assert.deepEqual([...(await drv.transfer({ chipSelect: 0, tx: Uint8Array.of(9, 8), rxLength: 2 }))], [9, 8]);
    const before = loop.transfers;
    assert.deepEqual([...(await drv.transfer({ chipSelect: 0, tx: Uint8Array.of(5, 6, 7, 8), rxLength: 4, mode: SpiMode.LOOP, bitsPerWord: 32 }))], [5, 6, 7, 8]);
    assert.equal(loop.transfers, before, 'LOOP: the controller echoes, the target is not involved');
  });

  it('TRANS_ERR: a target that fails (flash in mode 1) or no target on the chip select; rx_buf is zeroed', async () => {
    const flash = new SpiFlashTarget();
    const { pair } = rig([flash, null]);
    let drv = new SpiDriver(pair.ctx);
    const r = await raw(pair, drv.encodeHead({ chipSelect: 0, mode: SpiMode.CPHA }), Uint8Array.of(SpiFlashCommand.READ_ID, 0, 0, 0), 4);
    assert.deepEqual([r.result, [...r.rx]], [SpiResult.TRANS_ERR, [0, 0, 0, 0]]);
    // raw() took the queue's used-buffer callback: a new driver takes it back.
    drv = new SpiDriver(pair.ctx);
    assert.equal((await drv.transferRaw({ chipSelect: 1, rxLength: 2 })).result, SpiResult.TRANS_ERR);
    // Mode 3 is fine for NOR flash.
    const [, id] = await drv.message([{ chipSelect: 0, tx: Uint8Array.of(SpiFlashCommand.READ_ID), mode: SpiMode.CPHA | SpiMode.CPOL }, { chipSelect: 0, rxLength: 3, mode: 3 }]);
    assert.deepEqual([...id!], [0xef, 0x40, 0x16]);
  });

  it('chip select: kept asserted while cs_change is 0, deasserted after cs_change 1, on a switch of chip select and at reset', async () => {
    const a = new SpyTarget();
    const b = new SpyTarget();
    const { device, drv } = rig([a, b]);
    await drv.transfer({ chipSelect: 0, tx: Uint8Array.of(1) });
    await drv.transfer({ chipSelect: 0, tx: Uint8Array.of(2), csChange: 1 });
    await drv.transfer({ chipSelect: 0, rxLength: 2 });
    await drv.transfer({ chipSelect: 1, rxLength: 1 });
    device.reset();
    assert.deepEqual(a.log, ['select', 'xfer 1', 'xfer 1', 'deselect', 'select', 'xfer 2', 'deselect']);
    assert.deepEqual(b.log, ['select', 'xfer 1', 'deselect']);
  });

  it('the flash-like target: program needs write enable, NOR programming ANDs, sector erase, reads wrap within the array', async () => {
    const flash = new SpiFlashTarget(8192);
    const { drv } = rig([flash]);
    const cmd = (...b: number[]): Promise<Uint8Array[]> => drv.message([{ chipSelect: 0, tx: Uint8Array.from(b) }]);
    const read = async (addr: number, n: number): Promise<Uint8Array> => (await drv.message([{ chipSelect: 0, tx: Uint8Array.of(SpiFlashCommand.READ, addr >> 16, (addr >> 8) & 0xff, addr & 0xff) }, { chipSelect: 0, rxLength: n }]))[1]!;
    await cmd(SpiFlashCommand.PAGE_PROGRAM, 0, 0, 0x10, 0x00, 0x00);
    assert.deepEqual([...(await read(0x10, 2))], [0xff, 0xff], 'no write enable: nothing programmed');
    await cmd(SpiFlashCommand.WRITE_ENABLE);
    await cmd(SpiFlashCommand.PAGE_PROGRAM, 0, 0, 0x10, 0x0f, 0xf0, 0x55);
    assert.equal(flash.status & SPI_FLASH_STATUS_WEL, 0, 'the latch clears after programming');
    await cmd(SpiFlashCommand.WRITE_ENABLE);
    await cmd(SpiFlashCommand.PAGE_PROGRAM, 0, 0, 0x10, 0xff, 0x3c, 0xff);
    assert.deepEqual([...(await read(0x10, 3))], [0x0f, 0x30, 0x55], 'bits only go 1 -> 0');
    await cmd(SpiFlashCommand.WRITE_ENABLE);
    await cmd(SpiFlashCommand.SECTOR_ERASE, 0, 0, 0x20);
    assert.deepEqual([...(await read(0x10, 3))], [0xff, 0xff, 0xff]);
    flash.data[8191] = 0x12;
    flash.data[0] = 0x34;
    assert.deepEqual([...(await read(8191, 2))], [0x12, 0x34], 'reads wrap');
    const status = (await drv.message([{ chipSelect: 0, tx: Uint8Array.of(SpiFlashCommand.READ_STATUS) }, { chipSelect: 0, rxLength: 2 }]))[1]!;
    assert.deepEqual([...status], [0, 0]);
  });

  it('timing: a transfer completes after its bus time (cs setup + words x (bits / freq + word delay) + cs hold)', async () => {
    const { drv } = rig([new SpiLoopbackTarget()]);
    const t0 = performance.now();
    await drv.transfer({ chipSelect: 0, tx: new Uint8Array(4), rxLength: 4, wordDelayNs: 1_000_000, csSetupNs: 1_000_000, csHoldNs: 1_000_000 });
    const ms = performance.now() - t0;
    assert.ok(ms >= 6, `${ms.toFixed(2)} ms for 6 ms of bus time`);
  });

  it('legacy big-endian guest: head fields in guest byte order', async () => {
    const loop = new SpiLoopbackTarget();
    const { drv } = rig([loop], {}, { littleEndian: false, accept: 0n });
    assert.equal(drv.config.maxFreqHz, 50_000_000);
    assert.deepEqual([...(await drv.transfer({ chipSelect: 0, tx: Uint8Array.of(7, 7), rxLength: 2, freqHz: 1_000_000, bitsPerWord: 16 }))], [7, 7]);
    assert.equal((await drv.transferRaw({ chipSelect: 0, rxLength: 2, freqHz: 60_000_000 })).result, SpiResult.PARAM_ERR);
  });

  it('the guest is untrusted: 300 random requests are each answered; the device never needs a reset', async () => {
    const { pair } = rig([new SpiLoopbackTarget(), new SpiFlashTarget()]);
    const q = new RequestQueue(pair.ctx, SPI_REQUESTQ);
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let i = 0; i < 300; i++) {
      const outs = Array.from({ length: rnd(3) }, () => rnd(48));
      const ins = Array.from({ length: rnd(3) }, () => rnd(24));
      if (outs.length + ins.length === 0) continue;
      const segs = [...outs, ...ins].map((len) => ({ addr: pair.ctx.dma.alloc(Math.max(1, len), 8), len }));
      for (const s of segs.slice(0, outs.length)) {
        const b = new Uint8Array(s.len);
        for (let k = 0; k < b.length; k++) b[k] = rnd(3) === 0 ? rnd(256) : 0;
        if (b.length > 12) b[12] = 0x40; // a plausible frequency byte
        pair.ctx.memory.write(s.addr, b);
      }
      await q.submit(segs.slice(0, outs.length), segs.slice(outs.length));
      for (const s of segs) pair.ctx.dma.free(s.addr);
    }
    assert.deepEqual(pair.resets, []);
  });
});
