/**
 * V8's inlining budgets for a device command whose process serves requests and little else
 * (`virtio-ts net`, `virtio-ts fs`). A request's path through the queue server, the device and
 * its back-end is a few KiB of bytecode, more than V8's defaults inline into one optimized
 * function (460 bytes per callee, 920 in all): with them the net switch's `forward` (632
 * bytes) and the transmit header read stayed separate calls per frame. With the budgets below
 * such a path compiles as one function. Measured (bench/README.md "s17-net", "s17-fs"): net,
 * testpmd txonly 64 B, 107-208 ns of back-end CPU per packet against 170-283 ns for the same
 * build without, eight alternations; fs, the C front-end's LOOKUP+GETATTR+FORGET, 14.6-15.8 CPU
 * µs per operation against 15.5-16.4 in the VM's fast mode, eleven alternations. Budgets given
 * on node's command line are kept; library users and other commands keep V8's defaults.
 */
import { setFlagsFromString } from 'node:v8';

/** The V8 flags `raiseInliningBudgets` sets. */
export const INLINING_BUDGET_FLAGS: readonly string[] = ['--max-inlined-bytecode-size=1000', '--max-inlined-bytecode-size-cumulative=3000'];

let raised = false;

/**
 * Raises V8's inlining budgets (INLINING_BUDGET_FLAGS) for the rest of the process, once; not
 * when node was started with a budget of its own (`execArgv`). Returns whether they are raised
 * now. Call it before the first request is served, so the hot paths are first optimized with them.
 */
export function raiseInliningBudgets(execArgv: readonly string[] = process.execArgv): boolean {
  if (raised) return true;
  if (execArgv.some((a) => a.startsWith('--max-inlined-bytecode-size') || a.startsWith('--max_inlined_bytecode_size'))) return false;
  for (const f of INLINING_BUDGET_FLAGS) setFlagsFromString(f);
  raised = true;
  return true;
}
