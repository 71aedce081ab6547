/**
 * The back-end's busy-poll window (VhostUserBackendOptions.pollUs): buffers that arrive while it
 * polls are served without a kick, driver notifications are held off during the episode and
 * re-enabled (fenced, re-checked) before it sleeps (2.7.10), the episode is bounded, and a ring
 * that breaks mid-poll ends it.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { LoopbackPlatform } from './loopback-platform.js';
import type { Platform } from '../platform/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { MAX_POLL_US, POLL_BUDGET_US, SUPPORTED_PROTOCOL_FEATURES, VhostUserBackend } from './backend.js';
import { PF } from './messages.js';
import { EchoDevice, RING, TinyDriver, makeGuest, openSession, waitEventfd, type Guest, type Session } from './test-helpers.js';
import { VirtioError } from '../errors.js';

const enc = new TextEncoder();

/** An echo device that lets a test act as the driver between passes (a driver racing the device). */
class RacingDevice extends EchoDevice {
  passes = 0;
  afterPass: ((pass: number) => void) | null = null;
  override onQueueNotify(index: number): void {
    super.onQueueNotify(index);
    this.passes++;
    this.afterPass?.(this.passes);
  }
}

async function setUp(s: Session, guest: Guest, drv: TinyDriver, features: bigint): Promise<{ kick: number; call: number }> {
  const f = s.front;
  await f.getFeatures();
  await f.setProtocolFeatures(SUPPORTED_PROTOCOL_FEATURES);
  f.needReply = (SUPPORTED_PROTOCOL_FEATURES & PF.REPLY_ACK) !== 0n;
  assert.equal(await f.setOwner(), 0);
  assert.equal(await f.setFeatures(features | (1n << 30n)), 0);
  assert.equal(await f.setMemTable([guest.region], [guest.fd]), 0);
  assert.equal(await f.setVringNum(0, drv.size), 0);
  assert.equal(await f.setVringBase(0, 0), 0);
  assert.equal(await f.setVringAddr(drv.vringAddr(0)), 0);
  const kick = s.platform.eventfd();
  const call = s.platform.eventfd();
  assert.equal(await f.setVringKick(0, kick), 0);
  assert.equal(await f.setVringCall(0, call), 0);
  assert.equal(await f.setVringEnable(0, true), 0);
  return { kick, call };
}

describe('VhostUserBackend busy-poll window (pollUs)', () => {
  let p: Platform;
  let guest: Guest;
  const sessions: Session[] = [];
  const fds: number[] = [];

  beforeEach(() => {
    p = new LoopbackPlatform();
    guest = makeGuest(p);
  });
  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
    for (const fd of fds.splice(0)) p.close(fd);
    guest.free();
  });

  async function start(dev: EchoDevice, pollUs: number, features = F.VERSION_1 | F.EVENT_IDX): Promise<{ s: Session; drv: TinyDriver; kick: number; call: number }> {
    const s = openSession(p, dev, { pollUs });
    sessions.push(s);
    const drv = new TinyDriver(guest.map.bytes, 8);
    const { kick, call } = await setUp(s, guest, drv, features);
    fds.push(kick, call);
    return { s, drv, kick, call };
  }

  it('device/split-ring/18, device/split-ring/19: buffers added while the back-end polls are served in the same episode, with avail_event held back meanwhile and set to the next avail index before sleeping', async () => {
    const dev = new RacingDevice();
    const { s, drv, kick, call } = await start(dev, MAX_POLL_US);
    const eventsSeen: number[] = [];
    dev.afterPass = (n) => {
      eventsSeen.push(drv.availEvent());
      // The driver adds the next request while the back-end is still in its episode; it would
      // not kick (avail_event says so), so only polling can find it.
      if (n < 5) drv.add(enc.encode(`r${n}`), 16, RING.data + 0x400 * n);
    };
    const before = drv.availEvent();
    drv.add(enc.encode('r0'), 16, RING.data);
    const called = waitEventfd(p, call);
    p.eventfdWrite(kick, 1);
    await called;
    await dev.waitFor(5);
    assert.equal(drv.usedIdx(), 5);
    assert.equal(dev.passes, 5, 'one pass per buffer found by polling, all after one kick');
    assert.deepEqual(eventsSeen, [before, before, before, before, before], 'notifications held off during the episode');
    assert.equal(drv.dv.getUint16(drv.usedOff, true), 0, 'flags stay 0 with EVENT_IDX');
    // The episode ended idle: notifications re-enabled, the driver kicks for the next buffer.
    assert.equal(drv.availEvent(), 5);
    assert.equal(s.backend.errorCount, 0);
  });

  it('device/split-ring/17: without EVENT_IDX the used ring flags say NO_NOTIFY during the episode and are cleared before sleeping', async () => {
    const dev = new RacingDevice();
    const { drv, kick, call } = await start(dev, MAX_POLL_US, F.VERSION_1);
    const flags: number[] = [];
    const usedFlags = (): number => drv.dv.getUint16(drv.usedOff, true);
    dev.afterPass = (n) => {
      flags.push(usedFlags());
      if (n < 3) drv.add(enc.encode('x'), 16, RING.data + 0x400 * n);
    };
    drv.add(enc.encode('x'), 16, RING.data);
    const called = waitEventfd(p, call);
    p.eventfdWrite(kick, 1);
    await called;
    await dev.waitFor(3);
    assert.deepEqual(flags, [1, 1, 1], 'VIRTQ_USED_F_NO_NOTIFY while polling');
    assert.equal(usedFlags(), 0, 'notifications enabled again');
    assert.equal(drv.usedIdx(), 3);
  });

  it('an episode fed without end yields to the event loop within its budget and the rest is served on later turns', { timeout: 20_000 }, async () => {
    const dev = new RacingDevice();
    const { drv, kick, call } = await start(dev, 1000);
    let feeding = true;
    let added = 1;
    let passesAtTimer = -1;
    let armTimer: () => void = () => undefined;
    // Armed from inside the first pass: it can only run once the episode gives the loop back.
    const timer = new Promise<void>((resolve) => {
      armTimer = () =>
        setTimeout(() => {
          passesAtTimer = dev.passes;
          feeding = false;
          resolve();
        }, 0);
    });
    dev.afterPass = (n) => {
      if (n === 1) armTimer();
      if (!feeding) return;
      added++;
      drv.add(enc.encode('y'), 16, RING.data + 0x400 * (added % 8));
    };
    drv.add(enc.encode('y'), 16, RING.data);
    const t0 = performance.now();
    p.eventfdWrite(kick, 1);
    await timer;
    // The timer ran while the device was still being fed: the episode gave the loop back.
    assert.ok(passesAtTimer > 1, `passes before the timer: ${passesAtTimer}`);
    await waitEventfd(p, call).catch(() => 0);
    await dev.waitFor(added);
    assert.equal(drv.usedIdx(), added & 0xffff);
    assert.ok(performance.now() - t0 < 5000);
    assert.ok(POLL_BUDGET_US <= 10_000);
  });

  it('a ring that breaks mid-poll ends the episode: DEVICE_NEEDS_RESET, no exception, no pass after', async () => {
    const dev = new RacingDevice();
    const { s, drv, kick } = await start(dev, 500);
    let errors = 0;
    s.backend.onError = () => errors++;
    dev.afterPass = (n) => {
      // 2.7.6: an avail idx more than the ring size ahead is a driver error.
      if (n === 2) drv.setAvailIdx(drv.usedIdx() + 100);
      else if (n === 1) drv.add(enc.encode('z'), 16, RING.data + 0x400);
    };
    drv.add(enc.encode('z'), 16, RING.data);
    p.eventfdWrite(kick, 1);
    await dev.waitFor(2);
    // Let the episode end (it is synchronous: one turn is enough) and a possible stray pass run.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.ok(s.backend.ringInfo(0)!.broken, 'ring marked broken');
    assert.ok((s.backend.status & Status.DEVICE_NEEDS_RESET) !== 0, 'DEVICE_NEEDS_RESET');
    assert.equal(dev.passes, 2, 'no pass over the broken ring');
    assert.equal(errors, 0, 'a driver error is not a device failure');
  });

  async function suspendsAfterFruitlessEpisodes(slowPasses: boolean): Promise<void> {
    const dev = new RacingDevice();
    const { drv, kick, call } = await start(dev, 100);
    let addInPass = false;
    let slow = false;
    dev.afterPass = () => {
      if (addInPass) {
        addInPass = false;
        drv.add(enc.encode('late'), 16, RING.data + 0x800);
      }
      // A pass that outlasts the episode's budget with nothing waiting after it (as when the
      // process is descheduled on a loaded machine): polling found nothing, so it is fruitless.
      if (slow) {
        const end = performance.now() + (POLL_BUDGET_US * 3) / 2000;
        while (performance.now() < end);
      }
    };
    // Baseline: with polling on, a buffer added during the pass is served in the same episode.
    addInPass = true;
    drv.add(enc.encode('a'), 16, RING.data);
    let called = waitEventfd(p, call);
    drv.setUsedEvent(drv.usedIdx());
    p.eventfdWrite(kick, 1);
    await called;
    await dev.waitFor(2);
    assert.equal(drv.usedIdx(), 2, 'polled');
    // That episode found one buffer by polling; two fruitless episodes in a row suspend polling.
    slow = slowPasses;
    for (let i = 0; i < 2; i++) {
      drv.add(enc.encode('b'), 16, RING.data);
      called = waitEventfd(p, call);
      drv.setUsedEvent(drv.usedIdx());
      p.eventfdWrite(kick, 1);
      await called;
    }
    await dev.waitFor(4);
    slow = false;
    addInPass = true;
    drv.add(enc.encode('c'), 16, RING.data);
    called = waitEventfd(p, call);
    drv.setUsedEvent(drv.usedIdx());
    p.eventfdWrite(kick, 1);
    await called;
    await new Promise((r) => setImmediate(r));
    assert.equal(drv.usedIdx(), 5, 'suspended: the buffer added during the pass waits for its kick');
    assert.equal(drv.availEvent(), 5, 'and notifications are on for it (the pass was a plain one)');
    called = waitEventfd(p, call);
    drv.setUsedEvent(drv.usedIdx());
    p.eventfdWrite(kick, 1);
    await called;
    assert.equal(drv.usedIdx(), 6);
  }

  it('polling that keeps finding nothing is suspended: the next episodes are plain passes', async () => {
    await suspendsAfterFruitlessEpisodes(false);
  });

  it('an episode whose pass outlasts the budget with nothing waiting counts as fruitless (not as busy polling)', async () => {
    await suspendsAfterFruitlessEpisodes(true);
  });

  it('pollUs is checked: 0..MAX_POLL_US', () => {
    const dev = new EchoDevice();
    for (const bad of [-1, MAX_POLL_US + 1, Number.NaN]) {
      assert.throws(() => new VhostUserBackend({ device: dev, platform: p, pollUs: bad }), VirtioError);
    }
    assert.doesNotThrow(() => new VhostUserBackend({ device: dev, platform: p, pollUs: MAX_POLL_US }));
  });
});
