/**
 * Checks a back-end's socket before anything heavy is loaded, so a bad path fails at once with a
 * message naming the reason (and exit code 1).
 */
import { fstatSync, lstatSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname } from 'node:path';
import { ErrorCode, VirtioError } from '../errors.js';
import type { BackendOptions } from './options.js';

/** How long a live-socket probe may take before the path counts as stale. */
const PROBE_TIMEOUT_MS = 500;

/** Resolves true when something accepts connections on the Unix socket at `path`. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ path });
    const done = (live: boolean): void => {
      clearTimeout(timer);
      s.removeAllListeners();
      s.on('error', () => undefined);
      s.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(false), PROBE_TIMEOUT_MS);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Refuses socket paths we must not or cannot use, with a message naming the reason: a missing
 * folder, a path that is not a socket (never delete a user's file), a socket another back-end is
 * serving. A stale socket (nobody listening) is left for the server to replace.
 */
export async function checkSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  let dirOk = false;
  try {
    dirOk = statSync(dir).isDirectory();
  } catch {
    dirOk = false;
  }
  if (!dirOk) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `cannot listen on ${path}: folder ${dir} does not exist`);
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // nothing there: fine
  }
  if (!st.isSocket()) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `cannot listen on ${path}: it exists and is not a socket`);
  if (await socketIsLive(path)) {
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `cannot listen on ${path}: another process is serving that socket`);
  }
}

/** `--socket-path`: checkSocketPath; `--fd`: the fd is open and is a socket. */
export async function checkBackendSocket(options: BackendOptions): Promise<void> {
  if (options.socketPath !== null) {
    await checkSocketPath(options.socketPath);
  } else if (options.fd !== null) {
    let isSocket = false;
    try {
      isSocket = fstatSync(options.fd).isSocket();
    } catch (e) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `--fd ${options.fd}: ${(e as Error).message}`);
    }
    if (!isSocket) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `--fd ${options.fd} is not a socket`);
  }
}
