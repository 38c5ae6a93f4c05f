import { isIP } from "node:net";
import { z } from "zod";
import { CLOUD_NAMES, PROVIDERS, type CloudName } from "./clouds/index.js";
import { serverSizeSchema, type ServerSize } from "./clouds/types.js";
import { JITSI_SECRET_KEYS, JITSI_SECRETS, JITSI_UBUNTU, jitsiConfigSchema } from "./jitsi.js";

/** The Pulumi config namespace of every key in `stacks/Pulumi.<env>.yaml` (the project name). */
export const CONFIG_NAMESPACE = "confscale";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
const clockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "expected a 24-hour time HH:MM");

const cidr = z.string().refine(isCidr, "expected a CIDR block such as 203.0.113.0/24 or 2001:db8::/48");
const hostname = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/i,
    "expected a DNS name such as bbb.example.org",
  );
const sshPublicKey = z
  .string()
  .regex(
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/,
    "expected an OpenSSH public key line (ssh-ed25519 AAAA… comment)",
  );
const ianaTimeZone = z.string().refine(isIanaTimeZone, "expected an IANA time zone such as Europe/Berlin");

/** A worker's or fleet's name: a machine name, host name prefix and Scalelite id at once. */
export const workerNameSchema = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "expected a lowercase name: letters, digits, -");

export { serverSizeSchema, type ServerSize };

const thresholdPair = z
  .strictObject({
    up: z.number().gt(0).max(1),
    down: z.number().min(0).lt(1),
  })
  .refine((pair) => pair.down < pair.up, { message: "down must be below up (hysteresis band)", path: ["down"] });

export const timeWindowSchema = z
  .strictObject({
    days: z.array(z.enum(DAYS)).min(1),
    from: clockTime,
    to: clockTime,
    min: z.number().int().min(0),
  })
  .refine((window) => window.from < window.to, { message: "from must be earlier than to", path: ["to"] });
export type TimeWindow = z.infer<typeof timeWindowSchema>;

/**
 * What each BigBlueButton release needs of a worker, from bbb-install (its README and its checks): the Ubuntu
 * release it installs on, the installer branch and `-v` name, and the minimum it refuses to install below
 * (`nproc` >= 4, MemTotal of about 4 GB; x86_64 only).
 */
export const BBB_RELEASES = {
  "3.0": {
    ubuntu: "22.04",
    installBranch: "v3.0.x-release",
    installVersion: "jammy-300",
    images: { ionos: "ubuntu:22.04", digitalocean: "ubuntu-22-04-x64" },
    minCores: 4,
    minRamGb: 4,
  },
  "2.7": {
    ubuntu: "20.04",
    installBranch: "v2.7.x-release",
    installVersion: "focal-270",
    images: { ionos: "ubuntu:20.04", digitalocean: "ubuntu-20-04-x64" },
    minCores: 4,
    minRamGb: 4,
  },
} as const;
export type BbbVersion = keyof typeof BBB_RELEASES;
export const DEFAULT_BBB_VERSION: BbbVersion = "3.0";
export const bbbVersionSchema = z.enum(Object.keys(BBB_RELEASES) as [BbbVersion, ...BbbVersion[]]);

/**
 * The control node scaler's loop: how often it decides, and the window of its CPU and network rates (a few scrape
 * intervals of files/control-node/prometheus.yml). The defaults suit a real fleet; the `local` stack's rehearsal runs
 * shorter ones so a closed loop fits in minutes.
 */
export const scalerLoopSchema = z.strictObject({
  intervalSeconds: z.number().int().positive().default(60),
  prometheusRateWindow: z
    .string()
    .regex(/^\d+[smh]$/, "expected a Prometheus duration such as 2m")
    .default("2m"),
});
export type ScalerLoop = z.infer<typeof scalerLoopSchema>;

export const workerPolicySchema = z
  .strictObject({
    min: z.number().int().min(0),
    max: z.number().int().min(1),
    baseline: z.number().int().min(0),
    defaultSize: serverSizeSchema,
    maxSize: serverSizeSchema,
    thresholds: z
      .strictObject({
        cpu: thresholdPair.default({ up: 0.65, down: 0.25 }),
        memory: thresholdPair.default({ up: 0.75, down: 0.35 }),
      })
      .default({ cpu: { up: 0.65, down: 0.25 }, memory: { up: 0.75, down: 0.35 } }),
    timeZone: ianaTimeZone.default("UTC"),
    windows: z.array(timeWindowSchema).default([]),
    /** Consecutive decision periods a threshold must hold before it counts (hysteresis in time). */
    sustainPeriods: z.number().int().min(1).max(60).default(3),
    /** Fraction of the capacity under the up-threshold kept free for bursts of new meetings. */
    headroom: z.number().min(0).max(0.9).default(0.1),
    /** How far ahead a rising load is projected: about boot time plus one period, so capacity is ready in time. */
    leadTimeSeconds: z.number().int().min(0).max(3600).default(300),
    /**
     * How far ahead growth of a running server is projected: about the time a live resize takes to land plus one
     * period. Shorter than the lead time of a launch, so growth covers the near rise and launches only what growth
     * cannot hold by the time a booted server would land.
     */
    resizeLeadSeconds: z.number().int().min(0).max(3600).default(120),
    /** After boot or resize a server's metrics are settling: it is neither a victim nor resized again. */
    graceSeconds: z.number().int().min(0).max(3600).default(300),
    cooldownSeconds: z
      .strictObject({
        afterScaleOut: z.number().int().min(0).default(600),
        afterScaleIn: z.number().int().min(0).default(300),
        perServer: z.number().int().min(0).default(300),
      })
      .default({ afterScaleOut: 600, afterScaleIn: 300, perServer: 300 }),
    /** At most `count` starts plus creates within any `perSeconds`. */
    launchRate: z
      .strictObject({
        count: z.number().int().min(1).default(10),
        perSeconds: z.number().int().min(1).default(300),
      })
      .default({ count: 10, perSeconds: 300 }),
    /**
     * Installed, stopped servers kept ready to start in minutes (a stopped server costs only its storage on IONOS and
     * OCI): at least `min`, and `share` of the servers taking meetings, more on a day whose load runs above last
     * week's. Both 0: no warm pool beyond the servers scale-in stops.
     */
    warmPool: z
      .strictObject({
        min: z.number().int().min(0).default(0),
        share: z.number().min(0).max(1).default(0),
      })
      .default({ min: 0, share: 0 }),
    /** The BigBlueButton release the workers install (BBB_RELEASES); its Ubuntu release follows from it. */
    bbbVersion: bbbVersionSchema.default(DEFAULT_BBB_VERSION),
    /**
     * What a worker costs per hour at the cloud's list prices, for the estimated cost the scaler exports
     * (`confscale_fleet_cost_per_hour`); a running server costs its cores and GB, a stopped one `stoppedPerHour`.
     */
    prices: z
      .strictObject({
        currency: z.string().regex(/^[A-Z]{3}$/, "expected an ISO 4217 code such as EUR"),
        perCoreHour: z.number().min(0),
        perGbHour: z.number().min(0),
        stoppedPerHour: z.number().min(0).default(0),
      })
      .optional(),
    /** Paused: no decisions at all. Dry run: decisions are recorded but marked not to be acted on. */
    paused: z.boolean().default(false),
    dryRun: z.boolean().default(false),
  })
  .superRefine((policy, ctx) => {
    if (policy.min > policy.max) {
      ctx.addIssue({ code: "custom", path: ["min"], message: `min (${policy.min}) must not exceed max (${policy.max})` });
    }
    if (policy.baseline < policy.min || policy.baseline > policy.max) {
      ctx.addIssue({
        code: "custom",
        path: ["baseline"],
        message: `baseline (${policy.baseline}) must lie within [min, max] = [${policy.min}, ${policy.max}]`,
      });
    }
    for (const dimension of ["cores", "ramGb"] as const) {
      if (policy.defaultSize[dimension] > policy.maxSize[dimension]) {
        ctx.addIssue({
          code: "custom",
          path: ["defaultSize", dimension],
          message: `defaultSize.${dimension} (${policy.defaultSize[dimension]}) must not exceed maxSize.${dimension} (${policy.maxSize[dimension]})`,
        });
      }
    }
    policy.windows.forEach((window, index) => {
      if (window.min > policy.max) {
        ctx.addIssue({
          code: "custom",
          path: ["windows", index, "min"],
          message: `window minimum (${window.min}) must not exceed max (${policy.max})`,
        });
      }
    });
  });
export type WorkerPolicy = z.infer<typeof workerPolicySchema>;

const secretString = (minLength: number) => z.string().min(minLength, `expected at least ${minLength} characters`);

/** Each registered cloud's settings block (`confscale:<cloud>`), schema from its provider; only the chosen cloud's is read. */
const cloudSettings = Object.fromEntries(CLOUD_NAMES.map((cloud) => [cloud, PROVIDERS[cloud].settingsSchema.optional()])) as {
  [Cloud in CloudName]: z.ZodOptional<(typeof PROVIDERS)[Cloud]["settingsSchema"]>;
};

/** The keys a settings block cannot do without, for the message when a cloud that needs one has none. */
function requiredKeys(schema: z.ZodType): string[] {
  if (!(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape as Record<string, z.ZodType>)
    .filter(([, field]) => !field.safeParse(undefined).success)
    .map(([key]) => key);
}

const SECRET_KEYS = [
  "scaleliteSecret",
  "grafanaAdminPassword",
  "nodeExporterPassword",
  "fleetBackendUrl",
  "fleetPassphrase",
  ...JITSI_SECRET_KEYS,
] as const;

const environmentConfigBase = z.strictObject({
  cloud: z.enum(CLOUD_NAMES),
  region: z.string().min(1, "expected the cloud's region or location, e.g. de/fra, fra1, eu-frankfurt-1"),
  domain: hostname,
  /** The DNS zone, held by the cloud's DNS service, in which each worker gets `<name>.<domain>` (A, and AAAA with IPv6). */
  dnsZone: hostname.optional(),
  adminCidrs: z.array(cidr).min(1, "expected at least one CIDR allowed to reach SSH"),
  sshPublicKeys: z.array(sshPublicKey).min(1, "expected at least one SSH public key"),
  controlNode: serverSizeSchema.default({ cores: 4, ramGb: 8 }),
  scaleliteSecret: secretString(32),
  grafanaAdminPassword: secretString(12),
  nodeExporterPassword: secretString(12),
  /** The BigBlueButton fleet's policy; a stack without it runs Jitsi groups only (`jitsi`). */
  workers: workerPolicySchema.optional(),
  /** The control node scaler's period and rate window (scaler.yaml's fleet). */
  scaler: scalerLoopSchema.optional(),
  /** The fleet stack's Pulumi backend (s3://…, or file:///var/lib/confscale/state on the node's volume); a secret: it may carry keys. */
  fleetBackendUrl: z
    .string()
    .regex(
      /^(s3|file|gs|azblob|https):\/\//,
      "expected a Pulumi backend URL such as s3://bucket?endpoint=… or file:///var/lib/confscale/state",
    )
    .optional(),
  /** Passphrase of the fleet stack's secrets provider. */
  fleetPassphrase: secretString(16).optional(),
  /** Copy the scaler to the control node over SSH on `up`; off for an emulated cloud, whose nodes have no SSH. */
  deployScaler: z.boolean().optional(),
  /** Jitsi groups (videobridges, recorders) beside the BigBlueButton fleet, joining an existing Jitsi Meet deployment. */
  jitsi: jitsiConfigSchema.optional(),
  /** The passwords of that deployment's XMPP accounts the workers log in with (infra/jitsi.ts JITSI_SECRETS). */
  jitsiJvbPassword: secretString(8).optional(),
  jitsiJibriPassword: secretString(8).optional(),
  jitsiRecorderPassword: secretString(8).optional(),
  ...cloudSettings,
});

/** The parts of a stack the install check reads; it runs when these parse, whatever else is wrong. */
const installSubject = z.object({
  cloud: z.string(),
  workers: z.object({ defaultSize: serverSizeSchema, bbbVersion: bbbVersionSchema.optional() }),
  ionos: z.object({ workerImage: z.string().optional() }).optional(),
  digitalocean: z.object({ workerImage: z.string().optional() }).optional(),
});

export const environmentConfigSchema = environmentConfigBase
  // Runs beside every other problem (missing secrets, min above max), so one preview lists them all.
  .superRefine((config, ctx) => checkWorkersCanInstall(installSubject.parse(config), ctx), {
    when: (payload) => installSubject.safeParse(payload.value).success,
  })
  .superRefine((config, ctx) => checkJitsiSecrets(jitsiSubject.parse(config), ctx), {
    when: (payload) => jitsiSubject.safeParse(payload.value).success,
  })
  .superRefine(
    (config, ctx) => {
      if (config.workers === undefined && config.jitsi === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["workers"],
          message: "a stack runs BigBlueButton workers, Jitsi groups (confscale:jitsi) or both: set at least one of them",
        });
      }
    },
    // Whatever else is wrong, as the other checks of the whole stack.
    { when: (payload) => typeof payload.value === "object" && payload.value !== null },
  )
  .superRefine((config, ctx) => {
    const zone = config.dnsZone?.toLowerCase();
    if (zone !== undefined && config.domain.toLowerCase() !== zone && !config.domain.toLowerCase().endsWith(`.${zone}`)) {
      ctx.addIssue({
        code: "custom",
        path: ["dnsZone"],
        message: `the domain ${config.domain} must lie inside the zone ${config.dnsZone}`,
      });
    }
    const provider = PROVIDERS[config.cloud];
    if (provider.settingsRequired && config[config.cloud] === undefined) {
      ctx.addIssue({
        code: "custom",
        path: [config.cloud],
        message: `required when cloud is ${config.cloud}: ${requiredKeys(provider.settingsSchema).join(", ")}`,
      });
    }
  });
export type EnvironmentConfig = z.infer<typeof environmentConfigSchema>;

/** The parts of a stack the Jitsi secrets check reads. */
const jitsiSubject = z.object({
  jitsi: z.object({ groups: z.array(z.object({ type: z.string() })) }).optional(),
  ...Object.fromEntries(JITSI_SECRET_KEYS.map((key) => [key, z.unknown().optional()])),
});

/** Each XMPP password a group's component logs in with is required once such a group exists. */
function checkJitsiSecrets(config: z.output<typeof jitsiSubject>, ctx: z.RefinementCtx): void {
  for (const key of JITSI_SECRET_KEYS) {
    const { component, account } = JITSI_SECRETS[key];
    const index = config.jitsi?.groups.findIndex((group) => group.type === component) ?? -1;
    if (index >= 0 && (config as Record<string, unknown>)[key] === undefined) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `required by jitsi.groups.${index} (${component}): the password of ${account}; set it with \`pulumi config set --secret confscale:${key} …\``,
      });
    }
  }
}

/** The workers' image: the stack's own, or the Ubuntu release `workers.bbbVersion` installs on (ubuntuOf). */
export function workerImageOf(config: EnvironmentConfig): string {
  return PROVIDERS[config.cloud].images(config[config.cloud] as never, ubuntuOf(config)).worker;
}

/** The Ubuntu release of the environment's machines: that of `workers.bbbVersion`, or Jitsi's without BigBlueButton workers. */
export function ubuntuOf(config: EnvironmentConfig): string {
  return config.workers === undefined ? JITSI_UBUNTU : BBB_RELEASES[config.workers.bbbVersion].ubuntu;
}

/** bbb-install refuses a server below its minimum or on the wrong Ubuntu: refuse such a stack before anything is built. */
function checkWorkersCanInstall(config: z.output<typeof installSubject>, ctx: z.RefinementCtx): void {
  const version = config.workers.bbbVersion ?? DEFAULT_BBB_VERSION;
  const release = BBB_RELEASES[version];
  const size = config.workers.defaultSize;
  if (size.cores < release.minCores) {
    ctx.addIssue({
      code: "custom",
      path: ["workers", "defaultSize", "cores"],
      message: `BigBlueButton ${version} needs at least ${release.minCores} cores per worker (${size.cores} given): bbb-install refuses fewer CPU cores`,
    });
  }
  if (size.ramGb < release.minRamGb) {
    ctx.addIssue({
      code: "custom",
      path: ["workers", "defaultSize", "ramGb"],
      message: `BigBlueButton ${version} needs at least ${release.minRamGb} GB of memory per worker (${size.ramGb} given): bbb-install refuses less`,
    });
  }
  // An image named for another Ubuntu release than the one bbb-install checks for cannot install.
  const image =
    config.cloud === "ionos" ? config.ionos?.workerImage : config.cloud === "digitalocean" ? config.digitalocean?.workerImage : undefined;
  const otherRelease = Object.values(BBB_RELEASES)
    .map((other) => other.ubuntu)
    .find((ubuntu) => ubuntu !== release.ubuntu && image !== undefined && image.replace(/-/g, ".").includes(ubuntu));
  if (otherRelease !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: [config.cloud, "workerImage"],
      message: `BigBlueButton ${version} installs on Ubuntu ${release.ubuntu} only, not ${otherRelease}: pick an Ubuntu ${release.ubuntu} image or set workers.bbbVersion`,
    });
  }
}

/** Keys whose values are strings as written; every other key holds YAML structure (JSON in Pulumi's config map). */
const STRING_KEYS = new Set(["cloud", "region", "domain", "dnsZone", ...SECRET_KEYS]);

export interface ConfigProblem {
  /** The full key path, e.g. `confscale:workers.thresholds.cpu.down`. */
  key: string;
  message: string;
}

export class StackConfigError extends Error {
  constructor(
    readonly stackName: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(
      `stack ${stackName}: ${problems.length} problem${problems.length === 1 ? "" : "s"} in stacks/Pulumi.${stackName}.yaml:\n` +
        problems.map((problem) => `  - ${problem.key}: ${problem.message}`).join("\n"),
    );
    this.name = "StackConfigError";
  }
}

/**
 * Validates the stack's config map (Pulumi's `namespace:key` → string form) and lists every problem at once.
 * `secretKeys` names the keys Pulumi holds encrypted; the secret settings must be among them.
 */
export function parseEnvironmentConfig(
  stack: string,
  raw: Readonly<Record<string, string>>,
  secretKeys: ReadonlySet<string>,
): EnvironmentConfig {
  const problems: ConfigProblem[] = [];
  const values: Record<string, unknown> = {};
  const prefix = `${CONFIG_NAMESPACE}:`;
  for (const [fullKey, text] of Object.entries(raw)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    if (STRING_KEYS.has(key)) {
      values[key] = text;
      continue;
    }
    try {
      values[key] = JSON.parse(text);
    } catch {
      // A bare scalar such as `max: five` arrives unquoted; let the schema say what was expected.
      values[key] = text;
    }
  }
  for (const key of SECRET_KEYS) {
    const fullKey = prefix + key;
    if (fullKey in raw && !secretKeys.has(fullKey)) {
      problems.push({
        key: fullKey,
        message: `must be a Pulumi secret: run \`pulumi config set --secret ${fullKey} <value> -s ${stack}\``,
      });
    }
  }
  const result = environmentConfigSchema.safeParse(values);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(...describeIssue(prefix, issue));
    }
  }
  if (problems.length > 0 || !result.success) {
    throw new StackConfigError(stack, problems);
  }
  return result.data;
}

function describeIssue(prefix: string, issue: z.core.$ZodIssue): ConfigProblem[] {
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({
      key: prefix + [...path, key].join("."),
      message: "unknown key: remove it or check its spelling",
    }));
  }
  const key = prefix + path.join(".");
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return [{ key, message: `is required (${issue.expected})` }];
  }
  return [{ key, message: issue.message }];
}

function isCidr(value: string): boolean {
  const slash = value.indexOf("/");
  if (slash < 0) return false;
  const address = value.slice(0, slash);
  const bitsText = value.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return false;
  const family = isIP(address);
  const bits = Number(bitsText);
  return (family === 4 && bits <= 32) || (family === 6 && bits <= 128);
}

function isIanaTimeZone(value: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: value });
    return value.includes("/") || value === "UTC";
  } catch {
    return false;
  }
}
