// CPU seconds of a process tree from /proc, for benches that charge a back-end (and the
// threads and children it runs) for its work: utime + stime of `pid` and its descendants.
import { readFileSync, readdirSync } from 'node:fs';

const TICK = 100; // USER_HZ

/** utime + stime of `pid` and its descendants, in seconds. */
export function treeCpuSeconds(pid) {
  const byParent = new Map();
  const own = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let s;
    try {
      s = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    own.set(Number(d), (Number(f[11]) + Number(f[12])) / TICK);
    const ppid = Number(f[1]);
    if (!byParent.has(ppid)) byParent.set(ppid, []);
    byParent.get(ppid).push(Number(d));
  }
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop();
    total += own.get(p) ?? 0;
    stack.push(...(byParent.get(p) ?? []));
  }
  return total;
}
