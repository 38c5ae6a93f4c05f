// `npm run demo` on the rehearsal lab (test/rehearsal/README.md): the local environment's machines are Linux
// namespaces on 198.18.0.0/15, running the files the stacks render. The control node runs the scaler, Redis,
// Prometheus and Caddy from its compose project; each worker runs the real node-exporter (over TLS, with basic auth)
// and the confscale sidecar from its cloud-init. BigBlueButton, Scalelite and the cloud API stay emulated. Real
// processes keep real time: the trace is replayed compressed (--speed), while the scaler's periods, Prometheus's
// scrapes and the policy's time windows follow the wall clock.
import { fileURLToPath } from "node:url";
import type { TraceMeeting } from "../test/emulator/load-driver.js";
import { startLocalEnvironment, type FleetStatusView, type LocalEnvironment } from "../test/rehearsal/local-environment.js";
import { fleetText } from "./demoLine.js";

export interface RehearsalDemoOptions {
  /** Trace seconds per wall-clock second. */
  speed: number;
  /** The meetings to replay (the share already taken). */
  meetings: readonly TraceMeeting[];
  /** Trace time (seconds after midnight) the replay starts at, and the one it ends at. */
  fromSecond: number;
  untilSecond: number;
  say: (text: string) => void;
  /** The demo's clean-ups, run in reverse on exit. */
  cleanups: (() => Promise<unknown>)[];
}

const REPO = fileURLToPath(new URL("..", import.meta.url));
const clock = (second: number) =>
  `${String(Math.floor(second / 3600)).padStart(2, "0")}:${String(Math.floor((second % 3600) / 60)).padStart(2, "0")}`;

/** `confscale status` as an operator runs it in the scaler's container (`docker compose exec scaler confscale status`). */
export async function statusOnControlNode(environment: LocalEnvironment): Promise<string> {
  const scaler = environment.node.service("scaler");
  const { stdout } = await environment.control.exec(process.execPath, ["--import", "tsx", "scaler/cli.ts", "status"], {
    cwd: REPO,
    // Its own environment: the CLI takes an operator token from SCALER_API_TOKENS there, none on the command line.
    env: { ...scaler.environment, PATH: process.env.PATH ?? "/usr/bin:/bin", CONFSCALE_URL: "http://scaler:8080" },
  });
  return stdout.trimEnd();
}

export async function runRehearsalDemo(options: RehearsalDemoOptions): Promise<void> {
  const { say } = options;
  say("starting the rehearsal lab: the local environment's machines as Linux namespaces on 198.18.0.0/15 …");
  const environment = await startLocalEnvironment();
  options.cleanups.push(() => environment.stop());
  const { control, config, emulator, labCloud } = environment;
  const at = `${control.name} ${control.address} (${config.domain})`;
  say(`control node  ${at}, the environment's pulumi up made it; booted from its cloud-init, compose project, .env files and scaler.yaml:`);
  say(`  scaler       on ${at}: compose service scaler, http://scaler:8080, decides every period and runs the fleet's pulumi up`);
  say(`  redis        on ${at}: compose service redis, redis:6379`);
  say(`  prometheus   on ${at}: compose service prometheus, prometheus:9090, finds workers through the scaler's http_sd`);
  say(`  caddy        on ${at}: https://${config.domain}/scaler (the sidecars' routes)`);
  say(
    `  emulated: Scalelite at scalelite-api:3000 on ${control.name}; the cloud API outside the lab, relayed to the stack's endpoint ${environment.config.ionos?.endpoint ?? ""} on ${control.name}`,
  );

  // Each worker once its machine has booted from its user data.
  const announced = new Set<string>();
  const announce = () => {
    for (const entry of labCloud.servers.values()) {
      if (announced.has(entry.server.name) || entry.boot === undefined) continue;
      announced.add(entry.server.name);
      say(
        `worker ${entry.server.name}  ${entry.machine.address} (${entry.hostname}), from its rendered cloud-init: ` +
          `node-exporter :9100 (TLS, basic auth; /proc from the load), confscale-sidecar → https://${config.domain}/scaler, BBB API emulated`,
      );
    }
  };
  const watcher = setInterval(announce, 1_000);
  options.cleanups.push(async () => clearInterval(watcher));

  say("waiting for the scaler's first pulumi up of local-fleet (the baseline) …");
  let status = await environment.firstFleetUp(300_000);
  await labCloud.settled();
  announce();
  const running = status.servers.filter((server) => server.power === "running").map((server) => server.name);
  await environment.workersReady(running, 300_000);
  // CPU is a rate over the stack's window: it reads once Prometheus has scraped each worker a few times.
  await waitForStatus(
    environment,
    (current) =>
      running.every((name) => current.servers.find((server) => server.name === name)?.readings?.cpu.value != null) ? current : undefined,
    300_000,
  );
  say(`${running.join(", ")}: scraped by Prometheus over TLS, checking in, enabled in Scalelite`);
  say(`confscale status (in the scaler's container on ${control.name}):`);
  say(indent(await statusOnControlNode(environment)));

  const startedAt = Date.now();
  const traceNow = () => options.fromSecond + ((Date.now() - startedAt) / 1000) * options.speed;
  emulator.loadDriver.replay(options.meetings, { compression: options.speed, fromSecond: options.fromSecond });
  say(
    `replaying ${options.meetings.length} meetings from ${clock(options.fromSecond)} at ${options.speed}× until ${clock(options.untilSecond)}`,
  );
  let lastPeriod = status.lastPeriod?.at;
  while (traceNow() < options.untilSecond) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    status = await environment.fleetStatus();
    announce();
    if (status.lastPeriod === null || status.lastPeriod.at === lastPeriod) continue;
    lastPeriod = status.lastPeriod.at;
    const participants = [...emulator.cloud.servers.values()].reduce(
      (sum, server) => sum + [...server.meetings.values()].reduce((total, meeting) => total + meeting.participants, 0),
      0,
    );
    const { held } = status.lastPeriod;
    // A decision the actuator held (a stop waiting for a sidecar, say) shows why; the policy decides it again later.
    const decisions = status.lastPeriod.decisions.map((decision) => {
      const text = `${decision.kind}${decision.server === null ? "" : ` ${decision.server}`}`;
      return held.find((entry) => entry.startsWith(`${text} held: `)) ?? text;
    });
    say(
      `${clock(traceNow())}  ${participants} participants  fleet ${fleetText(status.servers)}${decisions.length > 0 ? `  → ${decisions.join(", ")}` : ""}`,
    );
  }
  emulator.loadDriver.stop();
  const counts = new Map<string, number>();
  for (const entry of await environment.audit())
    if (entry.kind.startsWith("act.") || entry.kind === "fleet.up" || entry.kind === "registered")
      counts.set(entry.kind, (counts.get(entry.kind) ?? 0) + 1);
  say(`done at ${clock(traceNow())}: ${[...counts].map(([kind, count]) => `${kind} ×${count}`).join(", ") || "no actions"}`);
  say(indent(await statusOnControlNode(environment)));
}

const indent = (text: string) =>
  text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");

async function waitForStatus(
  environment: LocalEnvironment,
  ready: (status: FleetStatusView) => FleetStatusView | undefined,
  timeoutMs: number,
): Promise<FleetStatusView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = ready(await environment.fleetStatus().catch(() => ({ servers: [], lastPeriod: null })));
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`the scaler did not bring the fleet up within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}
