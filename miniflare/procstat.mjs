// What the emulator's workerd processes use, from /proc (Linux): peak resident memory and CPU
// time. The benches and the slow tests measure with these.
import { readdirSync, readFileSync } from "node:fs";

function workerdPids() {
  return readdirSync("/proc").filter((p) => {
    if (!/^\d+$/.test(p)) return false;
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("workerd");
    } catch {
      return false;
    }
  });
}

// Peak resident set of every workerd process (VmHWM), in MB, by pid.
export function workerdPeaks() {
  const peaks = {};
  for (const pid of workerdPids()) {
    try {
      const hwm = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmHWM:\s+(\d+)/);
      if (hwm) peaks[pid] = Number(hwm[1]) / 1024;
    } catch {}
  }
  return peaks;
}

// CPU time (user + system) of every workerd process so far, in ms.
export function workerdCpuMs() {
  let ticks = 0;
  for (const pid of workerdPids()) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return (ticks * 1000) / 100;
}

// The highest peak among workerd processes started after `before` (a set of pids), in MB.
export const peakSince = (before) => Math.max(0, ...Object.entries(workerdPeaks()).filter(([p]) => !before.has(p)).map(([, v]) => v));
