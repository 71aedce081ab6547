/**
 * What the NBD tests share: the server tools (qemu-nbd, qemu-img, nbdkit, ...) installed by
 * scripts/install-guest-deps.sh when missing, and waiting until a started server accepts
 * connections (a Unix socket's path appears at bind, before listen).
 */
import { connect } from 'node:net';
import { inCI, isRoot, onPath, runInstallScript } from './guest-host.js';
import { GuestError, GuestFailure } from './guest-errors.js';
import type { ManagedProcess } from './guest-process.js';

/**
 * False when every tool is on PATH (installed first as root or in CI); otherwise the reason to
 * skip outside CI. In CI a missing tool throws MISSING_DEPS: the tests fail, never skip.
 */
export function nbdToolsMissing(tools: readonly string[]): string | false {
  if (tools.every(onPath)) return false;
  if (isRoot || inCI) runInstallScript('install-guest-deps.sh');
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length === 0) return false;
  const reason = `${missing.join(', ')} missing; run (as root) scripts/install-guest-deps.sh`;
  if (inCI) throw new GuestError(GuestFailure.MISSING_DEPS, reason);
  return reason;
}

/** A server's address: a Unix socket path or a loopback TCP port. */
export type NbdServerAddress = { readonly path: string } | { readonly port: number };

/** Resolves once a connection to `target` is accepted; throws when `p` exits or after 15 s. */
export async function nbdServerAccepting(target: NbdServerAddress, p: ManagedProcess): Promise<void> {
  const end = Date.now() + 15_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = 'path' in target ? connect(target.path) : connect(target.port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (p.child.exitCode !== null || Date.now() > end) throw new Error(`${JSON.stringify(target)} does not accept connections\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
