/**
 * `startXRemoteDevice`: one of QEMU's own PCI device models (virtio-blk-pci, virtio-rng-pci,
 * ...) in a `qemu-system-x86_64 -machine x-remote` process, driven from this process through
 * the unchanged PCI driver transport. QEMU gets one end of a socketpair as fd 3
 * (`-object x-remote-object,fd=3`); guest RAM is a memfd shared with SYNC_SYSMEM; the INTx
 * line is an eventfd pair. MSI-X is not used: its messages would go to an address nothing
 * decodes in the remote machine, so the driver takes INTx and reads ISR (4.1.4.5).
 *
 * QEMU runs the machine-init-done notifiers (where x-remote starts serving the socket) before
 * its start-up system reset, and that reset clears the BARs and the command register: whatever
 * is programmed before it is lost. So nothing is programmed until QEMU's main loop answers a QMP
 * command (a QMP monitor on a private socket, also handed to the caller for device steering).
 *
 * Everything started here has one owner and a time bound: QEMU must answer its first request
 * within `startTimeoutMs`; `close()` closes the link (QEMU's message loop then shuts it down),
 * sends SIGTERM after `graceMs` and SIGKILL after as long again, and closes every fd once.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, VirtioError } from '../../errors.js';
import type { DmaAllocator } from '../../driver/dma-allocator.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { loadNativePlatform } from '../../platform/native-platform.js';
import { PciDriverTransport } from '../pci/pci-driver.js';
import { type XRemotePlatform, XRemoteConnection } from './connection.js';
import { XRemoteGuestRam } from './guest-ram.js';
import { XRemoteIntxLine } from './intx-line.js';
import { type BarWindows, DEFAULT_MEMORY_WINDOW, XRemotePciFunction } from './pci-function.js';
import { QmpClient } from './qmp-client.js';

/** The QEMU binary run when no `qemuBinary` is given, looked up on PATH. */
export const DEFAULT_QEMU = 'qemu-system-x86_64';
/** The `id` the device gets on QEMU's command line (x-remote-object names it in `devid`). */
export const XREMOTE_DEVICE_ID = 'xr0';

/** Options of startXRemoteDevice: which QEMU device model to run and how to reach it. */
export interface XRemoteDeviceOptions {
  /** QEMU device type, e.g. 'virtio-blk-pci'. */
  readonly device: string;
  /** Device properties appended to `-device TYPE,id=xr0`, e.g. 'drive=d0,packed=on'. */
  readonly deviceProps?: string;
  /** Further QEMU arguments (backends: -blockdev, -object, -netdev, -chardev ...). */
  readonly qemuArgs?: readonly string[];
  /**
   * Devices on the device's own bus, created after it (QEMU creates devices in command-line
   * order): `-device` values such as 'scsi-hd,bus=xr0.0,drive=d0' or 'virtconsole,chardev=c0'.
   */
  readonly childDevices?: readonly string[];
  /** QEMU binary (default qemu-system-x86_64 from PATH). */
  readonly qemuBinary?: string;
  /** Guest RAM shared with the device: size and guest physical base (defaults 16 MiB at 1 MiB). */
  readonly memorySize?: number;
  /** Guest physical address of the shared RAM's first byte (default 1 MiB); keep it clear of `barWindows`. */
  readonly guestBase?: number;
  /** Where BARs go in the remote machine (must not overlap the RAM). */
  readonly barWindows?: BarWindows;
  /** Drive the legacy interface of a transitional device (default false: modern). */
  readonly legacy?: boolean;
  /** Bound on QEMU's start, up to its first reply (default 20 s). */
  readonly startTimeoutMs?: number;
  /** Start-ups tried when QEMU stays alive without answering within `startTimeoutMs` (default 2). */
  readonly startAttempts?: number;
  /** Bound on each register access once running (default 5 s). */
  readonly accessTimeoutMs?: number;
  /** Wait after closing the link before SIGTERM, and after SIGTERM before SIGKILL (default 2 s). */
  readonly graceMs?: number;
  /** The OS access (fd passing, memfd, eventfd, poll); the native platform by default. */
  readonly platform?: XRemotePlatform;
}

/**
 * A QEMU device model running under x-remote, with the PCI driver transport over it
 * (startXRemoteDevice).
 */
export interface XRemoteDevice {
  /** The PCI driver transport over the device: hand it to VirtioDriver.init. */
  readonly transport: PciDriverTransport;
  /** The shared guest RAM. */
  readonly memory: GuestMemory;
  /** Allocator of the shared guest RAM, for VirtioDriver's `dma`. */
  readonly dma: DmaAllocator;
  /** The device's PCI function as QEMU serves it (BARs placed). */
  readonly pci: XRemotePciFunction;
  /** The x-remote socket connection. */
  readonly link: XRemoteConnection;
  /** The INTx line (interrupt and resample eventfds). */
  readonly intx: XRemoteIntxLine;
  /** QMP of the device's QEMU (query-*, qom-set, balloon, input-send-event, screendump ...). */
  readonly qmp: QmpClient;
  /** QEMU's process id. */
  readonly pid: number;
  /** QEMU's stdout and stderr so far. */
  output(): string;
  /** Ends QEMU (bounded) and closes every fd; resolves with how it exited. Idempotent. */
  close(): Promise<{
    /** QEMU's exit status, or null when a signal ended it. */
    code: number | null;
    /** The signal that ended QEMU (e.g. SIGTERM, SIGKILL after the grace period), or null when it exited. */
    signal: NodeJS.Signals | null;
  }>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  live.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** Why x-remote cannot run here (QEMU missing, no x-remote machine, no addon), or null. */
export function xRemoteUnavailableReason(qemuBinary = DEFAULT_QEMU): string | null {
  try {
    loadNativePlatform();
  } catch (e) {
    return `native addon: ${(e as Error).message}`;
  }
  try {
    const machines = execFileSync(qemuBinary, ['-machine', 'help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    return /^x-remote\s/m.test(machines) ? null : `${qemuBinary} has no x-remote machine`;
  } catch {
    return `${qemuBinary} is not installed`;
  }
}

/** The QEMU command line for `opts` with the link on fd 3 and QMP on `qmpPath`. */
export function xRemoteQemuArgs(opts: Pick<XRemoteDeviceOptions, 'device' | 'deviceProps' | 'qemuArgs' | 'childDevices'>, qmpPath: string): string[] {
  const props = opts.deviceProps ? `,${opts.deviceProps}` : '';
  return [
    ...['-machine', 'x-remote', '-accel', 'tcg', '-nodefaults', '-display', 'none'],
    ...['-qmp', `unix:${qmpPath},server=on,wait=off`],
    ...(opts.qemuArgs ?? []),
    ...['-device', `${opts.device},id=${XREMOTE_DEVICE_ID}${props}`],
    ...(opts.childDevices ?? []).flatMap((d) => ['-device', d]),
    ...['-object', `x-remote-object,id=xro0,devid=${XREMOTE_DEVICE_ID},fd=3`],
  ];
}

/**
 * Starts QEMU's x-remote machine with one of its device models, shares guest RAM with it, places
 * its BARs and returns a PCI driver transport over it: drive QEMU's own device with virtio-ts's
 * drivers, no guest, no VM.
 *
 * A QEMU that stays alive but does not answer within `startTimeoutMs` (its QMP monitor or the
 * link's first request) is ended and started afresh, up to `startAttempts` times: once in some
 * thousand start-ups QEMU 7.2 accepted the QMP connection, sent its greeting and then never
 * answered `qmp_capabilities` (seen in a full test run; the same test passed at once when run
 * again). A QEMU that exits is not retried: its own message is the error.
 */
export async function startXRemoteDevice(opts: XRemoteDeviceOptions): Promise<XRemoteDevice> {
  const attempts = opts.startAttempts ?? 2;
  if (!Number.isInteger(attempts) || attempts < 1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `startAttempts is a positive integer, not ${attempts}`);
  const timedOut: string[] = [];
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      if (e instanceof VirtioError && e.code === ErrorCode.TIMEOUT && attempt < attempts) {
        timedOut.push(`attempt ${attempt} of ${attempts}: ${e.message.split('\n')[0]}`);
        continue;
      }
      if (e instanceof Error && timedOut.length > 0) e.message += `\nearlier start-ups that timed out:\n${timedOut.join('\n')}`;
      throw e;
    }
  }
}

/** One start-up of QEMU (startXRemoteDevice), bounded by `startTimeoutMs`; everything closed on failure. */
async function startOnce(opts: XRemoteDeviceOptions): Promise<XRemoteDevice> {
  const platform = opts.platform ?? (loadNativePlatform() as XRemotePlatform);
  const graceMs = opts.graceMs ?? 2000;
  const ram = new XRemoteGuestRam(platform, { size: opts.memorySize ?? 16 << 20, guestBase: opts.guestBase ?? 1 << 20 });
  const memWindow = opts.barWindows?.memoryBase ?? DEFAULT_MEMORY_WINDOW;
  if (ram.end > memWindow) {
    ram.close();
    throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `guest RAM (ends at 0x${ram.end.toString(16)}) overlaps the BAR window at 0x${memWindow.toString(16)}`);
  }
  let pair: [number, number];
  try {
    pair = platform.socketpair();
  } catch (e) {
    ram.close();
    throw e;
  }
  const [mine, theirs] = pair;
  const link = new XRemoteConnection(platform, mine, opts.accessTimeoutMs ?? 5000);
  const intx = new XRemoteIntxLine(platform);
  const dir = mkdtempSync(join(tmpdir(), 'vts-xremote-'));
  const qmpPath = join(dir, 'qmp.sock');
  let qmp: QmpClient | null = null;

  let child: ChildProcess;
  try {
    child = spawn(opts.qemuBinary ?? DEFAULT_QEMU, xRemoteQemuArgs(opts, qmpPath), { stdio: ['ignore', 'pipe', 'pipe', theirs] });
  } finally {
    platform.close(theirs); // QEMU has its copy as fd 3
  }
  track(child);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (e) => {
      out += `spawn error: ${e.message}\n`;
      live.delete(child);
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });

  let closing: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  const close = (): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    closing ??= (async () => {
      qmp?.close();
      intx.close();
      link.close();
      const timers: NodeJS.Timeout[] = [];
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        timers.push(setTimeout(() => child.kill('SIGTERM'), graceMs));
        timers.push(setTimeout(() => child.kill('SIGKILL'), 2 * graceMs));
      }
      try {
        return await exited;
      } finally {
        for (const t of timers) clearTimeout(t);
        ram.close();
        rmSync(dir, { recursive: true, force: true });
      }
    })();
    return closing;
  };

  try {
    const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
    const deadline = Date.now() + startTimeoutMs;
    const died = exited.then(({ code, signal }) => `QEMU exited (code ${code}, signal ${signal}) before answering:\n${out}`);
    // Bounded: QEMU creates and then listens on its QMP socket early in its start-up.
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new VirtioError(ErrorCode.BACKEND_IO, await died);
      if (Date.now() > deadline) throw new VirtioError(ErrorCode.TIMEOUT, `QEMU did not answer on QMP within ${startTimeoutMs} ms`);
      if (existsSync(qmpPath)) {
        try {
          qmp = await QmpClient.connect(qmpPath, Math.max(1, deadline - Date.now()));
          break;
        } catch (e) {
          // Not listening yet, or going away: QEMU accepts on QMP early and then exits when it
          // refuses its command line, so a reset or a close before the greeting is its exit in
          // progress. Retry: the top of the loop reports the exit with QEMU's own message, and
          // the deadline bounds a QEMU that stays alive but keeps closing.
          if (!/ECONNREFUSED|ENOENT|ECONNRESET|EPIPE|QMP socket closed/.test((e as Error).message)) throw e;
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await link.handshake(Math.max(1, deadline - Date.now()), died);
    ram.share(link);
    const pci = new XRemotePciFunction(link);
    pci.assignBars(opts.barWindows);
    const transport = new PciDriverTransport(pci, ram.memory, { useMsix: false, legacy: opts.legacy ?? false });
    intx.connect(link, () => transport.handleIntx());
    return {
      transport,
      memory: ram.memory,
      dma: ram.dma,
      pci,
      link,
      intx,
      qmp,
      pid: child.pid ?? -1,
      output: () => out,
      close,
    };
  } catch (e) {
    await close();
    if (e instanceof VirtioError && !e.message.includes(out)) e.message += out ? `\nQEMU output:\n${out}` : '';
    throw e;
  }
}
