/**
 * V8's inlining budgets for a `virtio-ts net` process. A transmitted frame's path (the queue
 * server's pass, TxDirect.serve, NetDevice.sendTx and readTx, the guest copies, the stats, the
 * switch's forward) is about 2 KiB of bytecode, more than V8's defaults inline into one
 * optimized function (460 bytes per callee, 920 in all): with them the switch's `forward` (632
 * bytes) and the header read stay separate calls per frame. With the budgets below the drain
 * compiles as one function. Measured against testpmd txonly 64 B (bench/README.md "s17-net"):
 * 107-208 ns of back-end CPU per packet against 170-283 ns for the same build without, eight
 * alternations. Only the net command raises them (its process serves frames and little else);
 * budgets given on node's command line are kept.
 */
import { setFlagsFromString } from 'node:v8';

/** The V8 flags `raiseInliningBudgets` sets. */
export const NET_JIT_FLAGS: readonly string[] = ['--max-inlined-bytecode-size=1000', '--max-inlined-bytecode-size-cumulative=3000'];

let raised = false;

/**
 * Raises V8's inlining budgets (NET_JIT_FLAGS) for the rest of the process, once; not when node
 * was started with a budget of its own (`execArgv`). Returns whether they are raised now.
 */
export function raiseInliningBudgets(execArgv: readonly string[] = process.execArgv): boolean {
  if (raised) return true;
  if (execArgv.some((a) => a.startsWith('--max-inlined-bytecode-size') || a.startsWith('--max_inlined_bytecode_size'))) return false;
  for (const f of NET_JIT_FLAGS) setFlagsFromString(f);
  raised = true;
  return true;
}
