/**
 * The emulator as a process: `npm run emulator -- --port 8443 [--clock-scale 60 | --manual-clock]`.
 * Secrets come from the environment (EMULATOR_IONOS_USERNAME, EMULATOR_IONOS_PASSWORD, EMULATOR_IONOS_TOKEN,
 * EMULATOR_BBB_SECRET, EMULATOR_SCALELITE_SECRET) or default to the test values of `emulator.ts`.
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { createLogger } from "../../scaler/log.js";
import { Emulator } from "./emulator.js";

const log = createLogger("emulator");

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "clock-scale": { type: "string", default: "1" },
    "manual-clock": { type: "boolean", default: false },
    "queued-ms": { type: "string" },
    "running-ms": { type: "string" },
    "boot-ms": { type: "string" },
    "poll-ms": { type: "string" },
  },
});

const number = z.coerce.number().nonnegative();
const optionalNumber = (text: string | undefined) => (text === undefined ? undefined : number.parse(text));
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
    requestQueuedMs: optionalNumber(values["queued-ms"]),
    requestRunningMs: optionalNumber(values["running-ms"]),
    bootMs: optionalNumber(values["boot-ms"]),
  }).filter(([, value]) => value !== undefined),
);

const emulator = await Emulator.start({
  port: z.coerce.number().int().min(0).max(65_535).parse(values.port),
  clock: values["manual-clock"] ? { kind: "manual" } : { kind: "real", scale: z.coerce.number().positive().parse(values["clock-scale"]) },
  timings,
  credentials: {
    ...(env.EMULATOR_IONOS_USERNAME === undefined ? {} : { username: env.EMULATOR_IONOS_USERNAME }),
    ...(env.EMULATOR_IONOS_PASSWORD === undefined ? {} : { password: env.EMULATOR_IONOS_PASSWORD }),
    ...(env.EMULATOR_IONOS_TOKEN === undefined ? {} : { token: env.EMULATOR_IONOS_TOKEN }),
  },
  bbbSecret: env.EMULATOR_BBB_SECRET,
  scaleliteSecret: env.EMULATOR_SCALELITE_SECRET,
  scalelitePollMs: optionalNumber(values["poll-ms"]),
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
