/**
 * Hot plug against a real Linux guest: a virtio-ts ScsiDevice served over vhost-user from this
 * process to QEMU 7.2's vhost-user-scsi-pci (q35, cloud kernel virtio_scsi + sd_mod). While the
 * guest runs, the host adds LUN 1 (TRANSPORT_RESET RESCAN on the eventq, VIRTIO_SCSI_F_HOTPLUG
 * negotiated: device/scsi/9) and Linux's virtio_scsi adds the disk (a new /dev/sdX whose bytes
 * are the host's); then the host removes it (REMOVED) and Linux removes the disk.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MemoryBackend } from '../src/devices/blk/memory-backend.js';
import { ScsiDevice } from '../src/devices/scsi/scsi-device.js';
import { loadNativePlatform } from '../src/platform/native-platform.js';
import { serveVhostUser } from '../src/vhost-user/server.js';
import { ensureGuestDeps, makeTempDir, runDeviceGuest, withConsole, type TempDir } from './support/guest.js';

const deps = ensureGuestDeps();
const skip = deps.ok ? false : deps.reason;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const script = `
wait_path /dev/sda 300 || fail "no /dev/sda"
result before "$(ls /sys/class/scsi_device | tr '\\n' ' ')"
echo PLUG-NOW
host_wait PLUGGED || fail "host did not plug"
i=0; while [ ! -e /dev/sdb ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
[ -e /dev/sdb ] || fail "the hot-plugged LUN did not appear"
result after "$(ls /sys/class/scsi_device | tr '\\n' ' ')"
result sdb_size "$(cat /sys/block/sdb/size)"
result sdb_sha256 "$(dd if=/dev/sdb bs=4096 count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo UNPLUG-NOW
host_wait UNPLUGGED || fail "host did not unplug"
i=0; while [ -e /dev/sdb ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
result removed "$(ls /sys/class/scsi_device | tr '\\n' ' ')"
`;

describe('virtio-scsi hot plug with a real Linux guest (QEMU 7.2 vhost-user-scsi-pci)', { skip, timeout: 300_000 }, () => {
  let tmp: TempDir;
  before(async () => {
    tmp = await makeTempDir('vts-vuscsi-hp-');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('device/scsi/9: LUN 1 added while the guest runs appears as a disk with the host bytes (RESCAN event); removed, it disappears (REMOVED)', async (t) => {
    const lun1 = new MemoryBackend(64 * 1024);
    for (let i = 0; i < lun1.data.length; i++) lun1.data[i] = (i * 7 + (i >> 9)) & 0xff;
    const device = new ScsiDevice([{ backend: new MemoryBackend(1 << 20) }]);
    const sock = tmp.file('hp.sock');
    const server = await serveVhostUser({ device, platform: loadNativePlatform(), socketPath: sock });
    const actions: string[] = [];
    try {
      const res = await runDeviceGuest({
        devices: ['scsi'],
        qemuArgs: ['-chardev', `socket,id=c0,path=${sock}`],
        qemuDevices: ['vhost-user-scsi-pci,chardev=c0,num_queues=1'],
        script,
        memfd: true,
        timeoutMs: 120_000,
        onLine(line, guest) {
          if (line.trim() === 'PLUG-NOW') {
            device.addLun(1, lun1);
            actions.push('plugged');
            guest.send('PLUGGED\n');
          } else if (line.trim() === 'UNPLUG-NOW') {
            device.removeLun(1);
            actions.push('unplugged');
            guest.send('UNPLUGGED\n');
          }
        },
      });
      t.diagnostic(`/init at ${res.bootMs.toFixed(0)} ms, QEMU exited at ${res.totalMs.toFixed(0)} ms`);
      await withConsole(res, '', () => {
        assert.deepEqual(actions, ['plugged', 'unplugged']);
        const luns = (k: string): string[] => (res.results.get(k) ?? '').trim().split(' ').filter((s) => s !== '').map((d) => d.split(':').slice(1).join(':'));
        assert.deepEqual(luns('before'), ['0:0:0']);
        assert.deepEqual(luns('after'), ['0:0:0', '0:0:1'], 'Linux added the LUN on the RESCAN event');
        assert.equal(res.results.get('sdb_size'), String(lun1.data.length / 512));
        assert.equal(res.results.get('sdb_sha256'), sha256(lun1.data), 'the new disk reads the host bytes');
        assert.deepEqual(luns('removed'), ['0:0:0'], 'Linux removed the LUN on the REMOVED event');
      });
    } finally {
      await server.close();
    }
  });
});
