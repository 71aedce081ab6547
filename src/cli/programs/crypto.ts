#!/usr/bin/env node
/** `virtio-ts-crypto`: `virtio-ts crypto` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('crypto');
