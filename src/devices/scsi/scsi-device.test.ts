import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RequestAbortedError } from '../../driver/request-queue.js';
import { F } from '../../spec/features.js';
import {
  Asc,
  SCSI_T_EVENTS_MISSED,
  ScsiConfig,
  ScsiEventType,
  ScsiF,
  ScsiOp,
  ScsiQueue,
  ScsiResetReason,
  ScsiResponse,
  ScsiStatus,
  ScsiTmf,
  SenseKey,
  VpdPage,
} from '../../spec/scsi.js';
import { FileBackend } from '../blk/file-backend.js';
import { MemoryBackend } from '../blk/memory-backend.js';
import { MAX_PENDING_EVENTS } from './scsi-events.js';
import { ScsiDriver } from './scsi-driver.js';
import { HeldBackend, RawQueue, cdb10, cdb16, cmdHeader, decodeResp, memDisks, scsiPair } from './scsi-test-support.js';

const T = { timeout: 20_000 };
const BLOCK = 512;

function pattern(len: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 7 + seed * 13 + (i >> 8)) & 0xff);
}

function u32le(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(at, true);
}

describe('ScsiDevice', T, () => {
  it('device/scsi/1: sense_size 96 and cdb_size 32 by default; the driver may change them and the request layout follows; a reset restores them', async () => {
    const { device, pair } = scsiPair(memDisks(1));
    const le = new DataView(pair.ctx.readConfig(0, ScsiConfig.SIZE).buffer);
    assert.equal(le.getUint32(ScsiConfig.SENSE_SIZE, true), 96);
    assert.equal(le.getUint32(ScsiConfig.CDB_SIZE, true), 32);
    assert.equal(le.getUint32(ScsiConfig.NUM_QUEUES, true), 1);
    assert.equal(le.getUint32(ScsiConfig.EVENT_INFO_SIZE, true), 16);
    // A write to a read-only field is ignored (driver/scsi/1 forbids it; the device does not act on it).
    pair.ctx.writeConfig(ScsiConfig.NUM_QUEUES, Uint8Array.of(9, 0, 0, 0));
    pair.ctx.writeConfig(ScsiConfig.SENSE_SIZE, Uint8Array.of(32, 0, 0, 0));
    pair.ctx.writeConfig(ScsiConfig.CDB_SIZE, Uint8Array.of(16, 0, 0, 0));
    assert.equal(device.senseSize, 32);
    assert.equal(device.cdbSize, 16);
    assert.equal(u32le(pair.ctx.readConfig(ScsiConfig.NUM_QUEUES, 4), 0), 1);
    // The driver reads the new sizes: its headers are 19 + 16 bytes, its sense area 32.
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    assert.equal(drv.config.cdbSize, 16);
    const data = pattern(4 * BLOCK, 3);
    await drv.write(0, 10, data);
    assert.deepEqual(await drv.read(0, 10, 4), data);
    const bad = await drv.command({ lun: 0, cdb: Uint8Array.of(0xff, 0, 0, 0, 0, 0) });
    assert.equal(bad.sense.length, 18);
    device.reset();
    assert.equal(device.senseSize, 96);
    assert.equal(device.cdbSize, 32);
  });

  it('device/scsi/5 device/scsi/6: GOOD with response OK; CHECK CONDITION with fixed sense for an unknown opcode, LBA out of range, invalid CDB field, a LUN that does not exist, a write to a read-only LUN', async () => {
    const { pair } = scsiPair(memDisks(2), {}, {}, [1]);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    const ok = await drv.command({ lun: 0, cdb: new Uint8Array(6) });
    assert.equal(ok.response, ScsiResponse.OK);
    assert.equal(ok.status, ScsiStatus.GOOD);
    assert.equal(ok.sense.length, 0);
    const cases: [string, Parameters<ScsiDriver['command']>[0], number, number][] = [
      ['unknown opcode', { lun: 0, cdb: Uint8Array.of(0xc5, 0, 0, 0, 0, 0) }, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPERATION_CODE],
      ['LBA out of range', { lun: 0, cdb: Uint8Array.from(cdb16(ScsiOp.READ_16, 127, 2)), dataInLength: 2 * BLOCK }, SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE],
      ['bad VPD page', { lun: 0, cdb: Uint8Array.of(ScsiOp.INQUIRY, 1, 0x42, 0, 255, 0), dataInLength: 255 }, SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB],
      ['no such LUN', { lun: 9, cdb: new Uint8Array(6) }, SenseKey.ILLEGAL_REQUEST, Asc.LOGICAL_UNIT_NOT_SUPPORTED],
      ['read-only LUN', { lun: 1, cdb: Uint8Array.from(cdb10(ScsiOp.WRITE_10, 0, 1)), dataOut: new Uint8Array(BLOCK) }, SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED],
      ['saved mode pages', { lun: 0, cdb: Uint8Array.of(ScsiOp.MODE_SENSE_6, 0, 0xc8, 0, 255, 0), dataInLength: 255 }, SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED],
    ];
    for (const [what, c, key, asc] of cases) {
      const r = await drv.command(c);
      assert.equal(r.response, ScsiResponse.OK, what);
      assert.equal(r.status, ScsiStatus.CHECK_CONDITION, what);
      assert.equal(r.sense[0], 0x70, `${what}: fixed-format sense`);
      assert.equal(r.sense.length, 18, what);
      assert.equal(r.senseKey, key, what);
      assert.equal((r.asc << 8) | r.ascq, asc, what);
      assert.equal(r.residual, c.dataInLength ?? c.dataOut?.length ?? 0, `${what}: nothing transferred`);
    }
    assert.deepEqual(pair.resets, []);
  });

  it('device/scsi/6: OVERRUN when the CDB asks for more than the buffers hold, with the whole buffer as residual; a larger buffer is an underrun with response OK and its residual', async () => {
    const { pair } = scsiPair(memDisks(1));
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    const over = await drv.command({ lun: 0, cdb: Uint8Array.from(cdb10(ScsiOp.READ_10, 0, 8)), dataInLength: 4 * BLOCK });
    assert.equal(over.response, ScsiResponse.OVERRUN);
    assert.equal(over.residual, 4 * BLOCK);
    const overWrite = await drv.command({ lun: 0, cdb: Uint8Array.from(cdb10(ScsiOp.WRITE_10, 0, 8)), dataOut: new Uint8Array(BLOCK) });
    assert.equal(overWrite.response, ScsiResponse.OVERRUN);
    const overInq = await drv.command({ lun: 0, cdb: Uint8Array.of(ScsiOp.INQUIRY, 0, 0, 0, 96, 0), dataInLength: 36 });
    assert.equal(overInq.response, ScsiResponse.OVERRUN, 'allocation length beyond datain');
    const under = await drv.command({ lun: 0, cdb: Uint8Array.from(cdb10(ScsiOp.READ_10, 0, 2)), dataInLength: 4 * BLOCK });
    assert.equal(under.response, ScsiResponse.OK);
    assert.equal(under.status, ScsiStatus.GOOD);
    assert.equal(under.residual, 2 * BLOCK);
    const inq = await drv.command({ lun: 0, cdb: Uint8Array.of(ScsiOp.INQUIRY, 0, 0, 0, 200, 0), dataInLength: 200 });
    assert.equal(inq.residual, 200 - 36, 'standard INQUIRY data is 36 bytes');
  });

  it('device/scsi/6: BAD_TARGET for another target or a lun field not in the 5.6.6.1 format; FAILURE for a short header and for dataout with datain without INOUT; never a throw', async () => {
    const { pair } = scsiPair(memDisks(1));
    const raw = new RawQueue(pair, ScsiQueue.REQUESTQ);
    const respLen = 12 + 96;
    for (const lunBytes of [
      [1, 3, 0x40, 0],
      [2, 0, 0x40, 0],
      [1, 0, 0x40, 0, 0, 0, 0, 1],
    ]) {
      const r = await raw.submit([cmdHeader(0, [0, 0, 0, 0, 0, 0], { lunBytes })], [respLen]);
      assert.equal(decodeResp(r.ins[0]!).response, ScsiResponse.BAD_TARGET, `lun ${lunBytes.join(',')}`);
      assert.equal(r.used, 12);
    }
    const short = await raw.submit([cmdHeader(0, [0]).subarray(0, 30)], [respLen]);
    assert.equal(decodeResp(short.ins[0]!).response, ScsiResponse.FAILURE);
    const inout = await raw.submit([cmdHeader(0, cdb10(ScsiOp.WRITE_10, 0, 1)), new Uint8Array(BLOCK)], [respLen, BLOCK]);
    assert.equal(decodeResp(inout.ins[0]!).response, ScsiResponse.FAILURE);
    // No room for the response: the buffer comes back with nothing written.
    const noResp = await raw.submit([cmdHeader(0, [0])], [8]);
    assert.equal(noResp.used, 0);
    assert.deepEqual(pair.resets, []);
  });

  it('untrusted driver: 400 random requests on every queue get an answer, never a throw or DEVICE_NEEDS_RESET', async () => {
    const { pair } = scsiPair(memDisks(2));
    const queues = [0, 1, 2].map((i) => new RawQueue(pair, i));
    let seed = 0x1234567;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const ops = [0x00, 0x03, 0x08, 0x0a, 0x12, 0x1a, 0x1b, 0x25, 0x28, 0x2a, 0x35, 0x42, 0x5a, 0x88, 0x8a, 0x91, 0x93, 0x9e, 0xa0, 0xa8, 0xaa, 0xff];
    for (let i = 0; i < 400; i++) {
      const q = rnd(3);
      const hdr = new Uint8Array(rnd(4) === 0 ? rnd(60) : 51);
      for (let k = 0; k < hdr.length; k++) hdr[k] = rnd(256);
      if (hdr.length > 19 && rnd(2) === 0) hdr.set([1, 0, 0x40, rnd(3)], 0);
      if (hdr.length > 19) hdr[19] = ops[rnd(ops.length)]!;
      if (q === 0 && hdr.length >= 4) hdr[0] = rnd(4);
      const out = rnd(3) === 0 ? [hdr, new Uint8Array(rnd(3) * BLOCK)] : [hdr];
      const ins = q === 1 ? [rnd(40)] : [rnd(150), ...(rnd(2) === 0 ? [rnd(4) * BLOCK] : [])];
      const p = queues[q]!.submit(out, ins.filter((n) => n > 0));
      if (q === 1) continue; // event buffers wait for events
      await p;
    }
    assert.deepEqual(pair.resets, []);
  });

  it('INQUIRY: standard data and VPD pages 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2; REPORT LUNS through LUN 0 and the well-known LU', async () => {
    const disks = memDisks(2);
    const { device, pair } = scsiPair(disks);
    device.addLun(7, new MemoryBackend(64 * BLOCK), { serial: 'seven' });
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    const std = await drv.inquiry(0);
    assert.equal(std.length, 36);
    assert.equal(std[0], 0);
    assert.equal(std[7]! & 0x02, 0x02, 'CMDQUE');
    const pages = await drv.inquiry(0, VpdPage.SUPPORTED_PAGES);
    assert.deepEqual([...pages.subarray(4)], [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    const sn = await drv.inquiry(7, VpdPage.UNIT_SERIAL_NUMBER);
    assert.equal(new TextDecoder().decode(sn.subarray(4)), 'seven');
    const id = await drv.inquiry(7, VpdPage.DEVICE_IDENTIFICATION);
    assert.equal(id[5]! & 0x0f, 1, 'T10 vendor ID designator');
    assert.equal(new TextDecoder().decode(id.subarray(8, 8 + id[7]!)), 'VIRTIO  seven');
    const bl = await drv.inquiry(0, VpdPage.BLOCK_LIMITS);
    assert.equal(bl.length, 64);
    assert.equal(new DataView(bl.buffer).getUint32(24), 64, 'maximum unmap block descriptor count');
    const bdc = await drv.inquiry(0, VpdPage.BLOCK_DEVICE_CHARACTERISTICS);
    assert.equal(new DataView(bdc.buffer).getUint16(4), 1, 'non-rotating');
    const lbp = await drv.inquiry(0, VpdPage.LOGICAL_BLOCK_PROVISIONING);
    assert.equal(lbp[5]! & 0xc0, 0xc0, 'LBPU and LBPWS');
    assert.equal((await drv.inquiry(3))[0], 0x7f, 'no LUN 3: peripheral qualifier 011b');
    assert.equal((await drv.inquiry('report-luns'))[0], 0x1e, 'well-known logical unit');
    assert.deepEqual(await drv.reportLuns(), [0, 1, 7]);
    assert.deepEqual(await drv.scan(), [0, 1, 7]);
  });

  it('READ CAPACITY 10/16, READ/WRITE 6/10/12/16 with FUA, SYNCHRONIZE CACHE 10/16, START STOP UNIT, MODE SENSE 6/10', async () => {
    const disks = memDisks(2, 256);
    const { pair } = scsiPair(disks, {}, {}, [1]);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    const rc10 = (await drv.run({ lun: 0, cdb: Uint8Array.from(cdb10(ScsiOp.READ_CAPACITY_10, 0, 0)), dataInLength: 8 })).data;
    assert.deepEqual([...rc10], [0, 0, 0, 255, 0, 0, 2, 0]);
    const rc16 = await drv.readCapacity(0);
    assert.deepEqual(rc16, { blocks: 256, blockSize: 512, lbpme: true });
    const mem = (disks[0] as MemoryBackend).data;
    const variants: [string, number[], number, number][] = [
      ['6', [ScsiOp.WRITE_6, 0, 0, 20, 2, 0], ScsiOp.READ_6, 20],
      ['10', cdb10(ScsiOp.WRITE_10, 30, 2, 0x08), ScsiOp.READ_10, 30],
      ['12', [ScsiOp.WRITE_12, 0, 0, 0, 0, 40, 0, 0, 0, 2, 0, 0], ScsiOp.READ_12, 40],
      ['16', cdb16(ScsiOp.WRITE_16, 50, 2, 0x08), ScsiOp.READ_16, 50],
    ];
    for (const [n, wcdb, rop, lba] of variants) {
      const data = pattern(2 * BLOCK, lba);
      await drv.run({ lun: 0, cdb: Uint8Array.from(wcdb), dataOut: data });
      assert.deepEqual(mem.subarray(lba * BLOCK, (lba + 2) * BLOCK), data, `WRITE(${n})`);
      const rcdb = [...wcdb];
      rcdb[0] = rop;
      rcdb[1] = 0;
      assert.deepEqual((await drv.run({ lun: 0, cdb: Uint8Array.from(rcdb), dataInLength: 2 * BLOCK })).data, data, `READ(${n})`);
    }
    // READ(6) with transfer length 0 means 256 blocks.
    assert.equal((await drv.run({ lun: 0, cdb: Uint8Array.of(ScsiOp.READ_6, 0, 0, 0, 0, 0), dataInLength: 256 * BLOCK })).data.length, 256 * BLOCK);
    await drv.run({ lun: 0, cdb: Uint8Array.from(cdb10(ScsiOp.SYNCHRONIZE_CACHE_10, 0, 0)) });
    await drv.run({ lun: 0, cdb: Uint8Array.from(cdb16(ScsiOp.SYNCHRONIZE_CACHE_16, 10, 5)) });
    await drv.run({ lun: 0, cdb: Uint8Array.of(ScsiOp.START_STOP_UNIT, 0, 0, 0, 1, 0) });
    const ms = await drv.modeSense(1, 0x3f);
    assert.equal(ms[3]! & 0x80, 0x80, 'MODE SENSE(10): WP on the read-only LUN');
    assert.equal(new DataView(ms.buffer).getUint16(0), ms.length - 2, 'mode data length');
    const ms6 = (await drv.run({ lun: 0, cdb: Uint8Array.of(ScsiOp.MODE_SENSE_6, 0x08, 0x08, 0, 255, 0), dataInLength: 255 })).data;
    assert.equal(ms6[2]! & 0x80, 0, 'no WP');
    assert.equal(ms6[3], 0, 'DBD: no block descriptor');
    assert.equal(ms6[4], 0x08, 'caching page');
    assert.equal(ms6[6]! & 0x04, 0x04, 'WCE');
  });

  it('UNMAP and WRITE SAME (16): zeroes, a repeated block, NDOB; every descriptor checked before any is applied', async () => {
    const disks = memDisks(1, 256);
    const mem = (disks[0] as MemoryBackend).data;
    mem.fill(0xaa);
    const { pair } = scsiPair(disks);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    await drv.unmap(0, [
      [10, 2],
      [20, 1],
    ]);
    assert.ok(mem.subarray(10 * BLOCK, 12 * BLOCK).every((b) => b === 0));
    assert.ok(mem.subarray(20 * BLOCK, 21 * BLOCK).every((b) => b === 0));
    assert.equal(mem[12 * BLOCK], 0xaa);
    await assert.rejects(
      drv.unmap(0, [
        [30, 1],
        [255, 2],
      ]),
      (e: Error & { result?: { asc: number } }) => e.result?.asc === 0x21,
    );
    assert.equal(mem[30 * BLOCK], 0xaa, 'nothing unmapped when one descriptor is out of range');
    const block = pattern(BLOCK, 9);
    await drv.writeSame(0, 40, 3, block);
    for (let i = 0; i < 3; i++) assert.deepEqual(mem.subarray((40 + i) * BLOCK, (41 + i) * BLOCK), block);
    await drv.writeSame(0, 50, 2, null, true);
    assert.ok(mem.subarray(50 * BLOCK, 52 * BLOCK).every((b) => b === 0));
    const zero = await drv.command({ lun: 0, cdb: Uint8Array.from(cdb16(ScsiOp.WRITE_SAME_16, 60, 0, 0x01)) });
    assert.equal(zero.asc, 0x24, 'WSNZ: zero blocks refused');
  });

  it('REQUEST SENSE returns and clears the pending unit attention; INQUIRY and REPORT LUNS do not consume it', async () => {
    const { device, pair } = scsiPair(memDisks(1));
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    assert.equal(await drv.taskManagement(ScsiTmf.LOGICAL_UNIT_RESET, 0), ScsiResponse.FUNCTION_COMPLETE);
    await drv.inquiry(0);
    await drv.reportLuns();
    const s = await drv.requestSense(0);
    assert.equal(s[2]! & 0x0f, SenseKey.UNIT_ATTENTION);
    assert.equal((s[12]! << 8) | s[13]!, Asc.BUS_DEVICE_RESET);
    assert.equal((await drv.requestSense(0))[2]! & 0x0f, SenseKey.NO_SENSE);
    await drv.testUnitReady(0);
    device.resetLun(0);
    assert.deepEqual(await drv.clearUnitAttention(0), [Asc.POWER_ON_RESET]);
  });

  it('5.6.6.2 TMF: ABORT TASK completes the command with ABORTED before the TMF completes; QUERY TASK / QUERY TASK SET see commands in flight', async () => {
    const held = new HeldBackend(128 * BLOCK);
    const { pair } = scsiPair([held, ...memDisks(1)]);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    held.hold = true;
    const order: string[] = [];
    const cmd = drv.command({ lun: 0, id: 77, cdb: Uint8Array.from(cdb16(ScsiOp.READ_16, 0, 4)), dataInLength: 4 * BLOCK }).then((r) => {
      order.push('command');
      return r;
    });
    const other = drv.command({ lun: 0, id: 78, cdb: Uint8Array.from(cdb16(ScsiOp.READ_16, 8, 1)), dataInLength: BLOCK });
    await new Promise((r) => setImmediate(r));
    assert.equal(held.held, 2);
    assert.equal(await drv.taskManagement(ScsiTmf.QUERY_TASK, 0, 77), ScsiResponse.FUNCTION_SUCCEEDED);
    assert.equal(await drv.taskManagement(ScsiTmf.QUERY_TASK, 0, 5), ScsiResponse.FUNCTION_COMPLETE);
    assert.equal(await drv.taskManagement(ScsiTmf.QUERY_TASK_SET, 0), ScsiResponse.FUNCTION_SUCCEEDED);
    assert.equal(await drv.taskManagement(ScsiTmf.QUERY_TASK_SET, 1), ScsiResponse.FUNCTION_COMPLETE);
    const tmf = drv.taskManagement(ScsiTmf.ABORT_TASK, 0, 77).then((r) => {
      order.push('tmf');
      return r;
    });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, [], 'the TMF waits for the aborted command');
    held.release();
    assert.equal(await tmf, ScsiResponse.FUNCTION_COMPLETE);
    const r = await cmd;
    assert.deepEqual(order, ['command', 'tmf']);
    assert.equal(r.response, ScsiResponse.ABORTED);
    assert.equal(r.residual, 4 * BLOCK);
    assert.equal((await other).response, ScsiResponse.OK, 'the other command was not aborted');
    assert.equal(await drv.taskManagement(ScsiTmf.ABORT_TASK, 0, 77), ScsiResponse.FUNCTION_COMPLETE, 'no such task: complete');
  });

  it('5.6.6.2 TMF: ABORT TASK SET aborts, LOGICAL UNIT RESET and I_T NEXUS RESET reset the commands in flight and leave unit attentions; CLEAR ACA rejected; bad addresses', async () => {
    const held = new HeldBackend(128 * BLOCK);
    const { pair } = scsiPair([held, ...memDisks(1)]);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    held.hold = true;
    const read = (lba: number): ReturnType<ScsiDriver['command']> => drv.command({ lun: 0, cdb: Uint8Array.from(cdb16(ScsiOp.READ_16, lba, 1)), dataInLength: BLOCK });
    for (const [tmf, resp] of [
      [ScsiTmf.ABORT_TASK_SET, ScsiResponse.ABORTED],
      [ScsiTmf.CLEAR_TASK_SET, ScsiResponse.ABORTED],
      [ScsiTmf.LOGICAL_UNIT_RESET, ScsiResponse.RESET],
      [ScsiTmf.I_T_NEXUS_RESET, ScsiResponse.RESET],
    ] as const) {
      // TEST UNIT READY never reaches the backend: it consumes the previous reset's unit attention.
      const uas = await drv.clearUnitAttention(0);
      if (tmf === ScsiTmf.I_T_NEXUS_RESET) assert.deepEqual(uas, [Asc.BUS_DEVICE_RESET], 'LOGICAL UNIT RESET left its unit attention');
      const cmds = [read(1), read(2)];
      await new Promise((r) => setImmediate(r));
      assert.equal(held.held, 2);
      const t = drv.taskManagement(tmf, 0);
      await new Promise((r) => setImmediate(r));
      held.release();
      assert.equal(await t, ScsiResponse.FUNCTION_COMPLETE);
      for (const c of await Promise.all(cmds)) assert.equal(c.response, resp, `TMF ${tmf}`);
    }
    held.hold = false;
    // I_T NEXUS RESET left I_T NEXUS LOSS OCCURRED on every LUN.
    assert.deepEqual(await drv.clearUnitAttention(1), [Asc.I_T_NEXUS_LOSS]);
    assert.equal(await drv.taskManagement(ScsiTmf.CLEAR_ACA, 0), ScsiResponse.FUNCTION_REJECTED);
    assert.equal(await drv.taskManagement(99, 0), ScsiResponse.FUNCTION_REJECTED);
    assert.equal(await drv.taskManagement(ScsiTmf.ABORT_TASK_SET, 5), ScsiResponse.INCORRECT_LUN);
    assert.equal(await drv.taskManagement(ScsiTmf.ABORT_TASK_SET, 0, 0, 4), ScsiResponse.BAD_TARGET);
    const an = await drv.asyncNotification(0, 0x7e, true);
    assert.deepEqual(an, { response: ScsiResponse.OK, eventActual: 0 });
    assert.equal((await drv.asyncNotification(6, 2)).response, ScsiResponse.INCORRECT_LUN);
    // A control request of an unknown type, or too short: FAILURE in its last writable byte.
    const raw = new RawQueue(pair, ScsiQueue.CONTROLQ);
    const unknown = await raw.submit([Uint8Array.of(7, 0, 0, 0, 0, 0, 0, 0)], [1]);
    assert.equal(unknown.ins[0]![0], ScsiResponse.FAILURE);
    const short = await raw.submit([Uint8Array.of(0, 0, 0, 0, 5)], [1]);
    assert.equal(short.ins[0]![0], ScsiResponse.FAILURE);
  });

  it('device/scsi/7: commands in flight at a device reset are aborted: never completed afterwards (no used entry), the driver fails them', async () => {
    const held = new HeldBackend(128 * BLOCK);
    const { device, pair } = scsiPair([held]);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
    held.hold = true;
    const cmd = drv.command({ lun: 0, cdb: Uint8Array.from(cdb16(ScsiOp.READ_16, 0, 1)), dataInLength: BLOCK });
    await new Promise((r) => setImmediate(r));
    assert.equal(held.held, 1);
    device.reset();
    held.release();
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    assert.equal(pair.drvQueues[ScsiQueue.REQUESTQ]!.takeUsed(), undefined, 'no used entry after the reset');
    drv.detach();
    await assert.rejects(cmd, RequestAbortedError);
  });

  it('device/scsi/8: events lost for want of buffers are reported with bit 31 (EVENTS_MISSED) on the next event delivered', async () => {
    const { device, pair } = scsiPair(memDisks(1));
    const raw = new RawQueue(pair, ScsiQueue.EVENTQ);
    for (let i = 0; i < MAX_PENDING_EVENTS + 3; i++) device.resetLun(0);
    assert.equal(device.eventsMissed, true);
    const got = [];
    for (let i = 0; i < MAX_PENDING_EVENTS; i++) got.push(await raw.submit([], [16]));
    const events = got.map((g) => u32le(g.ins[0]!, 0));
    assert.equal(events[0], (ScsiEventType.TRANSPORT_RESET | SCSI_T_EVENTS_MISSED) >>> 0, 'the first event delivered carries EVENTS_MISSED');
    assert.ok(events.slice(1).every((e) => e === ScsiEventType.TRANSPORT_RESET), 'the flag once');
    assert.equal(u32le(got[1]!.ins[0]!, 12), ScsiResetReason.HARD);
    assert.deepEqual([...got[1]!.ins[0]!.subarray(4, 12)], [1, 0, 0, 0, 0, 0, 0, 0], 'lun of target 0, LUN 0 (encoded as REPORT LUNS does)');
    assert.equal(got[0]!.used, 16);
    assert.equal(device.eventsMissed, false);
    // A buffer shorter than struct virtio_scsi_event is used at once with NO_EVENT.
    const tiny = await raw.submit([], [8]);
    assert.equal(u32le(tiny.ins[0]!, 0), ScsiEventType.NO_EVENT);
  });

  it('device/scsi/9: without VIRTIO_SCSI_F_HOTPLUG no RESCAN or REMOVED event is sent (only the unit attention); with it, both', async () => {
    const off = scsiPair(memDisks(1), { accept: ~ScsiF.HOTPLUG });
    assert.equal(off.pair.features & ScsiF.HOTPLUG, 0n);
    const drvOff = new ScsiDriver(off.pair.ctx, { eventBuffers: 4 });
    off.device.addLun(3, new MemoryBackend(16 * BLOCK));
    off.device.removeLun(3);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(drvOff.events, []);
    assert.equal(off.device.eventBuffersWaiting, 4);
    assert.deepEqual(await drvOff.clearUnitAttention(0), [Asc.REPORTED_LUNS_DATA_HAS_CHANGED]);
    const on = scsiPair(memDisks(1));
    const drvOn = new ScsiDriver(on.pair.ctx, { eventBuffers: 4 });
    let next = drvOn.nextEvent();
    on.device.addLun(3, new MemoryBackend(16 * BLOCK));
    assert.deepEqual(await next, { event: ScsiEventType.TRANSPORT_RESET, eventsMissed: false, target: 0, lun: 3, reason: ScsiResetReason.RESCAN });
    next = drvOn.nextEvent();
    on.device.removeLun(3);
    assert.equal((await next).reason, ScsiResetReason.REMOVED);
  });

  it('device/scsi/10: PARAM_CHANGE (with CHANGE negotiated) only for the disks the host has, never MMC devices (INQUIRY type 0); reason holds asc and ascq', async () => {
    const disk = new HeldBackend(64 * BLOCK);
    const { device, pair } = scsiPair([disk]);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 2 });
    assert.equal((await drv.inquiry(0))[0]! & 0x1f, 0, 'a disk, not an MMC device (type 5)');
    const next = drv.nextEvent();
    disk.sizeOverride = 32 * BLOCK;
    assert.equal(device.refreshCapacity(0), true);
    const e = await next;
    assert.equal(e.event, ScsiEventType.PARAM_CHANGE);
    assert.equal(e.reason, 0x2a | (0x09 << 8), 'asc 0x2a, ascq 0x09 (CAPACITY DATA HAS CHANGED)');
    assert.deepEqual(await drv.clearUnitAttention(0), [Asc.CAPACITY_DATA_HAS_CHANGED]);
    assert.equal((await drv.readCapacity(0)).blocks, 32);
    // Without CHANGE: no event, the unit attention only.
    const off = scsiPair([disk], { accept: ~ScsiF.CHANGE });
    const drvOff = new ScsiDriver(off.pair.ctx, { eventBuffers: 2 });
    disk.sizeOverride = 48 * BLOCK;
    assert.equal(off.device.refreshCapacity(0), true);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(drvOff.events, []);
    assert.deepEqual(await drvOff.clearUnitAttention(0), [Asc.CAPACITY_DATA_HAS_CHANGED]);
  });

  it('device/scsi/11 driver/scsi/5: a legacy big-endian guest: request, control and event structures in its byte order', async () => {
    const { device, pair } = scsiPair(memDisks(1), { accept: ~F.VERSION_1, littleEndian: false });
    assert.equal(pair.features & F.VERSION_1, 0n);
    const drv = new ScsiDriver(pair.ctx, { eventBuffers: 2 });
    assert.equal(drv.config.senseSize, 96, 'config in guest order');
    const data = pattern(2 * BLOCK, 5);
    await drv.write(0, 3, data);
    assert.deepEqual(await drv.read(0, 3, 2), data);
    const r = await drv.command({ lun: 0, cdb: Uint8Array.of(0xc5, 0, 0, 0, 0, 0) });
    assert.equal(r.sense.length, 18, 'sense_len decoded big-endian');
    const under = await drv.command({ lun: 0, cdb: Uint8Array.from(cdb10(ScsiOp.READ_10, 0, 1)), dataInLength: 3 * BLOCK });
    assert.equal(under.residual, 2 * BLOCK, 'residual big-endian');
    assert.equal(await drv.taskManagement(ScsiTmf.QUERY_TASK_SET, 0), ScsiResponse.FUNCTION_COMPLETE);
    const next = drv.nextEvent();
    device.resetLun(0);
    assert.deepEqual(await next, { event: ScsiEventType.TRANSPORT_RESET, eventsMissed: false, target: 0, lun: 0, reason: ScsiResetReason.HARD });
    // Raw bytes: the response header's sense_len is most significant byte first.
    const raw = new RawQueue(pair, ScsiQueue.REQUESTQ);
    const got = await raw.submit([cmdHeader(0, [0xc5, 0, 0, 0, 0, 0], { le: false })], [12 + 96]);
    assert.deepEqual([...got.ins[0]!.subarray(0, 4)], [0, 0, 0, 18]);
  });
});

describe('ScsiDevice on a FileBackend (asynchronous completions)', T, () => {
  it('READ/WRITE over many segments, FUA, SYNCHRONIZE CACHE, UNMAP and WRITE SAME complete through the thread pool and reach the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vts-scsi-file-'));
    const path = join(dir, 'disk.img');
    await writeFile(path, new Uint8Array(256 * BLOCK).fill(0x11));
    const backend = await FileBackend.open(path);
    try {
      const { pair } = scsiPair([backend]);
      const drv = new ScsiDriver(pair.ctx, { eventBuffers: 0 });
      const writes = [0, 1, 2, 3].map((i) => ({ lba: i * 32, data: pattern(16 * BLOCK, i) }));
      await Promise.all(writes.map((w, i) => drv.write(0, w.lba, w.data, i % 2 === 0)));
      const reads = await Promise.all(writes.map((w) => drv.read(0, w.lba, 16)));
      reads.forEach((r, i) => assert.deepEqual(r, writes[i]!.data));
      await drv.synchronizeCache(0);
      await drv.unmap(0, [[200, 4]]);
      await drv.writeSame(0, 210, 3, pattern(BLOCK, 42));
      await drv.writeSame(0, 220, 2, null);
      const file = await readFile(path);
      assert.deepEqual(file.subarray(32 * BLOCK, 48 * BLOCK), Buffer.from(writes[1]!.data));
      assert.ok(file.subarray(200 * BLOCK, 204 * BLOCK).every((b) => b === 0), 'unmapped blocks read as zeroes from this backend');
      for (let i = 0; i < 3; i++) assert.deepEqual(file.subarray((210 + i) * BLOCK, (211 + i) * BLOCK), Buffer.from(pattern(BLOCK, 42)));
      assert.ok(file.subarray(220 * BLOCK, 222 * BLOCK).every((b) => b === 0));
      assert.equal(file[222 * BLOCK], 0x11);
      assert.deepEqual(pair.resets, []);
    } finally {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
