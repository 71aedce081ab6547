/**
 * The x-remote wire format and link without QEMU: every message this side sends decodes back
 * to what was asked (with QEMU's own validity rules), malformed or short replies become typed
 * errors that break the link for good, and the PCI function sizes and places BARs like a BIOS
 * and never forwards an access QEMU would die of. The peer is the in-process fake platform's
 * other socket end, with replies queued before the request.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCode } from '../src/errors.js';
import { FakePlatform } from '../src/platform/fake-platform.js';
import { PciCfg } from '../src/transport/pci/constants.js';
import {
  BAR_ACCESS_SIZE,
  HEADER_SIZE,
  MAX_MESSAGE,
  XRemoteCmd,
  XRemoteConnection,
  XRemoteError,
  XRemoteFault,
  XRemotePciFunction,
  type XRemoteRequest,
  decodeReplyHeader,
  decodeRequest,
  encodeBarAccess,
  encodeConfigAccess,
  encodeHeaderOnly,
  encodeReply,
  encodeSyncSysmem,
  xRemoteQemuArgs,
} from '../src/transport/x-remote/index.js';

function expectFault(fn: () => unknown, fault: XRemoteFault, code: ErrorCode = ErrorCode.BACKEND_IO): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof XRemoteError, `expected XRemoteError, got ${String(e)}`);
    assert.equal(e.fault, fault, e.message);
    assert.equal(e.code, code);
    return true;
  });
}

/** A link over a fake socketpair; `peer` is QEMU's end. */
function fakeLink(timeoutMs = 50): { p: FakePlatform; link: XRemoteConnection; peer: number } {
  const p = new FakePlatform();
  const [mine, peer] = p.socketpair();
  return { p, link: new XRemoteConnection(p, mine, timeoutMs), peer };
}

function queueReply(p: FakePlatform, peer: number, lo: number, hi = 0): void {
  const b = new Uint8Array(HEADER_SIZE + 8);
  p.sendmsg(peer, b, 0, encodeReply(b, lo, hi));
}

/** Every request the link sent, decoded, with the fds that came with each (closed). */
function drainRequests(p: FakePlatform, peer: number): { req: XRemoteRequest; fds: number }[] {
  const out: { req: XRemoteRequest; fds: number }[] = [];
  const buf = new Uint8Array(MAX_MESSAGE);
  for (;;) {
    const h = p.recvmsg(peer, buf, 0, HEADER_SIZE, 8);
    if (h.bytes <= 0) return out;
    assert.equal(h.bytes, HEADER_SIZE);
    const size = new DataView(buf.buffer).getUint32(8, true);
    if (size > 0) assert.equal(p.recvmsg(peer, buf, HEADER_SIZE, size, 0).bytes, size);
    out.push({ req: decodeRequest(buf.subarray(0, HEADER_SIZE + size), h.fds.length), fds: h.fds.length });
    for (const fd of h.fds) p.close(fd);
  }
}

describe('x-remote codec', () => {
  it('config and BAR accesses round-trip through decodeRequest (QEMU 7.2 sizes: 12 and 24 bytes)', () => {
    const buf = new Uint8Array(MAX_MESSAGE);
    fc.assert(
      fc.property(fc.boolean(), fc.integer({ min: 0, max: 255 }), fc.constantFrom(1, 2, 4), fc.nat({ max: 0xffff_ffff }), (write, addr, len, value) => {
        const n = encodeConfigAccess(buf, write, addr, len, value);
        assert.equal(n, HEADER_SIZE + 12);
        assert.deepEqual(decodeRequest(buf.subarray(0, n), 0), { cmd: write ? XRemoteCmd.PCI_CFGWRITE : XRemoteCmd.PCI_CFGREAD, addr, value: write ? value : 0, len });
      }),
    );
    fc.assert(
      fc.property(fc.boolean(), fc.nat({ max: 2 ** 52 }), fc.constantFrom(1, 2, 4, 8), fc.boolean(), fc.nat({ max: 2 ** 52 }), (write, addr, size, memory, value) => {
        const n = encodeBarAccess(buf, write, addr, size, memory, value);
        assert.equal(n, HEADER_SIZE + BAR_ACCESS_SIZE);
        assert.deepEqual(decodeRequest(buf.subarray(0, n), 0), { cmd: write ? XRemoteCmd.BAR_WRITE : XRemoteCmd.BAR_READ, addr, value: write ? value : 0, size, memory });
      }),
    );
  });

  it('SYNC_SYSMEM carries up to 7 regions (QEMU refuses 8 fds); SET_IRQFD and DEVICE_RESET are header-only', () => {
    const buf = new Uint8Array(MAX_MESSAGE);
    const regions = [
      { gpa: 0x10_0000, size: 16 << 20, offset: 0 },
      { gpa: 2 ** 33, size: 4096, offset: 2 ** 32 + 4096 },
    ];
    const n = encodeSyncSysmem(buf, regions);
    assert.equal(n, HEADER_SIZE + 192);
    assert.deepEqual(decodeRequest(buf.subarray(0, n), 2), { cmd: XRemoteCmd.SYNC_SYSMEM, regions });
    expectFault(() => encodeSyncSysmem(buf, []), XRemoteFault.BAD_REQUEST, ErrorCode.INVALID_ARGUMENT);
    expectFault(() => encodeSyncSysmem(buf, new Array(8).fill(regions[0])), XRemoteFault.BAD_REQUEST, ErrorCode.INVALID_ARGUMENT);
    expectFault(() => encodeSyncSysmem(buf, [{ gpa: -1, size: 1, offset: 0 }]), XRemoteFault.BAD_REQUEST, ErrorCode.INVALID_ARGUMENT);
    assert.equal(encodeHeaderOnly(buf, XRemoteCmd.SET_IRQFD), HEADER_SIZE);
    assert.deepEqual(decodeRequest(buf.subarray(0, HEADER_SIZE), 2), { cmd: XRemoteCmd.SET_IRQFD });
    // QEMU's validity rules: SET_IRQFD needs exactly two fds, BAR accesses none.
    expectFault(() => decodeRequest(buf.subarray(0, HEADER_SIZE), 1), XRemoteFault.BAD_REQUEST, ErrorCode.INVALID_ARGUMENT);
    const b = encodeBarAccess(buf, false, 0, 4, true);
    expectFault(() => decodeRequest(buf.subarray(0, b), 1), XRemoteFault.BAD_REQUEST, ErrorCode.INVALID_ARGUMENT);
    expectFault(() => decodeRequest(buf.subarray(0, b - 1), 0), XRemoteFault.BAD_REQUEST, ErrorCode.INVALID_ARGUMENT);
  });

  it('reply headers: RET with 0 or 8 bytes and no fds, anything else a typed error', () => {
    const buf = new Uint8Array(HEADER_SIZE + 8);
    encodeReply(buf, 5);
    assert.equal(decodeReplyHeader(buf, 0), 8);
    expectFault(() => decodeReplyHeader(buf, 1), XRemoteFault.UNEXPECTED_FDS);
    expectFault(() => decodeReplyHeader(buf.subarray(0, 10), 0), XRemoteFault.PEER_CLOSED);
    const dv = new DataView(buf.buffer);
    dv.setInt32(0, XRemoteCmd.BAR_READ, true);
    expectFault(() => decodeReplyHeader(buf, 0), XRemoteFault.BAD_COMMAND);
    encodeReply(buf, 5);
    dv.setUint32(8, 12, true);
    expectFault(() => decodeReplyHeader(buf, 0), XRemoteFault.BAD_SIZE);
    dv.setUint32(8, 8, true);
    dv.setUint32(12, 1, true); // 2^32 + 8: never buffered
    expectFault(() => decodeReplyHeader(buf, 0), XRemoteFault.BAD_SIZE);
  });

  it('the QEMU command line names the device, the link fd and the QMP socket', () => {
    const args = xRemoteQemuArgs({ device: 'virtio-scsi-pci', deviceProps: 'num_queues=1', qemuArgs: ['-blockdev', 'x'], childDevices: ['scsi-hd,bus=xr0.0,drive=d0'] }, '/tmp/q.sock');
    assert.ok(args.join(' ').includes('-machine x-remote -accel tcg'));
    assert.ok(args.includes('virtio-scsi-pci,id=xr0,num_queues=1'));
    assert.ok(args.indexOf('scsi-hd,bus=xr0.0,drive=d0') > args.indexOf('virtio-scsi-pci,id=xr0,num_queues=1'), 'children after their bus');
    assert.ok(args.includes('x-remote-object,id=xro0,devid=xr0,fd=3'));
    assert.ok(args.includes('unix:/tmp/q.sock,server=on,wait=off'));
    assert.ok(args.indexOf('-blockdev') < args.indexOf('-device'), 'backends come before the device that uses them');
  });
});

describe('x-remote link', () => {
  it('a read returns the reply value; a write sends its value and accepts a 0 reply', () => {
    const { p, link, peer } = fakeLink();
    queueReply(p, peer, 0x1af4);
    assert.equal(link.configRead(0, 2), 0x1af4);
    queueReply(p, peer, 0);
    link.barWrite(0xe000_0014, 1, true, 0x0f);
    queueReply(p, peer, 0x89ab_cdef, 0x0012_3456);
    assert.equal(link.barRead(0xe000_0000, 8, true), 0x0012_3456_89ab_cdef);
    assert.equal(link.roundTrips, 3);
    const sent = drainRequests(p, peer).map((r) => r.req);
    assert.deepEqual(sent, [
      { cmd: XRemoteCmd.PCI_CFGREAD, addr: 0, value: 0, len: 2 },
      { cmd: XRemoteCmd.BAR_WRITE, addr: 0xe000_0014, value: 0x0f, size: 1, memory: true },
      { cmd: XRemoteCmd.BAR_READ, addr: 0xe000_0000, value: 0, size: 8, memory: true },
    ]);
  });

  it('SYNC_SYSMEM and SET_IRQFD pass their fds and wait for no reply', () => {
    const { p, link, peer } = fakeLink();
    const mem = p.memfd('ram', 4096);
    const a = p.eventfd();
    const b = p.eventfd();
    link.syncSysmem([{ gpa: 0x10_0000, size: 4096, offset: 0 }], [mem]);
    link.setIrqfd(a, b);
    const sent = drainRequests(p, peer);
    assert.deepEqual(sent, [
      { req: { cmd: XRemoteCmd.SYNC_SYSMEM, regions: [{ gpa: 0x10_0000, size: 4096, offset: 0 }] }, fds: 1 },
      { req: { cmd: XRemoteCmd.SET_IRQFD }, fds: 2 },
    ]);
    expectFault(() => link.syncSysmem([{ gpa: 0, size: 4096, offset: 0 }], []), XRemoteFault.BAD_REQUEST, ErrorCode.INVALID_ARGUMENT);
    for (const fd of [mem, a, b]) p.close(fd);
  });

  const broken: [string, (p: FakePlatform, peer: number) => void, XRemoteFault, ErrorCode?][] = [
    ['no reply: TIMEOUT', () => undefined, XRemoteFault.TIMEOUT, ErrorCode.TIMEOUT],
    ['peer gone: PEER_CLOSED', (p, peer) => p.close(peer), XRemoteFault.PEER_CLOSED],
    [
      'half a reply then gone: PEER_CLOSED',
      (p, peer) => {
        const b = new Uint8Array(24);
        encodeReply(b, 0x1af4);
        p.sendmsg(peer, b, 0, 20);
        p.close(peer);
      },
      XRemoteFault.PEER_CLOSED,
    ],
    [
      'a request echoed back: BAD_COMMAND',
      (p, peer) => {
        const b = new Uint8Array(64);
        p.sendmsg(peer, b, 0, encodeConfigAccess(b, false, 0, 2));
      },
      XRemoteFault.BAD_COMMAND,
    ],
    [
      'a reply with fds: UNEXPECTED_FDS (and the fds are closed)',
      (p, peer) => {
        const b = new Uint8Array(24);
        const e = p.eventfd();
        p.sendmsg(peer, b, 0, encodeReply(b, 0), [e]);
        p.close(e);
      },
      XRemoteFault.UNEXPECTED_FDS,
    ],
    ['UINT64_MAX: DEVICE_ERROR', (p, peer) => queueReply(p, peer, 0xffff_ffff, 0xffff_ffff), XRemoteFault.DEVICE_ERROR],
  ];
  for (const [name, setup, fault, code] of broken) {
    it(`${name}, and the link stays broken`, () => {
      const { p, link, peer } = fakeLink();
      const before = p.openFdCount();
      setup(p, peer);
      expectFault(() => link.configRead(0, 2), fault, code);
      assert.equal(link.isOpen, false);
      // Nothing after a failure can be trusted to be in step: every later request fails at once.
      if (fault !== XRemoteFault.PEER_CLOSED) queueReply(p, peer, 0x1af4);
      expectFault(() => link.configRead(0, 2), fault, code);
      assert.ok(p.openFdCount() <= before, 'no fd received with a bad reply is kept');
      link.close();
      expectFault(() => link.configRead(0, 2), XRemoteFault.CLOSED);
    });
  }

  it('a non-zero reply to a write is the device refusing it', () => {
    const { p, link, peer } = fakeLink();
    queueReply(p, peer, 1);
    expectFault(() => link.configWrite(4, 2, 7), XRemoteFault.DEVICE_ERROR);
  });
});

describe('x-remote PCI function', () => {
  /** Replies for assignBars: BAR0 I/O of 64 bytes, BAR1 32-bit memory of 4 KiB, BAR4+5 64-bit of 16 KiB. */
  function barReplies(p: FakePlatform, peer: number): void {
    const probes = [0xffff_ffc1, 0xffff_f000, 0, 0, 0xffff_c00c];
    for (let i = 0; i < 6; i++) {
      if (i === 5) break; // BAR5 is BAR4's upper half
      queueReply(p, peer, 0); // write all ones
      queueReply(p, peer, probes[i]!); // read back
      if (i === 4) {
        queueReply(p, peer, 0);
        queueReply(p, peer, 0xffff_ffff);
      }
      if (probes[i] !== 0) {
        queueReply(p, peer, 0); // base (low)
        if (i === 4) queueReply(p, peer, 0); // base (high)
      }
    }
    queueReply(p, peer, 0x0400); // command
    queueReply(p, peer, 0);
  }

  it('assignBars sizes every BAR and places it naturally aligned in its window, then enables decoding', () => {
    const { p, link, peer } = fakeLink();
    barReplies(p, peer);
    const fn = new XRemotePciFunction(link);
    fn.assignBars({ memoryBase: 0xe000_0800, ioBase: 0xc010 });
    assert.deepEqual(fn.bars, [
      { index: 0, io: true, is64: false, size: 64, base: 0xc040 },
      { index: 1, io: false, is64: false, size: 4096, base: 0xe000_1000 },
      null,
      null,
      { index: 4, io: false, is64: true, size: 16384, base: 0xe000_4000 },
      null,
    ]);
    const writes = drainRequests(p, peer)
      .map((r) => r.req)
      .filter((r) => r.cmd === XRemoteCmd.PCI_CFGWRITE && r.value !== 0xffff_ffff)
      .map((r) => (r.cmd === XRemoteCmd.PCI_CFGWRITE ? [r.addr, r.value] : []));
    assert.deepEqual(writes, [
      [PciCfg.BAR0, 0xc040],
      [PciCfg.BAR0 + 4, 0xe000_1000],
      [PciCfg.BAR0 + 16, 0xe000_4000],
      [PciCfg.BAR0 + 20, 0],
      [PciCfg.COMMAND, 0x0403],
    ]);
  });

  it('accesses QEMU would die of never leave this side: reads give all ones, writes are dropped', () => {
    const { p, link, peer } = fakeLink();
    barReplies(p, peer);
    const fn = new XRemotePciFunction(link);
    fn.assignBars();
    drainRequests(p, peer);
    const sentBefore = link.roundTrips;
    assert.equal(fn.configRead(0xfd, 1), 0xff, 'QEMU checks offset + 4 against 256');
    assert.equal(fn.configRead(0x40, 3), 0xff);
    fn.configWrite(256, 4, 0);
    assert.equal(fn.barRead(2, 0, 4), 0xffff_ffff, 'no BAR2');
    assert.equal(fn.barRead(0, 63, 2), 0xffff, 'past the end of BAR0');
    fn.barWrite(4, 16384, 1, 0);
    fn.barWrite(4, 0, 3, 0);
    assert.equal(fn.badAccesses, 7);
    assert.equal(link.roundTrips, sentBefore);
    assert.deepEqual(drainRequests(p, peer), []);
    // A good access goes out to the BAR's bus address, in the right space.
    queueReply(p, peer, 0x1234);
    assert.equal(fn.barRead(0, 0x12, 2), 0x1234);
    assert.deepEqual(drainRequests(p, peer)[0]?.req, { cmd: XRemoteCmd.BAR_READ, addr: 0xc012, value: 0, size: 2, memory: false });
  });
});
