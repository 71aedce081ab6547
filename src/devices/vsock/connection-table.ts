/**
 * The vsock device's connections by (host port, guest port): the CIDs are fixed (the guest's and
 * the host's 2), so the ports name a flow (5.10.6.2). Bounded by the device (maxConnections).
 */
import type { VsockConnection } from './vsock-connection.js';

export class ConnectionTable {
  private readonly byHost = new Map<number, Map<number, VsockConnection>>();
  private n = 0;
  private nextHostPort = 1024;

  get size(): number {
    return this.n;
  }

  get(hostPort: number, guestPort: number): VsockConnection | null {
    return this.byHost.get(hostPort)?.get(guestPort) ?? null;
  }

  insert(c: VsockConnection): void {
    let byGuest = this.byHost.get(c.hostPort);
    if (byGuest === undefined) {
      byGuest = new Map();
      this.byHost.set(c.hostPort, byGuest);
    }
    byGuest.set(c.guestPort, c);
    this.n++;
  }

  /** Removes `c` if it is the connection at its ports; returns whether it was. */
  remove(c: VsockConnection): boolean {
    const byGuest = this.byHost.get(c.hostPort);
    if (byGuest?.get(c.guestPort) !== c) return false;
    byGuest.delete(c.guestPort);
    if (byGuest.size === 0) this.byHost.delete(c.hostPort);
    this.n--;
    return true;
  }

  /** Every connection (for a reset), then empties the table. */
  drain(): VsockConnection[] {
    const all: VsockConnection[] = [];
    for (const byGuest of this.byHost.values()) for (const c of byGuest.values()) all.push(c);
    this.byHost.clear();
    this.n = 0;
    return all;
  }

  /** A host port (ephemeral, from 1024) not in use with `guestPort`, or -1 after `tries` ports. */
  freeHostPort(guestPort: number, tries: number): number {
    for (let i = 0; i < tries; i++) {
      const p = this.nextHostPort;
      this.nextHostPort = p >= 0xffff_fffe ? 1024 : p + 1;
      if (this.get(p, guestPort) === null) return p;
    }
    return -1;
  }
}
