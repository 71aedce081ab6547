/**
 * A DriverTransport over vhost-user: drives any vhost-user back-end (virtio-ts, qemu-storage-daemon,
 * virtiofsd, DPDK) from TypeScript with no VM. Guest memory is a memfd mapped on this side and
 * shared in SET_MEM_TABLE (or ADD_MEM_REG); kicks and calls are eventfds; rings are programmed
 * with SET_VRING_*. VirtioDriver, BlkDriver and EntropyDriver run on it unchanged.
 *
 * DriverTransport is synchronous (register-like) while vhost-user is a message conversation, so:
 * everything a driver reads during initialization (device features, configuration, queue count)
 * is fetched once in `connect()`, and what it writes is queued as messages on one ordered chain.
 * After `VirtioDriver.init` the caller awaits `settle()` (or uses `startDriver`), which waits for
 * every queued request (and its REPLY_ACK when negotiated) and fails if the back-end refused one.
 *
 * Message order follows QEMU's (vhost_dev_start): SET_FEATURES at FEATURES_OK; at DRIVER_OK the
 * memory table, the inflight area, then per ring SET_VRING_NUM, _BASE, _ADDR, _CALL, _KICK, and
 * SET_VRING_ENABLE once protocol features are negotiated (rings then start disabled).
 */
import { ErrorCode, VirtioError, isVirtioError } from '../errors.js';
import type { DriverInterruptHandler, DriverQueueAddresses, DriverTransport } from '../driver/types.js';
import { DmaAllocator } from '../driver/dma-allocator.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { loadNativePlatform } from '../platform/native-platform.js';
import type { FdWatcher, Mapping, Platform } from '../platform/types.js';
import { F } from '../spec/features.js';
import { Status } from '../spec/status.js';
import { FrontendConfigCache, defaultConfigSize } from './frontend-config.js';
import { FrontendBackendChannel } from './frontend-backend-channel.js';
import { type FrontendStallWatch, checkStallPeriod, startStallWatch } from './frontend-stall-watch.js';
import { VhostUserFrontend } from './frontend.js';
import { DEFAULT_QUEUES, FRONTEND_PROTOCOL_FEATURES, type VhostUserTransportOptions } from './frontend-transport-options.js';
import { F_LOG_ALL, F_PROTOCOL_FEATURES, PF, type InflightDesc, type MemRegion } from './messages.js';

export { FRONTEND_PROTOCOL_FEATURES, type VhostUserTransportOptions } from './frontend-transport-options.js';
export { offers, startVhostUserDriver } from './frontend-driver-start.js';


interface Ring {
  addrs: DriverQueueAddresses | null;
  kickFd: number;
  callFd: number;
  watcher: FdWatcher | null;
  started: boolean;
  /** SET_VRING_BASE value for the next start (null: a fresh ring; the saved base after reconnect). */
  base: number | null;
}

/** Retries a connect() until the back-end listens (bounded). */
async function connectRetry(platform: Platform, path: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return platform.connectUnix(path);
    } catch (e) {
      if (Date.now() >= deadline) throw isVirtioError(e) ? e : new VirtioError(ErrorCode.BACKEND_IO, `connect ${path}: ${String(e)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/**
 * A vhost-user front-end as a DriverTransport: connects to any back-end's socket, shares a memfd as
 * guest memory, negotiates features and protocol features, sets up rings with kick and call
 * eventfds, and serves VirtioDriver exactly as PCI or MMIO would. Reconnects to a back-end that
 * comes back (inflight tracking).
 */
export class VhostUserDriverTransport implements DriverTransport {
  readonly memory: GuestMemory;
  /** Allocator over the whole shared memory, for VirtioDriver's `dma`. */
  readonly dma: DmaAllocator;
  readonly deviceId: number;
  readonly legacy = false;
  readonly littleEndian = true;
  /** The OS access (fd passing, memfd, eventfd). */
  readonly platform: Platform;

  private fe!: VhostUserFrontend;
  /** Whether `fe` is ours to close (it is set and not yet closed). */
  private feOpen = false;
  private readonly memFd: number;
  private readonly mapping: Mapping;
  private readonly region: MemRegion;
  private deviceFeatures = 0n;
  private protocol = 0n;
  private driverFeatures = 0n;
  private status = 0;
  private readonly config: FrontendConfigCache;
  private queues = 0;
  private readonly rings: Ring[] = [];
  private handler: DriverInterruptHandler | null = null;
  private chain: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private readonly backendChannel: FrontendBackendChannel;
  private memShared = false;
  private inflightFd = -1;
  private inflightDesc: InflightDesc | null = null;
  private closed = false;
  private readonly stallWatch: FrontendStallWatch | null;
  private readonly opts: Required<Omit<VhostUserTransportOptions, 'platform' | 'numQueues' | 'configSize'>> & {
    numQueues: number | undefined;
    configSize: number;
  };

  private constructor(
    private readonly socketPath: string,
    opts: VhostUserTransportOptions,
  ) {
    this.platform = opts.platform ?? loadNativePlatform();
    this.deviceId = opts.deviceId;
    const guestBase = opts.guestBase ?? 1 << 20;
    this.opts = {
      deviceId: opts.deviceId,
      memorySize: opts.memorySize ?? 16 << 20,
      guestBase,
      userBase: opts.userBase ?? guestBase + 2 ** 40,
      protocolFeatures: opts.protocolFeatures ?? FRONTEND_PROTOCOL_FEATURES,
      configSize: opts.configSize ?? defaultConfigSize(opts.deviceId),
      numQueues: opts.numQueues,
      queueMaxSize: opts.queueMaxSize ?? 256,
      useMemSlots: opts.useMemSlots ?? true,
      useInflight: opts.useInflight ?? true,
      pollMode: opts.pollMode ?? false,
      timeoutMs: opts.timeoutMs ?? 5000,
      stallKickMs: checkStallPeriod(opts.stallKickMs ?? 0),
    };
    const size = this.opts.memorySize;
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `memory size ${size} is not a positive multiple of 4096`);
    }
    this.memFd = this.platform.memfd('virtio-ts-frontend', size);
    try {
      this.mapping = this.platform.mmap(this.memFd, 0, size);
    } catch (e) {
      this.platform.close(this.memFd);
      throw e;
    }
    this.memory = new GuestMemory([{ guestBase, bytes: this.mapping.bytes }]);
    this.dma = new DmaAllocator(guestBase, size);
    this.region = { guestAddr: guestBase, size, userAddr: this.opts.userBase, mmapOffset: 0 };
    this.config = new FrontendConfigCache(this.opts.configSize);
    // A CONFIG_CHANGE_MSG: re-read the config, then notify the driver.
    this.backendChannel = new FrontendBackendChannel(this.platform, () =>
      this.enqueue(async () => {
        await this.fetchConfig(true);
        this.handler?.configChange();
      }),
    );
    this.stallWatch = startStallWatch(this.opts.stallKickMs, {
      memory: this.memory,
      rings: () => this.rings,
      packed: () => (this.driverFeatures & F.RING_PACKED) !== 0n,
      kick: (i) => this.notify(i),
      deliverUsed: (i) => this.deliverUsed(i),
    });
  }

  /**
   * Connects to the back-end listening at `socketPath` (retrying until `timeoutMs`) and runs the
   * session set-up: SET_OWNER, features, protocol features, queue count, back-end channel,
   * configuration.
   */
  static async connect(socketPath: string, opts: VhostUserTransportOptions): Promise<VhostUserDriverTransport> {
    const t = new VhostUserDriverTransport(socketPath, opts);
    try {
      await t.open();
    } catch (e) {
      t.close();
      throw e;
    }
    return t;
  }

  /** Negotiated protocol features. */
  get protocolFeatures(): bigint {
    return this.protocol;
  }
  /** Features the back-end offered in GET_FEATURES (including vhost-user bits). */
  get backendFeatures(): bigint {
    return this.deviceFeatures;
  }
  /** The front-end of the current connection (for requests this transport does not make). */
  get frontend(): VhostUserFrontend {
    return this.fe;
  }
  /** Notifications the stall watch re-sent (`stallKickMs`; 0 when it is off). */
  get stallKicks(): number {
    return this.stallWatch?.kicks ?? 0;
  }
  /** The inflight area's description when one was set up. */
  get inflight(): InflightDesc | null {
    return this.inflightDesc;
  }

  private hasProto(m: bigint): boolean {
    return (this.protocol & m) !== 0n;
  }

  private async open(): Promise<void> {
    const fd = await connectRetry(this.platform, this.socketPath, this.opts.timeoutMs);
    this.fe = new VhostUserFrontend(this.platform, fd, this.opts.timeoutMs);
    this.feOpen = true;
    this.memShared = false;
    this.failure = null;
    this.chain = Promise.resolve();
    await this.fe.setOwner();
    this.deviceFeatures = await this.fe.getFeatures();
    this.protocol = 0n;
    if (this.deviceFeatures & F_PROTOCOL_FEATURES) {
      const offered = await this.fe.getProtocolFeatures();
      this.protocol = offered & this.opts.protocolFeatures & FRONTEND_PROTOCOL_FEATURES;
      await this.fe.setProtocolFeatures(this.protocol);
      // REPLY_ACK: from now on every request without a reply asks for an acknowledgement.
      this.fe.needReply = this.hasProto(PF.REPLY_ACK);
    }
    let n = this.opts.numQueues ?? DEFAULT_QUEUES[this.deviceId] ?? 1;
    if (this.hasProto(PF.MQ)) {
      const max = await this.fe.getQueueNum();
      n = this.opts.numQueues === undefined && DEFAULT_QUEUES[this.deviceId] === undefined ? max : Math.min(n, max);
    }
    this.queues = Math.max(1, Math.min(n, 256));
    while (this.rings.length < this.queues) {
      const kickFd = this.platform.eventfd(0);
      const callFd = this.opts.pollMode ? -1 : this.platform.eventfd(0);
      this.rings.push({ addrs: null, kickFd, callFd, watcher: null, started: false, base: null });
    }
    for (let i = 0; i < this.rings.length; i++) {
      const r = this.rings[i]!;
      if (r.callFd >= 0 && !r.watcher) r.watcher = this.platform.watchReadable(r.callFd, () => this.onCall(i));
    }
    if (this.hasProto(PF.BACKEND_REQ)) await this.backendChannel.open(this.fe);
    await this.fetchConfig(true);
  }

  /**
   * GET_CONFIG into the copy; returns whether it changed. `always`: the generation moves even
   * when nothing changed (connect, a config-change message).
   */
  private async fetchConfig(always: boolean): Promise<boolean> {
    if (this.config.size === 0 || !this.hasProto(PF.CONFIG)) return false;
    const c = await this.fe.getConfig(0, this.config.size);
    // A back-end may negotiate CONFIG for one device type and have no config for this one
    // (DPDK's net_vhost answers an empty GET_CONFIG): the config then reads as zeros.
    return this.config.replace(c === null ? null : c.data, always);
  }

  /**
   * Resolves once every config write so far reached the back-end and the copy was refreshed from
   * it (GET_CONFIG after the last SET_CONFIG): reads then show the device's answer, e.g.
   * virtio-input's union for the select/subsel just written (5.8.4). Throws the first failure.
   */
  async configSettled(): Promise<void> {
    await this.chain;
    if (this.failure) throw this.failure;
  }

  private onCall(i: number): void {
    const r = this.rings[i];
    if (!r || r.callFd < 0) return;
    if (this.platform.eventfdRead(r.callFd) === 0) return;
    this.deliverUsed(i);
  }

  /**
   * Runs the driver's used-buffer handling. Called from an fd watcher, so nothing may escape: a
   * back-end that corrupts a ring makes the driver queue throw, which is kept as the failure
   * (`settle()` reports it) and passed to `onError`.
   */
  private deliverUsed(i: number): void {
    try {
      this.handler?.used(i);
    } catch (e) {
      const err = e instanceof Error ? e : new VirtioError(ErrorCode.BACKEND_IO, String(e));
      this.failure ??= err;
      this.onError?.(err);
    }
  }

  /** Called with errors raised while handling notifications (default: none). */
  onError: ((e: Error) => void) | null = null;

  /** Pumps used-buffer handling for every queue (for pollMode, or to catch up). */
  poll(): void {
    for (let i = 0; i < this.rings.length; i++) if (this.rings[i]!.started) this.deliverUsed(i);
  }

  /** Queues an operation after every earlier one; the first failure is kept for `settle()`. */
  private enqueue(op: () => Promise<unknown>): void {
    this.chain = this.chain.then(async () => {
      if (this.failure || this.closed) return;
      try {
        await op();
      } catch (e) {
        this.failure = e instanceof Error ? e : new VirtioError(ErrorCode.BACKEND_IO, String(e));
      }
    });
  }

  private async expectOk(what: string, p: Promise<number>): Promise<void> {
    const v = await p;
    if (v !== 0) throw new VirtioError(ErrorCode.VHOST_USER_PROTOCOL, `${what} refused by the back-end (${v})`);
  }

  /**
   * Waits for every queued request (and acknowledgement) and, as a barrier the back-end must
   * answer, GET_STATUS (STATUS) or GET_FEATURES. Throws the first failure.
   */
  async settle(): Promise<void> {
    await this.chain;
    if (!this.failure && !this.closed) {
      try {
        if (this.hasProto(PF.STATUS)) {
          const s = await this.fe.getStatus();
          if ((this.status & Status.DRIVER_OK) !== 0 && (s & Status.DRIVER_OK) === 0) {
            throw new VirtioError(ErrorCode.DEVICE_NEEDS_RESET, `back-end status 0x${s.toString(16)} lacks DRIVER_OK`);
          }
        } else await this.fe.getFeatures();
      } catch (e) {
        this.failure = e as Error;
      }
    }
    if (this.failure) throw this.failure;
  }

  // DriverTransport ------------------------------------------------------------------------

  getStatus(): number {
    return this.status;
  }

  setStatus(value: number): void {
    const old = this.status;
    this.status = value & 0xff;
    if (value === 0) {
      if (old !== 0) this.enqueue(() => this.stopRings(true));
    } else {
      if (value & Status.FEATURES_OK && !(old & Status.FEATURES_OK)) {
        // vhost-user carries its own bits beside the virtio ones: PROTOCOL_FEATURES must stay set.
        const f = this.driverFeatures | (this.deviceFeatures & F_PROTOCOL_FEATURES);
        this.enqueue(() => this.expectOk('SET_FEATURES', this.fe.setFeatures(f)));
      }
      if (value & Status.DRIVER_OK && !(old & Status.DRIVER_OK)) this.enqueue(() => this.startRings());
    }
    if (this.hasProto(PF.STATUS) && !(value === 0 && old === 0)) {
      const v = this.status;
      this.enqueue(() => this.expectOk('SET_STATUS', this.fe.setStatus(v)));
    }
  }

  getDeviceFeatures(): bigint {
    // The vhost-user bits are not the driver's business (nor dirty logging). Hidden too: what
    // this front-end cannot carry: NOTIFICATION_DATA (an eventfd kick has no data; 2.9) and
    // ACCESS_PLATFORM (it would need the IOTLB messages).
    return this.deviceFeatures & ~(F_PROTOCOL_FEATURES | F_LOG_ALL | F.NOTIFICATION_DATA | F.ACCESS_PLATFORM);
  }

  setDriverFeatures(features: bigint): void {
    this.driverFeatures = features;
  }

  configGeneration(): number {
    return this.config.generation;
  }

  readConfig(offset: number, dst: Uint8Array): void {
    this.config.read(offset, dst);
  }

  /**
   * SET_CONFIG, then GET_CONFIG: what the back-end makes of a write (virtio-input's select and
   * subsel choose what the rest shows) is read back once no later write is queued behind it.
   */
  writeConfig(offset: number, src: Uint8Array): void {
    const seq = this.config.write(offset, src);
    if (!this.hasProto(PF.CONFIG)) return;
    const data = src.slice();
    this.enqueue(() => this.expectOk('SET_CONFIG', this.fe.setConfig(offset, data)));
    this.enqueue(async () => {
      if (this.config.isLatestWrite(seq)) await this.fetchConfig(false);
    });
  }

  numQueues(): number {
    return this.queues;
  }

  queueMaxSize(index: number): number {
    return index < this.queues ? this.opts.queueMaxSize : 0;
  }

  setupQueue(index: number, addrs: DriverQueueAddresses): void {
    const r = this.rings[index];
    if (!r) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `queue ${index} does not exist`);
    r.addrs = { ...addrs };
    r.base = null;
    if (this.status & Status.DRIVER_OK) this.enqueue(() => this.startRing(index));
  }

  resetQueue(index: number): void {
    const r = this.rings[index];
    if (!r) return;
    r.addrs = null;
    this.enqueue(async () => {
      if (r.started) {
        r.started = false;
        await this.fe.getVringBase(index);
      }
    });
  }

  notify(index: number): void {
    const r = this.rings[index];
    if (r) this.platform.eventfdWrite(r.kickFd, 1);
  }

  setInterruptHandler(h: DriverInterruptHandler): void {
    this.handler = h;
  }

  // Rings -----------------------------------------------------------------------------------

  private userAddr(gpa: number): number {
    return gpa - this.region.guestAddr + this.region.userAddr;
  }

  private async shareMemory(): Promise<void> {
    if (this.memShared) return;
    this.memShared = true;
    if (this.opts.useMemSlots && this.hasProto(PF.CONFIGURE_MEM_SLOTS)) {
      const slots = await this.fe.getMaxMemSlots();
      if (slots < 1) throw new VirtioError(ErrorCode.VHOST_USER_PROTOCOL, 'back-end has no memory slots');
      await this.expectOk('ADD_MEM_REG', this.fe.addMemReg(this.region, this.memFd));
    } else {
      await this.expectOk('SET_MEM_TABLE', this.fe.setMemTable([this.region], [this.memFd]));
    }
  }

  private async setupInflight(): Promise<void> {
    if (!this.opts.useInflight || !this.hasProto(PF.INFLIGHT_SHMFD)) return;
    let size = 0;
    for (const r of this.rings) if (r.addrs) size = Math.max(size, r.addrs.size);
    if (size === 0) return;
    if (this.inflightFd < 0) {
      const { desc, fd } = await this.fe.getInflightFd(this.queues, size);
      this.inflightFd = fd;
      this.inflightDesc = desc;
    }
    if (this.inflightDesc) await this.expectOk('SET_INFLIGHT_FD', this.fe.setInflightFd(this.inflightDesc, this.inflightFd));
  }

  private async startRings(): Promise<void> {
    await this.shareMemory();
    await this.setupInflight();
    for (let i = 0; i < this.rings.length; i++) if (this.rings[i]!.addrs) await this.startRing(i);
  }

  /**
   * The base of a fresh ring: 0 for split; for packed QEMU's format (avail index | avail wrap
   * counter << 15 | used index << 16 | used wrap counter << 31) with both wrap counters at
   * their initial 1 (2.8.1).
   */
  private freshBase(): number {
    return (this.driverFeatures & F.RING_PACKED) !== 0n ? 0x8000_8000 : 0;
  }

  private async startRing(i: number): Promise<void> {
    const r = this.rings[i]!;
    const a = r.addrs;
    if (!a || r.started) return;
    await this.expectOk('SET_VRING_NUM', this.fe.setVringNum(i, a.size));
    await this.expectOk('SET_VRING_BASE', this.fe.setVringBase(i, r.base ?? this.freshBase()));
    await this.expectOk(
      'SET_VRING_ADDR',
      this.fe.setVringAddr({
        index: i,
        flags: 0,
        descUser: this.userAddr(a.descAddr),
        usedUser: this.userAddr(a.deviceAddr),
        availUser: this.userAddr(a.driverAddr),
        logGuest: a.deviceAddr,
      }),
    );
    await this.expectOk('SET_VRING_CALL', this.fe.setVringCall(i, r.callFd >= 0 ? r.callFd : null));
    await this.expectOk('SET_VRING_KICK', this.fe.setVringKick(i, r.kickFd));
    if (this.deviceFeatures & F_PROTOCOL_FEATURES) await this.expectOk('SET_VRING_ENABLE', this.fe.setVringEnable(i, true));
    r.started = true;
  }

  /** Stops every started ring (GET_VRING_BASE), keeping its base when `reset` is false. */
  private async stopRings(reset: boolean): Promise<void> {
    for (let i = 0; i < this.rings.length; i++) {
      const r = this.rings[i]!;
      if (!r.started) continue;
      r.started = false;
      const base = await this.fe.getVringBase(i);
      r.base = reset ? null : base;
    }
    if (reset) {
      for (const r of this.rings) r.addrs = null;
      if (this.hasProto(PF.RESET_DEVICE)) await this.expectOk('RESET_DEVICE', this.fe.resetDevice());
    }
  }

  /**
   * Stops the rings (saving their bases with GET_VRING_BASE) and closes the connection; the
   * driver keeps its state and memory. `reconnect()` resumes it.
   */
  async disconnect(): Promise<void> {
    await this.settle();
    await this.stopRings(false);
    this.dropConnection();
  }

  /**
   * Connects again (to the same socket path) and restores the session: protocol set-up, then,
   * if the driver was running, features, memory and every ring from its saved base. `bases`
   * overrides the saved bases (e.g. from the driver queues after the back-end died: for a split
   * ring the last avail index; for a packed ring QEMU's avail | used << 16 format).
   */
  async reconnect(bases?: readonly number[]): Promise<void> {
    this.dropConnection();
    for (const r of this.rings) r.started = false;
    if (bases) for (let i = 0; i < bases.length && i < this.rings.length; i++) this.rings[i]!.base = bases[i]!;
    await this.open();
    const s = this.status;
    if (s & Status.FEATURES_OK) {
      const f = this.driverFeatures | (this.deviceFeatures & F_PROTOCOL_FEATURES);
      this.enqueue(() => this.expectOk('SET_FEATURES', this.fe.setFeatures(f)));
    }
    if (s & Status.DRIVER_OK) this.enqueue(() => this.startRings());
    if (this.hasProto(PF.STATUS) && s !== 0) this.enqueue(() => this.expectOk('SET_STATUS', this.fe.setStatus(s)));
    await this.settle();
  }

  private dropConnection(): void {
    this.backendChannel.stop();
    if (this.inflightFd >= 0) this.platform.close(this.inflightFd);
    this.inflightFd = -1;
    this.inflightDesc = null;
    if (this.feOpen) {
      this.feOpen = false;
      this.fe.close();
    }
  }

  /** Closes the connection, eventfds, memory. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stallWatch?.stop();
    this.dropConnection();
    for (const r of this.rings) {
      r.watcher?.stop();
      r.watcher = null;
      this.platform.close(r.kickFd);
      if (r.callFd >= 0) this.platform.close(r.callFd);
    }
    this.rings.length = 0;
    this.mapping.unmap();
    this.platform.close(this.memFd);
  }
}
