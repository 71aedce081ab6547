/**
 * Test launcher for crash-recovery tests (not part of the `virtio-ts` command): runs
 * `virtio-ts blk` with every write at or past a byte offset held in flight forever, so a test can
 * kill the back-end with a request certainly taken from the ring and not yet completed, and see
 * that the restarted back-end resubmits it (vhost-user.rst "Inflight I/O tracking").
 *
 *   node held-write-blk.js HOLD_FROM_BYTE blk --socket-path S --image I [blk options]
 *
 * Each held write prints `HELD write offset=<byte> len=<bytes>` on stderr; nothing of a held
 * write reaches the storage.
 */
import { isVirtioError } from '../errors.js';
import type { BlkBackend } from '../devices/blk/backend.js';
import type { BlkOptions } from '../devices/blk/cli.js';
import { EXIT, parseCommandLine } from './args.js';
import { runBlk } from '../devices/blk/blk-command.js';
import { checkBackendSocket } from './socket-check.js';

/** Wraps `inner` so that writes reaching `holdFrom` or beyond never complete. */
export function holdWritesFrom(inner: BlkBackend, holdFrom: number, onHeld: (offset: number, len: number) => void): BlkBackend {
  return {
    get size() {
      return inner.size;
    },
    get readOnly() {
      return inner.readOnly;
    },
    get canUnmap() {
      return inner.canUnmap;
    },
    read: (offset, dst, dstOff, len) => inner.read(offset, dst, dstOff, len),
    write: (offset, src, srcOff, len) => {
      const n = len ?? src.length - (srcOff ?? 0);
      if (offset + n > holdFrom) {
        onHeld(offset, n);
        return new Promise<void>(() => undefined);
      }
      return inner.write(offset, src, srcOff, len);
    },
    flush: () => inner.flush(),
    discard: (offset, len) => inner.discard(offset, len),
    writeZeroes: (offset, len, unmap) => inner.writeZeroes(offset, len, unmap),
    close: () => inner.close(),
  };
}

async function run(argv: readonly string[]): Promise<number> {
  const [holdText, ...rest] = argv;
  const holdFrom = Number(holdText);
  if (holdText === undefined || !/^\d+$/.test(holdText)) {
    process.stderr.write('usage: held-write-blk.js HOLD_FROM_BYTE blk [virtio-ts blk options]\n');
    return EXIT.USAGE;
  }
  const parsed = parseCommandLine(rest);
  if (parsed.kind !== 'device' || parsed.command !== 'blk') {
    process.stderr.write('held-write-blk.js: the command must be blk\n');
    return EXIT.USAGE;
  }
  await checkBackendSocket(parsed.options);
  return runBlk(
    { ...parsed.options, command: 'blk' } as BlkOptions,
    { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) },
    {
      wrapBackend: (b) => holdWritesFrom(b, holdFrom, (offset, len) => process.stderr.write(`HELD write offset=${offset} len=${len}\n`)),
    },
  );
}

if (process.argv[1]?.endsWith('held-write-blk.js')) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`held-write-blk: ${isVirtioError(e) ? `${e.message} (${e.code})` : String(e)}\n`);
      process.exit(EXIT.RUNTIME);
    },
  );
}
