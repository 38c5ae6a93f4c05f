import { readFileSync } from "node:fs";

/** The sidecar's settings, from the environment its systemd unit loads (files/worker/sidecar.env). */
export interface SidecarConfig {
  scalerUrl: string;
  group: string;
  instanceId: string;
  environment: string | undefined;
  keyId: string;
  /** PKCS#8 PEM of the worker's Ed25519 signing key. */
  signingKeyPem: string;
  bbbApiUrl: string;
  bbbSecret: string;
  issuer: string;
  audience: string;
  statsIntervalMs: number;
  pollIntervalMs: number;
  /** Run once when a drain starts (e.g. to refuse new meetings locally); optional. */
  drainCommand: string | undefined;
  /** Run once the drain is over and the scaler has been told; optional (the scaler stops the machine itself). */
  shutdownCommand: string | undefined;
  /** Run on a reconfigure request before it is confirmed; optional. */
  reconfigureCommand: string | undefined;
}

export class SidecarConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`confscale sidecar settings:\n${problems.map((problem) => `  ${problem}`).join("\n")}`);
    this.name = "SidecarConfigError";
  }
}

/** Reads and checks every setting, reporting all problems at once. */
export function loadConfig(
  env: NodeJS.ProcessEnv,
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): SidecarConfig {
  const problems: string[] = [];
  const required = (name: string): string => {
    const value = env[name]?.trim() ?? "";
    if (value === "") problems.push(`${name}: required`);
    return value;
  };
  const optional = (name: string): string | undefined => {
    const value = env[name]?.trim() ?? "";
    return value === "" ? undefined : value;
  };
  const url = (name: string): string => {
    const value = required(name);
    if (value !== "" && !URL.canParse(value)) problems.push(`${name}: expected an http(s) URL, got ${JSON.stringify(value)}`);
    return value;
  };
  const file = (name: string): string => {
    const path = required(name);
    if (path === "") return "";
    try {
      return readFile(path).trim();
    } catch (error) {
      problems.push(`${name}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
      return "";
    }
  };
  const milliseconds = (name: string, fallback: number): number => {
    const value = optional(name);
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 100) problems.push(`${name}: expected whole milliseconds of at least 100, got ${value}`);
    return parsed;
  };
  const config: SidecarConfig = {
    scalerUrl: url("CONFSCALE_SCALER_URL").replace(/\/+$/, ""),
    group: required("CONFSCALE_GROUP"),
    instanceId: required("CONFSCALE_INSTANCE_ID"),
    environment: optional("CONFSCALE_ENVIRONMENT"),
    keyId: required("CONFSCALE_KEY_ID"),
    signingKeyPem: file("CONFSCALE_KEY_FILE"),
    bbbApiUrl: url("CONFSCALE_BBB_API_URL"),
    bbbSecret: file("CONFSCALE_BBB_SECRET_FILE"),
    issuer: optional("CONFSCALE_TOKEN_ISSUER") ?? "jitsi-autoscaler-sidecar",
    audience: optional("CONFSCALE_TOKEN_AUDIENCE") ?? "jitsi-autoscaler",
    statsIntervalMs: milliseconds("CONFSCALE_STATS_INTERVAL_MS", 30_000),
    pollIntervalMs: milliseconds("CONFSCALE_POLL_INTERVAL_MS", 60_000),
    drainCommand: optional("CONFSCALE_DRAIN_COMMAND"),
    shutdownCommand: optional("CONFSCALE_SHUTDOWN_COMMAND"),
    reconfigureCommand: optional("CONFSCALE_RECONFIGURE_COMMAND"),
  };
  if (problems.length > 0) throw new SidecarConfigError(problems);
  return config;
}
