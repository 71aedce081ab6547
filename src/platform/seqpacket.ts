/**
 * Unix SOCK_SEQPACKET sockets (native/seqpacket.c): whole messages, connection-oriented, for
 * the host side of virtio-vsock seqpacket connections (5.10.6.6). Non-blocking; readiness from
 * Platform.watchReadable, accept from Platform.accept, close from Platform.close.
 */
import { loadNativeAddon } from './native-platform.js';
import { toPlatformError } from './platform-error.js';

interface SeqpacketAddon {
  seqpacketListen(path: string, backlog?: number): number;
  seqpacketConnect(path: string): number;
  seqpacketSend(fd: number, head: Uint8Array, tail: Uint8Array): number;
  seqpacketRecv(fd: number, buf: Uint8Array): number;
  seqpacketShutdown(fd: number, how: number): void;
}

export const SeqpacketShutdown = { RECEIVE: 0, SEND: 1, BOTH: 2 } as const;

/** Unix SOCK_SEQPACKET socket calls over raw fds (`seqpacketSockets`); errors are thrown as PlatformError. */
export interface SeqpacketSockets {
  /** A listening socket at `path` (a stale socket file there is replaced). */
  listen(path: string, backlog?: number): number;
  /** A connected socket (throws PlatformError: ENOENT, ECONNREFUSED, EPROTOTYPE ...). */
  connect(path: string): number;
  /** Sends `head` + `tail` as one message: its length, or -1 when the buffer is full. */
  send(fd: number, head: Uint8Array, tail?: Uint8Array): number;
  /**
   * Receives one message into `buf`: its length (larger than `buf` when truncated), -1 when none
   * is ready, 0 at the end (or an empty message).
   */
  recv(fd: number, buf: Uint8Array): number;
  /** shutdown(2) (SHUT_RD, SHUT_WR, SHUT_RDWR). */
  shutdown(fd: number, how: number): void;
}

const EMPTY = new Uint8Array(0);

/** The native SOCK_SEQPACKET functions (throws PlatformError when the addon is not built). */
export function seqpacketSockets(): SeqpacketSockets {
  const a = loadNativeAddon() as unknown as SeqpacketAddon;
  const wrap =
    <A extends unknown[], R>(op: string, f: (...args: A) => R) =>
    (...args: A): R => {
      try {
        return f(...args);
      } catch (e) {
        throw toPlatformError(op, e);
      }
    };
  return {
    listen: wrap('seqpacket listen', (path: string, backlog?: number) => a.seqpacketListen(path, backlog)),
    connect: wrap('seqpacket connect', (path: string) => a.seqpacketConnect(path)),
    send: wrap('seqpacket send', (fd: number, head: Uint8Array, tail: Uint8Array = EMPTY) => a.seqpacketSend(fd, head, tail)),
    recv: wrap('seqpacket recv', (fd: number, buf: Uint8Array) => a.seqpacketRecv(fd, buf)),
    shutdown: wrap('seqpacket shutdown', (fd: number, how: number) => a.seqpacketShutdown(fd, how)),
  };
}
