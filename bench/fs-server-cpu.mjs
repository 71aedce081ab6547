/* global process, console, Buffer */
// CPU per FUSE operation in process: FuseServer.handle over HostFs on pre-built requests (no
// virtqueue, no vhost-user), measured in process CPU time (user + system, so a loaded machine
// changes it far less than a rate). Rows: LOOKUP+GETATTR+FORGET of 1,000 files, and
// CREATE+RELEASE+UNLINK+FORGET; µs of CPU per row's group of operations.
//
// Run (built): node bench/fs-server-cpu.mjs [iterations=20000]
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => join(root, 'dist', p);
const { FuseServer } = await import(dist('src/devices/fs/fuse-server.js'));
const { HostFs } = await import(dist('src/devices/fs/host-fs.js'));
const { FuseOpcode: Op } = await import(dist('src/spec/fs.js'));

const N = Number(process.argv[2] ?? 20000);
const base = mkdtempSync(join(tmpdir(), 'vts-fs-cpu-'));
const share = join(base, 'share');
mkdirSync(join(share, 'scratch'), { recursive: true });
for (let i = 0; i < 1000; i++) writeFileSync(join(share, `f${i}`), 'x');

const host = new HostFs(share);
const server = new FuseServer(host);
const out = Buffer.alloc(1 << 16);

function request(opcode, nodeid, args) {
  const b = Buffer.alloc(40 + args.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(1n, 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  args.copy(b, 40);
  return b;
}
const u32s = (...v) => Buffer.from(new Uint32Array(v).buffer);
function handle(req) {
  const n = server.handle(req, req.length, out, out.length);
  if (n >= 16 && out.readInt32LE(4) !== 0) throw new Error(`opcode ${req.readUInt32LE(4)}: errno ${-out.readInt32LE(4)}`);
  return n;
}
handle(request(Op.INIT, 0, u32s(7, 31, 65536, 0)));

const lookups = Array.from({ length: 1000 }, (_, i) => request(Op.LOOKUP, 1, Buffer.from(`f${i}\0`)));
const getattr = request(Op.GETATTR, 0, Buffer.alloc(16));
const forget = request(Op.FORGET, 0, u32s(1, 0));
function lookupRow(i) {
  handle(lookups[i % 1000]);
  const id = Number(out.readBigUInt64LE(16));
  getattr.writeBigUInt64LE(BigInt(id), 16);
  handle(getattr);
  forget.writeBigUInt64LE(BigInt(id), 16);
  handle(forget);
}
handle(request(Op.LOOKUP, 1, Buffer.from('scratch\0')));
const dirId = Number(out.readBigUInt64LE(16));
const creates = Array.from({ length: 1000 }, (_, i) => request(Op.CREATE, dirId, Buffer.concat([u32s(0o1 /* O_WRONLY */, 0o100644, 0o22, 0), Buffer.from(`c${i}\0`)])));
const unlinks = Array.from({ length: 1000 }, (_, i) => request(Op.UNLINK, dirId, Buffer.from(`c${i}\0`)));
const release = request(Op.RELEASE, 0, Buffer.alloc(24));
function createRow(i) {
  handle(creates[i % 1000]);
  const id = Number(out.readBigUInt64LE(16));
  const fh = out.readBigUInt64LE(16 + 128);
  release.writeBigUInt64LE(BigInt(id), 16);
  release.writeBigUInt64LE(fh, 40);
  handle(release);
  handle(unlinks[i % 1000]);
  forget.writeBigUInt64LE(BigInt(id), 16);
  handle(forget);
}

function measure(row) {
  for (let i = 0; i < 2000; i++) row(i); // warm-up
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) row(i);
  const c = process.cpuUsage(c0);
  return { us: (c.user + c.system) / N, user: c.user / N, sys: c.system / N };
}
try {
  const only = process.env.FS_CPU_ROW; // lookup | create: one row (profiling)
  const rows = {};
  if (only !== 'create') rows['lookup+getattr+forget'] = measure(lookupRow);
  if (only !== 'lookup') rows['create+release+unlink+forget'] = measure(createRow);
  console.log(`fs-server-cpu: ${N} iterations per row, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  for (const [k, v] of Object.entries(rows)) console.log(`${k}: ${v.us.toFixed(2)} µs CPU (user ${v.user.toFixed(2)}, system ${v.sys.toFixed(2)})`);
} finally {
  host.close();
  rmSync(base, { recursive: true, force: true });
}
