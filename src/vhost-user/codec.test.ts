import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  VhostUserError,
  VhostUserFault,
  checkRequestSize,
  decodeConfig,
  decodeHeader,
  decodeInflight,
  decodeLog,
  decodeMemRegMsg,
  decodeMemoryTable,
  decodeU64,
  decodeU64Big,
  decodeVringAddr,
  decodeVringArea,
  decodeVringState,
  decodeIotlb,
  decodeDeviceState,
  encodeConfig,
  encodeInflight,
  encodeLog,
  encodeMemRegMsg,
  encodeMemoryTable,
  encodeMessage,
  encodeU64,
  encodeVringAddr,
  encodeVringArea,
  encodeVringState,
  encodeIotlb,
  encodeDeviceState,
  REQUEST_PAYLOAD,
} from './codec.js';
import { FrontendReq, HEADER_SIZE, PF, PayloadSize, ProtocolFeature, VHOST_USER_F_PROTOCOL_FEATURES } from './messages.js';

function refused(fn: () => unknown, reason: string): void {
  assert.throws(fn, (e: unknown) => e instanceof VhostUserError && e.code === 'VHOST_USER_PROTOCOL' && e.reason === reason);
}

describe('vhost-user messages', () => {
  it('has every request and protocol feature of the rst with the right numbers', () => {
    assert.equal(FrontendReq.GET_FEATURES, 1);
    assert.equal(FrontendReq.SET_BACKEND_REQ_FD, 21);
    assert.equal(FrontendReq.GET_INFLIGHT_FD, 31);
    assert.equal(FrontendReq.RESET_DEVICE, 34);
    assert.equal(FrontendReq.VRING_KICK, 35);
    assert.equal(FrontendReq.GET_STATUS, 40);
    assert.equal(ProtocolFeature.STATUS, 16);
    assert.equal(ProtocolFeature.CONFIGURE_MEM_SLOTS, 15);
    assert.equal(PF.INFLIGHT_SHMFD, 1n << 12n);
    assert.equal(VHOST_USER_F_PROTOCOL_FEATURES, 30);
    for (let r = 1; r <= 43; r++) assert.ok(REQUEST_PAYLOAD.has(r), `request ${r} has a size rule`);
  });
});

describe('vhost-user codec', () => {
  it('round-trips every fixed layout', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), fc.nat({ max: 2 ** 40 }), fc.nat(255), fc.nat(0xffff), (a, b, i, n) => {
        assert.deepEqual(decodeVringState(0, encodeVringState({ index: i, num: n })), { index: i, num: n });
        const addr = { index: i, flags: 1, descUser: a, usedUser: b, availUser: a + 1, logGuest: b + 2 };
        assert.deepEqual(decodeVringAddr(0, encodeVringAddr(addr)), addr);
        const reg = { guestAddr: a, size: b + 1, userAddr: b, mmapOffset: a };
        assert.deepEqual(decodeMemRegMsg(0, encodeMemRegMsg(reg)), reg);
        assert.deepEqual(decodeMemoryTable(0, encodeMemoryTable([reg, reg])), [reg, reg]);
        assert.deepEqual(decodeLog(0, encodeLog({ size: a, offset: b })), { size: a, offset: b });
        const inf = { mmapSize: a, mmapOffset: b, numQueues: i, queueSize: n };
        assert.deepEqual(decodeInflight(0, encodeInflight(inf)), inf);
        assert.deepEqual(decodeVringArea(0, encodeVringArea({ u64: i, size: a, offset: b })), { u64: i, size: a, offset: b });
        const io = { iova: a, size: b, userAddr: a, perm: 3, type: 2 };
        assert.deepEqual(decodeIotlb(0, encodeIotlb(io)), io);
        assert.deepEqual(decodeDeviceState(0, encodeDeviceState({ direction: 1, phase: 0 })), { direction: 1, phase: 0 });
        assert.equal(decodeU64(0, encodeU64(a)), a);
      }),
    );
  });

  it('has the C payload sizes', () => {
    assert.equal(encodeVringAddr({ index: 0, flags: 0, descUser: 0, usedUser: 0, availUser: 0, logGuest: 0 }).length, 40);
    assert.equal(encodeInflight({ mmapSize: 0, mmapOffset: 0, numQueues: 0, queueSize: 0 }).length, 24);
    assert.equal(encodeMemoryTable([{ guestAddr: 0, size: 1, userAddr: 0, mmapOffset: 0 }]).length, 40);
    assert.equal(encodeMemRegMsg({ guestAddr: 0, size: 1, userAddr: 0, mmapOffset: 0 }).length, 40);
  });

  it('keeps u64 feature sets whole as bigint', () => {
    const v = (1n << 63n) | (1n << 32n) | 5n;
    assert.equal(decodeU64Big(0, encodeU64(v)), v);
  });

  it('encodes a header with version 1 and size', () => {
    const m = encodeMessage(FrontendReq.GET_FEATURES, 1 | 4, encodeU64(7n));
    assert.equal(m.length, HEADER_SIZE + 8);
    assert.deepEqual(decodeHeader(m), { request: 1, flags: 5, size: 8 });
  });

  it('refuses payloads of the wrong size for every fixed-size request', () => {
    for (const [req, rule] of REQUEST_PAYLOAD) {
      if (rule === 'var') continue;
      checkRequestSize(req, rule);
      refused(() => checkRequestSize(req, rule + 1), VhostUserFault.BAD_SIZE);
      if (rule > 0) refused(() => checkRequestSize(req, rule - 1), VhostUserFault.BAD_SIZE);
    }
  });

  it('refuses unknown requests', () => {
    refused(() => checkRequestSize(0, 0), VhostUserFault.UNKNOWN_REQUEST);
    refused(() => checkRequestSize(999, 0), VhostUserFault.UNKNOWN_REQUEST);
  });

  it('refuses memory tables with a size that does not match num_regions, or 0 or 9 regions', () => {
    const reg = { guestAddr: 0, size: 4096, userAddr: 0, mmapOffset: 0 };
    const t = encodeMemoryTable([reg, reg]);
    refused(() => decodeMemoryTable(5, t.subarray(0, t.length - 1)), VhostUserFault.BAD_SIZE);
    refused(() => decodeMemoryTable(5, t.subarray(0, 4)), VhostUserFault.BAD_SIZE);
    const full = new Uint8Array(8 + 32 * 9);
    new DataView(full.buffer).setUint32(0, 9, true);
    refused(() => decodeMemoryTable(5, full), VhostUserFault.BAD_VALUE);
    refused(() => decodeMemoryTable(5, new Uint8Array(8)), VhostUserFault.BAD_VALUE);
  });

  it('refuses config messages whose size field disagrees with the payload or exceeds 256', () => {
    const c = encodeConfig({ offset: 0, size: 4, flags: 0, data: new Uint8Array(4) });
    assert.equal(decodeConfig(24, c).size, 4);
    refused(() => decodeConfig(24, c.subarray(0, 15)), VhostUserFault.BAD_SIZE);
    const big = new Uint8Array(12 + 300);
    new DataView(big.buffer).setUint32(4, 300, true);
    refused(() => decodeConfig(24, big), VhostUserFault.BAD_VALUE);
    refused(() => decodeConfig(24, new Uint8Array(3)), VhostUserFault.BAD_SIZE);
  });

  it('refuses addresses above 2^53 rather than rounding them', () => {
    const p = encodeU64((1n << 60n) + 1n);
    refused(() => decodeU64(0, p), VhostUserFault.BAD_VALUE);
  });

  it('never throws anything but VhostUserError on arbitrary payloads', () => {
    const decoders = [decodeVringState, decodeVringAddr, decodeMemoryTable, decodeMemRegMsg, decodeLog, decodeInflight, decodeConfig, decodeU64];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const d of decoders) {
          try {
            d(0, bytes);
          } catch (e) {
            assert.ok(e instanceof VhostUserError);
          }
        }
      }),
    );
    assert.equal(PayloadSize.MEM_REG_MSG, 40);
  });
});
