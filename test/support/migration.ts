/**
 * Live migration of one guest between two QEMU processes on this machine (`-incoming` over a
 * Unix socket, driven through QMP): the common part of the migration tests. The caller starts
 * the back-ends and gives each side's device arguments; the guest script runs its I/O, prints
 * progress lines, and waits (`host_wait moved`) for the host to say it reached the destination.
 */
import { QmpClient } from '../../src/transport/x-remote/qmp-client.js';
import { GuestError, GuestFailure } from './guest-errors.js';
import { buildInitramfs, type ExtraFile } from './guest-initramfs.js';
import { findCloudKernel } from './guest-kernels.js';
import { TRANSPORT_MODULES } from './guest-modules.js';
import { qemuArgv, runQemu, type GuestConsole, type GuestResult } from './guest-qemu.js';

export interface MigrationRunOptions {
  /** Guest modules besides the q35 transport's. */
  readonly modules: readonly string[];
  readonly script: string;
  readonly extraFiles?: readonly ExtraFile[];
  /** Device arguments of each side (`-chardev`/`-netdev`/`-device`); ids must match. */
  readonly sourceArgs: readonly string[];
  readonly destinationArgs: readonly string[];
  /** Unix socket paths for the two QMP monitors and the migration stream. */
  readonly qmpSource: string;
  readonly qmpDestination: string;
  readonly migrationSocket: string;
  /** Start migrating once this is true of a source console line. */
  readonly migrateWhen: (line: string) => boolean;
  /** Count of destination console lines for which this is true before the guest is told `moved`. */
  readonly progressOnDestination: (line: string) => boolean;
  readonly progressNeeded: number;
  readonly timeoutMs: number;
  readonly memoryMiB?: number;
}

export interface MigrationRunResult {
  /** The destination's run: its console from the moment the guest arrived, the script's results. */
  readonly destination: GuestResult;
  /** The source's console (the guest's output up to the move). */
  readonly sourceOutput: string;
  /** `query-migrate` when it ended. */
  readonly migration: Record<string, unknown>;
  /** Progress lines the destination printed. */
  readonly destinationProgress: number;
}

/** Polls `query-migrate` until the migration ends; resolves with its final state. */
async function waitMigration(qmp: QmpClient, timeoutMs: number): Promise<Record<string, unknown>> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const st = (await qmp.execute('query-migrate')) as Record<string, unknown>;
    if (st['status'] === 'completed' || st['status'] === 'failed' || st['status'] === 'cancelled') return st;
    if (performance.now() > end) throw new GuestError(GuestFailure.TIMEOUT, `migration not done after ${timeoutMs} ms: ${JSON.stringify(st)}`);
    // Polled: QMP 7.2 has no command that blocks until a migration ends.
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Boots the guest on the source, migrates it when `migrateWhen` sees its line, lets it go on on
 * the destination for `progressNeeded` lines, sends it `moved`, and resolves with the
 * destination's result once its script exits. Both QEMUs are always ended before it settles;
 * it rejects if the migration does not complete or the destination's script fails.
 */
export async function runMigration(o: MigrationRunOptions): Promise<MigrationRunResult> {
  const kernel = findCloudKernel();
  const initrd = await buildInitramfs({
    kernel,
    modules: [...TRANSPORT_MODULES.q35, ...o.modules],
    initScript: o.script,
    extraFiles: o.extraFiles,
  });
  const side = (args: readonly string[], qmp: string): string[] =>
    qemuArgv({ machine: 'q35', kernel: kernel.image, initrd, memfd: true, memoryMiB: o.memoryMiB ?? 128, qemuArgs: [...args, '-qmp', `unix:${qmp},server=on,wait=off`] });

  // Aborted when the run fails: both QEMUs are killed at once instead of at their time bound.
  const abort = new AbortController();
  let destConsole: GuestConsole | null = null;
  let progress = 0;
  let arrived = false;
  let told = false;
  const tellMoved = (): void => {
    if (arrived && !told && progress >= o.progressNeeded && destConsole !== null) {
      told = true;
      destConsole.send('moved\n');
    }
  };
  // The destination first: it waits for the incoming stream.
  const destRun = runQemu('qemu-system-x86_64', [...side(o.destinationArgs, o.qmpDestination), '-incoming', `unix:${o.migrationSocket}`], {
    timeoutMs: o.timeoutMs,
    signal: abort.signal,
    onLine: (line, guest) => {
      destConsole = guest;
      if (o.progressOnDestination(line)) progress++;
      tellMoved();
    },
  });
  const destSettled = destRun.then(
    () => undefined,
    () => undefined,
  );
  let sourceOutput = '';
  let startMigration: () => void = () => undefined;
  const sourceReady = new Promise<void>((resolve) => (startMigration = resolve));
  const sourceRun = runQemu('qemu-system-x86_64', side(o.sourceArgs, o.qmpSource), {
    timeoutMs: o.timeoutMs,
    signal: abort.signal,
    onLine: (line) => {
      sourceOutput += `${line}\n`;
      if (o.migrateWhen(line)) startMigration();
    },
  });
  // The source never reports an exit: after the move it is paused and told to quit.
  const sourceEnded = sourceRun.then(
    (r): GuestResult | GuestError => r,
    (e: unknown) => (e instanceof GuestError ? e : new GuestError(GuestFailure.QEMU_FAILED, String(e))),
  );
  try {
    const early = sourceEnded.then((r) => {
      throw new GuestError(GuestFailure.QEMU_FAILED, `the source ended before the migration began: ${r instanceof Error ? r.message : 'exited'}`);
    });
    await Promise.race([sourceReady, early]);
    early.catch(() => undefined);
    const src = await QmpClient.connect(o.qmpSource, 10_000);
    const dst = await QmpClient.connect(o.qmpDestination, 10_000);
    let migration: Record<string, unknown>;
    try {
      // QEMU's default limit (32 MiB/s) only makes the move slower.
      await src.execute('migrate-set-parameters', { 'max-bandwidth': 1 << 30 });
      await src.execute('migrate', { uri: `unix:${o.migrationSocket}` });
      migration = await waitMigration(src, o.timeoutMs);
      if (migration['status'] !== 'completed') throw new GuestError(GuestFailure.QEMU_FAILED, `migration ${String(migration['status'])}: ${JSON.stringify(migration)}`);
      const st = (await dst.execute('query-status')) as { running?: boolean; status?: string };
      if (st.running !== true) throw new GuestError(GuestFailure.QEMU_FAILED, `the destination does not run after the move: ${JSON.stringify(st)}`);
      arrived = true;
      tellMoved();
      await src.execute('quit').catch(() => undefined); // the source may exit before it answers
    } finally {
      src.close();
      dst.close();
    }
    const source = await sourceEnded;
    if (!(source instanceof GuestError) || source.failure !== GuestFailure.QEMU_FAILED) {
      throw new GuestError(GuestFailure.QEMU_FAILED, 'the source QEMU should have quit without its guest reporting an exit');
    }
    const destination = await destRun;
    return { destination, sourceOutput, migration, destinationProgress: progress };
  } catch (e) {
    abort.abort(new GuestError(GuestFailure.QEMU_FAILED, 'migration run failed'));
    const dest = await destRun.then(
      (r) => r.output,
      (err: unknown) => (err instanceof GuestError ? err.output : ''),
    );
    const msg = e instanceof Error ? e.message : String(e);
    throw new GuestError(GuestFailure.QEMU_FAILED, `${msg}\n----- source console -----\n${sourceOutput}\n----- destination console -----\n${dest}`, '', { cause: e });
  } finally {
    // Both QEMUs are ended (runQemu kills on its time bound at the latest); wait for them.
    await Promise.all([sourceEnded, destSettled]);
  }
}
