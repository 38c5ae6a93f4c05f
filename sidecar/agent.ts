import type { BbbLoad } from "./bbb.js";

/** The scaler's answer to a poll or status call (REFERENCE §1). */
export interface Commands {
  shutdown: boolean;
  reconfigure: string | null;
}

/** What the agent needs from the world: the scaler, the local BBB API, the hooks and the clock. */
export interface AgentPorts {
  post(path: "/sidecar/stats" | "/sidecar/status" | "/sidecar/poll" | "/sidecar/shutdown", body: unknown): Promise<unknown>;
  readLoad(): Promise<BbbLoad>;
  /** The machine's stress: its 1-minute load average per core. */
  stress(): number;
  runHook(hook: "drain" | "shutdown" | "reconfigure"): Promise<void>;
  now(): number;
  log(event: string, details?: Record<string, unknown>): void;
}

export interface AgentIdentity {
  instanceId: string;
  group: string;
  environment?: string | undefined;
  name?: string;
  version?: string;
}

/** Where the agent is in the drain protocol. */
export type DrainPhase = "serving" | "draining" | "drained";

/** Reads a scaler reply; anything unexpected counts as "no command". */
export function readCommands(reply: unknown): Commands {
  const value = typeof reply === "object" && reply !== null ? (reply as Record<string, unknown>) : {};
  return {
    shutdown: value.shutdown === true,
    reconfigure: typeof value.reconfigure === "string" && value.reconfigure !== "" ? value.reconfigure : null,
  };
}

/**
 * The BBB worker's side of the sidecar protocol: reports its load, and carries out the scaler's commands. A shutdown
 * drains (the drain hook, then reports until the last meeting has ended), confirms on /sidecar/shutdown, then runs the
 * shutdown hook; a reconfigure runs its hook and is echoed back as `reconfigureComplete`.
 */
export class Agent {
  phase: DrainPhase = "serving";
  private lastReport: Record<string, unknown> | undefined;
  private reconfigureComplete: string | undefined;
  private reconfigureError = false;
  private handledReconfigure: string | undefined;

  constructor(
    private readonly identity: AgentIdentity,
    private readonly ports: AgentPorts,
  ) {}

  details(): Record<string, unknown> {
    const { instanceId, group, environment, name, version } = this.identity;
    return {
      instanceId,
      instanceType: "bbb",
      group,
      ...(environment === undefined ? {} : { environment }),
      ...(name === undefined ? {} : { name }),
      ...(version === undefined ? {} : { version }),
    };
  }

  /** Reads the load and posts it to /sidecar/stats; a BBB API that does not answer is reported as a stats error. */
  async reportStats(): Promise<Record<string, unknown>> {
    let report: Record<string, unknown>;
    let meetings: number | undefined;
    try {
      const load = await this.ports.readLoad();
      meetings = load.meetings;
      report = this.report({
        meetings: load.meetings,
        participants: load.participants,
        videos: load.videos,
        listeners: load.listeners,
        voice_participants: load.voiceParticipants,
        moderators: load.moderators,
        recordings: load.recordings,
        stress_level: this.ports.stress(),
        graceful_shutdown: this.phase !== "serving",
      });
    } catch (error) {
      this.ports.log("stats.failed", { err: error instanceof Error ? error.message : String(error) });
      report = { ...this.report({}), statsError: true };
    }
    this.lastReport = report;
    await this.ports.post("/sidecar/stats", report);
    // Only BBB's own answer of no meeting ends a drain; a failed read never does.
    if (this.phase === "draining" && meetings === 0) await this.finishDrain();
    return report;
  }

  /** Asks for commands (with the last report, or the bare details before the first) and carries them out. */
  async poll(): Promise<Commands> {
    const reply =
      this.lastReport === undefined
        ? await this.ports.post("/sidecar/poll", this.details())
        : await this.ports.post("/sidecar/status", { ...this.lastReport, ...this.commandEchoes() });
    const commands = readCommands(reply);
    await this.carryOut(commands);
    return commands;
  }

  private report(stats: Record<string, unknown>): Record<string, unknown> {
    return { instance: this.details(), stats, timestamp: this.ports.now(), ...this.commandEchoes() };
  }

  private commandEchoes(): Record<string, unknown> {
    return {
      shutdownStatus: this.phase !== "serving",
      ...(this.reconfigureComplete === undefined ? {} : { reconfigureComplete: this.reconfigureComplete }),
      ...(this.reconfigureError ? { reconfigureError: true } : {}),
    };
  }

  async carryOut(commands: Commands): Promise<void> {
    if (commands.reconfigure !== null && commands.reconfigure !== this.handledReconfigure) {
      this.handledReconfigure = commands.reconfigure;
      try {
        await this.ports.runHook("reconfigure");
        this.reconfigureComplete = commands.reconfigure;
        this.reconfigureError = false;
      } catch (error) {
        this.reconfigureError = true;
        this.ports.log("reconfigure.failed", { err: error instanceof Error ? error.message : String(error) });
      }
    }
    if (commands.reconfigure === null) {
      // The scaler cleared the request once it saw the echo.
      this.handledReconfigure = undefined;
      this.reconfigureComplete = undefined;
    }
    if (!commands.shutdown && this.phase === "draining") {
      // Taken back before its meetings ended (the scaler re-enabled it): serve again.
      this.phase = "serving";
      this.ports.log("drain.cancelled");
    }
    if (commands.shutdown && this.phase === "serving") {
      this.phase = "draining";
      this.ports.log("drain.started");
      await this.ports.runHook("drain");
      // With no meeting left the drain is over at once; otherwise each stats report checks again.
      await this.reportStats();
    }
  }

  private async finishDrain(): Promise<void> {
    this.phase = "drained";
    this.ports.log("drain.finished");
    await this.ports.post("/sidecar/shutdown", this.details());
    await this.ports.runHook("shutdown");
  }
}
