/**
 * A lab machine's own /proc/stat and /proc/meminfo, fed from the emulator's load model, so the real node-exporter on
 * a worker (which reads /proc, its unit's flags unchanged) reports the CPU and memory of the meetings the load driver
 * placed on that server, as it would on a real BigBlueButton server. What lxcfs does in containers: files of the
 * machine's directory bind-mounted over the procfs files inside the machine's mount namespace (its own procfs, see
 * lab.ts `--mount-proc`). The scaler's queries read node_cpu_seconds_total and node_memory_Mem{Available,Total}_bytes
 * (scaler/signals/prometheus.ts); its network rates come from the machine's real interfaces.
 */
import { open } from "node:fs/promises";
import type { ServerLoad } from "../emulator/load-model.js";
import { hostPathOf } from "./machine-fs.js";
import type { Machine } from "./lab.js";

/** Clock ticks per second of the times in /proc/stat (USER_HZ, 100 on Linux), as node-exporter's procfs assumes. */
const USER_HZ = 100;
/** Wide enough for any counter of a test run: every rewrite of a counter file keeps its length (see write()). */
const COUNTER_WIDTH = 14;
const MEMINFO_WIDTH = 16;

/** The cumulative CPU seconds of one virtual CPU, as the emulator accrues them (test/emulator/cloud.ts). */
export interface CpuSeconds {
  user: number;
  system: number;
  softirq: number;
  idle: number;
}

export interface ProcSnapshot {
  cpus: readonly CpuSeconds[];
  load: ServerLoad;
  /** When the machine was powered on, in ms since the epoch (btime). */
  bootedAt: number;
}

const jiffies = (seconds: number) => String(Math.floor(seconds * USER_HZ)).padStart(COUNTER_WIDTH, "0");

function cpuLine(label: string, cpu: CpuSeconds): string {
  // user nice system idle iowait irq softirq steal guest guest_nice
  return [label, cpu.user, 0, cpu.system, cpu.idle, 0, 0, cpu.softirq, 0, 0, 0]
    .map((v) => (typeof v === "string" ? v : jiffies(v)))
    .join(" ");
}

/** /proc/stat (proc(5)): an aggregate line and one per vCPU, in USER_HZ ticks; the other counters stand still. */
export function renderProcStat(snapshot: ProcSnapshot): string {
  const total = snapshot.cpus.reduce<CpuSeconds>(
    (sum, cpu) => ({
      user: sum.user + cpu.user,
      system: sum.system + cpu.system,
      softirq: sum.softirq + cpu.softirq,
      idle: sum.idle + cpu.idle,
    }),
    { user: 0, system: 0, softirq: 0, idle: 0 },
  );
  return [
    cpuLine("cpu ", total),
    ...snapshot.cpus.map((cpu, index) => cpuLine(`cpu${index}`, cpu)),
    "intr 0",
    "ctxt 0",
    `btime ${Math.floor(snapshot.bootedAt / 1000)}`,
    "processes 1",
    "procs_running 1",
    "procs_blocked 0",
    "softirq 0 0 0 0 0 0 0 0 0 0 0",
    "",
  ].join("\n");
}

/** /proc/meminfo in kB, as the kernel writes it; MemAvailable is what the load model leaves free. */
export function renderMeminfo(snapshot: ProcSnapshot): string {
  const kb = (bytes: number) => `${String(Math.round(bytes / 1024)).padStart(MEMINFO_WIDTH)} kB`;
  const { memoryTotalBytes: total, memoryUsedBytes: used } = snapshot.load;
  const available = total - used;
  const fields: [string, number][] = [
    ["MemTotal", total],
    ["MemFree", available * 0.6],
    ["MemAvailable", available],
    ["Buffers", available * 0.05],
    ["Cached", available * 0.35],
    ["SwapCached", 0],
    ["Active", used * 0.7],
    ["Inactive", used * 0.3],
    ["SwapTotal", 0],
    ["SwapFree", 0],
    ["Dirty", 0],
    ["Shmem", 0],
  ];
  return `${fields.map(([name, bytes]) => `${`${name}:`.padEnd(16)}${kb(bytes)}`).join("\n")}\n`;
}

/** Where the machine keeps the files it shows as /proc/stat and /proc/meminfo. */
const SOURCES = { "/proc/stat": "/run/lab-proc/stat", "/proc/meminfo": "/run/lab-proc/meminfo" } as const;
const RENDER = { "/proc/stat": renderProcStat, "/proc/meminfo": renderMeminfo } as const;

/** The load model's /proc files of one machine. */
export class MachineProc {
  private constructor(
    private readonly machine: Machine,
    private readonly snapshot: () => ProcSnapshot,
  ) {}

  /** Writes the files and mounts them over the machine's /proc/stat and /proc/meminfo (they stay for its lifetime). */
  static async attach(machine: Machine, snapshot: () => ProcSnapshot): Promise<MachineProc> {
    const proc = new MachineProc(machine, snapshot);
    const first = snapshot();
    for (const [target, source] of Object.entries(SOURCES) as [keyof typeof SOURCES, string][])
      await machine.writeFile(source, RENDER[target](first));
    for (const [target, source] of Object.entries(SOURCES)) await machine.exec("mount", ["--bind", source, target]);
    return proc;
  }

  /**
   * Rewrites the files in place: the bind mount holds the file's inode, so a new file renamed over it would not be
   * seen. Counters keep their width, so a reader sees one version or the next, never a shorter file's tail.
   */
  async write(): Promise<void> {
    if (!this.machine.alive) return;
    const snapshot = this.snapshot();
    for (const [target, source] of Object.entries(SOURCES) as [keyof typeof SOURCES, string][]) {
      const content = Buffer.from(RENDER[target](snapshot));
      const path = hostPathOf(this.machine.roots, source);
      const file = await open(path, "r+");
      try {
        await file.write(content, 0, content.length, 0);
        if ((await file.stat()).size > content.length) await file.truncate(content.length);
      } finally {
        await file.close();
      }
    }
  }
}
