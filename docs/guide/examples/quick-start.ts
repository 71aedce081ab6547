// The README's ten lines: a device and its driver in one process, over split rings in a private
// guest memory. Run: node dist/docs/guide/examples/quick-start.js
import { EntropyDevice } from 'virtio-ts/devices';
import { EntropyDriver } from 'virtio-ts/driver';
import { createLoopback } from 'virtio-ts/testing';

const lb = await createLoopback(new EntropyDevice());
const bytes = await new EntropyDriver(lb.context).read(16);
await lb.close();
console.log(`16 random bytes from virtio-rng: ${Buffer.from(bytes).toString('hex')}`);
