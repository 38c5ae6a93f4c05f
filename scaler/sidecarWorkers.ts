import cluster, { type Worker } from "node:cluster";
import { fileURLToPath } from "node:url";
import type { Logger } from "./log.js";
import { MetricsUnavailableError, type MetricsSnapshot } from "./metrics.js";
import type { Settings } from "./settings.js";

/** What a check-in worker needs of the settings: no API tokens, no fleet. */
export type SidecarWorkerSettings = Pick<Settings, "redis" | "instanceTtl" | "retention" | "sidecar" | "shutdownGraceMs"> & {
  host: string;
  port: number;
};

/** Messages between the main process and its check-in workers, over the cluster's IPC channel. */
export type ToSidecarWorker =
  | { type: "confscale:settings"; settings: SidecarWorkerSettings }
  | { type: "confscale:metrics"; requestId: number }
  | { type: "confscale:stop" };
export type FromSidecarWorker =
  { type: "confscale:ready-for-settings" } | { type: "confscale:metrics"; requestId: number; metrics: MetricsSnapshot };

/** The check-in workers did not all come up: the scaler cannot serve the port it was told to. */
export class SidecarWorkersStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SidecarWorkersStartError";
  }
}

const WORKER_ENTRY = fileURLToPath(new URL("./sidecarWorker.ts", import.meta.url));
const START_TIMEOUT_MS = 60_000;
const METRICS_TIMEOUT_MS = 2_000;
const FIRST_RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that lived this long before it died is restarted at once; quicker deaths back off. */
const STEADY_AFTER_MS = 10_000;

/**
 * How long to wait before replacing a worker that died: at once after a steady run, otherwise a delay that doubles
 * (up to 30 s) while they keep dying early, so that a worker that cannot run does not spin the machine.
 */
export class RestartBackoff {
  private delayMs = FIRST_RESTART_DELAY_MS;

  /** The delay before replacing a worker that lived `livedMs`. */
  next(livedMs: number): number {
    if (livedMs >= STEADY_AFTER_MS) {
      this.delayMs = FIRST_RESTART_DELAY_MS;
      return 0;
    }
    const delayMs = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, MAX_RESTART_DELAY_MS);
    return delayMs;
  }
}

interface PendingMetrics {
  snapshots: MetricsSnapshot[];
  waitingFor: Set<number>;
  resolve: (snapshots: MetricsSnapshot[]) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Worker processes (node:cluster) that serve sidecar check-ins on a port of their own, each with its own Redis
 * connection, while the main process keeps the control API, the fleet loop and its own port. A worker that dies is
 * replaced, with a growing delay while they keep dying early; a worker whose main process is gone stops itself.
 */
export class SidecarWorkers {
  private readonly listening = new Set<number>();
  private readonly startedAt = new Map<number, number>();
  private readonly pending = new Map<number, PendingMetrics>();
  private nextRequestId = 0;
  private readonly restarts = new RestartBackoff();
  /** Once all have listened, a worker that exits is replaced; before, its exit fails the start. */
  private started = false;
  private stopping = false;

  private constructor(
    private readonly settings: SidecarWorkerSettings,
    private readonly logger: Logger,
  ) {}

  /**
   * Forks the workers `sidecar.workers` asks for and resolves once every one of them listens; undefined when it asks
   * for none.
   */
  static async start(scaler: Settings, logger: Logger): Promise<SidecarWorkers | undefined> {
    const wanted = scaler.sidecar.workers;
    if (wanted === undefined || wanted.count === 0) return undefined;
    const settings: SidecarWorkerSettings = {
      redis: scaler.redis,
      instanceTtl: scaler.instanceTtl,
      retention: scaler.retention,
      sidecar: scaler.sidecar,
      shutdownGraceMs: scaler.shutdownGraceMs,
      host: scaler.listen.host,
      port: wanted.port,
    };
    cluster.setupPrimary({ exec: WORKER_ENTRY, execArgv: process.execArgv, silent: false });
    const workers = new SidecarWorkers(settings, logger);
    cluster.on("message", (worker, message: FromSidecarWorker) => workers.onMessage(worker, message));
    cluster.on("exit", (worker, code, signal) => workers.onExit(worker, code, signal));
    try {
      await Promise.all(Array.from({ length: wanted.count }, () => workers.fork()));
      workers.started = true;
    } catch (error) {
      await workers.stop();
      throw error;
    }
    logger.info(
      { event: "sidecar_workers.listening", count: wanted.count, host: settings.host, port: settings.port },
      "check-in workers listening",
    );
    return workers;
  }

  /** Every listening worker's metrics; refused if one does not answer in time. */
  async metrics(): Promise<MetricsSnapshot[]> {
    const asked = [...this.listening]
      .map((id) => cluster.workers?.[id])
      .filter((worker): worker is Worker => worker?.isConnected() === true);
    if (asked.length === 0) return [];
    const requestId = this.nextRequestId++;
    const waitingFor = new Set(asked.map((worker) => worker.id));
    return new Promise<MetricsSnapshot[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(
          new MetricsUnavailableError(
            `check-in workers ${[...waitingFor].join(", ")} did not report their metrics within ${METRICS_TIMEOUT_MS} ms`,
          ),
        );
      }, METRICS_TIMEOUT_MS);
      this.pending.set(requestId, { snapshots: [], waitingFor, resolve, reject, timer });
      // A worker that dies before the request reaches it will not answer: the scrape goes on without it.
      for (const worker of asked) send(worker, { type: "confscale:metrics", requestId }, () => this.answered(requestId, worker.id));
    });
  }

  /** Asks every worker to finish its in-flight check-ins and exit, and waits for them (killed after the grace time). */
  async stop(): Promise<void> {
    this.stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && !worker.isDead());
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            const deadline = setTimeout(() => worker.process.kill("SIGKILL"), this.settings.shutdownGraceMs + 5_000);
            worker.once("exit", () => {
              clearTimeout(deadline);
              resolve();
            });
            const terminate = () => worker.process.kill("SIGTERM");
            if (worker.isConnected()) send(worker, { type: "confscale:stop" }, terminate);
            else terminate();
          }),
      ),
    );
  }

  private fork(): Promise<void> {
    const worker = cluster.fork();
    this.startedAt.set(worker.id, Date.now());
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        worker.process.kill("SIGKILL");
        reject(
          new SidecarWorkersStartError(
            `check-in worker ${worker.id} did not listen on ${this.address()} within ${START_TIMEOUT_MS / 1000} s`,
          ),
        );
      }, START_TIMEOUT_MS);
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(
          new SidecarWorkersStartError(
            `check-in worker ${worker.id} exited (${signal ?? `code ${code}`}) before it listened on ${this.address()}; its log says why`,
          ),
        );
      };
      worker.once("exit", onExit);
      worker.once("listening", () => {
        clearTimeout(timer);
        worker.off("exit", onExit);
        this.listening.add(worker.id);
        if (this.started)
          this.logger.info({ event: "sidecar_worker.replaced", worker: worker.id, pid: worker.process.pid }, "check-in worker replaced");
        resolve();
      });
    });
  }

  private onMessage(worker: Worker, message: FromSidecarWorker): void {
    // Asked for once its modules are loaded: a message sent before it listens for messages would be lost.
    if (message?.type === "confscale:ready-for-settings") {
      // One that dies meanwhile is replaced when its exit comes.
      send(worker, { type: "confscale:settings", settings: this.settings }, () => undefined);
      return;
    }
    if (message?.type !== "confscale:metrics") return;
    const request = this.pending.get(message.requestId);
    if (request === undefined || !request.waitingFor.has(worker.id)) return;
    request.snapshots.push(message.metrics);
    this.answered(message.requestId, worker.id);
  }

  /** A worker answered a metrics request, or can no longer: the request resolves once none is left to wait for. */
  private answered(requestId: number, workerId: number): void {
    const request = this.pending.get(requestId);
    if (request === undefined || !request.waitingFor.delete(workerId) || request.waitingFor.size > 0) return;
    clearTimeout(request.timer);
    this.pending.delete(requestId);
    request.resolve(request.snapshots);
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    this.listening.delete(worker.id);
    const lived = Date.now() - (this.startedAt.get(worker.id) ?? Date.now());
    this.startedAt.delete(worker.id);
    // A worker gone mid-scrape will not answer: the scrape need not wait for it.
    for (const requestId of [...this.pending.keys()]) this.answered(requestId, worker.id);
    if (this.stopping || !this.started) return;
    const delayMs = this.restarts.next(lived);
    this.logger.error(
      { event: "sidecar_worker.exited", worker: worker.id, code, signal, livedMs: lived, restartInMs: delayMs },
      "check-in worker exited; starting another",
    );
    setTimeout(() => {
      if (this.stopping) return;
      // A replacement that dies before it listens is replaced in turn, later: its exit comes back here.
      this.fork().catch((error: unknown) => {
        this.logger.error(
          { event: "sidecar_worker.restart_failed", err: error instanceof Error ? error.message : String(error) },
          "check-in worker could not be restarted",
        );
      });
    }, delayMs).unref();
  }

  private address(): string {
    return `${this.settings.host}:${this.settings.port}`;
  }
}

/**
 * Sends a message to a worker; `onFailed` runs when it cannot be delivered. A worker may exit between the check that it
 * is connected and the send, and a failed send without a callback is an `error` event that would end the main process.
 */
function send(worker: Worker, message: ToSidecarWorker, onFailed: () => void): void {
  worker.send(message, undefined, undefined, (error: Error | null) => {
    if (error !== null) onFailed();
  });
}
