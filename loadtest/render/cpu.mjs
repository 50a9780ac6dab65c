// loadtest/render/cpu.mjs: CPU time used by a process tree, from /proc.
//
// On a shared 2-core machine wall-clock rates move with whatever else runs;
// the CPU seconds a contender spends per shot move much less. treeCpu(root)
// sums utime+stime+cutime+cstime over root and its live descendants: a
// process that exited and was reaped by a parent in the tree is counted in
// that parent's cutime/cstime, so the difference of two readings is the CPU
// the whole tree used in between, short-lived Chromium renderers included.
// Split by process name, it shows how much is Chromium's work and how much
// the driver's (puppeteer-core's node, or tintype's API and worker).
// (A process re-parented to init on exit would be missed; Chromium reaps
// its own.)

import { readdirSync, readFileSync } from 'node:fs';

// Linux's USER_HZ; /proc/PID/stat counts in these ticks.
const HZ = Number(process.env.CLK_TCK || 100);

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name, which may hold spaces and parentheses.
    const comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
    return { comm, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
  } catch {
    return null; // gone since readdir
  }
}

// CPU seconds used so far by `root` and every live descendant: `total`, and
// split into `browser` (processes named chromium, with the helpers they
// reaped) and `driver` (the rest: node, or tintype's own processes).
export function treeCpu(root) {
  const kids = new Map();
  const stat = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (!st) continue;
    const pid = Number(name);
    stat.set(pid, st);
    if (!kids.has(st.ppid)) kids.set(st.ppid, []);
    kids.get(st.ppid).push(pid);
  }
  let browser = 0;
  let driver = 0;
  const todo = [Number(root)];
  while (todo.length) {
    const pid = todo.pop();
    const st = stat.get(pid);
    if (st && /^chrom/.test(st.comm)) browser += st.ticks;
    else if (st) driver += st.ticks;
    for (const k of kids.get(pid) || []) todo.push(k);
  }
  return { total: (browser + driver) / HZ, browser: browser / HZ, driver: driver / HZ };
}
