/**
 * Where an execution's time goes, without the engine's search: runs a fixed set of mutants of a
 * target's committed corpus in a loop, in this thread, with coverage in one mode, and prints the
 * executions per second and what a coverage take costs per batch.
 *
 *   node dist/fuzz/exec-cost.js <target> [--coverage off|v8-block-count|v8-block-binary|counters]
 *                                        [--execs N] [--batch N] [--seed N]
 *
 * `v8-*` is V8's precise block coverage through node:inspector (the old engine: `count` with
 * callCount, `binary` without); `counters` is the engine's own counters (fuzz/engine/edge-counters.ts,
 * on the copy of the library fuzz/engine/instrument.ts builds in `dist-fuzz/`).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { Session } from 'node:inspector';
import { fileURLToPath } from 'node:url';
import { Mutator, Rng } from './engine/mutator.js';
import type { FuzzTarget } from './engine/target.js';

const args = process.argv.slice(2);
const opt = (flag: string, dflt: string): string => {
  const i = args.indexOf(flag);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const name = args[0] ?? 'split-ring';
const mode = opt('--coverage', 'off');
const execs = Number(opt('--execs', '20000'));
const batch = Number(opt('--batch', '256'));
const seed = Number(opt('--seed', '17'));

const session = new Session();
const post = (method: string, params: object = {}): unknown => {
  let out: unknown;
  session.post(method, params, (err, res) => {
    if (err) throw err;
    out = res;
  });
  return out;
};
if (mode.startsWith('v8-')) {
  session.connect();
  post('Profiler.enable');
  post('Profiler.startPreciseCoverage', { callCount: mode === 'v8-block-count', detailed: true });
}
const counters = mode === 'counters' ? await import('./engine/edge-counters.js') : null;
if (counters) {
  const { ensureInstrumented } = await import('./engine/instrument.js');
  counters.installCounters(ensureInstrumented(fileURLToPath(new URL('../..', import.meta.url))).counters);
}
const base = mode === 'counters' ? '../../dist-fuzz/fuzz' : '.';
const { target } = (await import(`${base}/targets/${name}.js`)) as { target: FuzzTarget };

const dir = fileURLToPath(new URL(`../../fuzz/corpus/${name}`, import.meta.url));
const corpus = readdirSync(dir).map((f) => new Uint8Array(readFileSync(`${dir}/${f}`)));
const rng = new Rng(seed);
const mutator = new Mutator(rng, target.maxLen);
const inputs: Uint8Array[] = [];
for (let i = 0; i < 3000; i++) inputs.push(mutator.mutate(corpus[rng.below(corpus.length)]!, corpus[rng.below(corpus.length)]));

const take = (): void => {
  if (mode.startsWith('v8-')) post('Profiler.takePreciseCoverage');
  else if (counters) counters.takeCounters();
};
Error.stackTraceLimit = 0; // as in the fuzz worker
// Warm up (the optimising tiers), then measure.
for (let i = 0; i < 2000; i++) {
  try {
    await target.run(inputs[i % inputs.length]!);
  } catch {
    // findings are not this tool's business
  }
}
take();
let runMs = 0;
let takeMs = 0;
let takes = 0;
// CPU time of this thread's process as well as wall time: on a shared machine the wall rate
// swings with the load; executions per CPU second much less.
const cpu0 = process.cpuUsage();
for (let done = 0; done < execs; ) {
  const t0 = performance.now();
  for (let i = 0; i < batch && done < execs; i++, done++) {
    try {
      await target.run(inputs[done % inputs.length]!);
    } catch {
      // as above
    }
  }
  const t1 = performance.now();
  take();
  takeMs += performance.now() - t1;
  takes++;
  runMs += t1 - t0;
}
const cpu = process.cpuUsage(cpu0);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
console.log(
  `${name} coverage=${mode}: ${execs} executions, ${Math.round((execs * 1000) / runMs)} exec/s running, ` +
    `take ${(takeMs / takes).toFixed(2)} ms per batch of ${batch}, ${Math.round((execs * 1000) / (runMs + takeMs))} exec/s with takes, ` +
    `${Math.round(execs / cpuSeconds)} exec per CPU second with takes`,
);
process.exit(0);
