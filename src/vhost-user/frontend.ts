/**
 * A minimal vhost-user front-end for tests and benchmarks: sends requests (with fds) over a
 * connected socket and awaits replies. It is what QEMU does, without the guest.
 */
import { ErrorCode, VirtioError } from '../errors.js';
import type { FdWatcher, Platform } from '../platform/types.js';
import {
  encodeConfig,
  encodeInflight,
  encodeMemoryTable,
  encodeMemRegMsg,
  encodeU64,
  encodeVringAddr,
  encodeVringState,
  decodeConfig,
  decodeInflight,
  decodeU64,
  decodeU64Big,
  decodeVringState,
} from './codec.js';
import { MessageFramer } from './framer.js';
import {
  FrontendReq,
  HeaderFlag,
  VRING_NOFD_MASK,
  type ConfigMsg,
  type InflightDesc,
  type MemRegion,
  type VhostUserMessage,
  type VringAddr,
} from './messages.js';

interface Waiter {
  resolve(m: VhostUserMessage): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * The message level of a vhost-user front-end (vhost-user.rst): one typed method per front-end
 * request over a connected socket, with replies matched in order, REPLY_ACK handled and every reply
 * bounded by a timeout. VhostUserDriverTransport builds on it.
 */
export class VhostUserFrontend {
  private readonly framer: MessageFramer;
  private readonly watcher: FdWatcher;
  private readonly inbox: VhostUserMessage[] = [];
  private readonly waiters: Waiter[] = [];
  private closedReason: Error | null = null;
  /** Set REPLY_ACK's need_reply on requests without an explicit reply. */
  needReply = false;

  constructor(
    /** The OS access (fd passing). */
    readonly platform: Platform,
    /** The connected socket. */
    readonly fd: number,
    private readonly timeoutMs = 5000,
  ) {
    this.framer = new MessageFramer(platform, fd);
    this.watcher = platform.watchReadable(fd, () => this.pump());
  }

  private pump(): void {
    for (let n = 0; n < 1024; n++) {
      let m;
      try {
        m = this.framer.read();
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      if (m === null) return;
      if (m === 'eof') {
        this.fail(new VirtioError(ErrorCode.BACKEND_IO, 'back-end closed the connection'));
        return;
      }
      const w = this.waiters.shift();
      if (w) {
        clearTimeout(w.timer);
        w.resolve(m);
      } else this.inbox.push(m);
    }
  }

  private fail(e: Error): void {
    this.closedReason = e;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }

  /** Sends a request (fds stay owned by the caller). */
  send(request: number, payload?: Uint8Array, fds?: readonly number[], flags: number = HeaderFlag.VERSION): void {
    this.framer.send(request, flags, payload, fds);
  }

  /** The next message from the back-end (bounded by the timeout). */
  next(): Promise<VhostUserMessage> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    if (this.closedReason) return Promise.reject(this.closedReason);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new VirtioError(ErrorCode.TIMEOUT, `no reply within ${this.timeoutMs} ms`));
        }, this.timeoutMs),
      };
      this.waiters.push(w);
      this.pump();
    });
  }

  /** Sends and awaits the reply, checking it answers `request`. */
  async call(request: number, payload?: Uint8Array, fds?: readonly number[], flags: number = HeaderFlag.VERSION): Promise<VhostUserMessage> {
    this.send(request, payload, fds, flags);
    const r = await this.next();
    if (r.request !== request || (r.flags & HeaderFlag.REPLY) === 0) {
      throw new VirtioError(ErrorCode.VHOST_USER_PROTOCOL, `reply ${r.request} flags ${r.flags} to request ${request}`);
    }
    return r;
  }

  /**
   * A request without an explicit reply: with `needReply` set, awaits the REPLY_ACK u64 and
   * returns it (0 success); otherwise returns 0 at once.
   */
  async ack(request: number, payload?: Uint8Array, fds?: readonly number[]): Promise<number> {
    if (!this.needReply) {
      this.send(request, payload, fds);
      return 0;
    }
    const r = await this.call(request, payload, fds, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
    this.closeFds(r.fds);
    return decodeU64(request, r.payload);
  }

  private closeFds(fds: number[]): void {
    for (const fd of fds) if (fd >= 0) this.platform.close(fd);
  }

  /** Sends `request` without payload and resolves with the u64 of its reply. */
  async u64(request: number): Promise<bigint> {
    const r = await this.call(request);
    this.closeFds(r.fds);
    return decodeU64Big(request, r.payload);
  }

  /**
   * VHOST_USER_GET_FEATURES: the back-end's virtio features (with VHOST_USER_F_PROTOCOL_FEATURES,
   * bit 30).
   */
  getFeatures(): Promise<bigint> {
    return this.u64(FrontendReq.GET_FEATURES);
  }
  /** VHOST_USER_SET_FEATURES: the features the front-end accepts. */
  setFeatures(v: bigint): Promise<number> {
    return this.ack(FrontendReq.SET_FEATURES, encodeU64(v));
  }
  /** VHOST_USER_GET_PROTOCOL_FEATURES: the protocol features the back-end offers. */
  getProtocolFeatures(): Promise<bigint> {
    return this.u64(FrontendReq.GET_PROTOCOL_FEATURES);
  }
  /** VHOST_USER_SET_PROTOCOL_FEATURES: the protocol features in use. */
  setProtocolFeatures(v: bigint): Promise<number> {
    return this.ack(FrontendReq.SET_PROTOCOL_FEATURES, encodeU64(v));
  }
  /** VHOST_USER_SET_OWNER: starts the session. */
  setOwner(): Promise<number> {
    return this.ack(FrontendReq.SET_OWNER);
  }
  /** VHOST_USER_SET_MEM_TABLE: the guest memory regions, one fd each. */
  setMemTable(regions: readonly MemRegion[], fds: readonly number[]): Promise<number> {
    return this.ack(FrontendReq.SET_MEM_TABLE, encodeMemoryTable(regions), fds);
  }
  /** VHOST_USER_ADD_MEM_REG (CONFIGURE_MEM_SLOTS): adds one memory region. */
  addMemReg(region: MemRegion, fd: number): Promise<number> {
    return this.ack(FrontendReq.ADD_MEM_REG, encodeMemRegMsg(region), [fd]);
  }
  /** VHOST_USER_REM_MEM_REG: removes a memory region. */
  remMemReg(region: MemRegion): Promise<number> {
    return this.ack(FrontendReq.REM_MEM_REG, encodeMemRegMsg(region));
  }
  /** VHOST_USER_SET_VRING_NUM: the size of ring `index`. */
  setVringNum(index: number, num: number): Promise<number> {
    return this.ack(FrontendReq.SET_VRING_NUM, encodeVringState({ index, num }));
  }
  /**
   * VHOST_USER_SET_VRING_BASE: where ring `index` resumes (split: the next avail index; packed:
   * avail and used positions with their wrap counters).
   */
  setVringBase(index: number, num: number): Promise<number> {
    return this.ack(FrontendReq.SET_VRING_BASE, encodeVringState({ index, num }));
  }
  /** VHOST_USER_SET_VRING_ADDR: the ring's addresses in the front-end's address space. */
  setVringAddr(a: VringAddr): Promise<number> {
    return this.ack(FrontendReq.SET_VRING_ADDR, encodeVringAddr(a));
  }
  /** fd null: the invalid-fd flag (polling / no notification). */
  private vringFd(req: number, index: number, fd: number | null): Promise<number> {
    return fd === null ? this.ack(req, encodeU64(index | VRING_NOFD_MASK)) : this.ack(req, encodeU64(index), [fd]);
  }
  /**
   * VHOST_USER_SET_VRING_KICK: the kick eventfd of ring `index` (null: no fd, the back-end polls);
   * starts the ring.
   */
  setVringKick(index: number, fd: number | null): Promise<number> {
    return this.vringFd(FrontendReq.SET_VRING_KICK, index, fd);
  }
  /** VHOST_USER_SET_VRING_CALL: the call eventfd of ring `index` (null: no fd). */
  setVringCall(index: number, fd: number | null): Promise<number> {
    return this.vringFd(FrontendReq.SET_VRING_CALL, index, fd);
  }
  /** VHOST_USER_SET_VRING_ERR: the error eventfd of ring `index` (null: no fd). */
  setVringErr(index: number, fd: number | null): Promise<number> {
    return this.vringFd(FrontendReq.SET_VRING_ERR, index, fd);
  }
  /** VHOST_USER_SET_VRING_ENABLE: enables or disables ring `index`. */
  setVringEnable(index: number, on: boolean): Promise<number> {
    return this.ack(FrontendReq.SET_VRING_ENABLE, encodeVringState({ index, num: on ? 1 : 0 }));
  }
  /** VHOST_USER_GET_VRING_BASE: stops ring `index` and resolves with where it stopped. */
  async getVringBase(index: number): Promise<number> {
    const r = await this.call(FrontendReq.GET_VRING_BASE, encodeVringState({ index, num: 0 }));
    this.closeFds(r.fds);
    return decodeVringState(r.request, r.payload).num;
  }
  /** VHOST_USER_GET_QUEUE_NUM (MQ): how many rings the back-end has. */
  async getQueueNum(): Promise<number> {
    return Number(await this.u64(FrontendReq.GET_QUEUE_NUM));
  }
  /**
   * VHOST_USER_GET_CONFIG (CONFIG): `size` bytes of the device config at `offset`, or null when the
   * back-end refused.
   */
  async getConfig(offset: number, size: number): Promise<ConfigMsg | null> {
    const r = await this.call(FrontendReq.GET_CONFIG, encodeConfig({ offset, size, flags: 0, data: new Uint8Array(size) }));
    this.closeFds(r.fds);
    return r.payload.length === 0 ? null : decodeConfig(r.request, r.payload);
  }
  /** VHOST_USER_SET_CONFIG (CONFIG): writes `data` into the device config at `offset`. */
  setConfig(offset: number, data: Uint8Array, flags = 0): Promise<number> {
    return this.ack(FrontendReq.SET_CONFIG, encodeConfig({ offset, size: data.length, flags, data }));
  }
  /** GET_INFLIGHT_FD: the area's description and its fd (owned by the caller). */
  async getInflightFd(
    numQueues: number,
    queueSize: number,
  ): Promise<{
    /** The back-end's answer: mmap size and offset of the area, queue count and size. */
    desc: InflightDesc;
    /** The fd of the shared inflight area (the caller owns it and closes it), to map and to hand over in SET_INFLIGHT_FD. */
    fd: number;
  }> {
    const r = await this.call(FrontendReq.GET_INFLIGHT_FD, encodeInflight({ mmapSize: 0, mmapOffset: 0, numQueues, queueSize }));
    const desc = decodeInflight(r.request, r.payload);
    const [fd, ...rest] = r.fds;
    this.closeFds(rest);
    if (fd === undefined) throw new VirtioError(ErrorCode.VHOST_USER_PROTOCOL, 'GET_INFLIGHT_FD reply without fd');
    return { desc, fd };
  }
  /**
   * VHOST_USER_SET_INFLIGHT_FD (INFLIGHT_SHMFD): hands the inflight area back to a new back-end.
   */
  setInflightFd(desc: InflightDesc, fd: number): Promise<number> {
    return this.ack(FrontendReq.SET_INFLIGHT_FD, encodeInflight(desc), [fd]);
  }
  /** VHOST_USER_SET_STATUS (STATUS): the device status byte. */
  setStatus(v: number): Promise<number> {
    return this.ack(FrontendReq.SET_STATUS, encodeU64(v));
  }
  /** VHOST_USER_GET_STATUS (STATUS): the device status byte, DEVICE_NEEDS_RESET included. */
  async getStatus(): Promise<number> {
    return Number(await this.u64(FrontendReq.GET_STATUS));
  }

  /** SET_BACKEND_REQ_FD: hands the back-end its end of the back-end channel (kept by the caller). */
  setBackendReqFd(fd: number): Promise<number> {
    return this.ack(FrontendReq.SET_BACKEND_REQ_FD, undefined, [fd]);
  }
  /** RESET_DEVICE (protocol feature RESET_DEVICE). */
  resetDevice(): Promise<number> {
    return this.ack(FrontendReq.RESET_DEVICE);
  }
  /**
   * VHOST_USER_GET_MAX_MEM_SLOTS (CONFIGURE_MEM_SLOTS): how many memory regions the back-end takes.
   */
  async getMaxMemSlots(): Promise<number> {
    return Number(await this.u64(FrontendReq.GET_MAX_MEM_SLOTS));
  }
  /** Whether the connection has failed or been closed. */
  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Stops reading; the socket fd is closed too. Pending waits are rejected. */
  close(): void {
    this.watcher.stop();
    this.framer.close();
    for (const m of this.inbox.splice(0)) this.closeFds(m.fds);
    this.fail(new VirtioError(ErrorCode.BACKEND_IO, 'front-end closed'));
    this.platform.close(this.fd);
  }
}
