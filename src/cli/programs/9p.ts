#!/usr/bin/env node
/** `virtio-ts-9p`: `virtio-ts 9p` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('9p');
