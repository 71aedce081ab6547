/**
 * Linux's virtio_crypto (the i386 686 kernel under v86) on a virtio-ts CryptoDevice on v86's PCI
 * bus: here the device has its own control queue (no QEMU in between), so the guest's session
 * creation and destruction reach it in the legacy layouts of a driver without REVISION_1. The
 * crypto manager self-tests every algorithm the driver registers from our configuration: the
 * virtio cbc(aes) skcipher, the raw RSA and pkcs1pad(rsa) akciphers; /proc/crypto must say
 * "selftest : passed" for each, and the device must have seen sessions made and destroyed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoDevice } from '../src/devices/crypto/crypto-device.js';
import { runV86DeviceGuest } from './support/v86-device-guest.js';
import { ensureV86Deps } from './support/v86-guest.js';

const deps = ensureV86Deps();
const RUN_TIMEOUT_MS = 5 * 60_000;

const SCRIPT = `
i=0
until [ "$(grep -c 'driver.*virtio' /proc/crypto)" -ge 3 ]; do i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.2; done
# Wait for the self-tests (they run as the algorithms register) to settle.
i=0
while grep -q 'selftest.*unknown' /proc/crypto && [ $i -lt 300 ]; do i=$((i+1)); sleep 0.2; done
result algs "$(awk '/^name/{n=$3} /^driver/{d=$3} /^selftest/{if (d ~ /virtio/) print n"="d"="$3}' /proc/crypto | sort | tr '\\n' ' ')"
result ok 1
`;

describe('v86: Linux virtio_crypto on a virtio-ts crypto device', { skip: deps.ok ? false : deps.reason }, () => {
  it('the guest self-tests the virtio cbc(aes), rsa and pkcs1pad(rsa) against our device (its own control queue, legacy layouts) and they pass', { timeout: RUN_TIMEOUT_MS + 60_000 }, async () => {
    if (!deps.ok) throw new Error(deps.reason);
    const device = new CryptoDevice({ queueSize: 128 });
    const res = await runV86DeviceGuest({
      assets: deps,
      devices: [{ device }],
      // The crypto manager's self-tests are what this test is about.
      fastBoot: false,
      script: SCRIPT,
      timeoutMs: RUN_TIMEOUT_MS,
    });
    console.log(`v86 crypto: boot ${Math.round(res.bootMs)} ms, total ${Math.round(res.totalMs)} ms, ${device.sessions.issued} sessions, ${device.sessions.size} open at the end`);
    assert.equal(res.results.get('ok'), '1', res.output);
    const algs = (res.results.get('algs') ?? '').trim().split(' ');
    assert.ok(algs.includes('cbc(aes)=virtio_crypto_aes_cbc=passed'), `cbc(aes) self-test: ${algs.join(' ')}`);
    assert.ok(algs.some((a) => /^rsa=.*virtio.*=passed$/.test(a)), `rsa self-test: ${algs.join(' ')}`);
    // Linux 6.1 registers it as pkcs1pad(rsa) (driver virtio-pkcs1-rsa); the hash is per request.
    assert.ok(algs.some((a) => /^pkcs1pad\(rsa[,a-z0-9]*\)=.*virtio.*=passed$/.test(a)), `pkcs1pad(rsa) self-test: ${algs.join(' ')}`);
    assert.ok(device.sessions.issued >= 4, 'sessions created on our control queue');
    assert.equal(device.sessions.size, 0, 'and every one destroyed again');
    assert.deepEqual(res.badAccesses, []);
  });
});
