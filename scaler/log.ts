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

export type { Logger };
