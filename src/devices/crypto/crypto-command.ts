/**
 * `virtio-ts crypto`: a virtio crypto device (5.9) over vhost-user, on node:crypto. Each
 * front-end connection gets a fresh device (sessions do not outlive the front-end that made them).
 *
 * QEMU 7.2's cryptodev-vhost-user starts its vhost device with `vhost_dev_start(..., false)`
 * (backends/cryptodev-vhost.c): it never sends SET_VRING_ENABLE, although it negotiates
 * VHOST_USER_F_PROTOCOL_FEATURES, so by vhost-user.rst ("Ring states") the data ring would stay
 * disabled forever. The kit's back-end follows the rule; this command therefore enables a ring
 * itself once its kick fd arrives (SET_VRING_KICK), as DPDK's vhost_crypto in effect does, by
 * handing the back-end the SET_VRING_ENABLE QEMU does not send. It also never sets the vhost
 * device's acked_features, so its SET_FEATURES carries only the vhost-user bits, none of the
 * guest's: a SET_FEATURES without any device or transport bit is taken as QEMU's virtio-crypto
 * defaults as a Linux guest negotiates them (VERSION_1, INDIRECT_DESC, EVENT_IDX), without
 * which the guest's indirect chains and event-index kicks could not be served. The rest is
 * cli/serve.ts's runBackend (signals, logging, --metrics, --stats-interval, --inspect, clean
 * shutdown).
 */
import { createLogger } from '../../log.js';
import type { CliIo } from '../../cli/options.js';
import { runBackend } from '../../cli/serve.js';
import type { VhostUserBackend } from '../../vhost-user/backend.js';
import { encodeVringState } from '../../vhost-user/codec.js';
import { F_LOG_ALL, F_PROTOCOL_FEATURES, FrontendReq, type VhostUserMessage } from '../../vhost-user/messages.js';
import { F } from '../../spec/features.js';
import type { CryptoOptions } from './cli.js';
import { CryptoDevice } from './crypto-device.js';

/** vhost-user.rst: the low 8 bits of SET_VRING_KICK's u64 are the ring index. */
const VRING_INDEX_MASK = 0xff;
const VHOST_USER_VERSION = 1;

/** What a Linux guest negotiates with QEMU 7.2's virtio-crypto-pci defaults (and this device offers). */
export const QEMU_CRYPTO_GUEST_FEATURES = F.VERSION_1 | F.INDIRECT_DESC | F.EVENT_IDX;

/**
 * The QEMU cryptodev-vhost-user quirks: a SET_FEATURES with only vhost-user bits gets
 * QEMU_CRYPTO_GUEST_FEATURES added; each ring is enabled when its kick fd arrives, if the
 * front-end did not enable it.
 */
export function applyCryptodevQuirks(backend: VhostUserBackend): void {
  const handle = backend.handleMessage.bind(backend);
  backend.handleMessage = (msg: VhostUserMessage): void => {
    if (msg.request === FrontendReq.SET_FEATURES && msg.payload.length === 8) {
      const v = new DataView(msg.payload.buffer, msg.payload.byteOffset, 8);
      const features = v.getBigUint64(0, true);
      if ((features & ~(F_PROTOCOL_FEATURES | F_LOG_ALL)) === 0n) v.setBigUint64(0, features | QEMU_CRYPTO_GUEST_FEATURES, true);
    }
    const index = msg.request === FrontendReq.SET_VRING_KICK && msg.payload.length >= 1 ? msg.payload[0]! & VRING_INDEX_MASK : -1;
    handle(msg);
    if (index < 0 || backend.closed || (backend.features & F_PROTOCOL_FEATURES) === 0n) return;
    const ring = backend.ringInfo(index);
    if (ring === null || ring.enabled) return;
    handle({ request: FrontendReq.SET_VRING_ENABLE, flags: VHOST_USER_VERSION, payload: encodeVringState({ index, num: 1 }), fds: [] });
  };
}

/** Runs `virtio-ts crypto` until a signal: runBackend with the cryptodev quirks on every connection. */
export function runCrypto(options: CryptoOptions, io: CliIo): Promise<number> {
  const logger = createLogger(options.verbosity, 'virtio-ts crypto', io.stderr);
  const queues = `${options.numQueues} data queue${options.numQueues === 1 ? '' : 's'}`;
  return runBackend({
    options,
    logger,
    description: `virtio-crypto, ${queues}, at most ${options.maxSessions} sessions`,
    // A fresh device per front-end: sessions do not outlive the front-end that made them.
    device: () => new CryptoDevice({ maxDataQueues: options.numQueues, queueSize: options.queueSize, maxSessions: options.maxSessions, maxSize: options.maxSize, logger }),
    onConnect: applyCryptodevQuirks,
  });
}
