#!/usr/bin/env node
/** `virtio-ts-scsi`: `virtio-ts scsi` as a program of its own (src/cli/program.ts). */
import { runProgram } from '../program.js';

runProgram('scsi');
