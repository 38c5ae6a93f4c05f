import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../..", import.meta.url));

/** One line of the scaler's JSON log. */
export interface LogEntry {
  event?: string;
  time: string;
  msg?: string;
  [key: string]: unknown;
}

/**
 * The scaler's entry point (`scaler/main.ts`) in a process group of its own, as a container runs it, with its JSON log
 * parsed line by line so a test can await what it says (`next`) instead of sleeping.
 */
export class ScalerProcess {
  readonly entries: LogEntry[] = [];
  private text = "";
  private pending = "";
  private readonly waiters: { test: (entry: LogEntry) => boolean; resolve: (entry: LogEntry) => void }[] = [];
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;

  private constructor(readonly child: ChildProcess) {
    this.exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    const read = (chunk: Buffer) => {
      this.text += chunk.toString();
      this.pending += chunk.toString();
      const lines = this.pending.split("\n");
      this.pending = lines.pop() ?? "";
      for (const line of lines) this.take(line);
    };
    child.stdout?.on("data", read);
    child.stderr?.on("data", read);
  }

  /** Starts `scaler/main.ts` with exactly this environment (Node with tsx's loader, as in the container). */
  static start(env: Record<string, string>): ScalerProcess {
    const child = spawn(process.execPath, ["--import", "tsx", "scaler/main.ts"], {
      cwd: repo,
      env: { LOG_LEVEL: "info", ...env },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    return new ScalerProcess(child);
  }

  output(): string {
    return this.text;
  }

  /** The first log entry (already written or to come) that `test` accepts; fails if the process exits first. */
  async next(test: (entry: LogEntry) => boolean, what: string): Promise<LogEntry> {
    const seen = this.entries.find(test);
    if (seen !== undefined) return seen;
    return new Promise<LogEntry>((resolve, reject) => {
      this.waiters.push({ test, resolve });
      void this.exited.then(([code, signal]) =>
        reject(new Error(`the scaler exited (code ${code}, signal ${signal}) before ${what}:\n${this.text.slice(-4_000)}`)),
      );
    });
  }

  /** The first entry of `event` (and matching `fields`). */
  event(event: string, fields: Record<string, unknown> = {}): Promise<LogEntry> {
    return this.next((entry) => entry.event === event && Object.entries(fields).every(([key, value]) => entry[key] === value), event);
  }

  /** SIGKILL to the whole process group: the scaler, its engine and its check-in workers die together, as in a container. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(-this.child.pid!, "SIGKILL");
    await this.exited;
  }

  /** A graceful stop; resolves with the exit code and signal. */
  async stop(): Promise<[number | null, NodeJS.Signals | null]> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    return this.exited;
  }

  private take(line: string): void {
    let entry: LogEntry;
    try {
      entry = JSON.parse(line) as LogEntry;
    } catch {
      return;
    }
    this.entries.push(entry);
    for (const waiter of [...this.waiters]) {
      if (!waiter.test(entry)) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(entry);
    }
  }
}
