/**
 * virtio-pmem (5.19): requests on the requestq (struct virtio_pmem_req: le32 type, FLUSH
 * mostly, any u32 sometimes, the 4 bytes whole mostly and cut short sometimes, then raw bytes)
 * with 0 to 2048 writable bytes for struct virtio_pmem_resp, over an in-memory backend whose
 * flush the input makes succeed at once, succeed later (a promise, as fdatasync), throw or
 * reject, per request: the device's -1 paths and its asynchronous completion (device/pmem/6)
 * are reached. Not a temp-file backend: PmemFileBackend's flush is fdatasync on the thread
 * pool, which the harness's bounded settle would not wait for, and mapping a file per target
 * adds nothing the memory backend's promise path does not cover. Checks (device-chains): no
 * throw, every chain completed, used.len within the writable bytes, guards; the flush count is
 * part of the reuse fingerprint.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import { PmemMemoryBackend, type PmemBackend } from '../../src/devices/pmem/pmem-backend.js';
import { PmemDevice } from '../../src/devices/pmem/pmem-device.js';
import { ErrorCode, VirtioError } from '../../src/errors.js';
import { PMEM_REQ_TYPE_FLUSH } from '../../src/spec/pmem.js';

/** One queue: the largest size the harness allows, so an input's 12 chains all fit. */
const QUEUE_SIZE = 32;

/** How the backend's next flush ends (the host side the input drives). */
const FlushOutcome = { OK: 0, OK_LATER: 1, THROW: 2, REJECT: 3 } as const;

/** PmemMemoryBackend whose flush ends as the input last chose. */
class SteeredPmemBackend implements PmemBackend {
  readonly memory = new PmemMemoryBackend(64 * 1024);
  outcome: number = FlushOutcome.OK;

  get bytes(): Uint8Array {
    return this.memory.bytes;
  }

  get flushes(): number {
    return this.memory.flushes;
  }

  flush(): void | Promise<void> {
    switch (this.outcome) {
      case FlushOutcome.OK:
        return this.memory.flush();
      case FlushOutcome.OK_LATER:
        return Promise.resolve().then(() => this.memory.flush());
      case FlushOutcome.THROW:
        throw new VirtioError(ErrorCode.BACKEND_IO, 'pmem fuzz: flush failed');
      default:
        return Promise.reject(new VirtioError(ErrorCode.BACKEND_IO, 'pmem fuzz: flush failed later'));
    }
  }

  /** As built: no flush done, the next one succeeds. */
  restore(): void {
    this.memory.flushes = 0;
    this.outcome = FlushOutcome.OK;
  }

  close(): void {}
}

/**
 * The flush outcome (OK for a byte below 0x80, else its low two bits), then odd fields (a
 * second byte, one time in four): 1 any type, 2 the header cut short.
 */
function header(_queue: number, r: ByteReader, core: DeviceCore): Uint8Array {
  const outcome = r.u8();
  ((core.device as PmemDevice).backend as SteeredPmemBackend).outcome = outcome < 0x80 ? FlushOutcome.OK : outcome & 3;
  const odd = r.u8() >= 0xc0 ? r.u8() : 0;
  const msg = new ByteWriter().u32((odd & 1) !== 0 ? r.u32() : PMEM_REQ_TYPE_FLUSH).finish();
  return (odd & 2) !== 0 ? msg.subarray(0, r.below(4)) : msg;
}

const spec: DeviceChainsSpec = {
  device: () => {
    const backend = new SteeredPmemBackend();
    const device = new PmemDevice(backend, { start: 0x1_0000_0000, shmemRegion: true, queueSize: QUEUE_SIZE });
    return { device, resetHost: () => backend.restore(), hostState: () => [new Uint8Array(Uint32Array.of(backend.flushes, backend.outcome).buffer)] };
  },
  queues: 1,
  heldQueues: [],
  header,
  queueSize: QUEUE_SIZE,
};

/** Seeds: a flush; flushes that complete later and one that fails, then a flush again. */
function seeds(): Uint8Array[] {
  const flush = (outcome: number, writable = 4): SeedChain => ({ queue: 0, header: [0x80 | outcome, 0], writable });
  return [
    deviceChainsSeed(true, [[flush(FlushOutcome.OK)]], spec),
    deviceChainsSeed(false, [[flush(FlushOutcome.OK_LATER), flush(FlushOutcome.OK_LATER, 16)], [flush(FlushOutcome.OK)]], spec),
    deviceChainsSeed(true, [[flush(FlushOutcome.THROW)], [flush(FlushOutcome.REJECT), flush(FlushOutcome.OK, 64)]], spec),
  ];
}

export const target: FuzzTarget = { name: 'pmem-requests', maxLen: 512, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
