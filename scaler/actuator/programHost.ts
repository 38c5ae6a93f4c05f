import { fork, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { FleetSpec } from "../../infra/fleet.js";
import { FleetStackError, type FleetStackSettings, type FleetUpdateReport, type ResourceStep, type ServerAddresses } from "./fleetStack.js";

/**
 * Runs fleet programs each in a process of its own, one at a time per process (scaler/actuator/programHostChild.ts).
 *
 * An inline program's host in @pulumi/pulumi keeps its settings per run (AsyncLocalStorage), but registers its
 * `uncaughtException`/`unhandledRejection` handlers on the process: while several inline programs run in one process,
 * one program's stray rejection fails every other, and a failed run's handlers can outlive it and swallow the
 * process's own uncaught errors. A shard's `up` therefore runs in a host process of its own; a host whose run failed
 * is retired with whatever that run left behind, and the next run starts a fresh one.
 */

export type ProgramRequest =
  | {
      kind: "run";
      id: number;
      settings: FleetStackSettings;
      operation: "up";
      spec: FleetSpec;
      options: { parallel?: number; refresh?: boolean };
    }
  | { kind: "run"; id: number; settings: FleetStackSettings; operation: "preview"; spec: FleetSpec }
  | { kind: "abort"; id: number }
  /** The stack was removed: a later run of a stack by that name opens it afresh. */
  | { kind: "forget"; stackName: string };

export type ProgramReply =
  | { kind: "step"; id: number; step: ResourceStep }
  | { kind: "done"; id: number; result: unknown }
  | { kind: "failed"; id: number; message: string };

const CHILD = fileURLToPath(new URL("./programHostChild.ts", import.meta.url));
// The host runs TypeScript as the scaler does (`node --import tsx`), whatever loader the parent itself was started with.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

interface Host {
  child: ChildProcess;
  /** Stacks the host has opened: a stack's next run goes to the host that knows it, when idle. */
  stacks: Set<string>;
  busy: boolean;
  /** Rejects the run in progress when the host dies. */
  onExit?: (reason: string) => void;
}

export class ProgramHosts {
  private readonly hosts: Host[] = [];
  private readonly waiting: (() => void)[] = [];
  private nextId = 0;

  constructor(
    /** Host processes at most, hence programs at once. */
    private readonly size: number,
  ) {}

  /** `FleetStack.up` of the stack `settings` names, in a host process. */
  async up(
    settings: FleetStackSettings,
    spec: FleetSpec,
    onStep: ((step: ResourceStep) => void) | undefined,
    options: { parallel?: number; refresh?: boolean; signal?: AbortSignal },
  ): Promise<FleetUpdateReport & { addresses: ServerAddresses }> {
    const { signal, ...rest } = options;
    const request = { kind: "run", settings, operation: "up", spec, options: rest } as const;
    return (await this.run(request, onStep, signal)) as FleetUpdateReport & { addresses: ServerAddresses };
  }

  /** `FleetStack.preview`, in a host process. */
  async preview(settings: FleetStackSettings, spec: FleetSpec): Promise<Record<string, number>> {
    return (await this.run({ kind: "run", settings, operation: "preview", spec }, undefined, undefined)) as Record<string, number>;
  }

  /** Drops every host's open stack of that name (the stack was removed from the backend). */
  forget(stackName: string): void {
    for (const host of this.hosts) {
      host.stacks.delete(stackName);
      if (host.child.connected) host.child.send({ kind: "forget", stackName } satisfies ProgramRequest);
    }
  }

  /** Stops every host (the scaler's shutdown, a test's end); an idle host holds no state worth keeping. */
  close(): void {
    for (const host of this.hosts.splice(0)) host.child.kill("SIGKILL");
  }

  private async run(
    request: Extract<ProgramRequest, { kind: "run" }> extends infer R ? (R extends unknown ? Omit<R, "id"> : never) : never,
    onStep: ((step: ResourceStep) => void) | undefined,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const stackName = request.settings.stackName ?? `${request.settings.env}-fleet`;
    const host = await this.acquire(stackName);
    const id = (this.nextId += 1);
    const abort = () => {
      if (host.child.connected) host.child.send({ kind: "abort", id } satisfies ProgramRequest);
    };
    let onMessage: ((reply: ProgramReply) => void) | undefined;
    let succeeded = false;
    try {
      const result = await new Promise<unknown>((resolve, reject) => {
        const fail = (message: string) => reject(new FleetStackError(stackName, request.operation, new Error(message)));
        onMessage = (reply) => {
          if (reply.id !== id) return;
          if (reply.kind === "step") onStep?.(reply.step);
          else if (reply.kind === "done") resolve(reply.result);
          else fail(reply.message);
        };
        host.child.on("message", onMessage);
        host.onExit = (reason) => fail(`its program host ${reason}`);
        host.child.send({ ...request, id } satisfies ProgramRequest);
        if (signal?.aborted === true) abort();
        else signal?.addEventListener("abort", abort, { once: true });
      });
      succeeded = true;
      return result;
    } finally {
      if (onMessage !== undefined) host.child.off("message", onMessage);
      signal?.removeEventListener("abort", abort);
      delete host.onExit;
      host.stacks.add(stackName);
      this.release(host, !succeeded);
    }
  }

  /** An idle host, preferring one that has the stack open; a new one while fewer than `size` run. */
  private async acquire(stackName: string): Promise<Host> {
    for (;;) {
      const idle = this.hosts.filter((host) => !host.busy);
      const host =
        idle.find((candidate) => candidate.stacks.has(stackName)) ?? idle[0] ?? (this.hosts.length < this.size ? this.spawn() : undefined);
      if (host !== undefined) {
        host.busy = true;
        host.child.ref();
        host.child.channel?.ref();
        return host;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private release(host: Host, retire: boolean): void {
    host.busy = false;
    if (retire) {
      this.hosts.splice(this.hosts.indexOf(host), 1);
      host.child.kill("SIGKILL");
    } else {
      // An idle host keeps neither the scaler nor a test process alive; it exits with its parent (programHostChild.ts).
      host.child.unref();
      host.child.channel?.unref();
    }
    this.waiting.shift()?.();
  }

  private spawn(): Host {
    const child = fork(CHILD, [], { execArgv: ["--import", TSX_LOADER], serialization: "advanced", stdio: "inherit" });
    const host: Host = { child, stacks: new Set(), busy: false };
    child.on("exit", (code, signal) => {
      const index = this.hosts.indexOf(host);
      if (index >= 0) this.hosts.splice(index, 1);
      host.onExit?.(`exited (${signal ?? `code ${code}`})`);
    });
    this.hosts.push(host);
    return host;
  }
}
