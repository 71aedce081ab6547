/**
 * The device registry is the one place a device type is added: a toy type registered here,
 * and nowhere else, shows up in the `virtio-ts` usage and sub-commands, answers
 * `--print-capabilities`, and runs the transport matrix on every transport (in process, PCI,
 * MMIO, CCW, vhost-user) with the same lifecycle as the built-in types.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseCommandLine, usage } from '../src/cli/args.js';
import { main } from '../src/cli/main.js';
import { BACKEND_COMMON_USAGE, BACKEND_SOCKET_USAGE, stringOption, type BackendOptions } from '../src/cli/options.js';
import type { DeviceType } from '../src/devices/device-type.js';
import { BUILTIN_DEVICE_TYPES, deviceType, deviceTypes, registerDeviceType, unregisterDeviceType } from '../src/devices/registry.js';
import type { VirtioDriver } from '../src/driver/virtio-driver.js';
import { isVirtioError } from '../src/errors.js';
import { EchoDevice } from '../src/testing/echo-device.js';
import { MATRIX_TRANSPORTS, MatrixTransport, matrixCells, runMatrixCase } from '../src/testing/transport-matrix.js';

const TOY_ID = 0x3f;

interface ToyOptions extends BackendOptions {
  readonly greeting: string;
}

/** One echo round trip on queue 0 through the driver's rings; resolves with the bytes back. */
async function echo(d: VirtioDriver, payload: Uint8Array): Promise<Uint8Array> {
  const ctx = d.context;
  const out = ctx.dma.alloc(payload.length);
  const inn = ctx.dma.alloc(payload.length);
  try {
    ctx.memory.write(out, payload);
    const q = ctx.queue(0);
    const used = new Promise<void>((resolve) => ctx.onUsed(0, resolve));
    assert.ok(q.add([{ addr: out, len: payload.length }], [{ addr: inn, len: payload.length }], 7));
    ctx.kick(0);
    let token = q.takeUsed();
    if (token === undefined) {
      await used;
      token = q.takeUsed();
    }
    assert.equal(token, 7);
    assert.equal(q.lastUsedLen, payload.length);
    return ctx.memory.slice(inn, q.lastUsedLen).slice();
  } finally {
    ctx.dma.free(out);
    ctx.dma.free(inn);
  }
}

const TOY: DeviceType = {
  name: 'toy',
  deviceId: TOY_ID,
  summary: 'serve a toy echo device over vhost-user',
  vhostUser: { type: 'caif', features: [] },
  cli: {
    options: { greeting: { type: 'string' } },
    usage: `Usage: virtio-ts toy (--socket-path PATH | --fd N) [--greeting TEXT]\n\n${BACKEND_SOCKET_USAGE}\n  --greeting TEXT         what the toy says\n${BACKEND_COMMON_USAGE}\n`,
    parse: (v, common): ToyOptions => ({ ...common, greeting: stringOption(v, 'greeting') ?? 'hello' }),
    run: () => Promise.resolve(0),
  },
  createDevice: () => new EchoDevice({ deviceId: TOY_ID, queues: [64] }),
  matrixCase() {
    const device = new EchoDevice({ deviceId: TOY_ID, queues: [64] });
    return {
      device,
      async exercise(driver) {
        const payload = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + 1) & 0xff);
        assert.deepEqual(await echo(driver, payload), payload);
        assert.ok(device.served >= 1, 'the device served the buffer');
      },
    };
  },
};

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

describe('device registry: a toy type added through the registry alone', () => {
  before(() => registerDeviceType(TOY));
  after(() => unregisterDeviceType('toy'));

  it('is listed after the built-in types', () => {
    assert.deepEqual(
      deviceTypes().map((t) => t.name),
      [...BUILTIN_DEVICE_TYPES.map((t) => t.name), 'toy'],
    );
    assert.equal(deviceType('toy'), TOY);
  });

  it('appears in the CLI usage and parses as a sub-command with its own options', async () => {
    assert.match(usage(null), /^\s+toy\s+serve a toy echo device over vhost-user$/m);
    assert.equal(usage('toy'), TOY.cli!.usage);
    const p = parseCommandLine(['toy', '--socket-path', '/tmp/t.sock', '--greeting', 'hi', '-q']);
    assert.equal(p.kind, 'device');
    assert.deepEqual((p as { options: unknown }).options, { socketPath: '/tmp/t.sock', fd: null, verbosity: 0, greeting: 'hi' });
    const h = await run(['toy', '--help']);
    assert.deepEqual(h, { code: 0, out: TOY.cli!.usage, err: '' });
    const bad = await run(['toy', '--socket-path', 's', '--image', 'x']);
    assert.equal(bad.code, 2, 'an option of another type is refused');
    assert.match(bad.err, /^virtio-ts toy: /);
  });

  it('answers --print-capabilities from its record', async () => {
    const c = await run(['toy', '--print-capabilities', '--bogus']);
    assert.equal(c.code, 0);
    assert.deepEqual(JSON.parse(c.out), { type: 'caif' });
  });

  it('has a cell on every transport but transitional PCI (no transitional PCI device ID, 4.1.2.1)', () => {
    const cells = matrixCells(TOY_ID);
    assert.deepEqual(new Set(cells.map((c) => c.transport)), new Set(MATRIX_TRANSPORTS.filter((t) => t !== MatrixTransport.PCI_LEGACY)));
    assert.equal(cells.length, 2 * MATRIX_TRANSPORTS.length - 4, 'split and packed, split only on legacy MMIO and CCW revision 0');
  });

  for (const { transport, packed } of matrixCells(TOY_ID))
    it(`runs the transport matrix: ${transport} ${packed ? 'packed' : 'split'}`, { timeout: 20_000 }, async () => {
      await runMatrixCase(TOY, transport, packed);
    });
});

describe('device registry: what it refuses', () => {
  const refused = (t: Partial<DeviceType>, why: RegExp): void => {
    assert.throws(
      () => registerDeviceType({ ...TOY, ...t }),
      (e: unknown) => isVirtioError(e) && e.code === 'INVALID_ARGUMENT' && why.test(e.message),
    );
  };

  it('a taken, reserved or malformed name, a device ID out of range, capabilities outside the schema', () => {
    refused({ name: 'blk' }, /registered already/);
    refused({ name: 'demo' }, /reserved/);
    refused({ name: 'Toy Two' }, /lower-case/);
    refused({ name: 'toy2', deviceId: 0 }, /out of range/);
    refused({ name: 'toy2', deviceId: 0x10000 }, /out of range/);
    refused({ name: 'toy2', vhostUser: { type: 'nonsense' as 'caif', features: [] } }, /unknown vhost-user back-end type/);
    refused({ name: 'toy2', vhostUser: { type: 'block', features: ['wings'] } }, /not a block feature/);
    assert.equal(deviceType('toy2'), undefined, 'nothing refused was registered');
  });

  it('a type with no CLI is not a sub-command', () => {
    registerDeviceType({ ...TOY, name: 'quiet-toy', cli: null });
    try {
      assert.doesNotMatch(usage(null), /quiet-toy/);
      assert.throws(() => parseCommandLine(['quiet-toy']), /unknown command/);
    } finally {
      unregisterDeviceType('quiet-toy');
    }
  });
});
