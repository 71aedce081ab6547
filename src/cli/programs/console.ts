#!/usr/bin/env node
/** `virtio-ts-console`: `virtio-ts console` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('console');
