/**
 * Test support for the 9p server: a P9Server on a temporary share that hand-built T-messages
 * are sent to (Rig), and the message builder it uses.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { P9_NOFID, P9_NONUNAME, P9Type } from '../../spec/9p.js';
import { HostFs, type HostFsOptions } from '../fs/host-fs.js';
import { P9Writer } from './p9-codec.js';
import { P9Server, type P9ServerOptions } from './p9-server.js';

const dirs: string[] = [];

/** Removes every Rig's directories (a test file's `after(removeRigDirs)`). */
export function removeRigDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A reply as the tests read it: type, tag, the body after the header, the errno of an Rlerror. */
export interface Reply {
  type: number;
  tag: number;
  body: Buffer;
  errno: number | null;
}

/** A T-message of `type` and `tag` with the body `build` writes. */
export function message(type: number, tag: number, build: (w: P9Writer) => void): Buffer {
  const b = Buffer.alloc(1 << 16);
  const w = new P9Writer().reset(b, 7, b.length);
  build(w);
  b.writeUInt32LE(w.pos, 0);
  b[4] = type;
  b.writeUInt16LE(tag, 5);
  return b.subarray(0, w.pos);
}

/** A 9P string's bytes. */
export const s = (t: string): Buffer => Buffer.from(t);

/**
 * A P9Server on a fresh share (`dir`, holding `a.txt` and `sub/`) inside a directory (`outside`,
 * holding `secret`) the guest must never reach.
 */
export class Rig {
  readonly outside: string;
  readonly dir: string;
  readonly host: HostFs;
  readonly server: P9Server;
  readonly out = Buffer.alloc(1 << 16);
  private tag = 1;

  constructor(opts: P9ServerOptions = {}, hostOpts: HostFsOptions = {}) {
    this.outside = mkdtempSync(join(tmpdir(), 'vts-9p-srv-'));
    dirs.push(this.outside);
    writeFileSync(join(this.outside, 'secret'), 'outside the share');
    this.dir = join(this.outside, 'share');
    mkdirSync(this.dir);
    writeFileSync(join(this.dir, 'a.txt'), 'alpha');
    mkdirSync(join(this.dir, 'sub'));
    this.host = new HostFs(this.dir, hostOpts);
    this.server = new P9Server(this.host, { maxMsize: 8192, ...opts });
  }

  raw(msg: Buffer, reqLen = msg.length, outCap = this.out.length): Reply | null {
    const n = this.server.handle(msg, reqLen, this.out, outCap);
    if (n === 0) return null;
    assert.ok(n <= outCap && n <= this.server.msize, `reply of ${n} bytes within ${outCap}`);
    assert.equal(this.out.readUInt32LE(0), n, 'size field is the reply length');
    const type = this.out[4]!;
    const body = Buffer.from(this.out.subarray(7, n));
    return { type, tag: this.out.readUInt16LE(5), body, errno: type === P9Type.RLERROR ? body.readUInt32LE(0) : null };
  }

  send(type: number, build: (w: P9Writer) => void): Reply {
    const tag = this.tag++;
    const r = this.raw(message(type, tag, build))!;
    assert.equal(r.tag, tag);
    return r;
  }

  ok(type: number, build: (w: P9Writer) => void): Buffer {
    const r = this.send(type, build);
    assert.equal(r.errno, null, `type ${type} failed with errno ${r.errno}`);
    assert.equal(r.type, type + 1);
    return r.body;
  }

  err(type: number, build: (w: P9Writer) => void): number {
    const r = this.send(type, build);
    assert.equal(r.type, P9Type.RLERROR, `type ${type} answered ${r.type}, not Rlerror`);
    return r.errno!;
  }

  version(msize = 8192): void {
    this.ok(P9Type.TVERSION, (w) => {
      w.u32(msize);
      w.str(s('9P2000.L'));
    });
  }

  /** Tattach of `fid` for the user `nUname` (~0 by default: none named). */
  attach(fid = 1, nUname = P9_NONUNAME): void {
    this.ok(P9Type.TATTACH, (w) => {
      w.u32(fid);
      w.u32(P9_NOFID);
      w.str(s('u'));
      w.str(s(''));
      w.u32(nUname);
    });
  }

  walk(fid: number, newfid: number, names: string[]): Reply {
    return this.send(P9Type.TWALK, (w) => {
      w.u32(fid);
      w.u32(newfid);
      w.u16(names.length);
      for (const n of names) w.str(s(n));
    });
  }

  session(): this {
    this.version();
    this.attach();
    return this;
  }
}
