// `npm run demo`: confscale running a compressed school day on the local emulated cloud. Where Linux namespaces are
// available it runs on the rehearsal lab (scripts/demoRehearsal.ts: the rendered files on real processes, machine by
// machine); otherwise, or with --loopback, everything on loopback as below.
// Real Redis and Prometheus, the cloud emulator (IONOS API, BBB, Scalelite, node-exporter), the `local` environment
// stack and its `local-fleet` stack through the Pulumi engine on a file:// backend, the scaler's decision loop and
// actuator, and the load driver replaying test/traces/school-day.csv (a recorded school day). One line per period in the terminal; the
// fleet's status at http://127.0.0.1:<port>/fleets/bbb. Ctrl-C stops everything and removes what it made.
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { parseEnvironmentConfig } from "../infra/config.js";
import { selectEnvironmentStack } from "../infra/workspace.js";
import { createApp, listen } from "../scaler/app.js";
import { parseCommandLine, UsageError } from "../scaler/commandLine.js";
import { openFleetRuntime } from "../scaler/loop/runtime.js";
import { createLogger } from "../scaler/log.js";
import { createMetrics } from "../scaler/metrics.js";
import { parseSettings } from "../scaler/settings.js";
import { connectRedis, ScalerStore } from "../scaler/store/store.js";
import { Emulator } from "../test/emulator/emulator.js";
import { parseTrace } from "../test/emulator/load-driver.js";
import { emulatedFleetAddresses, emulatedFleetSecrets } from "../test/harness/fleetRig.js";
import { PrometheusServer } from "../test/harness/prometheus.js";
import { RedisServer } from "../test/harness/redis.js";
import { Lab } from "../test/rehearsal/lab.js";
import { fleetText, meetingSummary, periodLine, progressLine } from "./demoLine.js";
import { runRehearsalDemo } from "./demoRehearsal.js";

const usage = `usage: npm run demo -- [--speed 60] [--load-share 0.1] [--until 17:00] [--port 8088] [--trace FILE] [--loopback]
  --speed       emulated seconds per wall-clock second (60: the school day in about ten minutes; on the rehearsal
                lab, where real processes keep real time, the trace's compression, 12 by default)
  --load-share  the share of the trace's meetings replayed (the local fleet has at most 8 servers)
  --until       local time (Europe/Berlin) at which the demo ends
  --port        where the scaler's HTTP surface listens (status at /fleets/bbb)
  --trace       a CSV of meetings like test/traces/school-day.csv (the default)
  --loopback    run everything on loopback even where the rehearsal lab could run`;

const optionsSchema = z.object({
  speed: z.coerce.number().min(1).max(600).optional(),
  "load-share": z.coerce.number().gt(0).max(1),
  until: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "expected HH:MM"),
  port: z.coerce.number().int().min(1).max(65_535),
});
const options = parseCommandLine(
  {
    name: "npm run demo",
    usage,
    flags: {
      speed: { type: "string" },
      "load-share": { type: "string", default: "0.1" },
      until: { type: "string", default: "17:00" },
      port: { type: "string", default: "8088" },
      trace: { type: "string" },
      loopback: { type: "boolean", default: false },
    },
  },
  ({ values }) => {
    const parsed = optionsSchema.safeParse(values);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UsageError(`--${String(issue?.path[0])}: ${issue?.message ?? "invalid"}`);
    }
    return {
      speed: parsed.data.speed,
      loadShare: parsed.data["load-share"],
      until: parsed.data.until,
      port: parsed.data.port,
      trace: values.trace,
      loopback: values.loopback === true,
    };
  },
);

const repo = fileURLToPath(new URL("..", import.meta.url));
const tracePath = options.trace ?? join(repo, "test", "traces", "school-day.csv");
const LOCAL_PASSPHRASE = "confscale-local";
// A Monday in Europe/Berlin, five minutes before the first lessons' bell.
const DAY_START = Date.parse("2026-11-23T07:50:00+01:00");
const DAY_START_SECOND = 7 * 3600 + 50 * 60;
const LOOPBACK_SPEED = 60;
const REHEARSAL_SPEED = 12;
const clockOf = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Berlin", hour: "2-digit", minute: "2-digit" });
const PROGRESS_EVERY_MS = 2 * 60_000;
const say = (text: string) => process.stdout.write(`${text}\n`);

const cleanups: (() => Promise<unknown>)[] = [];
/** The one teardown, whoever asks first: a signal's exit status wins over the error its teardown causes the replay. */
let stopped: Promise<never> | undefined;
function shutdown(code: number): Promise<never> {
  stopped ??= (async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error(`cleanup: ${String(error)}`));
    process.exit(code);
  })();
  return stopped;
}
function stopOnSignal(code: number): void {
  if (stopped === undefined) say("stopping: tearing down what the demo started …");
  void shutdown(code);
}
// `on`, not `once`: the engine's process library re-raises a signal it finds no other listener for.
process.on("SIGINT", () => stopOnSignal(130));
process.on("SIGTERM", () => stopOnSignal(143));

try {
  const trace = parseTrace(
    await readFile(tracePath, "utf8").catch(() => {
      throw new Error(`no trace at ${tracePath}: pass --trace FILE (a CSV like school-day.csv)`);
    }),
  );
  // Every n-th meeting: the same shape of day at a size the local fleet can carry.
  const stride = Math.round(1 / options.loadShare);
  const meetings = trace.filter((_meeting, index) => index % stride === 0);
  const [untilHour, untilMinute] = options.until.split(":").map(Number) as [number, number];

  const lab = options.loopback ? { ok: false as const, reason: "--loopback given" } : await Lab.available();
  if (!lab.ok) say(`the rehearsal lab cannot run here (${lab.reason}): running everything on loopback`);
  else {
    await runRehearsalDemo({
      speed: options.speed ?? REHEARSAL_SPEED,
      meetings,
      fromSecond: DAY_START_SECOND,
      untilSecond: untilHour * 3600 + untilMinute * 60,
      say,
      cleanups,
    });
    await shutdown(0);
  }
  const speed = options.speed ?? LOOPBACK_SPEED;

  const dir = await mkdtemp(join(tmpdir(), "confscale-demo-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  say(`demo state in ${dir}`);

  say("starting redis-server, the emulated cloud and prometheus on 127.0.0.1 …");
  const redisServer = await RedisServer.start();
  cleanups.push(() => redisServer.stop());
  const emulator = await Emulator.start({
    port: 8780,
    // Real time while the stacks are set up; the day runs compressed once the fleet starts.
    clock: { kind: "real", scale: 1 },
    startAt: DAY_START,
    datacenter: null,
    timings: { requestQueuedMs: 500, requestRunningMs: 4_000, bootMs: 3 * 60_000 },
  });
  cleanups.push(() => emulator.stop());
  const scalerPort = options.port;
  const prometheus = await PrometheusServer.start(
    [{ job_name: "workers", http_sd_configs: [{ url: `http://127.0.0.1:${scalerPort}/fleets/bbb/targets`, refresh_interval: "2s" }] }],
    { scrapeInterval: "2s" },
  );
  cleanups.push(() => prometheus.stop());

  // The project as an operator has it, in the demo's own directory: the committed stack file stays untouched.
  const project = join(dir, "project");
  await mkdir(join(project, "stacks"), { recursive: true });
  await copyFile(join(repo, "Pulumi.yaml"), join(project, "Pulumi.yaml"));
  await copyFile(join(repo, "stacks", "Pulumi.local.yaml"), join(project, "stacks", "Pulumi.local.yaml"));
  await symlink(join(repo, "infra"), join(project, "infra"), "dir");
  await symlink(join(repo, "node_modules"), join(project, "node_modules"), "dir");
  const backendUrl = `file://${join(dir, "state")}`;
  const engineEnv = {
    PULUMI_BACKEND_URL: backendUrl,
    PULUMI_CONFIG_PASSPHRASE: LOCAL_PASSPHRASE,
    PULUMI_HOME: join(dir, "pulumi-home"),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    IONOS_USERNAME: emulator.credentials.username,
    IONOS_PASSWORD: emulator.credentials.password,
  };

  say("pulumi up of the local environment stack (data center, network, control node) …");
  const environment = await selectEnvironmentStack("local", { workDir: project, envVars: engineEnv });
  const up = await environment.up();
  say(
    `  ${JSON.stringify(up.summary.resourceChanges)} in ${Math.round(((up.summary.endTime?.getTime() ?? 0) - up.summary.startTime.getTime()) / 1000)} s`,
  );
  const config = await environment.getAllConfig();
  const environmentConfig = parseEnvironmentConfig(
    "local",
    Object.fromEntries(Object.entries(config).map(([key, item]) => [key, item.value])),
    new Set(
      Object.entries(config)
        .filter(([, item]) => item.secret)
        .map(([key]) => key),
    ),
  );
  const outputs = up.outputs;
  const redis = connectRedis(redisServer.url, 2_000);
  cleanups.push(async () => redis.disconnect());
  await once(redis, "ready");
  // An operator token for this run only, kept in a file of the demo's state (not printed), for the confscale CLI.
  const apiToken = randomBytes(24).toString("hex");
  const apiTokenFile = join(dir, "api-token");
  await writeFile(apiTokenFile, apiToken, { mode: 0o600 });
  const settings = parseSettings({
    redis: { url: redisServer.url },
    apiTokens: [{ name: "demo-operator", role: "operator", token: apiToken }],
    sidecar: { keyBaseUrl: emulator.keyBaseUrl },
    // The same fleet settings a control node's scaler reads, pointed at the emulator.
    fleet: {
      template: {
        env: "local",
        fleet: "bbb",
        placement: outputs.workerPlacement?.value,
        domain: environmentConfig.domain,
        scalerUrl: `http://127.0.0.1:${scalerPort}`,
        controlNodeIp: outputs.controlNodeAddress?.value,
        adminCidrs: environmentConfig.adminCidrs,
        sshPublicKeys: environmentConfig.sshPublicKeys,
      },
      image: environmentConfig.ionos?.workerImage ?? "ubuntu:20.04",
      policy: environmentConfig.workers,
      intervalSeconds: Math.max(1, Math.round(60 / speed)),
      workDir: join(dir, "fleet"),
      ...emulatedFleetAddresses(emulator),
      prometheusUrl: prometheus.url,
      prometheusRateWindow: "20s",
    },
  });
  const store = new ScalerStore(redis, {
    keyPrefix: settings.redis.keyPrefix,
    instanceTtl: settings.instanceTtl,
    retention: settings.retention,
  });
  const logger = createLogger("demo", "silent");
  const now = () => emulator.clock.now();
  // When the last line was printed (emulated time): a period that runs long gets a progress line every two minutes.
  let lastLineAt = now();
  let periodEndedAt = now();
  const metrics = createMetrics(() => store.countsByGroup());
  const { controller, view } = await openFleetRuntime(settings.fleet!, {
    metrics,
    redis,
    keyPrefix: settings.redis.keyPrefix,
    store,
    logger,
    now,
    onPeriod: (period) => {
      const phases = new Map(controller.status().servers.map((server) => [server.name, server.phase]));
      lastLineAt = now();
      periodEndedAt = lastLineAt;
      say(
        periodLine(
          {
            readAt: period.snapshot?.takenAt ?? period.outcome.at,
            snapshot: period.snapshot,
            phases,
            fleet: fleetText(controller.status().servers),
            decisions: period.outcome.decisions,
            cycle: period.cycle,
            endedAt: lastLineAt,
          },
          (at) => clockOf.format(at),
        ),
      );
    },
    env: { ...engineEnv, ...emulatedFleetSecrets(emulator, environmentConfig.nodeExporterPassword) },
  });
  cleanups.push(() => controller.stop());

  const app = createApp({ store, settings, metrics, fleets: [view], logger, now });
  const server = listen(app, "127.0.0.1", scalerPort);
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  say(`scaler on http://127.0.0.1:${scalerPort}  (fleet status: /fleets/bbb, Prometheus targets: /fleets/bbb/targets, metrics: /metrics)`);
  say(`operator CLI: CONFSCALE_URL=http://127.0.0.1:${scalerPort} CONFSCALE_TOKEN=$(cat ${apiTokenFile}) npm run -s confscale -- status`);

  emulator.clock.setMode({ kind: "real", scale: speed });
  await controller.start();
  // The school day starts on a fleet at its baseline, as it would after the night.
  await new Promise<void>((resolve) => {
    const ready = setInterval(() => {
      const servers = controller.status().servers;
      if (
        servers.length >= (environmentConfig.workers?.baseline ?? 0) &&
        servers.every((server) => server.phase === "active" || server.phase === "stopped")
      ) {
        clearInterval(ready);
        resolve();
      }
    }, 500);
    cleanups.push(async () => clearInterval(ready));
  });
  const progress = setInterval(() => {
    if (now() - lastLineAt < PROGRESS_EVERY_MS) return;
    const since = now() - periodEndedAt;
    lastLineAt = now();
    say(progressLine(lastLineAt, since, controller.status().servers, (at) => clockOf.format(at)));
  }, 250);
  cleanups.push(async () => clearInterval(progress));
  emulator.loadDriver.replay(meetings);
  say(`replaying ${meetings.length} of ${trace.length} meetings at ${speed}× until ${options.until} (Ctrl-C to stop)`);

  const end = Date.parse(`2026-11-23T${String(untilHour).padStart(2, "0")}:${String(untilMinute).padStart(2, "0")}:00+01:00`);
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (now() >= end) {
        clearInterval(check);
        resolve();
      }
    }, 1_000);
    cleanups.push(async () => clearInterval(check));
  });
  await controller.stop();
  const audit = await store.readAudit("bbb", { limit: 1_000 });
  const counts = new Map<string, number>();
  for (const entry of audit)
    if (entry.kind.startsWith("act.") || entry.kind === "fleet.up" || entry.kind === "registered")
      counts.set(entry.kind, (counts.get(entry.kind) ?? 0) + 1);
  say(`done at ${clockOf.format(now())}: ${[...counts].map(([kind, count]) => `${kind} ×${count}`).join(", ")}`);
  say(
    meetingSummary(
      {
        replayed: meetings.length,
        placed: emulator.loadDriver.stats.placed,
        rejected: emulator.loadDriver.stats.rejected,
        cutOff: emulator.cloud.meetingsCut,
      },
      options.until,
    ),
  );
  await shutdown(0);
} catch (error) {
  // Once a signal has begun the teardown, a machine or server gone under the replay is that teardown, not a failure.
  if (stopped === undefined) console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  await shutdown(1);
}
