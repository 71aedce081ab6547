#!/usr/bin/env node
/** `virtio-ts-blk`: `virtio-ts blk` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('blk');
