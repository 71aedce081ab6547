import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../cli/args.js';
import { CliError, CliFault } from '../../cli/options.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDir } from '../../cli/cli-test-helpers.js';
import { EvCode, EvType, InputConfigSelect } from '../../spec/input.js';
import { createLoopback } from '../../testing/loopback.js';
import { parseEventLine, parseInputLine } from './input-command.js';
import { InputDriver } from './input-driver.js';
import { parseInputProfile } from './input-json.js';
import { createInputDevice } from './input-type.js';

const PAD = {
  name: 'drawing pad',
  serial: 'PAD-7',
  ids: { bustype: 3, vendor: 0x1234, product: 0x5678, version: 2 },
  properties: ['INPUT_PROP_DIRECT'],
  events: { EV_KEY: ['BTN_TOUCH', 'BTN_TOOL_PEN'], EV_ABS: ['ABS_X', 'ABS_Y', 'ABS_PRESSURE'], 17: [1] },
  abs: { ABS_X: { min: 0, max: 4095, res: 20 }, ABS_Y: { min: 0, max: 2047 }, ABS_PRESSURE: { min: 0, max: 255, fuzz: 2, flat: 1 } },
};

describe('virtio-ts input: command line', () => {
  it('parses --preset and --name with the back-end options; refuses an unknown preset', () => {
    const p = parseCommandLine(['input', '--socket-path', 'i.sock', '--preset', 'tablet', '--name', 'pad']);
    assert.equal(p.kind, 'device');
    const o = (p as unknown as { options: { preset: string; name?: string; socketPath: string } }).options;
    assert.equal(o.preset, 'tablet');
    assert.equal(o.name, 'pad');
    assert.equal(o.socketPath, 'i.sock');
    assert.equal((parseCommandLine(['input', '--socket-path', 'i.sock']) as unknown as { options: { preset: string } }).options.preset, 'keyboard');
    assert.throws(
      () => parseCommandLine(['input', '--socket-path', 'i.sock', '--preset', 'joystick']),
      (e: unknown) => e instanceof CliError && e.fault === CliFault.BAD_VALUE && e.command === 'input',
    );
  });

  it('input lines: "TYPE CODE VALUE", "SYN" or "0 0 0" end an update, anything else is refused', () => {
    assert.deepEqual(parseInputLine('1 30 1'), { type: 1, code: 30, value: 1 });
    assert.deepEqual(parseInputLine(' 2 0 -5 '), { type: 2, code: 0, value: -5 });
    assert.equal(parseInputLine('SYN'), 'syn');
    assert.equal(parseInputLine('0 0 0'), 'syn');
    assert.equal(parseInputLine(''), null);
    assert.equal(parseInputLine('1 30'), null);
    assert.equal(parseInputLine('1 x 1'), null);
    assert.equal(parseInputLine('70000 1 1'), null);
    assert.equal(parseInputLine('1 1 4294967296'), null);
  });

  it('JSON event lines: names or numbers, {"syn":true} or EV_SYN ends an update; malformed lines are refused', () => {
    assert.deepEqual(parseEventLine('{"type":"EV_KEY","code":"KEY_A","value":1}'), { type: EvType.KEY, code: EvCode.KEY_A, value: 1 });
    assert.deepEqual(parseEventLine(' {"type":2,"code":8,"value":-1} '), { type: EvType.REL, code: EvCode.REL_WHEEL, value: -1 });
    assert.deepEqual(parseEventLine('{"type":"EV_ABS","code":"ABS_Y","value":32767}'), { type: EvType.ABS, code: 1, value: 32767 });
    assert.deepEqual(parseEventLine('{"type":"EV_KEY","code":"BTN_LEFT","value":0}'), { type: EvType.KEY, code: 0x110, value: 0 });
    assert.deepEqual(parseEventLine('{"type":"EV_KEY","code":"KEY_Z","value":2}'), { type: EvType.KEY, code: 44, value: 2 });
    assert.equal(parseEventLine('{"syn":true}'), 'syn');
    assert.equal(parseEventLine('{"type":"EV_SYN","code":"SYN_REPORT","value":0}'), 'syn');
    assert.deepEqual(parseEventLine('1 30 1'), { type: 1, code: 30, value: 1 }, 'the text form still works');
    for (const bad of ['{"type":"EV_KEY","code":"ABS_X","value":1}', '{"type":"EV_BOGUS","code":1,"value":1}', '{"type":1,"code":70000,"value":1}', '{"type":1,"code":1,"value":1.5}', '{"type":1,"code":1}', '{"type":1,', '[1,2,3]', 'null', `{"type":1,"code":1,"value":1,"pad":"${'x'.repeat(2000)}"}`]) {
      assert.equal(parseEventLine(bad), null, bad.slice(0, 60));
    }
  });

  it('a generic event device from a JSON profile: name, serial, ids, properties, event codes and abs ranges reach the driver', async () => {
    const profile = parseInputProfile(JSON.stringify(PAD));
    const lb = await createLoopback(createInputDevice({ profile }), { queueSize: 16 });
    const input = new InputDriver(lb.context, { eventBuffers: 4 });
    assert.equal(await input.name(), 'drawing pad');
    assert.equal(await input.serial(), 'PAD-7');
    assert.deepEqual(await input.ids(), PAD.ids);
    assert.deepEqual(await input.properties(), [1]);
    assert.deepEqual(await input.eventCodes(EvType.KEY), [0x140, 0x14a]);
    assert.deepEqual(await input.eventCodes(EvType.ABS), [0, 1, 0x18]);
    assert.deepEqual(await input.eventCodes(EvType.LED), [1]);
    assert.deepEqual(await input.absInfo(0), { min: 0, max: 4095, fuzz: 0, flat: 0, res: 20 });
    assert.deepEqual(await input.absInfo(0x18), { min: 0, max: 255, fuzz: 2, flat: 1, res: 0 });
    assert.equal((await input.query(InputConfigSelect.ABS_INFO, 2)).length, 0, 'an axis the profile lacks');
    input.detach();
    await lb.close();
    for (const bad of ['{', '{"events":{}}', '{"name":"x","events":{"EV_KEY":"KEY_A"}}', '{"name":"x","abs":{"ABS_X":{"min":0}}}', '{"name":"x","ids":{"bustype":1}}']) {
      assert.throws(() => parseInputProfile(bad), /input profile|must be|abs|ids/, bad);
    }
  });

  it('--profile FILE on the command line: read and checked at parse time; --preset and --profile exclude each other', async () => {
    await withDir(async (dir) => {
      const good = join(dir, 'pad.json');
      writeFileSync(good, JSON.stringify(PAD));
      const p = parseCommandLine(['input', '--socket-path', 'i.sock', '--profile', good, '--events-socket', join(dir, 'ev.sock')]);
      const o = (p as unknown as { options: { profile: { name: string }; eventsSocket: string } }).options;
      assert.equal(o.profile.name, 'drawing pad');
      assert.equal(o.eventsSocket, join(dir, 'ev.sock'));
      const tooHigh = join(dir, 'bad.json');
      writeFileSync(tooHigh, JSON.stringify({ name: 'x', events: { EV_KEY: [2000] } }));
      for (const args of [['--profile', tooHigh], ['--profile', join(dir, 'missing.json')], ['--profile', good, '--preset', 'mouse']]) {
        assert.throws(
          () => parseCommandLine(['input', '--socket-path', 'i.sock', ...args]),
          (e: unknown) => e instanceof CliError && e.fault === CliFault.BAD_VALUE && e.command === 'input',
          args.join(' '),
        );
      }
    });
  });
});
