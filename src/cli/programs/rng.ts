#!/usr/bin/env node
/** `virtio-ts-rng`: `virtio-ts rng` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('rng');
