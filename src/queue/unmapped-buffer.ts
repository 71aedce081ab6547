/**
 * The slow path of a ring walk (split and packed alike) for a data buffer that is not inside one
 * region of guest memory.
 */
import { QueueFault } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from './chain.js';

/**
 * Adds the data buffer [addr, addr + len) to `chain` when it does not lie inside one region:
 * split at region boundaries when the regions are contiguous (guest-physically one buffer), else
 * the chain is marked faulty (DESC_UNMAPPED: the ring is sound, only this request fails). A piece
 * is split off only while the chain keeps room for the buffer's last piece and the `mayFollow`
 * descriptors that may still follow, so splitting never makes a legal chain too long. Returns
 * false, adding nothing more, when the chain has no room for the last piece: the caller fails the
 * ring with CHAIN_TOO_LONG.
 */
export function addUnmappedBuffer(chain: DescriptorChain, mem: GuestMemory, addr: number, len: number, writable: boolean, mayFollow: number): boolean {
  let a = addr;
  let rem = len;
  while (a >= 0 && rem > 0) {
    const r = mem.locate(a, 1);
    if (r < 0) break;
    const end = mem.baseOf(r) + mem.bytesOf(r).length;
    const piece = Math.min(rem, end - a);
    if (piece === rem) break; // the last piece is added below
    if (chain.count + 2 + mayFollow > chain.capacity) break;
    chain.addSegment(a, piece, writable);
    a += piece;
    rem -= piece;
  }
  if (a < 0 || mem.locate(a, rem) < 0) chain.fault = QueueFault.DESC_UNMAPPED;
  if (chain.count >= chain.capacity) return false;
  chain.addSegment(a, rem, writable);
  return true;
}
