/**
 * A network namespace a test makes for the host side of TAP ports (traffic stays inside it and
 * the project's own guests; no other address is reached). Deleted by `remove`.
 */
import { execFileSync } from 'node:child_process';

/** Runs `ip` with a time bound; throws with its stderr on failure. */
export const ip = (...a: string[]): string => execFileSync('ip', a, { encoding: 'utf8', timeout: 10_000 });

export class Netns {
  readonly name: string;

  constructor(prefix = 'vts-net') {
    this.name = `${prefix}-${(process.pid % 100000).toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
    ip('netns', 'add', this.name);
  }

  /** Moves the TAP `ifname` (made by the back-end) in, with an address, MAC and MTU. */
  adopt(ifname: string, cidr: string, mac: string, mtu = 1500): void {
    ip('link', 'set', ifname, 'netns', this.name);
    ip('-n', this.name, 'link', 'set', ifname, 'address', mac, 'mtu', String(mtu));
    ip('-n', this.name, 'addr', 'add', cidr, 'dev', ifname);
    ip('-n', this.name, 'link', 'set', ifname, 'up');
  }

  remove(): void {
    try {
      ip('netns', 'del', this.name);
    } catch {
      /* already gone */
    }
  }
}
