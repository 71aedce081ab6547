/**
 * RST replies the vsock device owes for packets of no connection (5.10.6.4), held until rx
 * buffers let them out: a fixed ring of (guest port, host port, type) triples, so a guest
 * flooding the device with stray packets holds a bounded amount of memory; once full the device
 * stops taking tx buffers (5.10.6.1: processing stops once the extra resources are exhausted).
 */
export class RstReplies {
  private readonly guestPorts: Uint32Array;
  private readonly hostPorts: Uint32Array;
  // The type of the packet answered: a Linux guest ignores a RST whose type is not its socket's.
  private readonly types: Uint16Array;
  private head = 0;
  private n = 0;

  constructor(readonly capacity: number) {
    this.guestPorts = new Uint32Array(capacity);
    this.hostPorts = new Uint32Array(capacity);
    this.types = new Uint16Array(capacity);
  }

  get count(): number {
    return this.n;
  }

  get full(): boolean {
    return this.n === this.capacity;
  }

  /** Adds one; false when full. */
  push(guestPort: number, hostPort: number, type: number): boolean {
    if (this.n === this.capacity) return false;
    const i = (this.head + this.n) % this.capacity;
    this.guestPorts[i] = guestPort;
    this.hostPorts[i] = hostPort;
    this.types[i] = type;
    this.n++;
    return true;
  }

  /** Takes the oldest into `out` (n > 0 required). */
  shift(out: { guestPort: number; hostPort: number; type: number }): void {
    const i = this.head;
    this.head = (i + 1) % this.capacity;
    this.n--;
    out.guestPort = this.guestPorts[i]!;
    out.hostPort = this.hostPorts[i]!;
    out.type = this.types[i]!;
  }

  clear(): void {
    this.n = 0;
  }
}
