#!/usr/bin/env node
/** `virtio-ts-fs`: `virtio-ts fs` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('fs');
