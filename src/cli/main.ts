#!/usr/bin/env node
/**
 * The `virtio-ts` command: `blk` and `rng` vhost-user back-ends, and the in-process `demo`.
 * Exit codes: 0 success, 1 runtime failure, 2 usage error (EXIT in args.ts).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isVirtioError } from '../errors.js';
import { printCapabilities } from '../vhost-user/capabilities.js';
import { CliError, EXIT, parseCommandLine, usage } from './args.js';
import { checkBackendSocket } from './socket-check.js';

/** Where the command writes; replaced in tests. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/** The capabilities each back-end reports (vhost-user.json @VHostUserBackendCapabilities). */
export const BACKEND_CAPABILITIES = {
  // @VHostUserBackendBlockFeature: we take --read-only and --blk-file.
  blk: { type: 'block', features: ['read-only', 'blk-file'] },
  rng: { type: 'rng', features: [] },
} as const;

/** The `--print-capabilities` text (JSON and a newline), checked against the schema's names. */
export function capabilitiesJson(command: keyof typeof BACKEND_CAPABILITIES): string {
  const c = BACKEND_CAPABILITIES[command];
  return printCapabilities(c.type, c.features);
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Runs the command line `argv` (without node and the script) and resolves with the exit code.
 * Back-end commands resolve only when they end (SIGTERM, SIGINT, or a fatal error).
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  try {
    const parsed = parseCommandLine(argv);
    switch (parsed.kind) {
      case 'help':
        io.stdout(parsed.text);
        return EXIT.OK;
      case 'version':
        io.stdout(`virtio-ts ${version()}\n`);
        return EXIT.OK;
      case 'capabilities': {
        io.stdout(capabilitiesJson(parsed.command));
        return EXIT.OK;
      }
      case 'blk': {
        await checkBackendSocket(parsed.options);
        const { runBlk } = await import('./blk-command.js');
        return await runBlk(parsed.options, io);
      }
      case 'rng': {
        await checkBackendSocket(parsed.options);
        const { runRng } = await import('./rng-command.js');
        return await runRng(parsed.options, io);
      }
      case 'demo': {
        const { runDemo } = await import('./demo.js');
        return await runDemo(parsed.options, io);
      }
    }
  } catch (e) {
    if (e instanceof CliError) {
      const cmd = e.command === null ? '' : ` ${e.command}`;
      io.stderr(`virtio-ts${cmd}: ${e.message}\n\n${usage(e.command)}`);
      return EXIT.USAGE;
    }
    const msg = isVirtioError(e) ? `${e.message} (${e.code})` : e instanceof Error ? (e.stack ?? e.message) : String(e);
    io.stderr(`virtio-ts: ${msg}\n`);
    return EXIT.RUNTIME;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    // stdout and stderr are synchronous for files and pipes on Linux, so nothing written is lost;
    // exiting explicitly means no stray handle can keep a finished back-end alive.
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`virtio-ts: ${String(e)}\n`);
      process.exit(EXIT.RUNTIME);
    },
  );
}
