/**
 * A host directory shared with a file-system device (virtio-fs, 9p), inside a parent directory
 * that also holds files the guest must never reach: `outside.txt` and `outside-dir/`, which the
 * shared tree's symlinks point at (`up` relative, `abs` absolute). `restore` puts the shared
 * tree back as built before each input (the directory itself stays: the device holds it open);
 * `checkParent` fails when anything outside the shared tree changed (2.x of no spec: the host's
 * own confinement, issue 17's "no access outside the shared dir").
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { Buffer } from 'node:buffer';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check } from '../engine/target.js';

function child(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH, name]);
}
const SLASH = Buffer.from('/');

/** rm -r with byte names throughout (fs.rmSync's recursion works on strings). */
function removeTree(p: Buffer): void {
  if (lstatSync(p).isDirectory()) {
    chmodSync(p, 0o700);
    for (const e of readdirSync(p, { encoding: 'buffer' })) removeTree(child(p, e));
    rmdirSync(p);
  } else unlinkSync(p);
}

export class SharedDirFixture {
  readonly parent: string;
  readonly dir: string;
  private readonly snapshot: string;

  /** The shared tree as built (see `treeState`). */
  private pristine = '';

  constructor(prefix: string) {
    // tmpfs when there is one: a rebuild on a disk file system costs milliseconds (rmdir).
    this.parent = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), prefix));
    this.dir = join(this.parent, 'shared');
    mkdirSync(this.dir);
    writeFileSync(join(this.parent, 'outside.txt'), 'not for the guest\n');
    mkdirSync(join(this.parent, 'outside-dir'));
    writeFileSync(join(this.parent, 'outside-dir', 'secret'), 'not for the guest either\n');
    this.restore();
    this.snapshot = this.describeParent();
    process.once('exit', () => rmSync(this.parent, { recursive: true, force: true }));
  }

  /**
   * The shared tree as built: a file, a directory with a file, symlinks out of the tree. Rebuilt
   * only when it differs from the built one (most inputs only read it).
   */
  restore(): void {
    if (this.pristine !== '' && this.treeState() === this.pristine) return;
    this.rebuild();
    this.pristine = this.treeState();
  }

  /**
   * Names, inode, mode, size, link count, mtime and ctime of everything in the tree (atime left
   * out: reads change it). Any write, chmod, xattr, rename, link or removal changes it.
   */
  private treeState(): string {
    const out: string[] = [];
    // Names as bytes: the guest may create names that are not UTF-8.
    const walk = (p: Buffer, depth: number): void => {
      const s = lstatSync(p);
      out.push(`${p.toString('hex')}:${s.ino}:${s.mode}:${s.size}:${s.nlink}:${s.mtimeMs}:${s.ctimeMs}`);
      if (s.isDirectory() && depth < 8) for (const e of readdirSync(p, { encoding: 'buffer' }).sort(Buffer.compare)) walk(child(p, e), depth + 1);
    };
    walk(Buffer.from(this.dir), 0);
    return out.join('\n');
  }

  private rebuild(): void {
    const d = this.dir;
    chmodSync(d, 0o755);
    const dirBytes = Buffer.from(d);
    for (const e of readdirSync(dirBytes, { encoding: 'buffer' })) removeTree(child(dirBytes, e));
    writeFileSync(join(d, 'a.txt'), 'hello from the host\n');
    mkdirSync(join(d, 'd'));
    writeFileSync(join(d, 'd', 'b.txt'), 'b'.repeat(5000));
    symlinkSync('../outside.txt', join(d, 'up'));
    symlinkSync(join(this.parent, 'outside-dir'), join(d, 'abs'));
  }

  private describeParent(): string {
    const line = (p: string): string => {
      const s = lstatSync(p);
      return `${p}:${s.mode}:${s.size}:${s.nlink}:${s.mtimeMs}:${s.ctimeMs}`;
    };
    const out = [line(this.parent)];
    for (const e of readdirSync(this.parent).sort()) {
      if (e === 'shared') continue;
      out.push(line(join(this.parent, e)));
    }
    for (const e of readdirSync(join(this.parent, 'outside-dir')).sort()) out.push(line(join(this.parent, 'outside-dir', e)));
    return out.join('\n');
  }

  /** Throws when the parent directory, outside.txt or outside-dir/ changed. */
  checkParent(): void {
    const now = this.describeParent();
    check(now === this.snapshot, 'outside-shared-dir', `the shared directory's parent changed:\n${now}\nwas:\n${this.snapshot}`);
  }
}
