/**
 * Guest userspace beyond busybox: a host (Debian) binary copied with the shared libraries `ldd`
 * lists (socat for vsock, iperf3 with libiperf0/libsctp1/libssl3), and small C test programs
 * compiled with the host's `gcc -static` for amd64 or i386 (`gcc -m32`, from gcc-multilib and
 * libc6-dev-i386; an amd64 kernel runs i386 programs too). Both give `ExtraFile`s for the initramfs.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { GuestError, GuestFailure } from './guest-errors.js';
import { guestKitDir } from './guest-host.js';
import type { ExtraFile } from './guest-initramfs.js';

/** Which CPU a static test program is built for. */
export const StaticArch = {
  X86_64: 'x86_64',
  I386: 'i386',
} as const;
export type StaticArch = (typeof StaticArch)[keyof typeof StaticArch];

/** Absolute paths of the files `ldd` says a dynamic binary loads (the vDSO has no file). */
function lddFiles(binary: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [binary], { encoding: 'utf8', timeout: 30_000 });
  } catch (e) {
    // ldd exits 1 with "not a dynamic executable" for static binaries: nothing to add.
    const msg = (e as { stdout?: string }).stdout ?? '';
    if (/not a dynamic executable/.test(msg) || /not a dynamic executable/.test(String(e))) return [];
    throw new GuestError(GuestFailure.NOT_FOUND, `ldd ${binary} failed: ${String(e)}`);
  }
  const files: string[] = [];
  for (const line of out.split('\n')) {
    // "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /=>\s*(\/\S+)\s*\(/.exec(line) ?? /^\s*(\/\S+)\s*\(/.exec(line);
    if (m?.[1]) files.push(m[1]);
    else if (/=>\s*not found/.test(line)) throw new GuestError(GuestFailure.NOT_FOUND, `${binary}: ${line.trim()}`);
  }
  return files;
}

/**
 * Host binaries (absolute paths or names on PATH) with every library `ldd` lists, at the same
 * paths in the guest (the dynamic loader finds them in its default folders). Symbolic links are
 * copied as the files they point to. Each file once, however many binaries share it.
 */
export function copyBinaryWithLibs(binaries: string | readonly string[]): ExtraFile[] {
  const list = typeof binaries === 'string' ? [binaries] : binaries;
  const files = new Map<string, ExtraFile>();
  for (const b of list) {
    const path = isAbsolute(b) ? b : ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => join(d, b)).find((p) => existsSync(p));
    if (path === undefined || !existsSync(path)) throw new GuestError(GuestFailure.NOT_FOUND, `no binary ${b} on this host`);
    files.set(path, { path, data: readFileSync(path), mode: 0o755 });
    for (const lib of lddFiles(path)) {
      if (!files.has(lib)) files.set(lib, { path: lib, data: readFileSync(lib), mode: 0o755 });
    }
  }
  return [...files.values()];
}

/** Where compiled programs are cached, by hash of source, arch and flags. */
const staticCacheDir = join(guestKitDir, 'static-programs');

function runGcc(args: readonly string[]): Promise<void> {
  return new Promise((resolveP, rejectP) => {
    execFile('gcc', args, { timeout: 120_000, maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      if (err) rejectP(new GuestError(GuestFailure.BUILD_FAILED, `gcc ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolveP();
    });
  });
}

export interface StaticProgram {
  /** C source of the program. */
  readonly source: string;
  /** Absolute path in the guest, e.g. `/bin/probe`. */
  readonly path: string;
  /** amd64 by default. */
  readonly arch?: StaticArch;
  /** More gcc arguments, after the source (e.g. `-lm`). */
  readonly flags?: readonly string[];
}

/**
 * Compiles a C program with `gcc -static -O2` (`-m32` for i386) into an `ExtraFile` (mode 0755).
 * The binary is cached in the kit folder by content hash; a compile error rejects with BUILD_FAILED
 * and gcc's message.
 */
export async function compileStatic(program: StaticProgram): Promise<ExtraFile> {
  const arch = program.arch ?? StaticArch.X86_64;
  const flags = ['-static', '-O2', '-Wall', ...(arch === StaticArch.I386 ? ['-m32'] : [])];
  const libs = program.flags ?? [];
  const digest = createHash('sha256').update(`${arch}\0${flags.join(' ')}\0${libs.join(' ')}\0${program.source}`).digest('hex').slice(0, 32);
  const out = join(staticCacheDir, `${digest}.${arch}`);
  if (!existsSync(out)) {
    await mkdir(staticCacheDir, { recursive: true });
    const src = `${out}.${process.pid}.c`;
    const tmp = `${out}.${process.pid}.tmp`;
    await writeFile(src, program.source);
    try {
      await runGcc([...flags, '-o', tmp, src, ...libs]);
      await rename(tmp, out); // atomic: concurrent builders agree
    } finally {
      await rm(src, { force: true });
      await rm(tmp, { force: true });
    }
  }
  return { path: program.path, data: await readFile(out), mode: 0o755 };
}
