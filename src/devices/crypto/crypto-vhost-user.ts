/**
 * vhost-user for virtio-crypto (VHOST_USER_PROTOCOL_F_CRYPTO_SESSION): QEMU's virtio-crypto with
 * `-object cryptodev-vhost-user` serves the control queue itself and hands the back-end only
 * the data queues; it turns each symmetric session the guest creates into CREATE_CRYPTO_SESSION
 * (payload struct VhostUserCryptoSession, answered with the same structure, session_id set, -1 on
 * failure) and each destroy into CLOSE_CRYPTO_SESSION (a u64 id, no reply unless REPLY_ACK asks).
 *
 * QEMU 7.2's VhostUserCryptoSession (hw/virtio/vhost-user.c, include/sysemu/cryptodev.h), 632
 * bytes on a 64-bit host:
 *   i64 session_id
 *   CryptoDevBackendSymSessionInfo (48 bytes): u32 cipher_alg, key_len, hash_alg,
 *     hash_result_len, auth_key_len, add_len; u8 op_type, direction, hash_mode, alg_chain_order;
 *     4 bytes of padding; two pointers (meaningless here)
 *   u8 key[64], u8 auth_key[512]
 * Later QEMUs (with asymmetric sessions) put a u64 op_code first, a union of the symmetric part
 * and {algo, keytype, keylen, pointer, RSA/ECDSA parameters, key[1024]} (1056 bytes) next, and
 * session_id last: 1072 bytes. Both forms are recognised by their size.
 */
import { FrontendReq, PF, type VhostUserMessage } from '../../vhost-user/messages.js';
import { VhostUserError, VhostUserFault, decodeU64 } from '../../vhost-user/codec.js';
import type { DeviceRequestReply, VhostUserDeviceHooks, VhostUserSession } from '../../vhost-user/device-hooks.js';
import { CryptoCtrlOp, CryptoService, SymOpType } from '../../spec/crypto.js';
import { type CryptoSession, type CryptoSessionTable, type SessionLimits, buildAead, buildChain, buildCipher, buildHash, buildMac, buildRsa } from './crypto-sessions.js';

/** The two layouts of struct VhostUserCryptoSession. */
export const VhostUserCryptoSessionLayout = {
  /** QEMU up to the asymmetric extension (7.2 included). */
  SYM_ONLY_SIZE: 632,
  /** With op_code and the asymmetric union. */
  WITH_OPCODE_SIZE: 1072,
  SYM_INFO_SIZE: 48,
  KEY_MAX: 64,
  AUTH_KEY_MAX: 512,
  ASYM_KEY_MAX: 1024,
} as const;

const L = VhostUserCryptoSessionLayout;

/** What the vhost-user session hooks need of the device (a `CryptoDevice` is one). */
export interface CryptoVhostUserHost {
  /** Algorithms and key limits a CREATE_CRYPTO_SESSION payload is checked against. */
  readonly limits: SessionLimits;
  /** The table CREATE_CRYPTO_SESSION adds to and CLOSE_CRYPTO_SESSION deletes from. */
  readonly sessions: CryptoSessionTable;
}

/** Builds the session a CryptoDevBackendSymSessionInfo at `at` of `p` describes (op_code given). */
function symSession(host: CryptoVhostUserHost, opcode: number, p: Uint8Array, at: number): CryptoSession | number {
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  const u32 = (o: number): number => v.getUint32(at + o, true);
  const cipherAlg = u32(0);
  const keyLen = u32(4);
  const hashAlg = u32(8);
  const hashResultLen = u32(12);
  const authKeyLen = u32(16);
  const opType = p[at + 24]!;
  const direction = p[at + 25]!;
  const hashMode = p[at + 26]!;
  const chainOrder = p[at + 27]!;
  if (keyLen > L.KEY_MAX || authKeyLen > L.AUTH_KEY_MAX) return -1;
  const keyAt = at + L.SYM_INFO_SIZE;
  const key = p.subarray(keyAt, keyAt + keyLen);
  const authKey = p.subarray(keyAt + L.KEY_MAX, keyAt + L.KEY_MAX + authKeyLen);
  const lim = host.limits;
  switch (opcode) {
    case CryptoCtrlOp.HASH_CREATE_SESSION:
      return buildHash(lim, hashAlg, hashResultLen);
    case CryptoCtrlOp.MAC_CREATE_SESSION:
      return buildMac(lim, hashAlg, hashResultLen, authKey);
    case CryptoCtrlOp.AEAD_CREATE_SESSION:
      return buildAead(lim, cipherAlg, key, hashResultLen, u32(20), direction);
    default: {
      const c = buildCipher(lim, cipherAlg, key, direction);
      if (typeof c === 'number') return c;
      if (opType === SymOpType.CIPHER) return { kind: 'cipher', service: CryptoService.CIPHER, cipher: c };
      if (opType === SymOpType.ALGORITHM_CHAINING) return buildChain(lim, c, chainOrder, hashMode, hashAlg, hashResultLen, authKey);
      return -1;
    }
  }
}

/** Builds the session of one CREATE_CRYPTO_SESSION payload; a number when it fails. */
export function sessionFromVhostUser(host: CryptoVhostUserHost, p: Uint8Array): CryptoSession | number {
  if (p.length === L.SYM_ONLY_SIZE) {
    // Without op_code, only the symmetric kinds: CIPHER or chaining (QEMU 7.2 forwards those).
    return symSession(host, CryptoCtrlOp.CIPHER_CREATE_SESSION, p, 8);
  }
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  const opcode = v.getUint32(0, true);
  if (opcode === CryptoCtrlOp.AKCIPHER_CREATE_SESSION) {
    // CryptoDevBackendAsymSessionInfo: u32 algo, keytype, keylen; pointer at 16; rsa {padding, hash} at 24; key[] after 32.
    const algo = v.getUint32(8, true);
    const keyType = v.getUint32(12, true);
    const keyLen = v.getUint32(16, true);
    if (keyLen > L.ASYM_KEY_MAX) return -1;
    return buildRsa(host.limits, algo, keyType, p.subarray(8 + 32, 8 + 32 + keyLen), v.getUint32(32, true), v.getUint32(36, true));
  }
  return symSession(host, opcode, p, 8);
}

/** The device hooks: CREATE_CRYPTO_SESSION and CLOSE_CRYPTO_SESSION into `host`'s table. */
export function cryptoVhostUserHooks(host: CryptoVhostUserHost): VhostUserDeviceHooks {
  return {
    protocolFeatures: PF.CRYPTO_SESSION,
    handleRequest(msg: VhostUserMessage, session: VhostUserSession): DeviceRequestReply | undefined {
      if (msg.request !== FrontendReq.CREATE_CRYPTO_SESSION && msg.request !== FrontendReq.CLOSE_CRYPTO_SESSION) return undefined;
      if (!session.hasProtocolFeatures(PF.CRYPTO_SESSION)) throw new VhostUserError(VhostUserFault.NOT_NEGOTIATED, 'CRYPTO_SESSION', msg.request);
      if (msg.request === FrontendReq.CLOSE_CRYPTO_SESSION) {
        const id = decodeU64(msg.request, msg.payload);
        if (!host.sessions.delete(id)) throw new VhostUserError(VhostUserFault.BAD_VALUE, `no crypto session ${id}`, msg.request);
        return null;
      }
      const p = msg.payload;
      if (p.length !== L.SYM_ONLY_SIZE && p.length !== L.WITH_OPCODE_SIZE) {
        throw new VhostUserError(VhostUserFault.BAD_SIZE, `VhostUserCryptoSession of ${p.length} bytes (${L.SYM_ONLY_SIZE} or ${L.WITH_OPCODE_SIZE} expected)`, msg.request);
      }
      const s = sessionFromVhostUser(host, p);
      const id = typeof s === 'number' ? -1 : host.sessions.add(s);
      // The answer is the request with session_id set (-1: failed, as QEMU reads it).
      const reply = p.slice();
      const at = p.length === L.SYM_ONLY_SIZE ? 0 : p.length - 8;
      new DataView(reply.buffer).setBigInt64(at, BigInt(id), true);
      return reply;
    },
  };
}
