#!/usr/bin/env node
/** `virtio-ts-i2c`: `virtio-ts i2c` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('i2c');
