import { readFile, readdir } from "node:fs/promises";

/** A live process as Linux's /proc shows it. */
export interface ProcessEntry {
  pid: number;
  parent: number;
  /** R running, S sleeping, T stopped, Z zombie, … */
  state: string;
  /** CPU seconds used so far, in user space and in the kernel. */
  userSeconds: number;
  systemSeconds: number;
}

const TICKS_PER_SECOND = 100;

/**
 * The fields of a /proc/<pid>/stat line after the command name, which is in parentheses and may hold spaces: state,
 * ppid, … utime (the line's 14th field), stime (15th), cutime (16th), cstime (17th).
 */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** Every process of the machine; undefined where there is no /proc. */
export async function listProcesses(): Promise<ProcessEntry[] | undefined> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return undefined;
  }
  const processes: ProcessEntry[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    // Gone between the listing and the read: not a process any more.
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => undefined);
    if (stat === undefined) continue;
    const fields = statFields(stat);
    processes.push({
      pid: Number(entry),
      state: fields[0] ?? "",
      parent: Number(fields[1]),
      userSeconds: Number(fields[11]) / TICKS_PER_SECOND,
      systemSeconds: Number(fields[12]) / TICKS_PER_SECOND,
    });
  }
  return processes;
}

/** A process and its descendants among `processes`. */
export function processTree(processes: readonly ProcessEntry[], rootPid: number): ProcessEntry[] {
  const byPid = new Map(processes.map((process) => [process.pid, process]));
  return processes.filter((process) => {
    for (let ancestor: number | undefined = process.pid; ancestor !== undefined && ancestor > 1; ancestor = byPid.get(ancestor)?.parent) {
      if (ancestor === rootPid) return true;
    }
    return false;
  });
}

/** The command line a process was started with, its arguments joined by spaces; empty once it is gone. */
export async function commandLine(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").join(" ").trim();
}

/** CPU seconds used by this process's children that have ended and been waited for; undefined where there is no /proc. */
export async function endedChildrenCpuSeconds(): Promise<number | undefined> {
  const stat = await readFile("/proc/self/stat", "utf8").catch(() => undefined);
  if (stat === undefined) return undefined;
  const fields = statFields(stat);
  return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
}
