import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtioError } from '../../errors.js';
import { SPI_REQUESTQ, SpiMode, SpiResult } from '../../spec/spi.js';
import { createTestPair } from '../blk/test-pair.js';
import { type PostedBuffer, recordingContext } from '../sound/sound-test-support.js';
import { SpiDevice } from './spi-device.js';
import { SpiDriver, SpiTransferError } from './spi-driver.js';
import { SpiFlashTarget, SpiLoopbackTarget } from './spi-targets.js';

const T = { timeout: 20_000 };

function rig(): { drv: SpiDriver; posted: PostedBuffer[] } {
  const pair = createTestPair(new SpiDevice([new SpiLoopbackTarget(), new SpiFlashTarget()]), { queueSize: 16 });
  const posted: PostedBuffer[] = [];
  return { drv: new SpiDriver(recordingContext(pair.ctx, posted)), posted };
}

const shape = (p: PostedBuffer): [readonly number[], readonly number[]] => [p.out, p.inn];

describe('SpiDriver', T, () => {
  it('driver/spi/1: a half-duplex read is head, rx_buf, result in that order', async () => {
    const { drv, posted } = rig();
    await drv.transfer({ chipSelect: 0, rxLength: 12 });
    assert.deepEqual(posted.filter((p) => p.queue === SPI_REQUESTQ).map(shape), [[[32], [12, 1]]]);
  });

  it('driver/spi/2: a half-duplex write is head, tx_buf, result in that order', async () => {
    const { drv, posted } = rig();
    await drv.transfer({ chipSelect: 0, tx: new Uint8Array(5) });
    assert.deepEqual(posted.map(shape), [[[32, 5], [1]]]);
    assert.deepEqual([...posted[0]!.outBytes.subarray(32)], [0, 0, 0, 0, 0]);
  });

  it('driver/spi/3: a full-duplex transfer is head, tx_buf, rx_buf, result in that order', async () => {
    const { drv, posted } = rig();
    assert.deepEqual([...(await drv.transfer({ chipSelect: 0, tx: Uint8Array.of(1, 2, 3), rxLength: 3 }))], [1, 2, 3]);
    assert.deepEqual(posted.map(shape), [[[32, 3], [3, 1]]]);
  });

  it('driver/spi/4: a full-duplex transfer with buffers of different sizes is not sent', async () => {
    const { drv, posted } = rig();
    await assert.rejects(drv.transfer({ chipSelect: 0, tx: new Uint8Array(4), rxLength: 3 }), VirtioError);
    assert.equal(posted.length, 0);
  });

  it('driver/spi/5: rx_buf is not used when the result is not TRANS_OK', async () => {
    const { drv } = rig();
    // The flash fails a mode-1 transfer (TRANS_ERR); bits_per_word 7 is a parameter error.
    const trans = await drv.transferRaw({ chipSelect: 1, tx: Uint8Array.of(0x9f, 0, 0, 0), rxLength: 4, mode: SpiMode.CPHA });
    assert.deepEqual(trans, { result: SpiResult.TRANS_ERR });
    const param = await drv.transferRaw({ chipSelect: 0, rxLength: 4, bitsPerWord: 7 });
    assert.deepEqual(param, { result: SpiResult.PARAM_ERR });
    await assert.rejects(drv.transfer({ chipSelect: 0, rxLength: 4, bitsPerWord: 7 }), (e: unknown) => e instanceof SpiTransferError && e.result === SpiResult.PARAM_ERR);
    // With TRANS_OK the rx bytes are handed back.
    const ok = await drv.transferRaw({ chipSelect: 1, tx: Uint8Array.of(0x9f, 0, 0, 0), rxLength: 4, csChange: 1 });
    assert.deepEqual([ok.result, [...ok.rx!]], [SpiResult.TRANS_OK, [0xff, 0xef, 0x40, 0x16]]);
  });

  it('message: chip select kept between the transfers (cs_change 0) and released after the last (cs_change 1)', async () => {
    const { drv, posted } = rig();
    await drv.message([
      { chipSelect: 1, tx: Uint8Array.of(0x9f) },
      { chipSelect: 1, rxLength: 3 },
    ]);
    assert.deepEqual(
      posted.map((p) => p.outBytes[2]),
      [0, 1],
    );
    await assert.rejects(drv.transfer({ chipSelect: 2, rxLength: 1 }), VirtioError, 'chip select beyond cs_max_number');
  });
});
