#!/usr/bin/env node
/** `virtio-ts-balloon`: `virtio-ts balloon` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('balloon');
