#!/usr/bin/env node
/** `virtio-ts-gpio`: `virtio-ts gpio` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('gpio');
