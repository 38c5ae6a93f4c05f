import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import bcrypt from "bcryptjs";
import { isMap, isSeq, parse, parseDocument, stringify } from "yaml";
import type { Placement } from "./clouds/types.js";
import { BBB_RELEASES, DEFAULT_BBB_VERSION, type BbbVersion, type ScalerLoop, type WorkerPolicy } from "./config.js";
import { WORKER_PORTS } from "./firewall.js";
import {
  jitsiSignalingDefaults,
  JITSI_SECRETS,
  JITSI_UBUNTU,
  type JitsiComponent,
  type JitsiConfig,
  type JitsiSecretKey,
  type JitsiSecrets,
  type JitsiSignaling,
} from "./jitsi.js";

const FILES_DIR = new URL("../files/", import.meta.url);

export class TemplateError extends Error {
  constructor(
    readonly template: string,
    message: string,
  ) {
    super(`files/${template}: ${message}`);
    this.name = "TemplateError";
  }
}

/** Reads `files/<path>` and fills every `{{name}}`; a placeholder without a value is an error, never an empty string. */
export function renderTemplate(path: string, values: Readonly<Record<string, string>>): string {
  const text = readFileSync(new URL(path, FILES_DIR), "utf8");
  const missing = new Set<string>();
  const rendered = text.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) {
      missing.add(name);
      return "";
    }
    return value;
  });
  if (missing.size > 0) throw new TemplateError(path, `no value for ${[...missing].map((name) => `{{${name}}}`).join(", ")}`);
  return rendered;
}

interface WriteFile {
  path: string;
  content: string;
  permissions: string;
  owner?: string;
  /** Written after packages are installed (the owner's group may come with a package). */
  defer?: boolean;
}

function cloudConfig(basePath: string, values: Readonly<Record<string, string>>, writeFiles: WriteFile[]): string {
  const base: unknown = parse(renderTemplate(basePath, values));
  if (typeof base !== "object" || base === null || Array.isArray(base))
    throw new TemplateError(basePath, "expected a cloud-config mapping");
  // write_files run before runcmd, so every file is in place when the commands start.
  return `#cloud-config\n${stringify({ ...base, write_files: writeFiles }, { lineWidth: 0 })}`;
}

/** The fleet the control node's scaler drives; its Prometheus discovers the workers at /fleets/<name>/targets. */
export const CONTROL_NODE_FLEET = "bbb";

export interface ControlNodeTemplateValues {
  env: string;
  domain: string;
  fleetStack: string;
  /** Whether the environment runs BigBlueButton workers, and so Scalelite and its PostgreSQL (true unless false). */
  bbb?: boolean;
  /** The fleets of the environment's Jitsi groups (jitsi-<group>), whose workers Prometheus discovers too. */
  jitsiFleets?: readonly string[];
}

/** Scalelite's services and volumes in the compose file: a Jitsi-only environment runs none of them. */
const SCALELITE_SERVICES = ["postgres", "scalelite-api", "scalelite-poller", "scalelite-recording-importer", "scalelite-nginx"];
const SCALELITE_VOLUMES = ["postgres-data", "recordings"];

/** The compose file without Scalelite's services, volumes and the dependencies on them; comments kept. */
function withoutScalelite(compose: string): string {
  const document = parseDocument(compose);
  for (const service of SCALELITE_SERVICES) document.deleteIn(["services", service]);
  for (const volume of SCALELITE_VOLUMES) document.deleteIn(["volumes", volume]);
  const services = document.get("services");
  if (!isMap(services)) throw new TemplateError("control-node/docker-compose.yml", "expected a services mapping");
  for (const { key } of services.items) {
    const dependsOn = document.getIn(["services", key, "depends_on"]);
    if (isSeq(dependsOn)) dependsOn.items = dependsOn.items.filter((item) => !SCALELITE_SERVICES.includes(String(item)));
  }
  return document.toString({ lineWidth: 0 });
}

/** prometheus.yml whose node-exporter job discovers the workers of each of `fleets` from the scaler. */
function withFleetTargets(prometheus: string, fleets: readonly string[]): string {
  const document = parseDocument(prometheus);
  const jobs = document.get("scrape_configs");
  const job = isSeq(jobs) ? jobs.items.find((item) => isMap(item) && item.get("job_name") === "node-exporter") : undefined;
  if (!isMap(job)) throw new TemplateError("control-node/prometheus.yml", "expected a node-exporter job");
  job.set(
    "http_sd_configs",
    document.createNode(fleets.map((fleet) => ({ url: `http://scaler:8080/fleets/${fleet}/targets`, refresh_interval: "30s" }))),
  );
  return document.toString({ lineWidth: 0 });
}

/** How long the scaler's HTTP listener lets in-flight requests finish on SIGTERM (scaler.yaml shutdownGraceMs). */
export const SCALER_SHUTDOWN_GRACE_MS = 30_000;
/**
 * How long a stop waits for the scaler before it is killed: its shutdown grace, then the fleet period in progress
 * (an `up` of the fleet stack). An `up` cut off after that is recovered by the next start.
 */
export const SCALER_STOP_GRACE_SECONDS = SCALER_SHUTDOWN_GRACE_MS / 1000 + 300;

/** Files of the control node's compose project, relative to /opt/confscale. */
export function controlNodeProjectFiles(values: ControlNodeTemplateValues): Record<string, string> {
  const bbb = values.bbb ?? true;
  const jitsiFleets = values.jitsiFleets ?? [];
  const fill = {
    env: values.env,
    domain: values.domain,
    fleetStack: values.fleetStack,
    fleet: CONTROL_NODE_FLEET,
    scalerStopGracePeriod: `${SCALER_STOP_GRACE_SECONDS}s`,
    // Whatever the scaler and Grafana do not serve: Scalelite's front (BigBlueButton's API, recordings), or nothing.
    catchAll: bbb ? "reverse_proxy scalelite-nginx:80" : "respond 404",
  };
  const compose = renderTemplate("control-node/docker-compose.yml", fill);
  const prometheus = renderTemplate("control-node/prometheus.yml", fill);
  return {
    "docker-compose.yml": bbb ? compose : withoutScalelite(compose),
    Caddyfile: renderTemplate("control-node/Caddyfile", fill),
    "prometheus.yml":
      bbb && jitsiFleets.length === 0 ? prometheus : withFleetTargets(prometheus, [...(bbb ? [CONTROL_NODE_FLEET] : []), ...jitsiFleets]),
    "grafana/provisioning/datasources/prometheus.yml": renderTemplate("control-node/grafana/provisioning/datasources/prometheus.yml", fill),
    "grafana/provisioning/dashboards/confscale.yml": renderTemplate("control-node/grafana/provisioning/dashboards/confscale.yml", fill),
    "grafana/dashboards/fleet.json": readFileSync(new URL("control-node/grafana/dashboards/fleet.json", FILES_DIR), "utf8"),
  };
}

/**
 * The control node's cloud-init. It holds no secret and no commit: secrets and the scaler's source are
 * delivered over SSH by `pulumi up`, so neither a rotated secret nor a new commit replaces the node.
 */
export function renderControlNodeUserData(values: ControlNodeTemplateValues): string {
  const projectFiles = Object.entries(controlNodeProjectFiles(values)).map(([path, content]) => ({
    path: `/opt/confscale/${path}`,
    content,
    permissions: "0644",
  }));
  return cloudConfig("control-node/cloud-init.yaml", { env: values.env }, [
    ...projectFiles,
    {
      path: "/etc/systemd/system/confscale.service",
      content: renderTemplate("control-node/confscale.service", {
        scalerEnvFile: `/opt/confscale/${CONTROL_NODE_SECRET_FILES.scaler}`,
        // `docker compose stop` waits for the scaler's stop grace; systemd must not kill it sooner.
        stopTimeoutSeconds: String(SCALER_STOP_GRACE_SECONDS + 30),
      }),
      permissions: "0644",
    },
  ]);
}

export interface ScalerSettingsValues {
  env: string;
  domain: string;
  placement: Placement;
  controlNodeIp: string;
  adminCidrs: string[];
  sshPublicKeys: string[];
  /** The BigBlueButton fleet's worker image and policy; absent in a Jitsi-only environment. */
  workerImage?: string;
  policy?: WorkerPolicy;
  /** The stack's period and rate window of the scaler's loop, when it sets them (a Jitsi-only scaler's period too). */
  loop?: Partial<ScalerLoop>;
  /** The control node's cores: half of them serve check-ins in worker processes, the rest is for its other services. */
  controlNodeCores: number;
  /** The stack's Jitsi groups, each a fleet of the scaler (infra/jitsi.ts). */
  jitsi?: JitsiConfig;
  /** The image of a Jitsi group that names none: the cloud's Ubuntu JITSI_UBUNTU image. */
  jitsiImage?: string;
}

/** The `jitsi` block of scaler.yaml: the stack's, with each group's image filled in. */
function scalerJitsiSettings(jitsi: JitsiConfig, defaultImage: string | undefined): JitsiConfig {
  return {
    ...jitsi,
    groups: jitsi.groups.map((group) => {
      const image = group.image ?? defaultImage;
      return image === undefined ? group : { ...group, image };
    }),
  };
}

/** The fleet project's directory and, with a file:// backend, its state: on the fleet-state volume. */
const FLEET_WORK_DIR = "/var/lib/confscale/fleet";

/**
 * The scaler's settings file on the control node (scaler/settings.ts): the fleet it drives, reached on the compose
 * network, and the Jitsi groups beside it or, without BigBlueButton workers, instead of it (their stacks' settings in
 * `jitsiFleet` then). It holds no secret: those, the Redis URL and the listen address come from .env and the compose file.
 */
export function renderScalerSettings(values: ScalerSettingsValues): string {
  const template = {
    placement: values.placement,
    domain: values.domain,
    scalerUrl: `https://${values.domain}/scaler`,
    controlNodeIp: values.controlNodeIp,
  };
  const access = { adminCidrs: values.adminCidrs, sshPublicKeys: values.sshPublicKeys };
  const { policy, workerImage } = values;
  if ((policy === undefined) !== (workerImage === undefined))
    throw new TemplateError("scaler.yaml", "the BigBlueButton fleet needs both its policy and its worker image");
  if (policy === undefined && values.jitsi === undefined)
    throw new TemplateError("scaler.yaml", "an environment runs BigBlueButton workers, Jitsi groups or both");
  if (policy === undefined && values.jitsiImage === undefined)
    throw new TemplateError("scaler.yaml", "Jitsi groups without a BigBlueButton fleet need their default image");
  const settings = {
    ...(policy === undefined || workerImage === undefined
      ? {}
      : {
          fleet: {
            template: { env: values.env, fleet: CONTROL_NODE_FLEET, ...template, bbbVersion: policy.bbbVersion, ...access },
            image: workerImage,
            policy,
            workDir: FLEET_WORK_DIR,
            scaleliteUrl: "http://scalelite-api:3000/scalelite/api",
            prometheusUrl: "http://prometheus:9090",
            ...values.loop,
          },
        }),
    // Their port is the compose file's SCALER_SIDECAR_PORT, which the Caddyfile routes /scaler/sidecar/* to.
    sidecar: { workers: { count: Math.max(1, Math.floor(values.controlNodeCores / 2)) } },
    // The compose file's stop_grace_period leaves room for this and the fleet period in progress.
    shutdownGraceMs: SCALER_SHUTDOWN_GRACE_MS,
    // Each group is a fleet of the same template but its workload (infra/fleet.ts), named jitsi-<group>.
    ...(values.jitsi === undefined ? {} : { jitsi: scalerJitsiSettings(values.jitsi, values.jitsiImage) }),
    ...(policy !== undefined || values.jitsiImage === undefined
      ? {}
      : {
          jitsiFleet: {
            template: { env: values.env, ...template, ...access },
            image: values.jitsiImage,
            workDir: FLEET_WORK_DIR,
            ...(values.loop?.intervalSeconds === undefined ? {} : { intervalSeconds: values.loop.intervalSeconds }),
          },
        }),
  };
  return `# Written by the ${values.env} environment stack on every \`pulumi up\`; edits here are overwritten.\n${stringify(settings, { lineWidth: 0 })}`;
}

export interface ControlNodeSecrets {
  scaleliteSecret: string;
  grafanaAdminPassword: string;
  nodeExporterPassword: string;
  /** The fleet stack's Pulumi backend, e.g. s3://bucket?endpoint=… or file:///var/lib/confscale/state. */
  fleetBackendUrl: string;
  fleetPassphrase: string;
  /** Cloud credentials the fleet program needs, as environment variables (IONOS_TOKEN, DIGITALOCEAN_TOKEN, …). */
  cloudCredentials: Readonly<Record<string, string>>;
  /** The Jitsi deployment's XMPP passwords the fleet program puts into Jitsi workers' user data. */
  jitsi?: JitsiSecrets;
}

/**
 * One `KEY=value` line of a compose env file as compose's own parser (compose-go's dotenv) reads it back verbatim.
 * Plain values stay bare; anything else is single-quoted, which that parser takes literally: no `${...}` expansion,
 * no ` #` comment, newlines kept (a PEM key). Inside, a quote is written `\'`; a backslash right before a quote or at
 * the end cannot be written that way, so such a value is refused with its key.
 */
export function envFileLine(key: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new TemplateError("env file", `${key} is not a variable name`);
  if (/^[A-Za-z0-9_\-.:/+=@,]*$/.test(value)) return `${key}=${value}`;
  if (/\\('|$)/.test(value)) throw new TemplateError("env file", `${key} must not have a backslash before a quote or at its end`);
  return `${key}='${value.replaceAll("'", "\\'")}'`;
}

function envFile(entries: Readonly<Record<string, string>>): string {
  return Object.entries(entries)
    .map(([key, value]) => envFileLine(key, value))
    .join("\n")
    .concat("\n");
}

/** Where the control node's secret files live, relative to /opt/confscale; the compose file names the same paths. */
export const CONTROL_NODE_SECRET_FILES = {
  scaler: "env/scaler.env",
  scalelite: "env/scalelite.env",
  postgres: "env/postgres.env",
  grafana: "env/grafana.env",
  /** Prometheus's basic-auth password for the workers' node-exporter (a password_file, no newline). */
  nodeExporterPassword: "secrets/node-exporter-password",
} as const;

/** The control node's secret files by CONTROL_NODE_SECRET_FILES key; Scalelite's and PostgreSQL's only with BBB workers. */
export type ControlNodeSecretFiles = Record<Exclude<keyof typeof CONTROL_NODE_SECRET_FILES, "scalelite" | "postgres">, string> &
  Partial<Record<"scalelite" | "postgres", string>>;

/**
 * The control node's secret files (mode 0600 on the node, handled only as Pulumi secrets): each compose service
 * gets an env file with just what it needs, so Scalelite never sees cloud credentials or the fleet's passphrase.
 */
export function renderControlNodeSecretFiles(secrets: ControlNodeSecrets, options: { bbb?: boolean } = {}): ControlNodeSecretFiles {
  const derive = (purpose: string) => deriveSecret(purpose, secrets.scaleliteSecret);
  const postgresPassword = derive("postgres");
  const bbb = options.bbb ?? true;
  return {
    scaler: envFile({
      // Scalelite's secret, for its server API; a Jitsi-only environment has no Scalelite (the secret still seeds the others).
      ...(bbb ? { LOADBALANCER_SECRET: secrets.scaleliteSecret } : {}),
      CONFSCALE_NODE_EXPORTER_PASSWORD: secrets.nodeExporterPassword,
      // The fleet's master secret: each worker's own BBB secret and sidecar key derive from it (infra/workerCredentials.ts).
      CONFSCALE_BBB_SECRET: derive("bbb-shared-secret"),
      // The operator's token for the scaler's API and the confscale CLI (stack output scalerApiToken).
      SCALER_API_TOKENS: `operator:admin:${scalerApiToken(secrets.scaleliteSecret)}`,
      PULUMI_BACKEND_URL: secrets.fleetBackendUrl,
      PULUMI_CONFIG_PASSPHRASE: secrets.fleetPassphrase,
      // Read back by jitsiSecretsFromEnv (infra/jitsi.ts) for the Jitsi groups' fleet programs.
      ...Object.fromEntries(Object.entries(secrets.jitsi ?? {}).map(([key, value]) => [JITSI_SECRETS[key as JitsiSecretKey].env, value])),
      ...secrets.cloudCredentials,
    }),
    ...(bbb
      ? {
          scalelite: envFile({
            LOADBALANCER_SECRET: secrets.scaleliteSecret,
            SECRET_KEY_BASE: derive("scalelite-secret-key-base") + derive("scalelite-secret-key-base-2"),
            // Derived hex: nothing in it needs escaping inside a URL.
            DATABASE_URL: `postgres://scalelite:${postgresPassword}@postgres:5432/scalelite`,
          }),
          postgres: envFile({ POSTGRES_PASSWORD: postgresPassword }),
        }
      : {}),
    grafana: envFile({ GF_SECURITY_ADMIN_PASSWORD: secrets.grafanaAdminPassword }),
    nodeExporterPassword: secrets.nodeExporterPassword,
  };
}

/** Internal credentials are derived from the Scalelite secret, so they need no config of their own. */
function deriveSecret(purpose: string, scaleliteSecret: string): string {
  return createHash("sha256").update(`${purpose}\0${scaleliteSecret}`).digest("hex");
}

/** The scaler's admin API token, for operators and the confscale CLI. */
export function scalerApiToken(scaleliteSecret: string): string {
  return deriveSecret("scaler-api-token", scaleliteSecret);
}

/**
 * bcrypt hash of node-exporter's basic-auth password. The salt is derived from the password so the same
 * password always renders the same user data: a fresh random salt would replace every worker on every `up`.
 */
export function nodeExporterPasswordHash(password: string): string {
  const alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const digest = createHash("sha256").update(`confscale node-exporter salt\0${password}`).digest();
  let salt = "";
  for (let index = 0; index < 22; index++) salt += alphabet[(digest[index] ?? 0) & 63];
  // bcrypt's 22nd salt character only carries 2 bits; keep it canonical so bcryptjs and Go agree.
  salt = salt.slice(0, 21) + "./OOeeuu"[(digest[21] ?? 0) & 7];
  return bcrypt.hashSync(password, `$2b$10$${salt}`);
}

/** node-exporter release the workers install; 1.5.0 is the first with --web.config.file. */
export const NODE_EXPORTER_RELEASE = {
  version: "1.8.2",
  // sha256 of node_exporter-<version>.linux-<arch>.tar.gz, from the release's sha256sums.txt.
  sha256: {
    amd64: "6809dd0b3ec45fd6e992c19071d6b5253aed3ead7bf0686885a51d85c6643c66",
    arm64: "627382b9723c642411c33f48861134ebe893e70a63bcc8b3fc0619cd0bfac4be",
  },
} as const;

export interface WorkerTemplateValues {
  env: string;
  fleet: string;
  /** The worker's machine name; its host name is `<name>.<domain>`. */
  name: string;
  domain: string;
  /** Public URL of the scaler, e.g. https://bbb.example.org/scaler */
  scalerUrl: string;
  /** The control node's public IPv4 address: the only source allowed to scrape node-exporter. */
  controlNodeIp: string;
  /** bcrypt hash from `nodeExporterPasswordHash`, never the password. */
  nodeExporterPasswordHash: string;
  /** This worker's own BBB API secret (infra/workerCredentials.ts); the user data is a secret wherever it is kept. */
  bbbSecret: string;
  /** Key id and PKCS#8 PEM of this worker's sidecar signing key (infra/workerCredentials.ts). */
  sidecarKeyId: string;
  sidecarSigningKey: string;
  /** The BigBlueButton release bbb-install sets up (config `workers.bbbVersion`); 3.0 when omitted. */
  bbbVersion?: BbbVersion;
  letsEncryptEmail?: string;
}

/** The BigBlueButton worker's node-exporter check: a bcrypt hash, never a password, and the control node's IPv4 address. */
function checkNodeExporterValues(values: { nodeExporterPasswordHash: string; controlNodeIp: string }, template: string): void {
  if (!/^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(values.nodeExporterPasswordHash)) {
    throw new TemplateError("worker/node-exporter-web.yml", "nodeExporterPasswordHash must be a bcrypt hash");
  }
  if (isIP(values.controlNodeIp) !== 4) throw new TemplateError(template, "controlNodeIp must be an IPv4 address");
}

/**
 * node-exporter as every worker runs it (files/worker/): installed from its release, TLS with the worker's Let's
 * Encrypt certificate (handed over by the deploy hook), basic auth for the control node's Prometheus.
 */
function nodeExporterFiles(fill: Readonly<Record<string, string>>): WriteFile[] {
  const values = {
    ...fill,
    nodeExporterPort: String(WORKER_PORTS.nodeExporter),
    nodeExporterVersion: NODE_EXPORTER_RELEASE.version,
    nodeExporterSha256Amd64: NODE_EXPORTER_RELEASE.sha256.amd64,
    nodeExporterSha256Arm64: NODE_EXPORTER_RELEASE.sha256.arm64,
  };
  return [
    {
      path: "/etc/prometheus/node-exporter-web.yml",
      content: renderTemplate("worker/node-exporter-web.yml", values),
      permissions: "0640",
      owner: "root:prometheus",
      defer: true,
    },
    { path: "/etc/default/prometheus-node-exporter", content: renderTemplate("worker/node-exporter.default", values), permissions: "0644" },
    {
      path: "/usr/local/sbin/confscale-install-node-exporter",
      content: renderTemplate("worker/install-node-exporter.sh", values),
      permissions: "0755",
    },
    {
      path: "/etc/systemd/system/prometheus-node-exporter.service",
      content: renderTemplate("worker/node-exporter.service", values),
      permissions: "0644",
    },
    {
      path: "/etc/letsencrypt/renewal-hooks/deploy/node-exporter-tls.sh",
      content: renderTemplate("worker/node-exporter-tls.sh", values),
      permissions: "0755",
    },
  ];
}

/** The worker's cloud-init: BigBlueButton via bbb-install, node-exporter with TLS + basic auth, the sidecar. */
export function renderWorkerUserData(values: WorkerTemplateValues): string {
  checkNodeExporterValues(values, "worker/cloud-init.yaml");
  // bbb-conf takes the secret as one shell word; BBB's own secrets are hex.
  if (!/^[A-Za-z0-9]{32,128}$/.test(values.bbbSecret))
    throw new TemplateError("worker/bbb-secret", "bbbSecret must be 32 to 128 letters and digits");
  const hostname = `${values.name}.${values.domain}`;
  const bbb = BBB_RELEASES[values.bbbVersion ?? DEFAULT_BBB_VERSION];
  const fill = {
    env: values.env,
    fleet: values.fleet,
    name: values.name,
    sidecarKeyId: values.sidecarKeyId,
    hostname,
    letsEncryptEmail: values.letsEncryptEmail ?? `hostmaster@${values.domain}`,
    scalerUrl: values.scalerUrl,
    passwordHash: values.nodeExporterPasswordHash,
    controlNodeIp: values.controlNodeIp,
    nodeExporterPort: String(WORKER_PORTS.nodeExporter),
    bbbInstallBranch: bbb.installBranch,
    bbbInstallVersion: bbb.installVersion,
  };
  return cloudConfig("worker/cloud-init.yaml", fill, [
    ...nodeExporterFiles(fill),
    { path: "/etc/confscale/sidecar.env", content: renderTemplate("worker/sidecar.env", fill), permissions: "0644" },
    { path: "/etc/confscale/bbb-secret", content: values.bbbSecret, permissions: "0600" },
    { path: "/etc/confscale/sidecar-key.pem", content: values.sidecarSigningKey, permissions: "0600" },
    {
      path: "/etc/systemd/system/confscale-sidecar.service",
      content: renderTemplate("worker/confscale-sidecar.service", fill),
      permissions: "0644",
    },
  ]);
}

export { JITSI_UBUNTU };

export interface JitsiWorkerTemplateValues {
  env: string;
  fleet: string;
  /** The Jitsi group the sidecar reports (its INSTANCE_METADATA group). */
  group: string;
  component: JitsiComponent;
  signaling: JitsiSignaling;
  /** The worker's machine name: the sidecar's INSTANCE_ID, the bridge's MUC nickname or the recorder's id. */
  name: string;
  domain: string;
  /** Public URL of the scaler, e.g. https://bbb.example.org/scaler: the sidecar's AUTOSCALER_HOST_URL. */
  scalerUrl: string;
  controlNodeIp: string;
  nodeExporterPasswordHash: string;
  /** The sidecar's ASAP key id and RSA signing key (PKCS#8 PEM), this worker's own (infra/workerCredentials.ts). */
  sidecarKeyId: string;
  sidecarSigningKey: string;
  /** The passwords of the deployment's XMPP accounts this component logs in with. */
  secrets: JitsiSecrets;
  region: string;
  cloud: string;
  letsEncryptEmail?: string;
}

/** What differs between the components: their package's install script, config files and the sidecar's local URLs. */
const JITSI_COMPONENT_FILES = {
  JVB: {
    install: "jitsi/install-jvb.sh",
    // jitsi-videobridge2's private REST server (localhost:8080), as the sidecar's env.example names it.
    statsUrl: "http://127.0.0.1:8080/colibri/stats",
    gracefulShutdownScript: "/usr/share/jitsi-videobridge/graceful_shutdown.sh",
    service: "jitsi-videobridge2",
    secrets: ["jitsiJvbPassword"],
  },
  jibri: {
    install: "jitsi/install-jibri.sh",
    statsUrl: "http://127.0.0.1:2222/jibri/api/v1.0/health",
    gracefulShutdownScript: "/opt/jitsi/jibri/graceful_shutdown.sh",
    service: "jibri",
    secrets: ["jitsiJibriPassword", "jitsiRecorderPassword"],
  },
} as const satisfies Record<
  JitsiComponent,
  { install: string; statsUrl: string; gracefulShutdownScript: string; service: string; secrets: JitsiSecretKey[] }
>;

/** A HOCON string: JSON's quoting, which HOCON's quoted strings share. */
const hocon = (value: string) => JSON.stringify(value);

/** The component's own config files, with every value quoted as HOCON reads it back. */
function jitsiComponentConfigFiles(
  values: JitsiWorkerTemplateValues,
  hostname: string,
  secret: (key: JitsiSecretKey) => string,
): WriteFile[] {
  const signaling = jitsiSignalingDefaults(values.signaling);
  const common = {
    hostname,
    group: hocon(values.group),
    name: hocon(values.name),
    xmppDomain: hocon(signaling.xmppDomain),
    xmppHostName: hocon(signaling.xmppHostName),
    xmppPort: String(signaling.xmppPort),
    authDomain: hocon(signaling.authDomain),
    trustAllXmppCerts: String(signaling.trustAllXmppCerts),
  };
  if (values.component === "JVB") {
    return [
      {
        path: "/etc/jitsi/videobridge/jvb.conf",
        content: renderTemplate("jitsi/jvb.conf", {
          ...common,
          hostname: hocon(hostname),
          jvbUser: hocon(signaling.jvbUser),
          jvbPassword: hocon(secret("jitsiJvbPassword")),
          breweryJid: hocon(`${signaling.jvbBrewery}@${signaling.internalMucDomain}`),
          jvbMediaPort: String(WORKER_PORTS.jvbMedia),
          jvbColibriWebsocketPort: String(WORKER_PORTS.jvbColibriWebsocket),
        }),
        permissions: "0640",
        owner: "root:jitsi",
        defer: true,
      },
      {
        path: "/etc/jitsi/videobridge/sip-communicator.properties",
        content: renderTemplate("jitsi/sip-communicator.properties", {}),
        permissions: "0640",
        owner: "root:jitsi",
        defer: true,
      },
    ];
  }
  return [
    {
      path: "/etc/jitsi/jibri/jibri.conf",
      content: renderTemplate("jitsi/jibri.conf", {
        ...common,
        internalMucDomain: hocon(signaling.internalMucDomain),
        jibriBrewery: hocon(signaling.jibriBrewery),
        jibriUser: hocon(signaling.jibriUser),
        jibriPassword: hocon(secret("jitsiJibriPassword")),
        recorderDomain: hocon(signaling.recorderDomain),
        recorderUser: hocon(signaling.recorderUser),
        recorderPassword: hocon(secret("jitsiRecorderPassword")),
        stripFromRoomDomain: hocon(`${signaling.mucDomain.split(".")[0] ?? "conference"}.`),
      }),
      permissions: "0640",
      owner: "root:jitsi",
    },
  ];
}

/**
 * A Jitsi worker's cloud-init: its component (jitsi-videobridge2 or jibri) from Jitsi's own Debian repository, joined to
 * the deployment's prosody with the component's XMPP account; the unmodified jitsi-autoscaler-sidecar with this worker's
 * own key and the scaler's URL; node-exporter as on every worker. The user data holds secrets: it is one wherever kept.
 */
export function renderJitsiWorkerUserData(values: JitsiWorkerTemplateValues): string {
  const template = "jitsi/cloud-init.yaml";
  checkNodeExporterValues(values, template);
  const component = JITSI_COMPONENT_FILES[values.component];
  const secret = (key: JitsiSecretKey): string => {
    const value = values.secrets[key];
    if (value === undefined || value === "") throw new TemplateError(template, `${key} is required for a ${values.component} worker`);
    return value;
  };
  for (const key of component.secrets) secret(key);
  const hostname = `${values.name}.${values.domain}`;
  const metadata = JSON.stringify({
    group: values.group,
    environment: values.env,
    region: values.region,
    cloud: values.cloud,
    name: hostname,
  });
  // systemd takes a single-quoted value literally; names and regions hold no quote or backslash, but make sure.
  if (/['\\]/.test(metadata)) throw new TemplateError("jitsi/sidecar.env", "instance metadata must hold no quote or backslash");
  const fill = {
    env: values.env,
    fleet: values.fleet,
    group: values.group,
    component: values.component,
    name: values.name,
    hostname,
    xmppDomain: values.signaling.xmppDomain,
    letsEncryptEmail: values.letsEncryptEmail ?? `hostmaster@${values.domain}`,
    scalerUrl: values.scalerUrl.replace(/\/+$/, ""),
    passwordHash: values.nodeExporterPasswordHash,
    controlNodeIp: values.controlNodeIp,
    sidecarKeyId: values.sidecarKeyId,
    statsUrl: component.statsUrl,
    gracefulShutdownScript: component.gracefulShutdownScript,
    componentService: component.service,
    instanceMetadata: `'${metadata}'`,
  };
  return cloudConfig(template, fill, [
    ...nodeExporterFiles(fill),
    {
      path: "/usr/local/sbin/confscale-add-jitsi-repository",
      content: renderTemplate("jitsi/add-jitsi-repository.sh", fill),
      permissions: "0755",
    },
    { path: "/usr/local/sbin/confscale-install-jitsi-component", content: renderTemplate(component.install, fill), permissions: "0755" },
    ...jitsiComponentConfigFiles(values, hostname, secret),
    { path: "/etc/confscale/jitsi-sidecar.env", content: renderTemplate("jitsi/sidecar.env", fill), permissions: "0644" },
    // The sidecar's reconfigure script, and sudo for its group (jitsi, the package unit's Group) to run just that.
    { path: "/usr/local/sbin/confscale-jitsi-reconfigure", content: renderTemplate("jitsi/reconfigure.sh", fill), permissions: "0755" },
    {
      path: "/etc/sudoers.d/confscale-jitsi-reconfigure",
      // `""`: the script and no arguments.
      content: '%jitsi ALL=(root) NOPASSWD: /usr/local/sbin/confscale-jitsi-reconfigure ""\n',
      permissions: "0440",
    },
    // Written once users and groups exist (the jitsi group comes from cloud-init's `groups`), before the packages.
    {
      path: "/etc/confscale/jitsi-sidecar-key.pem",
      content: values.sidecarSigningKey,
      permissions: "0640",
      owner: "root:jitsi",
      defer: true,
    },
    {
      path: "/etc/systemd/system/jitsi-autoscaler-sidecar.service.d/confscale.conf",
      content: renderTemplate("jitsi/jitsi-autoscaler-sidecar.conf", fill),
      permissions: "0644",
    },
  ]);
}
