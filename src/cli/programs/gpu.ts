#!/usr/bin/env node
/** `virtio-ts-gpu`: `virtio-ts gpu` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('gpu');
