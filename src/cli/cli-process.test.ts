/**
 * The built `virtio-ts` command as a process: output streams, exit codes, socket handling and
 * signals, as vhost-user.rst "Backend program conventions" asks of a back-end program.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { EXIT } from './args.js';
import { isSocket, runCli, until, withDir } from './cli-test-helpers.js';

describe('virtio-ts as a process', { timeout: 120_000 }, () => {
  it('--print-capabilities prints the vhost-user.json capabilities on stdout and exits 0, whatever else is given', async () => {
    const blk = await runCli(['blk', '--print-capabilities', '--no-such-option', '--memory', 'junk']);
    assert.equal(blk.code, EXIT.OK, blk.err);
    assert.equal(blk.err, '');
    const c = JSON.parse(blk.out) as { type?: unknown; features?: unknown };
    // @VHostUserBackendCapabilities: type from @VHostUserBackendType, features from
    // @VHostUserBackendBlockFeature; nothing else.
    assert.deepEqual(Object.keys(c).sort(), ['features', 'type']);
    assert.equal(c.type, 'block');
    assert.deepEqual(c.features, ['read-only', 'blk-file']);
    const rng = await runCli(['rng', '--print-capabilities']);
    assert.equal(rng.code, EXIT.OK, rng.err);
    assert.deepEqual(JSON.parse(rng.out), { type: 'rng' });
  });

  it('a usage error: one line and a hint on stderr, nothing on stdout, exit code 2; no command too', async () => {
    const r = await runCli(['blk', '--socket-path', '/tmp/x.sock', '--image', 'a.img', '--memory', '1M']);
    assert.equal(r.code, EXIT.USAGE);
    assert.equal(r.out, '');
    assert.match(r.err, /^virtio-ts blk: .*--image and --memory exclude each other\nTry 'virtio-ts blk --help' for its options\.\n$/);
    const none = await runCli([]);
    assert.equal(none.code, EXIT.USAGE);
    assert.equal(none.out, '');
    assert.match(none.err, /^virtio-ts: no command given\n/);
    const n = await runCli(['rng', '--socket-path', '/tmp/x.sock', '--num-queues', '2']);
    assert.equal(n.code, EXIT.USAGE);
    assert.match(n.err, /Unknown option '--num-queues'/);
  });

  it('an unusable image: missing, a folder, smaller than a sector: a clear typed error, exit code 1, no socket left', async () => {
    await withDir(async (dir) => {
      const sock = join(dir, 'i.sock');
      const missing = join(dir, 'missing.img');
      const a = await runCli(['blk', '--socket-path', sock, '--image', missing]);
      assert.equal(a.code, EXIT.RUNTIME, a.err);
      assert.equal(a.out, '');
      assert.match(a.err, new RegExp(`cannot open image ${missing}: .*ENOENT.*\\(BACKEND_IO\\)`));
      assert.equal(existsSync(sock), false);

      mkdirSync(join(dir, 'folder.img'));
      const b = await runCli(['blk', '--socket-path', sock, '--image', join(dir, 'folder.img')]);
      assert.equal(b.code, EXIT.RUNTIME, b.err);
      assert.match(b.err, /cannot open image .*folder\.img: .*EISDIR.*\(BACKEND_IO\)/);
      assert.equal(existsSync(sock), false);

      const tiny = join(dir, 'tiny.img');
      writeFileSync(tiny, Buffer.alloc(100));
      const c = await runCli(['blk', '--socket-path', sock, '--image', tiny]);
      assert.equal(c.code, EXIT.RUNTIME, c.err);
      assert.match(c.err, /is 100 bytes: a disk holds at least one 512-byte sector \(INVALID_ARGUMENT\)/);
      assert.equal(existsSync(sock), false);
    });
  });

  it('an image whose size is not a multiple of 512 is served with a warning naming the unreachable tail', async () => {
    await withDir(async (dir) => {
      const sock = join(dir, 'o.sock');
      const odd = join(dir, 'odd.img');
      writeFileSync(odd, Buffer.alloc(1000));
      const r = await runCli(['blk', '--socket-path', sock, '--image', odd], async (child, err) => {
        await until(() => /serving /.test(err()), 10_000, 'the back-end to serve', child);
        child.kill('SIGTERM');
      });
      assert.equal(r.code, EXIT.OK, r.err);
      assert.match(r.err, /WARN .*1000 bytes, not a multiple of 512: its last 488 bytes are not part of the disk/);
    });
  });

  it('an unusable socket path: a clear error naming the reason, exit code 1, no file left', async () => {
    await withDir(async (dir) => {
      const noDir = join(dir, 'missing', 'b.sock');
      const a = await runCli(['rng', '--socket-path', noDir]);
      assert.equal(a.code, EXIT.RUNTIME);
      assert.match(a.err, new RegExp(`cannot listen on ${noDir}: folder .* does not exist`));
      assert.equal(existsSync(noDir), false);

      // A regular file at the path is the user's: never replaced.
      const file = join(dir, 'file.sock');
      writeFileSync(file, 'keep me');
      const b = await runCli(['blk', '--socket-path', file, '--memory', '1M']);
      assert.equal(b.code, EXIT.RUNTIME);
      assert.match(b.err, /exists and is not a socket/);
      assert.equal(readFileSync(file, 'utf8'), 'keep me');

      // A socket another process serves is not stolen.
      const live = join(dir, 'live.sock');
      const srv: Server = createServer();
      await new Promise<void>((r) => srv.listen(live, r));
      try {
        const c = await runCli(['rng', '--socket-path', live]);
        assert.equal(c.code, EXIT.RUNTIME);
        assert.match(c.err, /another process is serving that socket/);
        assert.ok(isSocket(live));
      } finally {
        await new Promise<void>((r) => srv.close(() => r()));
      }

      const d = await runCli(['rng', '--fd', '7']);
      assert.equal(d.code, EXIT.RUNTIME);
      assert.match(d.err, /--fd 7/);
    });
  });
});
