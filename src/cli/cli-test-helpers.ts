/**
 * Helpers for tests that run the built `virtio-ts` command as a child process: every run is
 * bounded in time and its process is always ended.
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { ErrorCode, VirtioError } from '../errors.js';
import { parseCommandLine } from './args.js';
import { main } from './main.js';
import { CliError, type CliFault } from './options.js';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
/** Bound of one CLI run; a run that needs longer is a failure, and the process is killed. */
export const RUN_MS = 20_000;

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Spawns the CLI; `during` runs while it is alive (and may signal it). Always ends the process. */
export async function runCli(
  args: string[],
  during?: (child: ChildProcess, stderr: () => string) => Promise<void>,
  extraFds: number[] = [],
): Promise<Ran> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe', ...extraFds] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), RUN_MS);
  try {
    if (during) await during(child, () => err);
    const { code, signal } = await closed;
    return { code, signal, out, err };
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await closed;
    }
  }
}

/** A CLI process a test runs alongside its own work (startCli). */
export interface CliChild {
  readonly child: ChildProcessWithoutNullStreams;
  /** Its exit code (null when a signal ended it). */
  readonly closed: Promise<number | null>;
  /** Its standard output so far. */
  out(): string;
  /** Its standard error so far. */
  err(): string;
  /** Ends it (SIGKILL) if it still runs, and waits for that; for a test's finally. */
  end(): Promise<void>;
}

/**
 * Spawns the CLI with `args` (stdout and stderr collected; stdin a pipe the test may write, or
 * `ignore`) and kills it after `ms` (default RUN_MS) whatever happens; the test ends it with
 * `end()` in its finally.
 */
export function startCli(args: string[], opts: { stdin?: 'pipe' | 'ignore'; ms?: number } = {}): CliChild {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] }) as ChildProcessWithoutNullStreams;
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), opts.ms ?? RUN_MS);
  return {
    child,
    closed,
    out: () => out,
    err: () => err,
    async end() {
      clearTimeout(killer);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await closed;
      }
    },
  };
}

/** Polls (10 ms) until `cond()` or `ms` elapse; bounded. */
export async function until(cond: () => boolean, ms: number, what: string, child: ChildProcess): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (child.exitCode !== null || child.signalCode !== null) throw new VirtioError(ErrorCode.BACKEND_IO, `process ended while waiting for ${what}`);
    if (Date.now() > end) throw new VirtioError(ErrorCode.TIMEOUT, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function isSocket(p: string): boolean {
  try {
    return statSync(p).isSocket();
  } catch {
    return false;
  }
}

export function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'vts-cli-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** Runs `main` in process with its output captured (no child process). */
export async function runMain(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

/** Asserts `virtio-ts <command> --socket-path /tmp/x.sock ...argv` is refused with fault `f`. */
export function expectCliFault(command: string, argv: string[], f: CliFault): void {
  assert.throws(
    () => parseCommandLine([command, '--socket-path', '/tmp/x.sock', ...argv]),
    (e: unknown) => e instanceof CliError && e.fault === f && e.command === command,
  );
}
