/**
 * Processes and files of real-peer tests: helper processes (back-ends, reference daemons) bound to
 * this process's life, waiting for a socket to appear, temporary folders removed whatever happens,
 * raw disk images. Every process started here dies with Node (`setpriv --pdeathsig KILL` and an
 * exit hook) and `stop()` ends it with a time bound.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync, statSync, watch, type FSWatcher } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { GuestError, GuestFailure } from './guest-errors.js';

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
}

/** Spawns `cmd` so that it dies with this process (parent-death signal) and on its exit hook. */
export function spawnBound(cmd: string, args: readonly string[], cwd?: string, stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const viaSetpriv = existsSync('/usr/bin/setpriv');
  const child = viaSetpriv
    ? spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: [stdin, 'pipe', 'pipe'], cwd })
    : spawn(cmd, [...args], { stdio: [stdin, 'pipe', 'pipe'], cwd });
  track(child);
  return child;
}

/**
 * Resolves when `path` exists (e.g. a unix socket a back-end is about to listen on). Watches the
 * parent folder with inotify and re-checks every 50 ms as a fallback; rejects with a TIMEOUT
 * GuestError after `timeoutMs`, or at once if `process` exits first.
 */
export function waitForPath(
  path: string,
  opts: { timeoutMs?: number; process?: ChildProcess | ManagedProcess; signal?: AbortSignal } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const proc = opts.process === undefined ? undefined : 'child' in opts.process ? opts.process.child : opts.process;
  return new Promise<void>((resolveP, rejectP) => {
    let watcher: FSWatcher | undefined;
    let done = false;
    const cleanup = (): void => {
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
      proc?.off('exit', onExit);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const check = (): void => {
      if (!done && existsSync(path)) {
        cleanup();
        resolveP();
      }
    };
    const onExit = (code: number | null, sig: NodeJS.Signals | null): void => {
      if (done) return;
      cleanup();
      if (existsSync(path)) resolveP();
      else rejectP(new GuestError(GuestFailure.QEMU_FAILED, `process exited (code ${String(code)}, signal ${String(sig)}) before ${path} appeared`));
    };
    const onAbort = (): void => {
      if (done) return;
      cleanup();
      rejectP(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
    };
    const timer = setTimeout(() => {
      if (done) return;
      cleanup();
      rejectP(new GuestError(GuestFailure.TIMEOUT, `${path} did not appear within ${timeoutMs} ms`));
    }, timeoutMs);
    const poll = setInterval(check, 50);
    try {
      watcher = watch(dirname(resolve(path)), check);
      watcher.on('error', () => undefined);
    } catch {
      watcher = undefined; // folder missing: the poll still bounds the wait
    }
    proc?.once('exit', onExit);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (proc && (proc.exitCode !== null || proc.signalCode !== null)) onExit(proc.exitCode, proc.signalCode);
    check();
  });
}

export interface TempDir {
  readonly path: string;
  /** `join(path, ...parts)` */
  file(...parts: string[]): string;
  /** Removes the folder and everything in it (idempotent). */
  remove(): Promise<void>;
}

const liveTempDirs = new Set<string>();
let tempExitHook = false;

/**
 * Makes a fresh folder under the OS temp dir (short, so unix socket paths stay under 108 bytes).
 * It is removed by `remove()`, or when the process exits if the test forgot.
 */
export async function makeTempDir(prefix = 'vts-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  liveTempDirs.add(path);
  if (!tempExitHook) {
    tempExitHook = true;
    process.once('exit', () => {
      for (const d of liveTempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return {
    path,
    file: (...parts: string[]) => join(path, ...parts),
    remove: async () => {
      liveTempDirs.delete(path);
      await rm(path, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` with a fresh temp dir, removing it afterwards whatever happens. */
export async function withTempDir<T>(fn: (dir: TempDir) => Promise<T>, prefix?: string): Promise<T> {
  const dir = await makeTempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await dir.remove();
  }
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved as received. */
  output(): string;
  /** Resolves with the exit code (or signal) when the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 2000); resolves when it has exited. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts a helper process (qemu-storage-daemon, virtiofsd, a back-end under test) that is killed
 * when this process exits or dies. Always `stop()` it in a `finally`.
 */
export function startProcess(cmd: string, args: readonly string[], opts: { cwd?: string; onLine?: (line: string) => void } = {}): ManagedProcess {
  const child = spawnBound(cmd, args, opts.cwd);
  let out = '';
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const s = chunk.toString('utf8');
    out += s;
    if (opts.onLine) {
      partial += s;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        opts.onLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('error', (e) => {
      out += `\nspawn error: ${e.message}\n`;
      res({ code: null, signal: null });
    });
    child.once('close', (code, signal) => res({ code, signal }));
  });
  const stop = async (graceMs = 2000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    }
    return exited;
  };
  return { child, output: () => out, exited, stop };
}

/** Writes `size` bytes of a raw disk image at `path` filled with `fill` (0 by default). */
export async function makeRawImage(path: string, size: number, fill = 0): Promise<void> {
  await writeFile(path, Buffer.alloc(size, fill));
}

/** Size of a file in bytes. */
export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

/** True when `path` is a unix socket. */
export function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}
