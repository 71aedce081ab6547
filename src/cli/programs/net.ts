#!/usr/bin/env node
/** `virtio-ts-net`: `virtio-ts net` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('net');
