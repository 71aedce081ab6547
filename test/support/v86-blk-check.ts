/**
 * A block device whose bytes the host knows, the guest script that reads and writes it through
 * Linux's virtio_blk, and the host checks: the guest's checksum of what the host put on the disk,
 * the exact bytes the guest wrote in the RAM disk (and nothing around them), the read-back after
 * dropping the guest's caches.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BlkDevice } from '../../src/devices/blk/blk-device.js';
import { MemoryBackend } from '../../src/devices/blk/memory-backend.js';
import type { ExtraFile } from './guest.js';
import { xorshiftBytes } from './v86-pattern.js';

const DISK_BYTES = 8 << 20;
/** Host-written bytes at the start of the disk, read by the guest. */
const HOST_BYTES = 16 << 10;
const HOST_SEED = 0x5eed;
/** Where and how much the guest writes. */
const WRITE_OFFSET = 1 << 20;
const WRITE_BYTES = 64 << 10;

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

/** A RAM disk holding a known pattern, and the pattern the guest is to write (seeded per case). */
export class CheckedDisk {
  readonly backend = new MemoryBackend(DISK_BYTES);
  readonly device: BlkDevice;
  readonly written: Uint8Array;

  constructor(writeSeed: number) {
    this.backend.data.set(xorshiftBytes(HOST_BYTES, HOST_SEED));
    this.written = xorshiftBytes(WRITE_BYTES, writeSeed);
    this.device = new BlkDevice(this.backend, { queueSize: 128 });
  }

  /** The file the guest writes to the disk (put it in `extraFiles`). */
  get patternFile(): ExtraFile {
    return { path: '/pattern.bin', data: this.written };
  }
}

/** Guest script lines for /dev/vda (the only virtio disk of the run). */
export const BLK_SCRIPT = `
wait_path /dev/vda 600 || fail "no /dev/vda"
dev=$(basename "$(readlink -f /sys/block/vda/device)")
result blk_dev "$dev"
result sectors "$(cat /sys/block/vda/size)"
result version1 "$(has_feature "$dev" 32 && echo 1 || echo 0)"
result driver "$(basename "$(readlink -f /sys/bus/virtio/devices/$dev/driver)")"
h=$(dd if=/dev/vda bs=4096 count=${HOST_BYTES / 4096} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
result host_md5 "$h"
dd if=/pattern.bin of=/dev/vda bs=4096 seek=${WRITE_OFFSET / 4096} oflag=direct conv=fsync 2>/dev/null || fail "write failed"
sync
echo 3 > /proc/sys/vm/drop_caches
r=$(dd if=/dev/vda bs=4096 skip=${WRITE_OFFSET / 4096} count=${WRITE_BYTES / 4096} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
result readback_md5 "$r"
`;

/** Host checks of a run of BLK_SCRIPT against the disk. */
export function checkDisk(results: ReadonlyMap<string, string>, disk: CheckedDisk): void {
  const data = disk.backend.data;
  assert.equal(results.get('driver'), 'virtio_blk');
  assert.equal(Number(results.get('sectors')), DISK_BYTES / 512, 'capacity from the device configuration');
  // Device -> guest: the guest's checksum of what the host put on the disk.
  assert.equal(results.get('host_md5'), md5(xorshiftBytes(HOST_BYTES, HOST_SEED)));
  // Guest -> device: the RAM disk holds exactly what the guest wrote, and nothing around it moved.
  assert.ok(Buffer.from(data.subarray(WRITE_OFFSET, WRITE_OFFSET + WRITE_BYTES)).equals(disk.written), 'the backend holds the written pattern');
  assert.ok(data.subarray(WRITE_OFFSET - 4096, WRITE_OFFSET).every((b) => b === 0));
  assert.ok(data.subarray(WRITE_OFFSET + WRITE_BYTES, WRITE_OFFSET + WRITE_BYTES + 4096).every((b) => b === 0));
  // Read back through the device after dropping the guest's caches.
  assert.equal(results.get('readback_md5'), md5(disk.written));
}
