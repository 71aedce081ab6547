/**
 * Choosing the image backend: io_uring by default, positional I/O with `--aio threads`, and
 * positional I/O with the reason logged when the kernel refuses io_uring (simulated: EPERM as
 * from a seccomp filter, ENOSYS as from a kernel without it); the CLI options.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CliError, CliFault, parseCommandLine } from '../../cli/args.js';
import { createLogger, LogLevel } from '../../log.js';
import { PlatformError } from '../../platform/platform-error.js';
import { ioUringSupport } from '../../platform/io-uring.js';
import { BlkAio, type BlkOptions } from './cli.js';
import { FileBackend } from './file-backend.js';
import { UringBackend } from './uring-backend.js';
import { openImage } from './uring-open.js';

function blk(argv: string[]): BlkOptions {
  const p = parseCommandLine(['blk', ...argv]);
  assert.equal(p.kind, 'device');
  return (p as { options: unknown }).options as BlkOptions;
}

function cliFault(argv: string[], fault: CliFault): void {
  assert.throws(() => parseCommandLine(['blk', ...argv]), (e: unknown) => e instanceof CliError && e.fault === fault);
}

describe('blk image backend selection', { timeout: 30_000 }, () => {
  let dir = '';
  let path = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vts-uring-open-'));
    path = join(dir, 'disk.img');
    writeFileSync(path, Buffer.alloc(65536));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--aio, --direct, --write-through: parsed, checked, absent by default', () => {
    const d = blk(['--socket-path', 's', '--image', 'x.img']);
    assert.equal(d.aio, undefined);
    assert.equal(d.direct, undefined);
    assert.equal(d.writeThrough, undefined);
    const o = blk(['--socket-path', 's', '--image', 'x.img', '--aio', 'threads', '--write-through']);
    assert.equal(o.aio, BlkAio.THREADS);
    assert.equal(o.writeThrough, true);
    assert.equal(blk(['--socket-path', 's', '--image', 'x.img', '--aio=io_uring', '--direct']).direct, true);
    cliFault(['--socket-path', 's', '--image', 'x.img', '--aio', 'native'], CliFault.BAD_VALUE);
    // A RAM disk takes them (the command warns that --aio and --direct do nothing there).
    assert.equal(blk(['--socket-path', 's', '--memory', '1M', '--write-through']).writeThrough, true);
    cliFault(['--socket-path', 's', '--image', 'x.img', '--aio', 'threads', '--direct'], CliFault.CONFLICT);
  });

  it('io_uring by default (where the kernel allows it), threads when asked', async (t) => {
    if (!ioUringSupport().ok && process.env['CI'] !== 'true') return t.skip('io_uring unavailable');
    const a = await openImage(path);
    assert.equal(a.aio, BlkAio.IO_URING);
    assert.ok(a.backend instanceof UringBackend);
    assert.equal(a.fallbackReason, null);
    await a.backend.close();
    const b = await openImage(path, { aio: BlkAio.THREADS });
    assert.equal(b.aio, BlkAio.THREADS);
    assert.ok(b.backend instanceof FileBackend);
    await b.backend.close();
  });

  for (const errno of ['EPERM', 'ENOSYS']) {
    it(`io_uring refused (${errno}): positional I/O, the reason logged`, async () => {
      let logged = '';
      const logger = createLogger(LogLevel.WARN, 'test', (line) => (logged += line));
      const opened = await openImage(path, {
        logger,
        direct: true,
        openUring: () => Promise.reject(new PlatformError(errno, `io_uring_setup: refused`)),
      });
      try {
        assert.equal(opened.aio, BlkAio.THREADS);
        assert.ok(opened.backend instanceof FileBackend);
        assert.match(opened.fallbackReason ?? '', new RegExp(errno));
        assert.match(logged, /io_uring unavailable/);
        assert.match(logged, new RegExp(errno));
        assert.match(logged, /--direct is not honoured/);
      } finally {
        await opened.backend.close();
      }
    });
  }

  it('a file error is not hidden by the fallback', async () => {
    await assert.rejects(openImage(join(dir, 'missing.img')), /ENOENT|no such file/i);
  });
});
