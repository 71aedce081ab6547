/**
 * Spawning a vhost-user back-end program for the front-end: start it, wait (bounded) for its
 * socket to appear, and stop it (SIGTERM, then SIGKILL after a grace period). Every process
 * started here is also killed when this process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ErrorCode, VirtioError } from '../errors.js';

/** A back-end program started by startBackendProcess: its child process, output and exit. */
export interface BackendProcess {
  /** The child process. */
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{
    /** The exit status, or null when a signal ended the process. */
    code: number | null;
    /** The signal that ended the process, or null when it exited by itself. */
    signal: NodeJS.Signals | null;
  }>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 2000); resolves once it has exited. */
  stop(graceMs?: number): Promise<{
    /** The exit status, or null when a signal ended the process (SIGTERM, or SIGKILL after the grace period). */
    code: number | null;
    /** The signal that ended the process, or null when it exited by itself. */
    signal: NodeJS.Signals | null;
  }>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/** Starts `cmd args` with piped output (and optional piped stdin). */
export function startBackendProcess(cmd: string, args: readonly string[], opts: { stdin?: boolean; onData?: (s: string) => void } = {}): BackendProcess {
  const child = spawn(cmd, args, { stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  live.add(child);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let out = '';
  const onData = (b: Buffer): void => {
    const s = b.toString('utf8');
    out += s;
    opts.onData?.(s);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('error', (e) => {
      out += `\nspawn error: ${e.message}\n`;
      live.delete(child);
      res({ code: null, signal: null });
    });
    child.once('close', (code, signal) => {
      live.delete(child);
      res({ code, signal });
    });
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

/** Resolves when `path` exists; rejects (TIMEOUT / BACKEND_IO) after `timeoutMs` or if `proc` exits first. */
export async function waitForSocket(path: string, timeoutMs: number, proc?: BackendProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(path)) return;
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) {
      throw new VirtioError(ErrorCode.BACKEND_IO, `back-end exited before ${path} appeared:\n${proc.output()}`);
    }
    if (Date.now() >= deadline) throw new VirtioError(ErrorCode.TIMEOUT, `${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts a back-end that listens on `socketPath` and waits until it does. */
export async function spawnBackend(cmd: string, args: readonly string[], socketPath: string, timeoutMs = 15_000): Promise<BackendProcess> {
  const p = startBackendProcess(cmd, args);
  try {
    await waitForSocket(socketPath, timeoutMs, p);
  } catch (e) {
    await p.stop(500);
    throw e;
  }
  return p;
}
