import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INLINING_BUDGET_FLAGS, raiseInliningBudgets } from './inlining-budgets.js';

describe('inlining-budgets: V8 inlining budgets of the device commands', () => {
  it('keeps a budget given on node\'s command line, else raises both once', () => {
    assert.equal(raiseInliningBudgets(['--max-inlined-bytecode-size=200']), false);
    assert.equal(raiseInliningBudgets(['--max_inlined_bytecode_size_cumulative=500']), false);
    assert.equal(raiseInliningBudgets(['--expose-gc']), true);
    assert.equal(raiseInliningBudgets(['--max-inlined-bytecode-size=200']), true, 'already raised');
    assert.deepEqual(
      INLINING_BUDGET_FLAGS.map((f) => f.replace(/=.*/, '')),
      ['--max-inlined-bytecode-size', '--max-inlined-bytecode-size-cumulative'],
    );
    for (const f of INLINING_BUDGET_FLAGS) assert.ok(Number(f.replace(/.*=/, '')) > 920, f);
  });
});
