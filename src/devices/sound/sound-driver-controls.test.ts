import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtioError } from '../../errors.js';
import { SoundCode, SoundCtlAccess, SoundCtlEventMask, SoundCtlType, SoundQueue, SoundStatus } from '../../spec/sound.js';
import { SoundDevice } from './sound-device.js';
import { SoundDriver, SoundRequestError } from './sound-driver.js';
import type { SoundControlTlv } from './sound-elements.js';
import { type PostedBuffer, recordingContext, soundPairOf, u32 } from './sound-test-support.js';

const T = { timeout: 20_000 };
const { READ, WRITE, TLV_READ, TLV_WRITE, TLV_COMMAND } = SoundCtlAccess;

type Ids = Record<'none' | 'readOnly' | 'writeOnly' | 'tlvReadOnly' | 'tlvWriteOnly' | 'tlvCommandOnly' | 'wide' | 'bytes', number>;

/** A device with one element per access combination the rules need, and a driver whose buffers are recorded. */
function rig(): { drv: SoundDriver; device: SoundDevice; sent: (code: number) => PostedBuffer[]; ids: Ids; commands: SoundControlTlv[] } {
  const device = new SoundDevice();
  const commands: SoundControlTlv[] = [];
  const tlv = { type: 1, value: [7] };
  const ids: Ids = {
    none: device.addControl({ name: 'No Access', type: SoundCtlType.INTEGER, min: 0, max: 9, access: 0 }),
    readOnly: device.addControl({ name: 'Read Only', type: SoundCtlType.INTEGER, min: 0, max: 9, access: READ, value: [5] }),
    writeOnly: device.addControl({ name: 'Write Only', type: SoundCtlType.INTEGER, min: 0, max: 9, access: WRITE }),
    tlvReadOnly: device.addControl({ name: 'TLV Read', type: SoundCtlType.BOOLEAN, access: READ | TLV_READ, tlv }),
    tlvWriteOnly: device.addControl({ name: 'TLV Write', type: SoundCtlType.BOOLEAN, access: TLV_WRITE, tlv }),
    tlvCommandOnly: device.addControl({ name: 'TLV Command', type: SoundCtlType.BOOLEAN, access: TLV_COMMAND, onTlvCommand: (t) => void commands.push(t) }),
    wide: device.addControl({ name: 'Wide', type: SoundCtlType.INTEGER64, count: 2, min: -(1n << 40n), max: 1n << 40n, access: READ | WRITE }),
    bytes: device.addControl({ name: 'Bytes', type: SoundCtlType.BYTES, count: 3, access: READ | WRITE }),
  };
  const { pair } = soundPairOf(device);
  const posted: PostedBuffer[] = [];
  const drv = new SoundDriver(recordingContext(pair.ctx, posted), { eventBuffers: 4 });
  const sent = (code: number): PostedBuffer[] => posted.filter((p) => p.queue === SoundQueue.CONTROLQ && p.outBytes.length >= 4 && u32(p.outBytes, 0) === code);
  return { drv, device, sent, ids, commands };
}

describe('SoundDriver control elements', T, () => {
  it('driver/sound/16 driver/sound/17: CTL_READ only with ACCESS_READ, CTL_WRITE only with ACCESS_WRITE; values of every type round-trip', async () => {
    const { drv, device, sent, ids } = rig();
    assert.equal(drv.config.controls, 13);
    await assert.rejects(drv.controlElements.read(ids.writeOnly), VirtioError);
    await assert.rejects(drv.controlElements.read(ids.none), VirtioError);
    await assert.rejects(drv.controlElements.write(ids.readOnly, [1]), VirtioError);
    await assert.rejects(drv.controlElements.write(ids.none, [1]), VirtioError);
    assert.equal(sent(SoundCode.R_CTL_READ).length, 0, 'no READ sent');
    assert.equal(sent(SoundCode.R_CTL_WRITE).length, 0, 'no WRITE sent');
    assert.deepEqual(await drv.controlElements.read(ids.readOnly), [5]);
    await drv.controlElements.write(ids.writeOnly, [8]);
    assert.deepEqual(device.controlValue(ids.writeOnly), [8]);
    assert.deepEqual(
      sent(SoundCode.R_CTL_WRITE).map((b) => [b.outBytes.length, b.inn]),
      [[8 + 512, [4]]],
    );
    await drv.controlElements.write(ids.wide, [-(1n << 40n), 12345678901n]);
    assert.deepEqual(await drv.controlElements.read(ids.wide), [-(1n << 40n), 12345678901n]);
    await drv.controlElements.write(ids.bytes, Uint8Array.of(1, 2, 255));
    assert.deepEqual([...(await drv.controlElements.read(ids.bytes))], [1, 2, 255]);
    // Wrong member count or kind: refused before sending.
    await assert.rejects(drv.controlElements.write(ids.wide, [1, 2]), VirtioError);
    await assert.rejects(drv.controlElements.write(ids.bytes, [1, 2]), VirtioError);
    // A value the device refuses comes back as its status.
    await assert.rejects(drv.controlElements.write(ids.writeOnly, [10]), (e: unknown) => e instanceof SoundRequestError && e.status === SoundStatus.BAD_MSG);
    assert.equal(sent(SoundCode.R_CTL_READ).length, 3);
  });

  it('driver/sound/18 driver/sound/19 driver/sound/20: TLV_READ / TLV_WRITE / TLV_COMMAND only with their access rights', async () => {
    const { drv, device, sent, ids, commands } = rig();
    for (const id of [ids.none, ids.tlvWriteOnly, ids.tlvCommandOnly]) await assert.rejects(drv.controlElements.tlvRead(id), VirtioError);
    for (const id of [ids.none, ids.tlvReadOnly, ids.tlvCommandOnly]) await assert.rejects(drv.controlElements.tlvWrite(id, { type: 1, value: [1] }), VirtioError);
    for (const id of [ids.none, ids.tlvReadOnly, ids.tlvWriteOnly]) await assert.rejects(drv.controlElements.tlvCommand(id, { type: 1, value: [1] }), VirtioError);
    for (const code of [SoundCode.R_CTL_TLV_READ, SoundCode.R_CTL_TLV_WRITE, SoundCode.R_CTL_TLV_COMMAND]) assert.equal(sent(code).length, 0, `0x${code.toString(16)} not sent`);
    assert.deepEqual(await drv.controlElements.tlvRead(ids.tlvReadOnly), { type: 1, value: [7] });
    await drv.controlElements.tlvWrite(ids.tlvWriteOnly, { type: 2, value: [3, 4] });
    assert.deepEqual(device.controlTlv(ids.tlvWriteOnly), { type: 2, value: [3, 4] });
    await drv.controlElements.tlvCommand(ids.tlvCommandOnly, { type: 9, value: [0xdeadbeef] });
    assert.deepEqual(commands, [{ type: 9, value: [0xdeadbeef] }]);
    assert.deepEqual(
      [SoundCode.R_CTL_TLV_READ, SoundCode.R_CTL_TLV_WRITE, SoundCode.R_CTL_TLV_COMMAND].map((c) => sent(c).map((b) => b.outBytes.length)),
      [[8], [8 + 8 + 8], [8 + 8 + 4]],
    );
  });

  it('driver/sound/21: a TLV value above 65536 bytes is never submitted; exactly 65536 is', async () => {
    const { drv, device, sent, ids } = rig();
    const big = { type: 1, value: new Array<number>(16385).fill(1) };
    await assert.rejects(drv.controlElements.tlvWrite(ids.tlvWriteOnly, big), VirtioError);
    await assert.rejects(drv.controlElements.tlvCommand(ids.tlvCommandOnly, big), VirtioError);
    await assert.rejects(drv.controlElements.tlvRead(ids.tlvReadOnly, 65540), VirtioError);
    assert.equal(sent(SoundCode.R_CTL_TLV_WRITE).length + sent(SoundCode.R_CTL_TLV_COMMAND).length + sent(SoundCode.R_CTL_TLV_READ).length, 0);
    await drv.controlElements.tlvWrite(ids.tlvWriteOnly, { type: 1, value: new Array<number>(16384).fill(2) });
    assert.equal(device.controlTlv(ids.tlvWriteOnly)!.value.length, 16384);
    for (const b of sent(SoundCode.R_CTL_TLV_WRITE)) assert.ok(u32(b.outBytes, 12) <= 65536);
  });

  it('information, items and notifications: the standard elements as the driver sees them; CTL_NOTIFY decoded', async () => {
    const { drv, device } = rig();
    const infos = await drv.controlElements.info();
    assert.deepEqual(
      infos.slice(0, 5).map((i) => [i.name, i.index, i.type, i.access]),
      [
        ['PCM Playback Volume', 0, SoundCtlType.INTEGER, READ | WRITE | TLV_READ],
        ['PCM Playback Switch', 0, SoundCtlType.BOOLEAN, READ | WRITE],
        ['PCM Capture Volume', 1, SoundCtlType.INTEGER, READ | WRITE | TLV_READ],
        ['PCM Capture Switch', 1, SoundCtlType.BOOLEAN, READ | WRITE],
        ['PCM Capture Source', 1, SoundCtlType.ENUMERATED, READ | WRITE],
      ],
    );
    assert.deepEqual(await drv.controlElements.enumItems(4), ['Host Input', 'Silence']);
    await assert.rejects(drv.controlElements.enumItems(0), VirtioError);
    await assert.rejects(drv.controlElements.info(10, 4), VirtioError);
    const e = drv.nextEvent();
    device.setControlActive(1, false);
    const got = await e;
    assert.deepEqual([got.code, got.controlId, got.mask], [SoundCode.EVT_CTL_NOTIFY, 1, SoundCtlEventMask.INFO]);
  });
});
