import { z } from "zod";
import type { Logger } from "./log.js";

/** `alerts` of the fleet settings: where alerts go and how often one of a kind and server may repeat. */
export const alertSettingsSchema = z.strictObject({
  /** Receives a JSON POST per alert; without it, no alerts are sent. */
  webhookUrl: z.url({ protocol: /^https?$/, error: "expected an http(s) URL" }).optional(),
  /** The same kind for the same server is sent at most once in this long. */
  minIntervalSeconds: z.number().int().min(0).default(900),
  /** Tries per alert, with doubling delays between them. */
  attempts: z.number().int().min(1).max(10).default(4),
  retryDelayMs: z.number().int().min(0).default(1_000),
});
export type AlertSettings = z.infer<typeof alertSettingsSchema>;

export type AlertKind = "overload" | "drain.timeout" | "up.failed" | "adopted.held" | "adopted.enabled";

/**
 * Audit entries an operator must act on, sent as alerts of the same kind: a drain taken back with meetings on it; after
 * Redis lost the fleet's state, a server held, which runs (and costs) until an operator enables it, and one enabled
 * that an operator may have taken out.
 */
const ALERTED_AUDIT_KINDS: ReadonlySet<string> = new Set<AlertKind>(["drain.timeout", "adopted.held", "adopted.enabled"]);

export function isAlertedAudit(kind: string): kind is AlertKind {
  return ALERTED_AUDIT_KINDS.has(kind);
}

/** The body POSTed to the webhook. */
export interface Alert {
  kind: AlertKind;
  fleet: string;
  server?: string;
  message: string;
  /** ISO datetime of the fleet's clock. */
  at: string;
}

export interface AlertDeps {
  settings: AlertSettings;
  /** Where `alert.sent` and `alert.failed` are recorded: the fleet's audit trail. */
  audit: (entry: { kind: string; actor: string; message: string; details: Record<string, unknown> }, server?: string) => Promise<void>;
  now: () => number;
  logger: Logger;
  /** Waits between tries; real time by default. */
  sleep?: (ms: number) => Promise<void>;
}

const SEND_TIMEOUT_MS = 10_000;

/**
 * Sends alerts to the fleet's webhook without ever holding up the loop: `raise` returns at once, the POST and its
 * retries run on their own, and a kind repeats for the same server at most once per `minIntervalSeconds`.
 */
export class Alerter {
  private readonly lastSent = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: AlertDeps) {}

  /** Queues an alert; false when there is no webhook or the same one went out too recently. */
  raise(alert: Omit<Alert, "at">): boolean {
    const url = this.deps.settings.webhookUrl;
    if (url === undefined) return false;
    const now = this.deps.now();
    const key = `${alert.kind}\u0000${alert.server ?? ""}`;
    const last = this.lastSent.get(key);
    if (last !== undefined && now - last < this.deps.settings.minIntervalSeconds * 1000) return false;
    this.lastSent.set(key, now);
    const sending = this.send(url, { ...alert, at: new Date(now).toISOString() }).finally(() => this.inFlight.delete(sending));
    this.inFlight.add(sending);
    return true;
  }

  /** Resolves once every alert raised so far is sent or given up; for shutdown and tests. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private async send(url: string, alert: Alert): Promise<void> {
    const { attempts, retryDelayMs } = this.deps.settings;
    const sleep = this.deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    let problem = "";
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      if (attempt > 1) await sleep(retryDelayMs * 2 ** (attempt - 2));
      problem = await post(url, alert);
      if (problem === "") {
        await this.record("alert.sent", `${alert.kind} alert sent`, alert, { attempts: attempt });
        return;
      }
    }
    this.deps.logger.warn({ event: "alert.failed", fleet: alert.fleet, kind: alert.kind, err: problem }, "alert not delivered");
    await this.record("alert.failed", `${alert.kind} alert not delivered after ${attempts} tries: ${problem}`, alert, { attempts });
  }

  private async record(kind: string, message: string, alert: Alert, details: Record<string, unknown>): Promise<void> {
    // The webhook's address is left out: it may carry a token.
    await this.deps
      .audit({ kind, actor: "alerts", message, details: { ...details, alert: alert.kind, alertMessage: alert.message } }, alert.server)
      .catch((error: unknown) => this.deps.logger.warn({ event: "alert.audit_failed", err: error }, "alert not audited"));
  }
}

/** One POST; "" on a 2xx answer, else what went wrong. */
async function post(url: string, alert: Alert): Promise<string> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(alert),
      signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
    });
    await response.body?.cancel();
    return response.ok ? "" : `answered ${response.status}`;
  } catch (error) {
    return error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
  }
}

/** A server as an overload watch reads it: its CPU and memory utilisation (0..1) this period, when read. */
export interface LoadReading {
  id: string;
  cpu: { value: number | null; status: string };
  memory: { value: number | null; status: string };
}

/** Counts, per server, the periods in a row it has been above the up-threshold of CPU or memory on fresh readings. */
export class OverloadWatch {
  private streaks = new Map<string, number>();

  /** The servers above the threshold for at least `sustainPeriods` periods in a row, this one included. */
  observe(servers: readonly LoadReading[], thresholds: { cpu: number; memory: number }, sustainPeriods: number): string[] {
    const next = new Map<string, number>();
    for (const server of servers) {
      const above = (reading: LoadReading["cpu"], threshold: number) =>
        reading.status === "fresh" && reading.value !== null && reading.value > threshold;
      if (above(server.cpu, thresholds.cpu) || above(server.memory, thresholds.memory))
        next.set(server.id, (this.streaks.get(server.id) ?? 0) + 1);
    }
    this.streaks = next;
    return [...next].filter(([, streak]) => streak >= sustainPeriods).map(([id]) => id);
  }
}
