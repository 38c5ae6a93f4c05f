/**
 * confscale's worker sidecar, run on every BBB worker by files/worker/confscale-sidecar.service with the settings of
 * files/worker/sidecar.env. Node built-ins only: `npm run build:sidecar` bundles it into one file, which the scaler
 * serves at /dist/confscale-sidecar.mjs.
 */
import { execFile } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { cpus, hostname, loadavg } from "node:os";
import { Agent, type AgentPorts } from "./agent.js";
import { fetchBbbLoad } from "./bbb.js";
import { loadConfig, SidecarConfigError, type SidecarConfig } from "./config.js";
import { TokenSource } from "./token.js";

const VERSION = "1";
const REQUEST_TIMEOUT_MS = 10_000;

export class ScalerCallError extends Error {
  constructor(
    readonly path: string,
    readonly status: number,
    body: string,
  ) {
    super(`${path} answered ${status}: ${body.slice(0, 300)}`);
    this.name = "ScalerCallError";
  }
}

function log(event: string, details: Record<string, unknown> = {}): void {
  // One JSON line per event on stdout: journald keeps it.
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), event, ...details })}\n`);
}

function runShell(command: string | undefined): Promise<void> {
  if (command === undefined) return Promise.resolve();
  return new Promise((resolve, reject) => {
    execFile("/bin/sh", ["-c", command], { timeout: 10 * 60_000 }, (error) => (error === null ? resolve() : reject(error)));
  });
}

function ports(config: SidecarConfig): AgentPorts {
  const tokens = new TokenSource(createPrivateKey(config.signingKeyPem), {
    kid: config.keyId,
    issuer: config.issuer,
    audience: config.audience,
    subject: `${config.group}/${config.instanceId}`,
    lifetimeSeconds: 3_600,
  });
  const hooks = { drain: config.drainCommand, shutdown: config.shutdownCommand, reconfigure: config.reconfigureCommand };
  return {
    async post(path, body) {
      const response = await fetch(`${config.scalerUrl}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${tokens.token(Date.now())}` },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await response.text();
      if (!response.ok) throw new ScalerCallError(path, response.status, text);
      return text === "" ? {} : (JSON.parse(text) as unknown);
    },
    readLoad: () => fetchBbbLoad(config.bbbApiUrl, config.bbbSecret, REQUEST_TIMEOUT_MS),
    stress: () => (loadavg()[0] ?? 0) / Math.max(1, cpus().length),
    runHook: (hook) => runShell(hooks[hook]),
    now: () => Date.now(),
    log,
  };
}

/** Runs `task` every `intervalMs` (the next run starts after the previous one ended) until `stopped`. */
function every(intervalMs: number, task: () => Promise<unknown>, stopped: () => boolean, name: string): void {
  const run = async () => {
    if (stopped()) return;
    try {
      await task();
    } catch (error) {
      log(`${name}.failed`, { err: error instanceof Error ? error.message : String(error) });
    }
    if (!stopped()) setTimeout(run, intervalMs);
  };
  void run();
}

function main(): void {
  let config: SidecarConfig;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof SidecarConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(78); // EX_CONFIG: systemd shows it; retrying will not help
  }
  const agent = new Agent(
    { instanceId: config.instanceId, group: config.group, environment: config.environment, name: hostname(), version: VERSION },
    ports(config),
  );
  let stopping = false;
  const stopped = () => stopping;
  log("started", { group: config.group, instanceId: config.instanceId, scaler: config.scalerUrl, keyId: config.keyId });
  every(config.statsIntervalMs, () => agent.reportStats(), stopped, "stats");
  every(config.pollIntervalMs, () => agent.poll(), stopped, "poll");
  const stop = (signal: string) => {
    stopping = true;
    log("stopping", { signal });
    // Timers are not re-armed once stopping; a call in flight finishes or times out.
    setTimeout(() => process.exit(0), 100).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main();
