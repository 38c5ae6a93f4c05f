import { pino, type Logger } from "pino";

/**
 * One JSON line per event. Secrets never reach a log line: the fields below are redacted wherever they appear,
 * and callers log identifiers, never tokens or passwords.
 */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    name,
    level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        "*.authorization",
        "*.password",
        "*.secret",
        "*.token",
        "*.passphrase",
        "authorization",
        "password",
        "secret",
        "token",
        "passphrase",
      ],
      censor: "[redacted]",
    },
  });
}

/**
 * Logs a fault that repeats (Redis away, a scrape that times out) once per kind per interval: its first occurrence at
 * once, then, at the end of each interval in which it came back, one line with how many times it did. An outage under
 * load would otherwise write a line per request.
 */
export class RepeatedFaults {
  private readonly open = new Map<string, { count: number; fields: Record<string, unknown>; message: string }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  warn(kind: string, fields: Record<string, unknown>, message: string): void {
    const window = this.open.get(kind);
    if (window !== undefined) {
      window.count += 1;
      window.fields = fields;
      return;
    }
    this.logger.warn({ event: kind, ...fields }, message);
    this.openWindow(kind, message);
  }

  private openWindow(kind: string, message: string): void {
    const window = { count: 0, fields: {}, message };
    this.open.set(kind, window);
    setTimeout(() => {
      this.open.delete(kind);
      if (window.count === 0) return;
      this.logger.warn(
        { event: kind, ...window.fields, repeated: window.count, intervalMs: this.intervalMs },
        `${window.message} (${window.count} more in the last ${this.intervalMs / 1000} s)`,
      );
      this.openWindow(kind, message);
    }, this.intervalMs).unref();
  }
}

export type { Logger };
