/** The device side of ring-bench's worker case: pops and pushes until `chains` are done. */
import { workerData, parentPort } from 'node:worker_threads';
import { DescriptorChain } from '../src/queue/chain.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { makeDeviceQueue, QUEUE_SIZE } from './ring-bench.js';

const { buffer, packed, chains } = workerData as { buffer: SharedArrayBuffer; packed: boolean; chains: number };
const mem = new GuestMemory([{ guestBase: 0, bytes: new Uint8Array(buffer) }]);
const dev = makeDeviceQueue(mem, packed, 0n);
const chain = new DescriptorChain(mem, QUEUE_SIZE);
parentPort!.postMessage('ready');
let done = 0;
while (done < chains) {
  while (dev.pop(chain)) {
    dev.push(chain, 0);
    done++;
  }
}
