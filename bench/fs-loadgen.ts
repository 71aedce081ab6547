/**
 * The C virtio-fs front-end (bench/c/vhost-fs-loadgen.c): building it and reading its output,
 * for bench/fs-ops.mjs (FS_BENCH_FRONTEND=c) and test/fs-loadgen.test.ts.
 */
import { join } from 'node:path';
import { ErrorCode, VirtioError } from '../src/errors.js';
import { LOADGEN_FRONT_SOURCES, buildCProgram, repoRoot } from './blk-vhost-bench.js';

/** The fs load generator's own C source (built together with FS_LOADGEN_PARTS and LOADGEN_FRONT_SOURCES). */
export const FS_LOADGEN_SOURCE: string = join(repoRoot, 'bench', 'c', 'vhost-fs-loadgen.c');
/** Its other parts: the command line, /proc CPU reading, the FUSE wire format. */
export const FS_LOADGEN_PARTS: readonly string[] = ['vhost-fs-options.c', 'vhost-fs-options.h', 'proc-cpu.c', 'proc-cpu.h', 'fuse-proto.h'].map((f) => join(repoRoot, 'bench', 'c', f));
/** Where it is built by default. */
export const FS_LOADGEN_DEFAULT_BINARY: string = join(repoRoot, 'build', 'bench', 'vhost-fs-loadgen');

/** Builds the fs load generator (buildCProgram of bench/blk-vhost-bench.ts) into `out`. */
export function buildFsLoadgen(out: string = FS_LOADGEN_DEFAULT_BINARY): string {
  return buildCProgram(out, [...LOADGEN_FRONT_SOURCES, ...FS_LOADGEN_PARTS, FS_LOADGEN_SOURCE]);
}

/** One `RESULT` line of the fs load generator: a job. */
export interface FsJobResult {
  /** lookup, create, randread, seqread or seqwrite. */
  readonly job: string;
  /** Bytes per READ/WRITE (0 for the metadata jobs). */
  readonly bs: number;
  /** Operations in flight. */
  readonly qd: number;
  /** Whole operations completed in the timed part. */
  readonly ops: number;
  /** Wall seconds of the timed part. */
  readonly secs: number;
  /** Operations per second. */
  readonly opsPerSec: number;
  /** MiB per second moved by READ/WRITE. */
  readonly mibPerSec: number;
  /** Latency of a whole operation: mean, median, 99th percentile, maximum (µs). */
  readonly latMeanUs: number;
  /** Median latency (µs). */
  readonly latP50Us: number;
  /** 99th-percentile latency (µs). */
  readonly latP99Us: number;
  /** Largest latency (µs). */
  readonly latMaxUs: number;
  /** Re-notifications after a rescue period without a completion (a lost kick, or a slow request). */
  readonly rescueKicks: number;
  /** Completions found after a rescue period without a call. */
  readonly rescueUsed: number;
  /** Used lengths that differ from the reply's out header len. */
  readonly lenMismatches: number;
  /** The load generator's own CPU seconds in the timed part. */
  readonly cpuS: number;
  /** The back-end's process-tree CPU seconds in the timed part (0 without --cpu-pid). */
  readonly backendCpuS: number;
}

/** The fs load generator's stdout, parsed. */
export interface FsLoadgenOutput {
  /** The INFO line's fields (features, FUSE minor, max_write, ...), or null when absent. */
  readonly info: ReadonlyMap<string, string> | null;
  /** The RESULT lines, in order. */
  readonly results: readonly FsJobResult[];
  /** VERIFY OK / VERIFY FAIL: whether it passed and the line's fields; null when absent. */
  readonly verify: { readonly ok: boolean; readonly fields: ReadonlyMap<string, string> } | null;
}

function fieldsOf(words: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq > 0) m.set(w.slice(0, eq), w.slice(eq + 1));
  }
  return m;
}

/** Parses the fs load generator's stdout. Throws a VirtioError on a malformed RESULT line. */
export function parseFsLoadgenOutput(stdout: string): FsLoadgenOutput {
  let info: Map<string, string> | null = null;
  let verify: FsLoadgenOutput['verify'] = null;
  const results: FsJobResult[] = [];
  for (const line of stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'INFO') info = fieldsOf(words.slice(1));
    else if (words[0] === 'VERIFY' && (words[1] === 'OK' || words[1] === 'FAIL')) verify = { ok: words[1] === 'OK', fields: fieldsOf(words.slice(2)) };
    else if (words[0] === 'RESULT') {
      const f = fieldsOf(words.slice(1));
      const num = (key: string): number => {
        const v = f.get(key);
        const n = v === undefined ? NaN : Number(v);
        if (!Number.isFinite(n)) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `fs load generator line lacks a numeric ${key}: ${line}`);
        return n;
      };
      results.push({
        job: f.get('job') ?? '?',
        bs: num('bs'),
        qd: num('qd'),
        ops: num('ops'),
        secs: num('secs'),
        opsPerSec: num('ops_s'),
        mibPerSec: num('mibps'),
        latMeanUs: num('lat_mean_us'),
        latP50Us: num('lat_p50_us'),
        latP99Us: num('lat_p99_us'),
        latMaxUs: num('lat_max_us'),
        rescueKicks: num('rescue_kicks'),
        rescueUsed: num('rescue_used'),
        lenMismatches: num('len_mismatches'),
        cpuS: num('cpu_s'),
        backendCpuS: num('backend_cpu_s'),
      });
    }
  }
  return { info, results, verify };
}
