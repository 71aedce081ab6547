/**
 * Bad register accesses on MMIO (version 2 and legacy 1) and malformed channel commands on CCW
 * (revisions 2, 1, 0): the rig and the rules of bad-access.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Status } from '../spec/status.js';
import { BadAccess } from './bus.js';
import { CcwCmd, CcwFlag, CcwStatus } from './ccw/constants.js';
import { TransportKind } from './loopback.js';
import { MMIO_MAGIC, MmioReg } from './mmio/registers.js';
import { CCW_DATA, MEM, T, ccw, core, expectReports, live, mmio, reports, setup, stillWorks } from './bad-access-rig.js';

// ---- MMIO ----------------------------------------------------------------------------------


for (const kind of [TransportKind.MMIO, TransportKind.MMIO_LEGACY]) {
  const v1 = kind === TransportKind.MMIO_LEGACY;
  describe(`bad accesses: ${kind}`, () => {
    it('8/16/64-bit and unaligned control register accesses are refused without effect', T, async () => {
      const l = await live(kind);
      const m = mmio(l);
      const st = core(l).status;
      assert.equal(m.read(MmioReg.MAGIC_VALUE, 2), 0);
      assert.equal(m.read(MmioReg.STATUS, 1), 0);
      m.write(MmioReg.STATUS, 1, 0); // would reset at width 4
      m.write(MmioReg.STATUS, 2, 0);
      m.write(MmioReg.QUEUE_SEL + 2, 4, 5);
      assert.equal(m.read(MmioReg.DEVICE_ID + 1, 4), 0);
      m.write(MmioReg.QUEUE_NOTIFY, 8, 0);
      expectReports(l, Array<BadAccess>(7).fill(BadAccess.WIDTH), 'widths');
      assert.equal(core(l).status, st);
      assert.equal(m.read(MmioReg.MAGIC_VALUE, 4), MMIO_MAGIC);
      assert.equal(m.read(MmioReg.QUEUE_SIZE_MAX, 4), 64, 'QueueSel still 0');
      await stillWorks(l, 10);
    });

    it('undefined offsets, config beyond its size, and the other version\'s registers read 0 and ignore writes', T, async () => {
      const l = await live(kind);
      const m = mmio(l);
      const cfg = core(l).device.configSize;
      const undefinedOffsets = [0x018, 0x048, 0x0c4, 0x0f8];
      for (const off of undefinedOffsets) {
        assert.equal(m.read(off, 4), 0);
        m.write(off, 4, 0xffff_ffff);
      }
      assert.equal(m.read(MmioReg.CONFIG + cfg, 1), 0);
      m.write(MmioReg.CONFIG + cfg - 2, 4, 0);
      const other = v1 ? [MmioReg.QUEUE_READY, MmioReg.QUEUE_DESC_LOW, MmioReg.CONFIG_GENERATION, MmioReg.QUEUE_RESET] : [MmioReg.QUEUE_PFN, MmioReg.GUEST_PAGE_SIZE, MmioReg.QUEUE_ALIGN];
      for (const off of other) m.write(off, 4, 1);
      for (const off of other) assert.equal(m.read(off, 4), 0);
      const got = reports(l);
      assert.equal(got.length, undefinedOffsets.length * 2 + 2 + other.length * 2);
      // Legacy ConfigGeneration is outside version 1 but reads as undefined and refuses writes as read-only.
      const allowed: BadAccess[] = [BadAccess.OFFSET, BadAccess.WRITE_ONLY, BadAccess.READ_ONLY];
      for (const r of got) assert.ok(allowed.includes(r.reason), `${r.reason} at 0x${r.offset.toString(16)}`);
      await stillWorks(l, 11);
    });

    it('read-only registers ignore writes; write-only registers read 0', T, async () => {
      const l = await live(kind);
      const m = mmio(l);
      const ro: number[] = [MmioReg.MAGIC_VALUE, MmioReg.VERSION, MmioReg.DEVICE_ID, MmioReg.VENDOR_ID, MmioReg.DEVICE_FEATURES, MmioReg.QUEUE_SIZE_MAX, MmioReg.INTERRUPT_STATUS];
      if (!v1) ro.push(MmioReg.CONFIG_GENERATION);
      const before = ro.map((o) => m.read(o, 4));
      for (const o of ro) m.write(o, 4, 0x5a5a_5a5a);
      expectReports(l, Array<BadAccess>(ro.length).fill(BadAccess.READ_ONLY), 'read-only');
      assert.deepEqual(
        ro.map((o) => m.read(o, 4)),
        before,
      );
      const wo = [MmioReg.DEVICE_FEATURES_SEL, MmioReg.DRIVER_FEATURES, MmioReg.DRIVER_FEATURES_SEL, MmioReg.QUEUE_SEL, MmioReg.QUEUE_SIZE, MmioReg.QUEUE_NOTIFY, MmioReg.INTERRUPT_ACK];
      for (const o of wo) assert.equal(m.read(o, 4), 0);
      expectReports(l, Array<BadAccess>(wo.length).fill(BadAccess.WRITE_ONLY), 'write-only');
      await stillWorks(l, 12);
    });

    it('out-of-range QueueSel: QueueSizeMax 0, writes refused; oversize QueueSize and fields of a ready queue refused', T, async () => {
      const l = await live(kind);
      const m = mmio(l);
      for (const sel of [1, 0xffff, 0xffff_ffff]) {
        m.write(MmioReg.QUEUE_SEL, 4, sel);
        assert.equal(m.read(MmioReg.QUEUE_SIZE_MAX, 4), 0);
        if (!v1) assert.equal(m.read(MmioReg.QUEUE_READY, 4), 0);
        else assert.equal(m.read(MmioReg.QUEUE_PFN, 4), 0);
        m.write(MmioReg.QUEUE_SIZE, 4, 16);
        if (!v1) {
          m.write(MmioReg.QUEUE_DESC_LOW, 4, 0x1000);
          m.write(MmioReg.QUEUE_READY, 4, 1);
        } else m.write(MmioReg.QUEUE_PFN, 4, 0x20);
        expectReports(l, Array<BadAccess>(v1 ? 2 : 3).fill(BadAccess.NO_QUEUE), `select ${sel}`);
      }
      m.write(MmioReg.QUEUE_SEL, 4, 0);
      const q = { ...core(l).queueRegisters(0)! };
      m.write(MmioReg.QUEUE_SIZE, 4, 32);
      if (!v1) {
        m.write(MmioReg.QUEUE_DESC_LOW, 4, 0x2000);
        m.write(MmioReg.QUEUE_DEVICE_HIGH, 4, 1);
        expectReports(l, Array<BadAccess>(3).fill(BadAccess.QUEUE_ENABLED), 'ready queue');
      } else {
        // Legacy: QueueNum of a live queue is refused the same way.
        expectReports(l, [BadAccess.QUEUE_ENABLED], 'live queue');
      }
      assert.deepEqual({ ...core(l).queueRegisters(0)! }, q);
      await stillWorks(l, 13);
      const f = setup(kind);
      const mf = mmio(f);
      mf.write(MmioReg.STATUS, 4, 0);
      mf.write(MmioReg.QUEUE_SEL, 4, 0);
      mf.write(MmioReg.QUEUE_SIZE, 4, 65);
      mf.write(MmioReg.QUEUE_SIZE, 4, 0);
      expectReports(f, [BadAccess.VALUE, BadAccess.VALUE], 'QueueSize above QueueSizeMax, or 0');
    });

    it('device/transport-mmio/7: notifications for a queue that is not ready, or absent, never reach the device', T, async () => {
      const l = setup(kind);
      const m = mmio(l);
      m.write(MmioReg.STATUS, 4, 0);
      m.write(MmioReg.STATUS, 4, Status.ACKNOWLEDGE | Status.DRIVER);
      m.write(MmioReg.QUEUE_NOTIFY, 4, 0);
      expectReports(l, [BadAccess.QUEUE_DISABLED], 'not ready');
      m.write(MmioReg.QUEUE_NOTIFY, 4, 7);
      expectReports(l, [BadAccess.NO_QUEUE], 'absent');
      assert.deepEqual(l.notifies, []);
      const r = await live(kind);
      const mr = mmio(r);
      const n = r.notifies.length;
      mr.write(MmioReg.STATUS, 4, 0);
      mr.write(MmioReg.QUEUE_NOTIFY, 4, 0);
      expectReports(r, [BadAccess.QUEUE_DISABLED], 'after reset');
      assert.equal(r.notifies.length, n);
    });
  });
}

// ---- CCW -----------------------------------------------------------------------------------


const EINVAL_MIN = -1; // the hypercall's error answers are negative

for (const kind of [TransportKind.CCW_REV2, TransportKind.CCW_REV1, TransportKind.CCW_REV0]) {
  describe(`bad accesses: ${kind}`, () => {
    it('device/transport-ccw/1: unknown commands end in a unit check with command reject', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      const unknown = [0x00, 0x01, 0x02, 0x04, 0x14, 0x7f, 0xff];
      for (const cmd of unknown) assert.equal(c.execute(cmd, CCW_DATA, 8).status, CcwStatus.COMMAND_REJECT, `cmd 0x${cmd.toString(16)}`);
      expectReports(l, Array<BadAccess>(unknown.length).fill(BadAccess.OFFSET), 'unknown commands');
      await stillWorks(l, 20);
    });

    it('device/transport-ccw/2 /3 /4: a count that does not match is an incorrect length (no SLI), a short one with SLI a command reject, a long one with SLI accepted', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      l.mem.fill(CCW_DATA, 64, 0);
      // READ_VQ_CONF for queue 0: 4 bytes.
      assert.equal(c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 3).status, CcwStatus.INCORRECT_LENGTH);
      assert.equal(c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 6).status, CcwStatus.INCORRECT_LENGTH);
      expectReports(l, [BadAccess.WIDTH, BadAccess.WIDTH], 'length mismatch');
      assert.equal(c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 2, CcwFlag.SLI).status, CcwStatus.COMMAND_REJECT);
      expectReports(l, [BadAccess.WIDTH], 'short with SLI');
      const long = c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 16, CcwFlag.SLI);
      assert.equal(long.status, CcwStatus.OK);
      assert.equal(long.residual, 12);
      assert.equal(l.mem.readU16(CCW_DATA + 2, false), 64, 'queue 0 max size');
      // WRITE_STATUS with a zero count: nothing is written, the status is unchanged.
      const st = core(l).status;
      assert.equal(c.execute(CcwCmd.WRITE_STATUS, CCW_DATA, 0).status, CcwStatus.INCORRECT_LENGTH);
      assert.equal(core(l).status, st);
      reports(l);
      await stillWorks(l, 21);
    });

    it('device/transport-ccw/9 /5 /6: SET_VIRTIO_REV on a live device, an unknown revision, a bad length: command reject', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      const rev = c.revision;
      // revision 2, length 0: a valid struct virtio_rev_info.
      l.mem.writeU16(CCW_DATA, 2, false);
      l.mem.writeU16(CCW_DATA + 2, 0, false);
      assert.equal(c.execute(CcwCmd.SET_VIRTIO_REV, CCW_DATA, 4).status, CcwStatus.COMMAND_REJECT);
      assert.equal(c.revision, rev, 'revision kept');
      expectReports(l, [BadAccess.MODE], 'second SET_VIRTIO_REV');
      await stillWorks(l, 22);
      // On a freshly enabled subchannel: revision 9 and revision 1 with trailing data are refused.
      const f = setup(kind);
      const cf = ccw(f);
      cf.enableSubchannel();
      f.mem.writeU16(CCW_DATA, 9, false);
      assert.equal(cf.execute(CcwCmd.SET_VIRTIO_REV, CCW_DATA, 4).status, CcwStatus.COMMAND_REJECT);
      f.mem.writeU16(CCW_DATA, 1, false);
      f.mem.writeU16(CCW_DATA + 2, 4, false);
      assert.equal(cf.execute(CcwCmd.SET_VIRTIO_REV, CCW_DATA, 8).status, CcwStatus.COMMAND_REJECT);
      assert.equal(cf.revision, -1);
      assert.equal(reports(f).length, 2);
    });

    it('device/transport-ccw/8: commands outside the selected revision are rejected', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      if (c.revision < 2) {
        assert.equal(c.execute(CcwCmd.READ_STATUS, CCW_DATA, 1).status, CcwStatus.COMMAND_REJECT);
        expectReports(l, [BadAccess.MODE], 'READ_STATUS below revision 2');
      } else {
        const o = c.execute(CcwCmd.READ_STATUS, CCW_DATA, 1);
        assert.equal(o.status, CcwStatus.OK);
        assert.equal(l.mem.readU8(CCW_DATA), core(l).status);
      }
      await stillWorks(l, 23);
    });

    it('SET_VQ and READ_VQ_CONF for an absent queue; notification hypercall for an absent or disabled queue (device/transport-ccw/16)', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      l.mem.fill(CCW_DATA, 64, 0);
      l.mem.writeU16(CCW_DATA, 5, false);
      assert.equal(c.execute(CcwCmd.READ_VQ_CONF, CCW_DATA, 4).status, CcwStatus.OK);
      assert.equal(l.mem.readU16(CCW_DATA + 2, false), 0, 'absent queue: max 0');
      // SET_VQ for queue 5 (legacy block 16 bytes: queue u64, align u32, index u16, num u16).
      l.mem.fill(CCW_DATA, 64, 0);
      const legacy = c.revision === 0;
      if (legacy) {
        l.mem.writeU32(CCW_DATA + 4, 0x20000, false);
        l.mem.writeU32(CCW_DATA + 8, 4096, false);
        l.mem.writeU16(CCW_DATA + 12, 5, false);
        l.mem.writeU16(CCW_DATA + 14, 64, false);
      } else {
        l.mem.writeU32(CCW_DATA + 4, 0x20000, false);
        l.mem.writeU16(CCW_DATA + 24, 5, false);
        l.mem.writeU16(CCW_DATA + 26, 64, false);
      }
      assert.equal(c.execute(CcwCmd.SET_VQ, CCW_DATA, legacy ? 16 : 32).status, CcwStatus.COMMAND_REJECT);
      assert.equal(reports(l).length, 1);
      // 4.3.3.2.1: the high half of GPR2 is ignored; queue 3 does not exist.
      assert.ok(c.hypercallNotify(0xdead_0000_0000 + 0x0001_0000, 3) <= EINVAL_MIN);
      expectReports(l, [BadAccess.NO_QUEUE], 'absent queue');
      assert.ok(c.hypercallNotify(0x0002_0000, 0) <= EINVAL_MIN);
      expectReports(l, [BadAccess.VALUE], 'other subchannel');
      await stillWorks(l, 24);
      // After VDEV_RESET the queue is disabled: the notification does not reach the device.
      const n = l.notifies.length;
      assert.equal(c.execute(CcwCmd.VDEV_RESET, 0, 0).status, CcwStatus.OK);
      assert.ok(c.hypercallNotify(0x0001_0000, 0) <= EINVAL_MIN);
      expectReports(l, [BadAccess.QUEUE_DISABLED], 'after VDEV_RESET');
      assert.equal(l.notifies.length, n);
    });

    it('unmapped data addresses end in a program check, never a throw', T, async () => {
      const l = await live(kind);
      const c = ccw(l);
      for (const cmd of [CcwCmd.READ_FEAT, CcwCmd.READ_CONF, CcwCmd.WRITE_CONF, CcwCmd.SET_VQ, CcwCmd.SET_IND, CcwCmd.READ_VQ_CONF]) {
        const count = cmd === CcwCmd.READ_FEAT ? 5 : cmd === CcwCmd.SET_VQ ? (c.revision === 0 ? 16 : 32) : cmd === CcwCmd.SET_IND ? 8 : 4;
        assert.equal(c.execute(cmd, MEM + 0x1000, count).status, CcwStatus.PROGRAM_CHECK, `cmd 0x${cmd.toString(16)}`);
      }
      const got = reports(l);
      assert.ok(got.length >= 6 && got.every((r) => r.reason === BadAccess.MEMORY));
      await stillWorks(l, 25);
    });
  });
}
