#!/usr/bin/env node
/** `virtio-ts-vsock`: `virtio-ts vsock` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('vsock');
