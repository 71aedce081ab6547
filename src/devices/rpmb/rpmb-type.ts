/**
 * The registry record of the RPMB device (5.12). vhost-user.json defines no "rpmb" back-end type
 * and QEMU 7.2 has no vhost-user-rpmb front-end, so there is no sub-command: the device is used
 * as a library object (in process, on every transport of the matrix, or served by serveVhostUser
 * to virtio-ts's own front-end).
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { RPMB_BLOCK_SIZE, RpmbConfig, RpmbResult } from '../../spec/rpmb.js';
import type { DeviceType } from '../device-type.js';
import { RpmbDevice, type RpmbDeviceOptions } from './rpmb-device.js';
import { RpmbDriver, RpmbResultError } from './rpmb-driver.js';
import { MemoryRpmbStore } from './rpmb-store.js';

/** `createDevice` arguments (structured-cloneable). */
export interface RpmbDeviceArgs {
  /** 128 KiB units (1..128). Default 1. */
  readonly capacityUnits?: number;
  /** max_wr_cnt: blocks per data write at most, 1..255, or 0 for no limit. Default 16. */
  readonly maxWriteBlocks?: number;
  /** max_rd_cnt: blocks per data read at most, 1..255, or 0 for no limit. Default 16. */
  readonly maxReadBlocks?: number;
  /** Maximum queue size. Default 128. */
  readonly queueSize?: number;
}

function pattern(len: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 7 + seed * 13) & 0xff);
}

/**
 * The registry record of virtio-rpmb: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const RPMB_TYPE: DeviceType = {
  name: 'rpmb',
  deviceId: DeviceId.RPMB,
  summary: 'a virtio RPMB device (library only: no vhost-user front-end exists for it)',
  vhostUser: null,
  configSize: RpmbConfig.SIZE,
  cli: null,
  createDevice(args?: unknown): RpmbDevice {
    const a = (args ?? {}) as RpmbDeviceArgs;
    const opts: RpmbDeviceOptions = {};
    if (a.maxWriteBlocks !== undefined) opts.maxWriteBlocks = a.maxWriteBlocks;
    if (a.maxReadBlocks !== undefined) opts.maxReadBlocks = a.maxReadBlocks;
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    return new RpmbDevice(new MemoryRpmbStore(a.capacityUnits ?? 1), opts);
  },
  matrixCase() {
    const store = new MemoryRpmbStore(2);
    const device = new RpmbDevice(store, { queueSize: 64, maxWriteBlocks: 2, maxReadBlocks: 3 });
    return {
      device,
      async exercise(driver) {
        const rpmb = new RpmbDriver(driver.context);
        assert.deepEqual(rpmb.config, { capacity: 2, maxWrCnt: 2, maxRdCnt: 3 });
        const key = pattern(32, 99);
        await assert.rejects(rpmb.getWriteCounter(), (e: unknown) => e instanceof RpmbResultError && e.result === RpmbResult.NO_AUTH_KEY);
        await rpmb.programKey(key);
        assert.equal(await rpmb.getWriteCounter(), 0);
        // 5 blocks: three write requests of at most 2 blocks, two reads of at most 3.
        const data = pattern(5 * RPMB_BLOCK_SIZE, 1);
        assert.equal(await rpmb.write(100, data), 3);
        assert.deepEqual(store.data.subarray(100 * RPMB_BLOCK_SIZE, 105 * RPMB_BLOCK_SIZE), data);
        assert.deepEqual(await rpmb.read(100, 5), data);
        assert.equal(store.writeCounter, 3);
        assert.equal((await rpmb.resultRead()).writeCounter, 3);
        rpmb.detach();
      },
    };
  },
};
