/**
 * Linux /proc readings for the bench: CPU time and peak RSS of a process tree (the server's primary and its
 * workers), and the machine's total busy time, so that load from other programs during a window is visible.
 * Everything degrades to undefined where /proc is missing.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ; 100 on every Linux architecture Node supports

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** `pid` and all its descendants. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      for (const c of (read(`/proc/${p}/task/${t}/children`) ?? '').split(/\s+/)) if (c) out.push(Number(c));
    }
  }
  return out;
}

/** User + system CPU seconds of one process, from /proc/<pid>/stat (fields 14 and 15). */
export function cpuSeconds(pid: number): number | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

/** CPU seconds of all `pids` together, or undefined when one cannot be read. */
export function cpuSecondsOf(pids: readonly number[]): number | undefined {
  let sum = 0;
  for (const p of pids) {
    const s = cpuSeconds(p);
    if (s === undefined) return undefined;
    sum += s;
  }
  return sum;
}

/** CPU seconds (user + system, every thread) this process spent since `start` (a `process.cpuUsage()` reading). */
export function ownCpuSecondsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

export function treeCpuSeconds(pid: number): number | undefined {
  return cpuSecondsOf(processTree(pid));
}

/** Peak resident set size (VmHWM) in MiB. */
export function peakRssMb(pid: number): number | undefined {
  const m = /VmHWM:\s+(\d+) kB/.exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Math.round(Number(m[1]) / 1024) : undefined;
}

/** Resets VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`, Linux ≥ 4.0); false where refused. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Busy and total CPU seconds of the whole machine since boot (/proc/stat, all cores). */
export function machineCpu(): { busy: number; total: number } | undefined {
  const line = (read('/proc/stat') ?? '').split('\n')[0] ?? '';
  if (!line.startsWith('cpu ')) return undefined;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / TICKS_PER_S, total: total / TICKS_PER_S };
}

/** Seconds that some runnable task waited for a CPU since boot (Linux PSI, /proc/pressure/cpu "some total"). */
export function cpuStallSeconds(): number | undefined {
  const m = /^some .*total=(\d+)/m.exec(read('/proc/pressure/cpu') ?? '');
  return m ? Number(m[1]) / 1e6 : undefined;
}

export interface CpuReading {
  wall_s: number;
  server_cores?: number;
  machine_busy_cores?: number;
  /** Share of the window in which some runnable task waited for a CPU (PSI); near 1 = oversubscribed machine. */
  cpu_pressure?: number;
}

/** Measures CPU over a window: call `end()` after it. Cores are CPU seconds per wall second. */
export function cpuWindow(serverPid?: number): { end(): CpuReading } {
  const t0 = performance.now();
  const s0 = serverPid === undefined ? undefined : treeCpuSeconds(serverPid);
  const m0 = machineCpu();
  const p0 = cpuStallSeconds();
  return {
    end() {
      const wall = (performance.now() - t0) / 1000;
      const s1 = serverPid === undefined ? undefined : treeCpuSeconds(serverPid);
      const m1 = machineCpu();
      const p1 = cpuStallSeconds();
      const r: CpuReading = { wall_s: wall };
      if (s0 !== undefined && s1 !== undefined) r.server_cores = round2((s1 - s0) / wall);
      if (m0 && m1) r.machine_busy_cores = round2((m1.busy - m0.busy) / wall);
      if (p0 !== undefined && p1 !== undefined) r.cpu_pressure = round2(Math.min(1, (p1 - p0) / wall));
      return r;
    },
  };
}

export const round1 = (x: number) => Math.round(x * 10) / 10;
export const round2 = (x: number) => Math.round(x * 100) / 100;

/** Nearest-rank percentile of an unsorted sample. */
export function percentile(sample: readonly number[], p: number): number | undefined {
  if (sample.length === 0) return undefined;
  const sorted = [...sample].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
