/** Reproducible test bytes shared by the v86 checks: the project's xorshift32 stream (src/testing/xorshift.ts). */
export { xorshiftBytes } from '../../src/testing/xorshift.js';
