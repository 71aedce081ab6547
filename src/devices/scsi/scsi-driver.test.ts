import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DriverContext } from '../../driver/types.js';
import { ErrorCode } from '../../errors.js';
import { ScsiCmdReq, ScsiF, ScsiOp, ScsiResetReason, ScsiTmf } from '../../spec/scsi.js';
import { MemoryBackend } from '../blk/memory-backend.js';
import { MAX_PENDING_EVENTS } from './scsi-events.js';
import { ScsiDriver } from './scsi-driver.js';
import { cdb10, memDisks, scsiPair } from './scsi-test-support.js';

const T = { timeout: 20_000 };

/** The driver context with every guest-memory write and config write recorded. */
function spied(ctx: DriverContext): { ctx: DriverContext; writes: Uint8Array[]; configWrites: number[] } {
  const writes: Uint8Array[] = [];
  const configWrites: number[] = [];
  const memory = new Proxy(ctx.memory, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'write') {
        return (addr: number, src: Uint8Array, ...rest: number[]) => {
          writes.push(src.slice());
          return target.write(addr, src, ...rest);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return {
    ctx: {
      ...ctx,
      memory,
      writeConfig(offset, src) {
        configWrites.push(offset);
        ctx.writeConfig(offset, src);
      },
    },
    writes,
    configWrites,
  };
}

describe('ScsiDriver', T, () => {
  it('driver/scsi/1 driver/scsi/3 device/scsi/4: never writes the configuration; issues INQUIRY and a TMF right after attaching; task_attr, prio and crn are 0 in every request header', async () => {
    const { pair } = scsiPair(memDisks(1));
    const s = spied(pair.ctx);
    const drv = new ScsiDriver(s.ctx, { eventBuffers: 2 });
    await drv.inquiry(0);
    await drv.write(0, 1, new Uint8Array(1024));
    await drv.read(0, 1, 2);
    await drv.taskManagement(ScsiTmf.QUERY_TASK_SET, 0);
    assert.deepEqual(s.configWrites, []);
    const headers = s.writes.filter((w) => w.length === ScsiCmdReq.HEADER + drv.config.cdbSize);
    assert.equal(headers.length, 3);
    for (const h of headers) {
      assert.equal(h[ScsiCmdReq.TASK_ATTR], 0);
      assert.equal(h[ScsiCmdReq.PRIO], 0);
      assert.equal(h[ScsiCmdReq.CRN], 0);
      assert.deepEqual([...h.subarray(0, 8)], [1, 0, 0x40, 0, 0, 0, 0, 0], 'lun in the 5.6.6.1 format');
    }
  });

  it('driver/scsi/2: a linked command (LINK bit of the CONTROL byte) is refused before it reaches the device', async () => {
    const { pair } = scsiPair(memDisks(1));
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    const cdb = Uint8Array.from(cdb10(ScsiOp.READ_10, 0, 1));
    cdb[9] = 0x01;
    await assert.rejects(drv.command({ lun: 0, cdb, dataInLength: 512 }), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
    await assert.rejects(drv.command({ lun: 0, cdb: Uint8Array.of(0, 0, 0, 0, 0, 1) }), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
    assert.equal(pair.drvQueues[2]!.takeUsed(), undefined, 'nothing was sent');
    await drv.testUnitReady(0);
  });

  it('driver/scsi/6 driver/scsi/7 device/scsi/3: from initialization on, the eventq holds device-writable buffers of at least struct virtio_scsi_event, posted again after each event', async () => {
    const { device, pair } = scsiPair(memDisks(1));
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 5 });
    await new Promise((r) => setImmediate(r));
    // The device keeps only writable buffers of 16 bytes or more waiting (shorter ones are used at once).
    assert.equal(device.eventBuffersWaiting, 5);
    for (let i = 0; i < 3; i++) {
      const next = drv.nextEvent();
      device.resetLun(0);
      assert.equal((await next).reason, ScsiResetReason.HARD);
      await new Promise((r) => setImmediate(r));
      assert.equal(device.eventBuffersWaiting, 5, 'the buffer came back');
    }
  });

  it('driver/scsi/8: an event with EVENTS_MISSED makes the driver rescan the target (a LUN added without an event is found)', async () => {
    const { device, pair } = scsiPair(memDisks(1), { accept: ~ScsiF.HOTPLUG });
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 1 });
    assert.deepEqual(await drv.scan(), [0]);
    device.addLun(4, new MemoryBackend(8 * 512)); // no HOTPLUG: no event
    const seen = new Promise<{ missed: boolean; luns: number[] }>((resolve) => {
      drv.onEvent((e) => {
        if (e.eventsMissed) resolve({ missed: true, luns: [...drv.luns] });
      });
    });
    for (let i = 0; i < MAX_PENDING_EVENTS + 4; i++) device.resetLun(0);
    assert.deepEqual(await seen, { missed: true, luns: [0, 4] });
  });

  it('driver/scsi/9: a REMOVED or RESCAN transport reset for LUN 0 makes the driver rescan the target', async () => {
    const { device, pair } = scsiPair(memDisks(2));
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 2 });
    assert.deepEqual(await drv.scan(), [0, 1]);
    let heard = new Promise<number[]>((resolve) => {
      const off = drv.onEvent(() => {
        off();
        resolve([...drv.luns]);
      });
    });
    device.removeLun(0);
    assert.deepEqual(await heard, [1], 'rescanned before the listener heard of it');
    heard = new Promise<number[]>((resolve) => {
      const off = drv.onEvent(() => {
        off();
        resolve([...drv.luns]);
      });
    });
    device.addLun(0, new MemoryBackend(8 * 512));
    assert.deepEqual(await heard, [0, 1]);
  });

  it('device/scsi/2: the driver uses the queues discovered at initialization (controlq, eventq, num_queues request queues) and refuses a device with fewer than three', () => {
    const { pair } = scsiPair(memDisks(1), { numQueues: 2 });
    assert.throws(() => new ScsiDriver(pair.ctx), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
    const full = scsiPair(memDisks(1), {}, { numQueues: 2 });
    const drv = new ScsiDriver(full.pair.ctx, { eventBuffers: 0 });
    assert.equal(drv.config.numQueues, 2);
    assert.equal(full.pair.ctx.numQueues, 4);
  });

  it('spreads commands over the request queues (num_queues) and refuses a CDB longer than cdb_size', async () => {
    const { device, pair } = scsiPair(memDisks(1), {}, { numQueues: 3 });
    assert.equal(device.queueMaxSizes.length, 5);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    assert.equal(drv.config.numQueues, 3);
    const data = new Uint8Array(4096).fill(7);
    await Promise.all([0, 1, 2, 3, 4, 5].map((i) => drv.write(0, i * 8, data)));
    for (const q of [0, 1, 2]) await drv.run({ lun: 0, queue: q, cdb: new Uint8Array(6) });
    await assert.rejects(drv.command({ lun: 0, cdb: new Uint8Array(33) }), (e: { code?: string }) => e.code === ErrorCode.INVALID_ARGUMENT);
  });
});
