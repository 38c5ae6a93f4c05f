import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { alertSettingsSchema } from "./alerts.js";
import { scalerLoopSchema, workerPolicySchema } from "../infra/config.js";
import { fleetTemplateSchema } from "../infra/fleet.js";
import { jitsiConfigSchema } from "../infra/jitsi.js";
import { fleetNameSchema } from "./store/schemas.js";

export const ROLES = ["viewer", "operator", "admin"] as const;
export const roleSchema = z.enum(ROLES);
export type Role = z.infer<typeof roleSchema>;

const apiTokenSchema = z.strictObject({
  /** Who holds the token; appears in logs and audit entries instead of the token. */
  name: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, "expected a short name of letters, digits, _ . @ -"),
  role: roleSchema,
  token: z.string().min(32, "expected at least 32 characters"),
});
export type ApiToken = z.infer<typeof apiTokenSchema>;

const seconds = z.number().int().positive();

/**
 * The fleet this scaler drives through the Pulumi Automation API. Its secrets come from the environment only:
 * PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE, CONFSCALE_NODE_EXPORTER_PASSWORD, LOADBALANCER_SECRET (Scalelite),
 * CONFSCALE_BBB_SECRET, and the cloud's credentials (IONOS_TOKEN, …).
 */
export const fleetSettingsSchema = z.strictObject({
  /** Where workers go and what their template needs (from the environment stack's outputs); the fleet is a group. */
  template: fleetTemplateSchema.extend({ fleet: fleetNameSchema }),
  image: z.string().min(1),
  /** The policy the fleet's group starts with; operators change it through the API afterwards. */
  policy: workerPolicySchema,
  intervalSeconds: scalerLoopSchema.shape.intervalSeconds,
  /** The fleet project's directory on a persistent volume. */
  workDir: z.string().min(1).default("/var/lib/confscale/fleet"),
  /** A worker's BBB API; `{name}`, `{domain}`, `{id}` and `{publicIp}` are filled in. */
  bbbUrlTemplate: z.string().min(1).default("https://{name}.{domain}/bigbluebutton/api"),
  /** Where Prometheus scrapes a worker: the name its TLS certificate carries. `{name}`, `{domain}`, `{id}`, `{publicIp}` are filled in. */
  scrapeAddressTemplate: z.string().min(1).default("{name}.{domain}:9100"),
  scrapeMetricsPathTemplate: z.string().min(1).optional(),
  scaleliteUrl: z.url(),
  prometheusUrl: z.url(),
  /** The window of the CPU and network rates: a few scrape intervals. */
  prometheusRateWindow: scalerLoopSchema.shape.prometheusRateWindow,
  /** A server whose BBB API has not answered this long after start is replaced. */
  buildTimeoutSeconds: seconds.default(1800),
  /** A drain still holding meetings after this long times out: see onDrainTimeout. */
  drainTimeoutSeconds: seconds.default(7200),
  /** re-enable keeps the meetings (the default); end-meetings ends them. Neither happens silently. */
  onDrainTimeout: z.enum(["re-enable", "end-meetings"]).default("re-enable"),
  leaseTtlSeconds: seconds.default(60),
  /** A reading older than this is stale. */
  freshForSeconds: seconds.default(300),
  /** Alerts to a webhook: a server overloaded for the policy's sustain periods, a drain timed out, an `up` failed. */
  alerts: alertSettingsSchema.default({ minIntervalSeconds: 900, attempts: 4, retryDelayMs: 1_000 }),
});
export type FleetSettings = z.infer<typeof fleetSettingsSchema>;

/**
 * Where the Jitsi groups' machines go and how their stacks run, for a scaler without a BBB fleet (whose `fleet` section
 * serves them otherwise). Its secrets come from the environment: PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE,
 * CONFSCALE_NODE_EXPORTER_PASSWORD, CONFSCALE_BBB_SECRET, the XMPP passwords and the cloud's credentials.
 */
export const jitsiFleetSettingsSchema = z.strictObject({
  /** As the fleet section's template; each group's fleet name and workload are its own. */
  template: fleetTemplateSchema.omit({ fleet: true, workload: true, bbbVersion: true }),
  /** The machine image of a group that names none. */
  image: z.string().min(1),
  intervalSeconds: seconds.default(60),
  workDir: z.string().min(1).default("/var/lib/confscale/fleet"),
  /** Sanity reports a machine whose sidecar has not checked in this long after its launch. */
  buildTimeoutSeconds: seconds.default(1800),
  leaseTtlSeconds: seconds.default(60),
});
export type JitsiFleetSettings = z.infer<typeof jitsiFleetSettingsSchema>;

export const settingsSchema = z
  .strictObject({
    listen: z
      .strictObject({
        host: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(0).max(65_535).default(8080),
      })
      .default({ host: "127.0.0.1", port: 8080 }),
    redis: z.strictObject({
      url: z.string().regex(/^rediss?:\/\//, "expected a redis:// or rediss:// URL"),
      /** Every key the scaler writes starts with this, so one Redis can hold several environments. */
      keyPrefix: z
        .string()
        .regex(/^[A-Za-z0-9_.:-]{1,64}$/, "expected up to 64 of letters, digits, _ . : -")
        .default("confscale:"),
      /** A command that gets no answer within this time fails (the request answers 503) instead of waiting. */
      commandTimeoutMs: z.number().int().positive().default(2_000),
      /**
       * Redis Sentinel: the sentinels to ask for the primary of `name`; the scaler follows a failover by itself. The
       * url then gives only the scheme, user, password and database; its host is not used.
       */
      sentinels: z
        .array(z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65_535) }))
        .min(1)
        .optional(),
      /** The primary's name in the sentinels' configuration (`sentinel monitor <name> …`). */
      name: z.string().min(1).default("mymaster"),
      /**
       * Replicas that must hold a check-in (Redis WAIT) before it is answered 2xx, so a failover loses no acknowledged
       * check-in; one that times out answers 503. Default 1 with sentinels, else 0 (no wait).
       */
      replicasToAck: z.number().int().min(0).max(16).optional(),
      replicaAckTimeoutMs: z.number().int().positive().default(500),
    }),
    /** How long an instance counts as alive after its last report, by state. */
    instanceTtl: z
      .strictObject({
        provisioningSeconds: seconds.default(900),
        idleSeconds: seconds.default(300),
        shuttingDownSeconds: seconds.default(600),
      })
      .default({ provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 }),
    retention: z
      .strictObject({
        stressPoints: z.number().int().min(10).default(2_000),
        stressSeconds: seconds.default(3_600),
        auditEntries: z.number().int().min(10).default(1_000),
        /** Audit of an instance that has stopped reporting is dropped after this long. */
        instanceAuditSeconds: seconds.default(7 * 24 * 3600),
        /** A shutdown or reconfigure request for an instance that never reports again is dropped after this long. */
        commandSeconds: seconds.default(24 * 3600),
      })
      .default({
        stressPoints: 2_000,
        stressSeconds: 3_600,
        auditEntries: 1_000,
        instanceAuditSeconds: 7 * 24 * 3600,
        commandSeconds: 24 * 3600,
      }),
    apiTokens: z.array(apiTokenSchema).default([]),
    sidecar: z.strictObject({
      /** Public keys are fetched from `<keyBaseUrl>/<sha256 hex of kid>.pem`. */
      keyBaseUrl: z.url(),
      acceptedIssuers: z.array(z.string().min(1)).min(1).default(["jitsi-autoscaler-sidecar"]),
      audience: z.string().min(1).default("jitsi-autoscaler"),
      keyCacheSeconds: seconds.default(3_600),
      /** Key-server fetches for key ids not yet known, at most this many a minute (scaler/api/asap.ts). */
      keyFetchesPerMinute: z.number().int().min(1).default(60),
      /**
       * Accept RS256 tokens without a `sub` naming their group and instance, as an unmodified jitsi-autoscaler-sidecar
       * sends them (they speak for any group and instance). Set false when every sidecar's token names its scope, as
       * confscale's worker sidecars always do.
       */
      allowUnscopedTokens: z.boolean().default(true),
      /** Largest check-in body accepted; a stats report of a busy bridge is a few kilobytes. */
      maxBodyBytes: z
        .number()
        .int()
        .min(1_024)
        .default(256 * 1024),
      /**
       * Worker processes that serve check-ins on a port of their own (on `listen.host`), besides the main port, so that
       * check-ins use more than one core. Without it, or with a count of 0, the main process serves them alone.
       */
      workers: z
        .strictObject({
          count: z
            .number({
              error: (issue) =>
                issue.input === undefined
                  ? "required with a workers' port: how many worker processes serve it (SCALER_SIDECAR_WORKERS)"
                  : undefined,
            })
            .int()
            .min(0)
            .max(64),
          port: z.number().int().min(0).max(65_535).default(8081),
        })
        .optional(),
    }),
    shutdownGraceMs: z.number().int().positive().default(10_000),
    fleet: fleetSettingsSchema.optional(),
    /** Jitsi groups, each a fleet on its own stack (rendered from the environment stack's `confscale:jitsi`). */
    jitsi: jitsiConfigSchema.optional(),
    /** Where the Jitsi groups' machines go without a BBB fleet; with one, its `fleet` section serves unless this is set. */
    jitsiFleet: jitsiFleetSettingsSchema.optional(),
  })
  .superRefine((settings, context) => {
    if (settings.jitsi !== undefined && settings.fleet === undefined && settings.jitsiFleet === undefined) {
      context.addIssue({
        code: "custom",
        path: ["jitsi"],
        message: "Jitsi groups need the fleet section or jitsiFleet: their machines take its placement, template and stack backend",
      });
    }
    if (settings.jitsiFleet !== undefined && settings.jitsi === undefined) {
      context.addIssue({ code: "custom", path: ["jitsi"], message: "required with jitsiFleet: the groups it runs" });
    }
    const workers = settings.sidecar.workers;
    if (workers !== undefined && workers.count > 0 && workers.port !== 0 && workers.port === settings.listen.port) {
      context.addIssue({
        code: "custom",
        path: ["sidecar", "workers", "port"],
        message: `must differ from listen.port (${settings.listen.port}): the workers serve a port of their own`,
      });
    }
  });
export type Settings = z.infer<typeof settingsSchema>;

export class SettingsError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly { field: string; message: string }[],
  ) {
    super(`invalid scaler settings (${source}):\n` + problems.map((problem) => `  - ${problem.field}: ${problem.message}`).join("\n"));
    this.name = "SettingsError";
  }
}

/** The environment variable that sets each key `loadSettings` reads from the environment. */
const VARIABLE_OF: Readonly<Record<string, string>> = {
  "listen.host": "SCALER_LISTEN_HOST",
  "listen.port": "SCALER_LISTEN_PORT",
  "redis.url": "SCALER_REDIS_URL",
  "redis.keyPrefix": "SCALER_KEY_PREFIX",
  "redis.sentinels": "SCALER_REDIS_SENTINELS",
  "redis.name": "SCALER_REDIS_SENTINEL_NAME",
  "sidecar.keyBaseUrl": "SCALER_ASAP_KEY_BASE_URL",
  "sidecar.workers.count": "SCALER_SIDECAR_WORKERS",
  "sidecar.workers.port": "SCALER_SIDECAR_PORT",
  apiTokens: "SCALER_API_TOKENS",
};
/** A required section that is missing altogether is reported as its required key. */
const REQUIRED_KEY_OF: Readonly<Record<string, string>> = { redis: "redis.url", sidecar: "sidecar.keyBaseUrl" };

/** Where a key can be set: its variable, if it has one, or the settings file. */
function whereToSet(field: string): string {
  const variable = VARIABLE_OF[field] ?? VARIABLE_OF[field.split(".")[0] ?? ""];
  const inFile = `${field} in the settings file named by SCALER_CONFIG`;
  return variable === undefined ? inFile : `${variable}, or ${inFile}`;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let value = raw;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** Validates a settings object (from a file, a test, or `loadSettings`) and fills in the defaults. */
export function parseSettings(raw: unknown, source = "settings"): Settings {
  const result = settingsSchema.safeParse(raw);
  if (!result.success) {
    throw new SettingsError(
      source,
      result.error.issues.flatMap((issue) => {
        const path = issue.path.map(String);
        if (issue.code === "unrecognized_keys")
          return issue.keys.map((key) => ({ field: [...path, key].join("."), message: "unknown setting" }));
        const field = path.join(".") || "(root)";
        // A missing value names what sets it, not only what type was expected.
        if (issue.code === "invalid_type" && issue.message.startsWith("Invalid input") && valueAt(raw, issue.path) === undefined) {
          const required = REQUIRED_KEY_OF[field] ?? field;
          return [{ field: required, message: `required: set ${whereToSet(required)}` }];
        }
        const variable = VARIABLE_OF[field];
        return [
          {
            field,
            message: variable === undefined || issue.message.includes(variable) ? issue.message : `${issue.message} (${whereToSet(field)})`,
          },
        ];
      }),
    );
  }
  return result.data;
}

/**
 * Reads the settings file (YAML or JSON) named by `SCALER_CONFIG`, if any, and lets the environment override:
 * `SCALER_REDIS_URL`, `SCALER_KEY_PREFIX`, `SCALER_LISTEN_HOST`, `SCALER_LISTEN_PORT`, `SCALER_ASAP_KEY_BASE_URL`,
 * `SCALER_API_TOKENS` (`name:role:token` separated by commas; secrets belong in the environment, not the file),
 * `SCALER_SIDECAR_WORKERS` and `SCALER_SIDECAR_PORT` (the check-in workers' count and port), `SCALER_REDIS_SENTINELS`
 * (`host:port` separated by commas) and `SCALER_REDIS_SENTINEL_NAME`.
 */
export async function loadSettings(env: NodeJS.ProcessEnv = process.env): Promise<Settings> {
  const file = env.SCALER_CONFIG;
  const raw: Record<string, unknown> = file === undefined ? {} : asObject(parseYaml(await readFile(file, "utf8")), file);
  // The mapping at `path` (e.g. sidecar, workers), created where the file has none, for the environment to fill in.
  const section = (...path: string[]): Record<string, unknown> => {
    let parent = raw;
    path.forEach((name, depth) => {
      const value =
        parent[name] === undefined ? {} : asObject(parent[name], `${file ?? "environment"}: ${path.slice(0, depth + 1).join(".")}`);
      parent[name] = value;
      parent = value;
    });
    return parent;
  };
  if (env.SCALER_REDIS_URL !== undefined) section("redis").url = env.SCALER_REDIS_URL;
  if (env.SCALER_KEY_PREFIX !== undefined) section("redis").keyPrefix = env.SCALER_KEY_PREFIX;
  if (env.SCALER_REDIS_SENTINELS !== undefined) section("redis").sentinels = parseSentinels(env.SCALER_REDIS_SENTINELS);
  if (env.SCALER_REDIS_SENTINEL_NAME !== undefined) section("redis").name = env.SCALER_REDIS_SENTINEL_NAME;
  if (env.SCALER_LISTEN_HOST !== undefined) section("listen").host = env.SCALER_LISTEN_HOST;
  if (env.SCALER_LISTEN_PORT !== undefined) section("listen").port = Number(env.SCALER_LISTEN_PORT);
  if (env.SCALER_ASAP_KEY_BASE_URL !== undefined) section("sidecar").keyBaseUrl = env.SCALER_ASAP_KEY_BASE_URL;
  if (env.SCALER_SIDECAR_WORKERS !== undefined) section("sidecar", "workers").count = Number(env.SCALER_SIDECAR_WORKERS);
  if (env.SCALER_SIDECAR_PORT !== undefined) section("sidecar", "workers").port = Number(env.SCALER_SIDECAR_PORT);
  if (env.SCALER_API_TOKENS !== undefined) {
    const fromFile = Array.isArray(raw.apiTokens) ? raw.apiTokens : [];
    raw.apiTokens = [...fromFile, ...parseTokenList(env.SCALER_API_TOKENS)];
  }
  return parseSettings(raw, file === undefined ? "environment" : `${file} + environment`);
}

/** `host:port,host:port`; a bad entry is left for the schema to name (a port that is not a number). */
function parseSentinels(text: string): { host: string; port: number }[] {
  return text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const colon = entry.lastIndexOf(":");
      return { host: entry.slice(0, Math.max(colon, 0)), port: Number(entry.slice(colon + 1)) };
    });
}

function parseTokenList(text: string): { name: string; role: string; token: string }[] {
  return text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry, index) => {
      const [name, role, ...rest] = entry.split(":");
      if (name === undefined || role === undefined || rest.length === 0) {
        throw new SettingsError("SCALER_API_TOKENS", [{ field: `SCALER_API_TOKENS[${index}]`, message: "expected name:role:token" }]);
      }
      return { name, role, token: rest.join(":") };
    });
}

function asObject(value: unknown, source: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new SettingsError(source, [{ field: "(root)", message: "expected a mapping of settings" }]);
  }
  return value as Record<string, unknown>;
}
