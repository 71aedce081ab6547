/**
 * `virtio-ts demo` (and `npm run demo`): a virtio driver and virtio-ts devices in one process,
 * over the in-process transport. For the block device, on a split and then a packed ring, the
 * driver negotiates features, reads the config, writes a pattern, reads it back and compares,
 * flushes, reads the device id, and shows a request past the end failing with IOERR; then it
 * draws bytes from the entropy device. Every step is printed.
 *
 * It does not need QEMU, the native addon or root; the real-guest path is the `blk` and `rng`
 * commands (see test/vhost-user-*-guest.test.ts for QEMU command lines).
 */
import { createHash } from 'node:crypto';
import { createLogger } from '../log.js';
import { F } from '../spec/features.js';
import { BlkDevice } from '../devices/blk/blk-device.js';
import { MemoryBackend } from '../devices/blk/memory-backend.js';
import { EntropyDevice } from '../devices/entropy/entropy-device.js';
import { BlkDriver } from '../devices/blk/blk-driver.js';
import { EntropyDriver } from '../devices/entropy/entropy-driver.js';
import { createLoopback } from '../testing/loopback.js';
import { isVirtioError } from '../errors.js';
import { EXIT, type DemoOptions } from './args.js';
import type { CliIo } from './options.js';
import { xorshiftBytes } from '../testing/xorshift.js';

const SECTOR = 512;
const SERIAL = 'virtio-ts-demo';

/** Names of the transport feature bits worth showing (6 Reserved Feature Bits). */
const FEATURE_NAMES: readonly [bigint, string][] = [
  [F.VERSION_1, 'VERSION_1'],
  [F.RING_PACKED, 'RING_PACKED'],
  [F.EVENT_IDX, 'EVENT_IDX'],
  [F.INDIRECT_DESC, 'INDIRECT_DESC'],
  [F.IN_ORDER, 'IN_ORDER'],
];

function featureList(features: bigint): string {
  const names = FEATURE_NAMES.filter(([m]) => (features & m) !== 0n).map(([, n]) => n);
  return `0x${features.toString(16)} (${names.join(' ')})`;
}

function pattern(len: number, seed: number): Uint8Array {
  return xorshiftBytes(len, seed);
}

const short = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex').slice(0, 16);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').replace(/(..)(?!$)/g, '$1 ');

/** Runs the demo, printing each step; resolves 0 when every check held, 1 otherwise. */
export async function runDemo(options: DemoOptions, io: CliIo): Promise<number> {
  const out = (line = ''): void => io.stdout(`${line}\n`);
  const logger = createLogger(options.verbosity, 'device', io.stderr);
  const t0 = performance.now();
  let failures = 0;
  const check = (ok: boolean, what: string): void => {
    out(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures++;
  };

  out('virtio-ts demo: a virtio driver and virtio-ts devices in one process (virtio 1.4)');
  const sectors = options.diskBytes / SECTOR;
  const data = pattern(64 * 1024, 0x5eed);
  const at = 128; // sector

  for (const packed of [false, true]) {
    out();
    out(`block device: ${options.diskBytes / 1024} KiB RAM disk, ${packed ? 'packed' : 'split'} virtqueue`);
    const device = new BlkDevice(new MemoryBackend(options.diskBytes), { serial: SERIAL, logger });
    const lb = await createLoopback(device, { packed });
    try {
      const drv = new BlkDriver(lb.context);
      out(`  negotiated features ${featureList(lb.context.features)}`);
      check(drv.capacity === sectors, `capacity ${drv.capacity} sectors of ${SECTOR} bytes`);
      await drv.write(at, data);
      out(`  wrote ${data.length / 1024} KiB at sector ${at} (sha256 ${short(data)}...)`);
      const back = await drv.read(at, data.length);
      check(Buffer.from(back).equals(Buffer.from(data)), `read ${back.length / 1024} KiB back from sector ${at}: ${short(back)}... matches`);
      await drv.flush();
      check(true, 'flush completed');
      const id = await drv.getId();
      check(id === SERIAL, `device id "${id}"`);
      const past = await drv.read(sectors, SECTOR).then(
        () => 'read succeeded',
        (e: unknown) => (isVirtioError(e) ? e.code : String(e)),
      );
      check(past === 'REQUEST_FAILED', `a read past the end fails (${past}, status IOERR, 5.2.6.1)`);
    } finally {
      await lb.close();
    }
  }

  out();
  out('entropy device');
  const rng = await createLoopback(new EntropyDevice(), {});
  try {
    const drv = new EntropyDriver(rng.context);
    const bytes = await drv.read(options.entropyBytes);
    check(bytes.length === options.entropyBytes, `drew ${bytes.length} bytes: ${hex(bytes.subarray(0, 32))}${bytes.length > 32 ? ' ...' : ''}`);
    check(new Set(bytes).size > 1 || bytes.length === 1, 'not constant');
  } finally {
    await rng.close();
  }

  out();
  out(`${failures === 0 ? 'all checks held' : `${failures} check(s) failed`} in ${(performance.now() - t0).toFixed(0)} ms`);
  return failures === 0 ? EXIT.OK : EXIT.RUNTIME;
}
