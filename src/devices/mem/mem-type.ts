/**
 * The registry record of virtio-mem (5.15). No CLI and no vhost-user type: QEMU 7.2 has no
 * vhost-user front-end for it (the region lives in the VMM's memory map).
 */
import assert from 'node:assert/strict';
import { DeviceId } from '../../spec/device-id.js';
import { MemBlockState, MemConfig, MemResponseType } from '../../spec/mem.js';
import type { DeviceType } from '../device-type.js';
import { MemDevice, type MemDeviceOptions } from './mem-device.js';
import { MemDriver } from './mem-driver.js';

/** `createDevice` arguments (structured-cloneable). */
export interface MemDeviceArgs {
  /** Bytes of the region (a multiple of blockSize). Default 64 MiB. */
  readonly regionSize?: number;
  /** Bytes of one block: a power of two, at least 4096. Default 2 MiB (MemDevice's). */
  readonly blockSize?: number;
  /** Guest physical address of the region. Default 4 GiB (MemDevice's). */
  readonly addr?: number;
  /** requested_size at start, bytes. Default 0. */
  readonly requestedSize?: number;
  /** Maximum size of the guest queue. Default: MemDevice's. */
  readonly queueSize?: number;
}

const BLOCK = 4096;

/**
 * The registry record of virtio-mem: its name, device id, vhost-user back-end type, CLI,
 * createDevice and matrix case.
 */
export const MEM_TYPE: DeviceType = {
  name: 'mem',
  deviceId: DeviceId.MEM,
  summary: 'a virtio-mem device (in process; no vhost-user front-end exists for it)',
  vhostUser: null,
  configSize: MemConfig.SIZE,
  cli: null,
  createDevice(args?: unknown): MemDevice {
    const a = (args ?? {}) as MemDeviceArgs;
    const opts: MemDeviceOptions = { regionSize: a.regionSize ?? 64 << 20 };
    if (a.blockSize !== undefined) opts.blockSize = a.blockSize;
    if (a.addr !== undefined) opts.addr = a.addr;
    if (a.requestedSize !== undefined) opts.requestedSize = a.requestedSize;
    if (a.queueSize !== undefined) opts.queueSize = a.queueSize;
    return new MemDevice(opts);
  },
  matrixCase() {
    // 64 blocks of 4 KiB at 1 GiB (outside the matrix's guest RAM: the driver never touches it),
    // 8 blocks requested at start, the usable region 16 blocks past the request.
    const addr = 1 << 30;
    const device = new MemDevice({ regionSize: 64 * BLOCK, blockSize: BLOCK, addr, requestedSize: 8 * BLOCK, usableExtent: 16 * BLOCK, queueSize: 64 });
    return {
      device,
      async exercise(driver) {
        const plugged: number[] = [];
        const mem = new MemDriver(driver.context, { onPlugged: (a, size) => plugged.push(a, size) });
        assert.deepEqual(mem.region, { blockSize: BLOCK, nodeId: null, addr, regionSize: 64 * BLOCK });
        const first = await mem.start();
        assert.deepEqual(first, { requestedSize: 8 * BLOCK, pluggedSize: 8 * BLOCK, reached: true });
        assert.equal(device.pluggedSize, 8 * BLOCK);
        assert.deepEqual(plugged, [addr, 8 * BLOCK]);
        // A resize request: the configuration change makes the driver plug 12 more blocks.
        const grown = mem.whenReached(20 * BLOCK);
        device.setRequestedSize(20 * BLOCK);
        assert.equal((await grown).pluggedSize, 20 * BLOCK);
        assert.equal(mem.sizes().usableRegionSize, 36 * BLOCK);
        assert.deepEqual(await mem.state(addr, 20), { type: MemResponseType.ACK, state: MemBlockState.PLUGGED });
        assert.deepEqual(await mem.state(addr + 16 * BLOCK, 8), { type: MemResponseType.ACK, state: MemBlockState.MIXED });
        // Shrinking: the highest blocks go first.
        const shrunk = mem.whenReached(4 * BLOCK);
        device.setRequestedSize(4 * BLOCK);
        await shrunk;
        assert.ok(device.isPlugged(0) && device.isPlugged(3) && !device.isPlugged(4));
        assert.equal((await mem.plug(addr + 40 * BLOCK, 1)).type, MemResponseType.ERROR, 'outside the usable region');
        await mem.unplugAll();
        assert.equal(device.pluggedSize, 0);
        assert.equal(device.usableRegionSize, 20 * BLOCK, 'UNPLUG ALL shrank the usable region to fit');
        assert.equal(mem.pluggedByDriver, 0);
        mem.detach();
      },
    };
  },
};
