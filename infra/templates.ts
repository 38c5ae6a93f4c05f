import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import bcrypt from "bcryptjs";
import { parse, stringify } from "yaml";
import type { Placement } from "./clouds/types.js";
import { BBB_RELEASES, DEFAULT_BBB_VERSION, type BbbVersion, type WorkerPolicy } from "./config.js";

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
  const fill = {
    env: values.env,
    domain: values.domain,
    fleetStack: values.fleetStack,
    fleet: CONTROL_NODE_FLEET,
    scalerStopGracePeriod: `${SCALER_STOP_GRACE_SECONDS}s`,
  };
  return {
    "docker-compose.yml": renderTemplate("control-node/docker-compose.yml", fill),
    Caddyfile: renderTemplate("control-node/Caddyfile", fill),
    "prometheus.yml": renderTemplate("control-node/prometheus.yml", fill),
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
  workerImage: string;
  policy: WorkerPolicy;
  /** The control node's cores: half of them serve check-ins in worker processes, the rest is for its other services. */
  controlNodeCores: number;
}

/**
 * The scaler's settings file on the control node (scaler/settings.ts): the fleet it drives, reached on the compose
 * network. It holds no secret: those, the Redis URL and the listen address come from .env and the compose file.
 */
export function renderScalerSettings(values: ScalerSettingsValues): string {
  const settings = {
    fleet: {
      template: {
        env: values.env,
        fleet: CONTROL_NODE_FLEET,
        placement: values.placement,
        domain: values.domain,
        scalerUrl: `https://${values.domain}/scaler`,
        controlNodeIp: values.controlNodeIp,
        bbbVersion: values.policy.bbbVersion,
        adminCidrs: values.adminCidrs,
        sshPublicKeys: values.sshPublicKeys,
      },
      image: values.workerImage,
      policy: values.policy,
      // The fleet project and, with a file:// backend, its state live on the fleet-state volume.
      workDir: "/var/lib/confscale/fleet",
      scaleliteUrl: "http://scalelite-api:3000/scalelite/api",
      prometheusUrl: "http://prometheus:9090",
    },
    // Their port is the compose file's SCALER_SIDECAR_PORT, which the Caddyfile routes /scaler/sidecar/* to.
    sidecar: { workers: { count: Math.max(1, Math.floor(values.controlNodeCores / 2)) } },
    // The compose file's stop_grace_period leaves room for this and the fleet period in progress.
    shutdownGraceMs: SCALER_SHUTDOWN_GRACE_MS,
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

/**
 * The control node's secret files (mode 0600 on the node, handled only as Pulumi secrets): each compose service
 * gets an env file with just what it needs, so Scalelite never sees cloud credentials or the fleet's passphrase.
 */
export function renderControlNodeSecretFiles(secrets: ControlNodeSecrets): Record<keyof typeof CONTROL_NODE_SECRET_FILES, string> {
  const derive = (purpose: string) => deriveSecret(purpose, secrets.scaleliteSecret);
  const postgresPassword = derive("postgres");
  return {
    scaler: envFile({
      LOADBALANCER_SECRET: secrets.scaleliteSecret,
      CONFSCALE_NODE_EXPORTER_PASSWORD: secrets.nodeExporterPassword,
      // The fleet's workers share one BBB secret, so Scalelite and the scaler sign every worker's API alike.
      CONFSCALE_BBB_SECRET: derive("bbb-shared-secret"),
      // The operator's token for the scaler's API and the confscale CLI (stack output scalerApiToken).
      SCALER_API_TOKENS: `operator:admin:${scalerApiToken(secrets.scaleliteSecret)}`,
      PULUMI_BACKEND_URL: secrets.fleetBackendUrl,
      PULUMI_CONFIG_PASSPHRASE: secrets.fleetPassphrase,
      ...secrets.cloudCredentials,
    }),
    scalelite: envFile({
      LOADBALANCER_SECRET: secrets.scaleliteSecret,
      SECRET_KEY_BASE: derive("scalelite-secret-key-base") + derive("scalelite-secret-key-base-2"),
      // Derived hex: nothing in it needs escaping inside a URL.
      DATABASE_URL: `postgres://scalelite:${postgresPassword}@postgres:5432/scalelite`,
    }),
    postgres: envFile({ POSTGRES_PASSWORD: postgresPassword }),
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
  /** The fleet-wide BBB API secret Scalelite signs calls with; the user data is a secret wherever it is kept. */
  bbbSecret: string;
  /** The BigBlueButton release bbb-install sets up (config `workers.bbbVersion`); 3.0 when omitted. */
  bbbVersion?: BbbVersion;
  letsEncryptEmail?: string;
}

/** The worker's cloud-init: BigBlueButton via bbb-install, node-exporter with TLS + basic auth, the sidecar. */
export function renderWorkerUserData(values: WorkerTemplateValues): string {
  if (!/^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(values.nodeExporterPasswordHash)) {
    throw new TemplateError("worker/node-exporter-web.yml", "nodeExporterPasswordHash must be a bcrypt hash");
  }
  // bbb-conf takes the secret as one shell word; BBB's own secrets are hex.
  if (!/^[A-Za-z0-9]{32,128}$/.test(values.bbbSecret))
    throw new TemplateError("worker/bbb-secret", "bbbSecret must be 32 to 128 letters and digits");
  if (isIP(values.controlNodeIp) !== 4) throw new TemplateError("worker/cloud-init.yaml", "controlNodeIp must be an IPv4 address");
  const hostname = `${values.name}.${values.domain}`;
  const bbb = BBB_RELEASES[values.bbbVersion ?? DEFAULT_BBB_VERSION];
  const fill = {
    env: values.env,
    fleet: values.fleet,
    hostname,
    letsEncryptEmail: values.letsEncryptEmail ?? `hostmaster@${values.domain}`,
    scalerUrl: values.scalerUrl,
    passwordHash: values.nodeExporterPasswordHash,
    controlNodeIp: values.controlNodeIp,
    bbbInstallBranch: bbb.installBranch,
    bbbInstallVersion: bbb.installVersion,
    nodeExporterVersion: NODE_EXPORTER_RELEASE.version,
    nodeExporterSha256Amd64: NODE_EXPORTER_RELEASE.sha256.amd64,
    nodeExporterSha256Arm64: NODE_EXPORTER_RELEASE.sha256.arm64,
  };
  return cloudConfig("worker/cloud-init.yaml", fill, [
    {
      path: "/etc/prometheus/node-exporter-web.yml",
      content: renderTemplate("worker/node-exporter-web.yml", fill),
      permissions: "0640",
      owner: "root:prometheus",
      defer: true,
    },
    { path: "/etc/default/prometheus-node-exporter", content: renderTemplate("worker/node-exporter.default", fill), permissions: "0644" },
    {
      path: "/usr/local/sbin/confscale-install-node-exporter",
      content: renderTemplate("worker/install-node-exporter.sh", fill),
      permissions: "0755",
    },
    {
      path: "/etc/systemd/system/prometheus-node-exporter.service",
      content: renderTemplate("worker/node-exporter.service", fill),
      permissions: "0644",
    },
    {
      path: "/etc/letsencrypt/renewal-hooks/deploy/node-exporter-tls.sh",
      content: renderTemplate("worker/node-exporter-tls.sh", fill),
      permissions: "0755",
    },
    { path: "/etc/confscale/sidecar.env", content: renderTemplate("worker/sidecar.env", fill), permissions: "0644" },
    { path: "/etc/confscale/bbb-secret", content: values.bbbSecret, permissions: "0600" },
    {
      path: "/etc/systemd/system/confscale-sidecar.service",
      content: renderTemplate("worker/confscale-sidecar.service", fill),
      permissions: "0644",
    },
  ]);
}
