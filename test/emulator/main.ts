/**
 * The emulator as a process: `npm run emulator -- [--port 8780] [--clock-scale 60 | --manual-clock]`.
 * Secrets come from the environment (EMULATOR_IONOS_USERNAME, EMULATOR_IONOS_PASSWORD, EMULATOR_IONOS_TOKEN,
 * EMULATOR_BBB_SECRET, EMULATOR_SCALELITE_SECRET) or default to the test values of `emulator.ts`.
 */
import { z } from "zod";
import { parseCommandLine, UsageError } from "../../scaler/commandLine.js";
import { createLogger } from "../../scaler/log.js";
import { Emulator } from "./emulator.js";

const log = createLogger("emulator");

/** The port the README and the demo name. */
const DEFAULT_PORT = 8780;

const usage = `usage: npm run emulator -- [--port ${DEFAULT_PORT}] [--clock-scale 1 | --manual-clock] [--queued-ms N] [--running-ms N] [--boot-ms N] [--poll-ms N]
  A local cloud on 127.0.0.1: IONOS Cloud API v6 subset, node-exporter and BBB API per server, Scalelite, /_control.
  --port          where it listens (${DEFAULT_PORT}; 0 picks a free port)
  --clock-scale   emulated seconds per wall-clock second (1)
  --manual-clock  the clock moves only through /_control/clock
  --queued-ms, --running-ms  how long a cloud request stays QUEUED and RUNNING
  --boot-ms       how long a started server takes to boot
  --poll-ms       Scalelite's poller interval
  Credentials and secrets: EMULATOR_IONOS_USERNAME, EMULATOR_IONOS_PASSWORD, EMULATOR_IONOS_TOKEN, EMULATOR_BBB_SECRET,
  EMULATOR_SCALELITE_SECRET (test values by default).`;

const number = z.coerce.number().nonnegative();
/** A flag's value through its schema; a bad one is a usage error naming the flag. */
function flag<T>(name: string, schema: z.ZodType<T>, text: string): T {
  const result = schema.safeParse(text);
  if (!result.success) throw new UsageError(`--${name}: ${result.error.issues[0]?.message ?? "invalid"}, got ${JSON.stringify(text)}`);
  return result.data;
}

const values = parseCommandLine(
  {
    name: "npm run emulator",
    usage,
    flags: {
      port: { type: "string", default: String(DEFAULT_PORT) },
      "clock-scale": { type: "string", default: "1" },
      "manual-clock": { type: "boolean", default: false },
      "queued-ms": { type: "string" },
      "running-ms": { type: "string" },
      "boot-ms": { type: "string" },
      "poll-ms": { type: "string" },
    },
  },
  ({ values }) => {
    const optional = (name: "queued-ms" | "running-ms" | "boot-ms" | "poll-ms") => {
      const text = values[name];
      return text === undefined ? undefined : flag(name, number, text);
    };
    return {
      port: flag("port", z.coerce.number().int().min(0).max(65_535), values.port),
      clockScale: flag("clock-scale", z.coerce.number().positive(), values["clock-scale"]),
      manualClock: values["manual-clock"],
      requestQueuedMs: optional("queued-ms"),
      requestRunningMs: optional("running-ms"),
      bootMs: optional("boot-ms"),
      pollMs: optional("poll-ms"),
    };
  },
);

const env = z
  .object({
    EMULATOR_IONOS_USERNAME: z.string().optional(),
    EMULATOR_IONOS_PASSWORD: z.string().optional(),
    EMULATOR_IONOS_TOKEN: z.string().optional(),
    EMULATOR_BBB_SECRET: z.string().optional(),
    EMULATOR_SCALELITE_SECRET: z.string().optional(),
  })
  .parse(process.env);

const timings = Object.fromEntries(
  Object.entries({
    requestQueuedMs: values.requestQueuedMs,
    requestRunningMs: values.requestRunningMs,
    bootMs: values.bootMs,
  }).filter(([, value]) => value !== undefined),
);

const emulator = await Emulator.start({
  port: values.port,
  clock: values.manualClock ? { kind: "manual" } : { kind: "real", scale: values.clockScale },
  timings,
  credentials: {
    ...(env.EMULATOR_IONOS_USERNAME === undefined ? {} : { username: env.EMULATOR_IONOS_USERNAME }),
    ...(env.EMULATOR_IONOS_PASSWORD === undefined ? {} : { password: env.EMULATOR_IONOS_PASSWORD }),
    ...(env.EMULATOR_IONOS_TOKEN === undefined ? {} : { token: env.EMULATOR_IONOS_TOKEN }),
  },
  bbbSecret: env.EMULATOR_BBB_SECRET,
  scaleliteSecret: env.EMULATOR_SCALELITE_SECRET,
  scalelitePollMs: values.pollMs,
}).catch((error: unknown) => {
  // A taken port is the usual cause: say so on one line rather than with a stack trace.
  const code = error instanceof Error && "code" in error ? String(error.code) : "";
  const reason =
    code === "EADDRINUSE" ? `port ${values.port} is in use (pass --port)` : error instanceof Error ? error.message : String(error);
  process.stderr.write(`npm run emulator: cannot start: ${reason}\n`);
  process.exit(1);
});

log.info(
  {
    url: emulator.url,
    cloudApi: emulator.cloudApiUrl,
    scaleliteApi: emulator.scaleliteApiUrl,
    keyBaseUrl: emulator.keyBaseUrl,
    datacenterId: emulator.defaultDatacenterId,
    clock: emulator.clock.snapshot().mode,
  },
  "emulator listening",
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log.info({ signal }, "emulator stopping");
    void emulator.stop().then(() => process.exit(0));
  });
}
