#!/usr/bin/env node
/** `virtio-ts-input`: `virtio-ts input` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('input');
