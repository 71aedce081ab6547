/**
 * Linux's virtio-gpu (the i386 686 kernel under v86) drives a virtio-ts GpuDevice: the kernel's
 * fbdev emulation over it gives /dev/fb0, the guest writes a known pattern into it (every byte
 * 0x55, row 10 0xaa), and the host compares the scanout's flushed RGBA pixels. Once the host sees
 * the whole pattern it changes the display size (VIRTIO_GPU_EVENT_DISPLAY): the guest sees the
 * new mode in its connector, which is also how the guest learns the host saw its picture (no
 * sleeps: both sides wait, bounded, for the other's sign).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GpuDevice } from '../src/devices/gpu/gpu-device.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 8 * 60_000;
const W = 320;
const H = 240;
const STRIPE_ROW = 10;

const SCRIPT = `
wait_path /dev/fb0 600 || fail "no /dev/fb0"
# fbcon draws the text console (and a blinking cursor) on fb0: unbind it first.
for v in /sys/class/vtconsole/vtcon*; do grep -q "frame buffer" $v/name 2>/dev/null && echo 0 > $v/bind; done
S=$(cat /sys/class/graphics/fb0/stride)
Y=$(cut -d, -f2 /sys/class/graphics/fb0/virtual_size)
result stride $S
result vsize $(cat /sys/class/graphics/fb0/virtual_size)
result bpp $(cat /sys/class/graphics/fb0/bits_per_pixel)
C=$(ls -d /sys/class/drm/card0-*-1 | head -n 1)
result edid $(wc -c < $C/edid)
result mode0 $(head -n 1 $C/modes)
# The picture in one sequential write: rows of 0x55, row ${STRIPE_ROW} of 0xaa.
{ head -c $((S*${STRIPE_ROW})) /dev/zero | tr '\\000' '\\125'
  head -c $S /dev/zero | tr '\\000' '\\252'
  head -c $((S*(Y-${STRIPE_ROW}-1))) /dev/zero | tr '\\000' '\\125'; } > /tmp/picture
cat /tmp/picture > /dev/fb0 || fail "fb write"
result written 1
# Bounded wait for the host's sign; "detect" makes DRM probe the connector again (fill_modes).
i=0
until grep -q 640x400 $C/modes; do i=$((i+1)); [ $i -gt 60 ] && fail "no display change"; sleep 1; echo detect > $C/status; done
result mode1 $(head -n 1 $C/modes)
result ok 1
`;

/** Whether the scanout shows 0x55 everywhere but row STRIPE_ROW (0xaa), opaque. */
function showsPattern(rgba: Uint8Array, width: number, height: number): boolean {
  if (width !== W || height !== H) return false;
  for (let y = 0; y < height; y++) {
    const v = y === STRIPE_ROW ? 0xaa : 0x55;
    for (let i = y * width * 4, end = (y + 1) * width * 4; i < end; i += 4) {
      if (rgba[i] !== v || rgba[i + 1] !== v || rgba[i + 2] !== v || rgba[i + 3] !== 255) return false;
    }
  }
  return true;
}

describe('v86: Linux virtio-gpu (fbdev) on a virtio-ts GpuDevice', { skip: deps.ok ? false : deps.reason }, () => {
  it('the guest writes a pattern to /dev/fb0; the flushed scanout pixels are that pattern; a display change reaches the guest', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    if (!deps.ok) throw new Error(deps.reason);
    const device = new GpuDevice({ displays: [{ width: W, height: H }] });
    let flushes = 0;
    let seen = false;
    let snapshot = null as Uint8Array | null;
    let lastRect = '';
    device.onScanoutChange((s, r) => {
      if (r === null) return;
      flushes++;
      lastRect = `${r.x},${r.y} ${r.width}x${r.height} of ${s.width}x${s.height}`;
      if (!seen && showsPattern(s.rgba, s.width, s.height)) {
        seen = true;
        snapshot = device.snapshotPng(0);
        console.log(`v86 gpu: the host sees the pattern after ${flushes} scanout updates`);
        device.setDisplay(0, { width: 640, height: 400 });
      }
    });
    const res = await runV86DeviceGuest({ assets: deps, devices: [{ device }], script: SCRIPT, timeoutMs: RUN_TIMEOUT_MS }).catch((e: unknown) => {
      // What the host saw, to tell a missing flush from a wrong picture.
      const s = device.scanout(0);
      const px = (x: number, y: number): string => [...s.rgba.subarray((y * s.width + x) * 4, (y * s.width + x) * 4 + 4)].map((v) => v.toString(16)).join(' ');
      console.log(`v86 gpu failed: ${flushes} updates, last ${lastRect}, resource ${s.resourceId}, ${s.width}x${s.height}` + (s.width > 100 ? `, px(0,0) ${px(0, 0)}, px(5,10) ${px(5, 10)}, px(100,100) ${px(100, 100)}` : ''));
      throw e;
    });
    console.log(`v86 gpu: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, ${flushes} scanout updates, ${res.adapters[0]!.irqRaises} interrupts`);
    assert.equal(res.results.get('ok'), '1', res.output);
    assert.ok(seen, 'the host saw the whole pattern');
    assert.equal(res.results.get('stride'), String(W * 4));
    assert.equal(res.results.get('vsize'), `${W},${H}`);
    assert.equal(res.results.get('bpp'), '32');
    assert.equal(res.results.get('edid'), '128', 'the guest read our EDID');
    assert.equal(res.results.get('mode0'), `${W}x${H}`);
    assert.equal(res.results.get('mode1'), '640x400');
    // (After the display change the guest may set another mode: the picture was checked when flushed.)
    assert.ok(snapshot !== null && snapshot.length > 0, 'a PNG snapshot of the flushed picture');
    assert.deepEqual(res.badAccesses, []);
  });
});
