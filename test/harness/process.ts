import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { readdir, readlink } from "node:fs/promises";
import { delimiter, join } from "node:path";

/** Where a program lives on PATH, or undefined. */
export function findOnPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export function requireProgram(program: string, debianPackage: string): string {
  const found = findOnPath(program) ?? [`/usr/bin/${program}`, `/usr/sbin/${program}`].find(isExecutable);
  if (found === undefined) {
    throw new Error(`${program} is not installed: run \`npm run setup\` (installs Debian's ${debianPackage})`);
  }
  return found;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  /** Everything the process wrote so far, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts a program and resolves once a line matching `ready` appears on stdout or stderr.
 * Rejects with the program's output when it exits first or `timeoutMs` passes.
 */
export async function startUntilReady(
  command: string,
  args: readonly string[],
  ready: RegExp,
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ManagedProcess> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const managed: ManagedProcess = {
    child,
    output: () => log,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
      }
      await exited;
    },
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} was not ready after ${options.timeoutMs ?? 30_000} ms:\n${log}`));
    }, options.timeoutMs ?? 30_000);
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (ready.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (code ${code}, signal ${signal}) before it was ready:\n${log}`));
    });
  });
  return managed;
}

/**
 * Kills every process whose working directory lies in `dir`: the plugin hosts an engine started there, which the
 * engine leaves running when it is killed itself (as in a crash test).
 */
export async function killProcessesIn(dir: string): Promise<number> {
  let killed = 0;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => undefined);
    if (cwd === undefined || (cwd !== dir && !cwd.startsWith(`${dir}/`))) continue;
    try {
      process.kill(Number(entry), "SIGKILL");
      killed += 1;
    } catch {
      // it ended on its own meanwhile
    }
  }
  return killed;
}
