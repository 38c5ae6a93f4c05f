/**
 * Check-in throughput: autocannon drives `/sidecar/status` of the real scaler (its own process, `scaler/main.ts`)
 * backed by a real redis-server, with many simulated JVB instances, each with its own id and its own signed token.
 * Prints requests/s, p50/p99 latency, the Redis commands one check-in costs (from INFO commandstats) and the CPU time
 * one check-in costs in the scaler, in Redis and in the load generator, which share the machine's cores.
 * Every connection drives its own share of the instances, in turn, from requests built once: building each request
 * anew would cost the load generator more CPU than the scaler spends on it.
 * It also prints the CPU the rest of the machine used meanwhile, since the cores may be shared. Then the same load goes
 * to a bare node:http server that only parses each body and answers the same reply: what this machine, its load
 * generator and whatever else runs on it at the time allow at all (the peer the scaler is compared with).
 *
 * The scaler serves check-ins with `--workers` check-in worker processes (`sidecar.workers`) besides its main process;
 * `--workers 0` drives the main process alone.
 *
 * A closed loop's latency is mostly the queue of the load generator's own connections: each request waits behind the
 * others in flight. So the closed loop runs once per count in `--connections`, and the target is judged on the most
 * check-ins/s served at a p99 under 20 ms: the scaler's throughput at that latency, however many connections it took.
 * Then a fixed rate, `--rate` check-ins/s spread evenly over time as independent sidecars send them, with vegeta (an
 * open-loop load generator, built once from the Go module proxy into ~/.cache/confscale/vegeta), over at most the
 * largest count of connections: the latency a sidecar sees at that load while vegeta takes its share of the cores.
 * Each phase prints where the machine's CPU went: vegeta costs about twice what autocannon does per request, and on
 * two cores whatever the load generator takes, the server under test does not get.
 *
 *   npm run bench:checkins -- [--instances 2000] [--connections 16,32,48,64] [--seconds 15] [--workers 2] [--rate 5000]
 *                             [--rate-seconds 20] [--baseline-seconds 10] [--profile DIR]
 */
import { execFileSync } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { SignJWT } from "jose";
import { z } from "zod";
import { freeLoopbackPort } from "../harness/ports.js";
import { endedChildrenCpuSeconds, listProcesses, processTree } from "../harness/proc.js";
import { startUntilReady } from "../harness/process.js";
import { RedisServer } from "../harness/redis.js";
import { KeyServer, TOKENS, call, groupBody } from "../integration/scaler-fixture.js";
import { workerCredentials } from "../../infra/workerCredentials.js";
import { TARGET_P99_MS, TARGET_RATE, closedLoopVerdict, fixedRateVerdict, servedPerSecond } from "./checkins-verdict.js";

interface AutocannonRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}
interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; p99_9?: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  "2xx": number;
  /** Seconds the run took. */
  duration: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
/** The part of autocannon's per-connection client the bench uses. */
interface AutocannonClient {
  setRequests(requests: AutocannonRequest[]): void;
}
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

const { values: args } = parseArgs({
  options: {
    instances: { type: "string", default: "2000" },
    /** Connection counts of the closed loop, one run each. */
    connections: { type: "string", default: "16,32,48,64" },
    seconds: { type: "string", default: "15" },
    workers: { type: "string", default: "2" },
    /** Check-ins/s of the fixed-rate phase; 0 leaves it out. */
    rate: { type: "string", default: "5000" },
    "rate-seconds": { type: "string", default: "20" },
    /** How long the bare node:http server is driven; 0 leaves it out. */
    "baseline-seconds": { type: "string", default: "10" },
    /** Writes a CPU profile of the scaler process into this directory (open it in Chrome DevTools). */
    profile: { type: "string" },
  },
});
const INSTANCES = Number(args.instances);
const CONNECTION_COUNTS = args.connections.split(",").map((count) => Number(count.trim()));
if (CONNECTION_COUNTS.some((count) => !Number.isInteger(count) || count < 1)) {
  throw new Error(`--connections: expected positive whole numbers separated by commas, got ${JSON.stringify(args.connections)}`);
}
/** The most connections any phase opens: the bound of the fixed-rate phase, as of a proxy's upstream pool. */
const MAX_CONNECTIONS = Math.max(...CONNECTION_COUNTS);
const SECONDS = Number(args.seconds);
const BASELINE_SECONDS = Number(args["baseline-seconds"]);
const WORKERS = Number(args.workers);
const RATE = Number(args.rate);
const RATE_SECONDS = Number(args["rate-seconds"]);
const VEGETA_VERSION = "v12.12.0";

/** The least any check-in server does: read the body, parse it, answer the reply of a check-in with no command. */
const BARE_SERVER = `
import { createServer } from "node:http";
const reply = JSON.stringify({ shutdown: false, reconfigure: null });
const server = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    JSON.parse(Buffer.concat(chunks).toString("utf8"));
    response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(reply) });
    response.end(reply);
  });
});
// As the scaler's: an idle connection outlives a proxy's or a client's own idle timeout.
server.keepAliveTimeout = 130_000;
server.listen(0, "127.0.0.1", () => console.log("bare server listening on " + server.address().port));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;
/** The fleet's master secret the scaler derives every worker's key from (CONFSCALE_BBB_SECRET), fixed for the bench. */
const MASTER_SECRET = "bench-master-secret-0123456789abcdef0123456789";
const GROUP = "bench-jvb";

/** A token as a confscale worker signs it (sidecar/token.ts): its own derived Ed25519 key, scoped by `sub` to itself. */
async function workerToken(instanceId: string): Promise<string> {
  const credentials = workerCredentials(MASTER_SECRET, GROUP, instanceId);
  const issuedAt = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "EdDSA", kid: credentials.keyId })
    .setIssuer("jitsi-autoscaler-sidecar")
    .setAudience("jitsi-autoscaler")
    .setSubject(`${GROUP}/${instanceId}`)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + 3600)
    .sign(createPrivateKey(credentials.signingKeyPem));
}

async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const text = await redis.info("commandstats");
  const calls = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1] ?? "", Number(match[2]));
  return calls;
}

/** How many times Redis has read from its clients' sockets: about one per round trip, however many commands it carries. */
async function redisSocketReads(redis: Redis): Promise<number> {
  return Number(/^total_reads_processed:(\d+)/m.exec(await redis.info("stats"))?.[1] ?? "0");
}

/**
 * CPU seconds the whole machine has spent busy so far (all cores), and of them the seconds a hypervisor ran something
 * else while this machine's own work waited (steal), from Linux's /proc/stat; undefined elsewhere.
 */
async function machineBusySeconds(): Promise<{ busy: number; stolen: number } | undefined> {
  try {
    const line = (await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "";
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return {
      busy: ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100,
      stolen: (steal ?? 0) / 100,
    };
  } catch {
    return undefined;
  }
}

/** Redis's own CPU time so far, in seconds (main and I/O threads). */
async function redisCpuSeconds(redis: Redis): Promise<number> {
  const text = await redis.info("cpu");
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, "m").exec(text)?.[1] ?? "0");
  return field("used_cpu_user") + field("used_cpu_sys");
}

/** CPU seconds used so far by a process and its live descendants (worker processes); undefined where there is no /proc. */
async function processTreeCpuSeconds(rootPid: number): Promise<number | undefined> {
  const processes = await listProcesses();
  if (processes === undefined || !processes.some((process) => process.pid === rootPid)) return undefined;
  return processTree(processes, rootPid).reduce((sum, process) => sum + process.userSeconds + process.systemSeconds, 0);
}

/** Where the machine's CPU went while a server was driven: the server (with its workers), Redis, the load generator. */
interface CpuSplit {
  server: number | undefined;
  redis: number | undefined;
  /** Script calls Redis has run so far (one per batch of check-ins), when it is the scaler's Redis. */
  scriptCalls: number | undefined;
  load: number | undefined;
  machine: number | undefined;
  /** Of `machine`, the seconds the hypervisor took. */
  stolen: number | undefined;
  at: number;
}

async function machineSeconds(): Promise<Pick<CpuSplit, "machine" | "stolen">> {
  const seconds = await machineBusySeconds();
  return { machine: seconds?.busy, stolen: seconds?.stolen };
}

async function cpuSplit(serverPid: number, redis: Redis | undefined, load: () => Promise<number | undefined>): Promise<CpuSplit> {
  const calls = redis === undefined ? undefined : await commandCalls(redis);
  return {
    server: await processTreeCpuSeconds(serverPid),
    redis: redis === undefined ? undefined : await redisCpuSeconds(redis),
    scriptCalls: calls === undefined ? undefined : (calls.get("evalsha") ?? 0) + (calls.get("eval") ?? 0),
    load: await load(),
    ...(await machineSeconds()),
    at: performance.now(),
  };
}

/** Prints the CPU per request of each part, and the cores each kept busy, between two splits; answers the load generator's cores. */
function printCpuSplit(name: string, loadName: string, before: CpuSplit, after: CpuSplit, requests: number): number | undefined {
  const spent = (pick: (split: CpuSplit) => number | undefined) => {
    const end = pick(after);
    const start = pick(before);
    return end === undefined || start === undefined ? undefined : end - start;
  };
  const elapsed = (after.at - before.at) / 1000;
  const parts: [string, number | undefined][] = [[name, spent((split) => split.server)]];
  if (before.redis !== undefined) parts.push(["redis", spent((split) => split.redis)]);
  const load = spent((split) => split.load);
  parts.push([loadName, load]);
  const machine = spent((split) => split.machine);
  const stolen = spent((split) => split.stolen);
  const perRequest = (seconds: number | undefined) =>
    seconds === undefined ? "n/a" : `${((seconds * 1e6) / Math.max(requests, 1)).toFixed(0)} µs`;
  const cores = (seconds: number | undefined) => (seconds === undefined ? "n/a" : (seconds / elapsed).toFixed(2));
  const known = parts.reduce((sum, [, seconds]) => sum + (seconds ?? 0), 0);
  console.log(`cpu per check-in     ${parts.map(([part, seconds]) => `${part} ${perRequest(seconds)}`).join(", ")}`);
  console.log(
    `cores busy           ${cores(machine)} of ${os.availableParallelism()}: ${parts.map(([part, seconds]) => `${part} ${cores(seconds)}`).join(", ")}, everything else ${machine === undefined ? "n/a" : cores(Math.max(machine - known, 0))} (other work, kernel time charged to no process, and ${cores(stolen)} taken by the hypervisor)`,
  );
  return load === undefined ? undefined : load / elapsed;
}

function delta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const result = new Map<string, number>();
  for (const [name, count] of after) {
    if (name === "info") continue;
    const change = count - (before.get(name) ?? 0);
    if (change > 0) result.set(name, change);
  }
  return result;
}

/** A stats report shaped like a busy JVB's (the sidecar forwards colibri stats as they come). */
function report(instanceId: string, index: number): string {
  return JSON.stringify({
    instance: {
      instanceId,
      instanceType: "JVB",
      group: GROUP,
      region: "eu-central-1",
      cloud: "ionos",
      privateIp: `10.0.${index >> 8}.${index & 255}`,
      version: "2.3-61",
    },
    stats: {
      stress_level: (index % 100) / 100,
      participants: index % 80,
      conferences: index % 9,
      largest_conference: 35,
      videochannels: index % 40,
      bit_rate_download: 12_345,
      bit_rate_upload: 54_321,
      packet_rate_download: 1_200,
      packet_rate_upload: 3_400,
      rtt_aggregate: 21.5,
      graceful_shutdown: false,
      threads: 143,
      version: "2.3.61-g814bffd6",
    },
    timestamp: Date.now(),
  });
}

async function main(): Promise<void> {
  const redis = await RedisServer.start();
  const dir = await mkdtemp(join(tmpdir(), "confscale-bench-"));
  let keys: KeyServer | undefined;
  try {
    keys = await KeyServer.start();
    await benchmark(redis, keys, dir);
  } finally {
    await keys?.stop();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchmark(redis: RedisServer, keys: KeyServer, dir: string): Promise<void> {
  const configFile = join(dir, "scaler.yaml");
  await writeFile(configFile, `sidecar:\n  keyBaseUrl: ${keys.baseUrl}\n`);
  const port = await freeLoopbackPort();
  const workersPort = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  // Where the sidecars check in: the workers' port when there are workers.
  const checkInUrl = WORKERS > 0 ? `http://127.0.0.1:${workersPort}` : url;
  const profile = args.profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${args.profile}`];
  const scaler = await startUntilReady(process.execPath, [...profile, "--import", "tsx", "scaler/main.ts"], /scaler listening/, {
    env: {
      ...process.env,
      SCALER_CONFIG: configFile,
      SCALER_REDIS_URL: redis.url,
      SCALER_LISTEN_HOST: "127.0.0.1",
      SCALER_LISTEN_PORT: String(port),
      SCALER_API_TOKENS: `bench:admin:${TOKENS.admin}`,
      SCALER_SIDECAR_WORKERS: String(WORKERS),
      SCALER_SIDECAR_PORT: String(workersPort),
      CONFSCALE_BBB_SECRET: MASTER_SECRET,
    },
    timeoutMs: 60_000,
  });
  const client = new Redis(redis.url);
  try {
    while ((await fetch(`${url}/readyz`)).status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
    const created = await call(url, "POST", "/api/v1/groups", {
      token: TOKENS.admin,
      body: groupBody(GROUP, "JVB", {
        desired: 10,
        policy: { min: 0, max: 5000, baseline: 10, defaultSize: { cores: 4, ramGb: 8 }, maxSize: { cores: 8, ramGb: 16 } },
      }),
    });
    if (created.status !== 201) throw new Error(`could not create the group: ${JSON.stringify(created.body)}`);

    console.log(`signing ${INSTANCES} tokens, each with its worker's own key and scoped to that worker ...`);
    const requests: AutocannonRequest[] = [];
    for (let index = 0; index < INSTANCES; index += 1) {
      const instanceId = `jvb-${String(index).padStart(5, "0")}`;
      const token = await workerToken(instanceId);
      requests.push({
        method: "POST",
        path: "/sidecar/status",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: report(instanceId, index),
      });
    }
    const probe = requests[0] as AutocannonRequest;
    const probed = await fetch(checkInUrl + probe.path, { method: "POST", headers: probe.headers, body: probe.body });
    if (probed.status !== 200) throw new Error(`a check-in was refused (${probed.status}): ${await probed.text()}`);
    const options = (seconds: number, connections: number, target = checkInUrl) => {
      let connection = 0;
      return {
        url: target,
        connections,
        duration: seconds,
        requests: [probe],
        // Connection k takes instances k, k + connections, ...: each instance is driven by one connection, as by one sidecar.
        setupClient: (client: AutocannonClient) => {
          const own = connection++;
          const share = requests.filter((_, index) => index % connections === own % connections);
          client.setRequests(share.length > 0 ? share : [requests[own % requests.length] as AutocannonRequest]);
        },
      };
    };
    const ownCpuSeconds = async () => {
      const own = process.cpuUsage();
      return (own.user + own.system) / 1e6;
    };

    /** One closed-loop run: every connection sends its next check-in as soon as the last is answered. */
    const driveClosedLoop = async (connections: number): Promise<ClosedLoop> => {
      const before = await commandCalls(client);
      const readsBefore = await redisSocketReads(client);
      const cpuBefore = await cpuSplit(scaler.child.pid ?? -1, client, ownCpuSeconds);
      console.log("");
      console.log(
        `driving /sidecar/status: ${INSTANCES} instances over ${connections} connections, ${SECONDS} s, ${WORKERS} check-in workers ...`,
      );
      const result = await autocannon(options(SECONDS, connections));
      const cpuAfter = await cpuSplit(scaler.child.pid ?? -1, client, ownCpuSeconds);
      const used = delta(before, await commandCalls(client));
      const reads = (await redisSocketReads(client)) - readsBefore;
      const checkIns = result["2xx"];
      const total = [...used.values()].reduce((sum, count) => sum + count, 0);
      const scripts = (used.get("evalsha") ?? 0) + (used.get("eval") ?? 0);
      const inner = total - scripts;
      console.log(
        `check-ins/s          ${servedPerSecond(result).toFixed(0)} answered 2xx   (target >= ${TARGET_RATE}; ${result.requests.average.toFixed(0)} answers/s of any status)`,
      );
      console.log(`latency p50 / p99    ${result.latency.p50} ms / ${result.latency.p99} ms   (target p99 < ${TARGET_P99_MS} ms)`);
      console.log(`check-ins            ${checkIns} ok, ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`);
      console.log(
        `redis scripts        ${(checkIns / Math.max(scripts, 1)).toFixed(1)} check-ins per script call; ${(reads / Math.max(checkIns, 1)).toFixed(2)} socket reads per check-in (calls sent together share them)`,
      );
      console.log(
        `redis commands       ${(inner / Math.max(checkIns, 1)).toFixed(2)} per check-in inside the script: ${[...used]
          .filter(([name]) => !name.startsWith("eval"))
          .map(([name, count]) => `${name} ${(count / Math.max(checkIns, 1)).toFixed(2)}`)
          .join(", ")}`,
      );
      printCpuSplit("scaler", "load generator", cpuBefore, cpuAfter, checkIns);
      return { connections, result };
    };

    console.log(`warming up (every instance checks in once) ...`);
    await autocannon(options(3, MAX_CONNECTIONS));
    const closedLoops: ClosedLoop[] = [];
    for (const connections of CONNECTION_COUNTS) closedLoops.push(await driveClosedLoop(connections));
    const live = await client.zcard("confscale:group:bench-jvb:live");
    const memory = /used_memory_human:(\S+)/.exec(await client.info("memory"))?.[1];
    console.log(`live instances       ${live}; redis memory ${memory}`);

    const scalerSplit = () => cpuSplit(scaler.child.pid ?? -1, client, endedChildrenCpuSeconds);
    const atRate = RATE > 0 ? await driveAtFixedRate(requests, checkInUrl, dir, "scaler", scalerSplit) : undefined;
    if (BASELINE_SECONDS > 0) {
      const saturated = closedLoops.find((run) => run.connections === MAX_CONNECTIONS) as ClosedLoop;
      await driveBareServer(
        BASELINE_SECONDS,
        (seconds, target) => options(seconds, MAX_CONNECTIONS, target),
        saturated.result,
        (bareUrl, barePid) =>
          driveAtFixedRate(requests, bareUrl, dir, "bare server", () => cpuSplit(barePid, undefined, endedChildrenCpuSeconds)),
        atRate,
      );
    }
    printVerdict(closedLoops, atRate);
  } finally {
    client.disconnect();
    await scaler.stop();
  }
}

/** A closed-loop run at one count of connections. */
type ClosedLoop = { connections: number; result: AutocannonResult };

/** A fixed-rate run, and the cores its load generator kept busy meanwhile. */
interface FixedRate {
  report: VegetaReport;
  loadCores: number | undefined;
}

/**
 * Whether the scaler met the target (>= 5,000 check-ins/s answered 2xx at p99 < 20 ms). The closed loop decides, as
 * the target is set (`closedLoopVerdict`). The fixed rate's result is printed beside it, with the figures its own
 * verdict is read from: it also charges the scaler for vegeta's share of the two cores.
 */
function printVerdict(closedLoops: readonly ClosedLoop[], atRate: FixedRate | undefined): void {
  const runs = closedLoops.map(
    ({ connections, result }) => `${connections} connections ${servedPerSecond(result).toFixed(0)}/s at p99 ${result.latency.p99} ms`,
  );
  const { best, met } = closedLoopVerdict(closedLoops);
  console.log("");
  console.log(`closed loop          ${runs.join("; ")} (answered 2xx)`);
  if (atRate !== undefined) {
    const { report, loadCores } = atRate;
    const fixed = fixedRateVerdict(report, RATE);
    console.log(
      `fixed rate           offered ${RATE}/s, served ${fixed.served.toFixed(0)}/s (${(report.success * 100).toFixed(2)}% answered 2xx) at p99 ${fixed.p99Ms.toFixed(1)} ms while vegeta kept ${loadCores === undefined ? "n/a" : loadCores.toFixed(2)} of ${os.availableParallelism()} cores busy: ${fixed.met ? "within" : "NOT within"} the target`,
    );
  }
  const most =
    best === undefined
      ? `no connection count got p99 < ${TARGET_P99_MS} ms`
      : `${servedPerSecond(best.result).toFixed(0)}/s over ${best.connections} connections at p99 ${best.result.latency.p99} ms`;
  console.log(
    `target >= ${TARGET_RATE}/s at p99 < ${TARGET_P99_MS} ms: most check-ins/s answered 2xx at that latency ${most}: ${met ? "met" : "NOT met"}`,
  );
  if (!met) process.exitCode = 1;
}

/** vegeta, built with Go from the module proxy the first time (as the Pulumi CLI is for the tests). */
function vegetaBinary(): string {
  const bin = join(os.homedir(), ".cache", "confscale", "vegeta", VEGETA_VERSION);
  const binary = join(bin, "vegeta");
  if (!existsSync(binary)) {
    console.log(`building vegeta ${VEGETA_VERSION} into ${bin} (once) ...`);
    execFileSync("go", ["install", `github.com/tsenart/vegeta/v12@${VEGETA_VERSION}`], {
      env: { ...process.env, GOBIN: bin },
      stdio: "inherit",
    });
  }
  return binary;
}

/** What `vegeta report -type=json` prints (durations in ns). */
const vegetaReportSchema = z.object({
  latencies: z.object({ "50th": z.number(), "99th": z.number(), max: z.number() }),
  rate: z.number(),
  throughput: z.number(),
  success: z.number(),
  requests: z.number(),
  status_codes: z.record(z.string(), z.number()),
  errors: z.array(z.string()).nullable(),
});
type VegetaReport = z.infer<typeof vegetaReportSchema>;

/** Offers `RATE` check-ins/s, spread evenly, each instance in turn, and prints the latency the sidecars see. */
async function driveAtFixedRate(
  requests: readonly AutocannonRequest[],
  target: string,
  dir: string,
  name: string,
  split: () => Promise<CpuSplit>,
): Promise<FixedRate> {
  const vegeta = vegetaBinary();
  const targets = join(dir, "targets.jsonl");
  await writeFile(
    targets,
    requests
      .map((request) =>
        JSON.stringify({
          method: request.method,
          url: target + request.path,
          header: Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, [value]])),
          body: Buffer.from(request.body).toString("base64"),
        }),
      )
      .join("\n") + "\n",
  );
  const results = join(dir, "results.bin");
  console.log("");
  console.log(`offering the ${name} ${RATE} check-ins/s evenly for ${RATE_SECONDS} s (vegeta, open loop) ...`);
  // At most the largest count of --connections, as from the control node's Caddy, which pools its upstream connections; without
  // a bound, vegeta opens more whenever answers slow down, and the scaler pays for the new connections on top.
  // Replies are not kept (-max-body=0): only their status and time count, and storing them costs vegeta CPU.
  const before = await split();
  execFileSync(
    vegeta,
    [
      "attack",
      "-format=json",
      `-targets=${targets}`,
      `-rate=${RATE}/1s`,
      `-duration=${RATE_SECONDS}s`,
      "-timeout=10s",
      `-max-connections=${MAX_CONNECTIONS}`,
      "-max-body=0",
      `-output=${results}`,
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  const after = await split();
  const report = vegetaReportSchema.parse(JSON.parse(execFileSync(vegeta, ["report", "-type=json", results], { encoding: "utf8" })));
  const ms = (ns: number) => (ns / 1e6).toFixed(1);
  console.log(
    `offered / served     ${RATE} / ${fixedRateVerdict(report, RATE).served.toFixed(0)} check-ins/s answered 2xx   (target >= ${TARGET_RATE})`,
  );
  console.log(
    `latency p50 / p99    ${ms(report.latencies["50th"])} ms / ${ms(report.latencies["99th"])} ms, max ${ms(report.latencies.max)} ms   (target p99 < ${TARGET_P99_MS} ms)`,
  );
  const loadCores = printCpuSplit(name === "scaler" ? "scaler" : "server", "vegeta", before, after, report.requests);
  if (before.scriptCalls !== undefined && after.scriptCalls !== undefined) {
    console.log(
      `redis scripts        ${(report.requests / Math.max(after.scriptCalls - before.scriptCalls, 1)).toFixed(1)} check-ins per script call`,
    );
  }
  console.log(
    `check-ins            ${report.requests}, ${(report.success * 100).toFixed(2)}% answered 200 (${Object.entries(report.status_codes)
      .map(([code, count]) => `${code}: ${count}`)
      .join(", ")})${report.errors?.length ? `; errors: ${report.errors.slice(0, 3).join("; ")}` : ""}`,
  );
  return { report, loadCores };
}

/** Drives the bare node:http server with the same requests and prints how the scaler compares with it. */
async function driveBareServer(
  seconds: number,
  options: (seconds: number, target: string) => Record<string, unknown>,
  scaler: AutocannonResult,
  driveAtRate: (url: string, pid: number) => Promise<FixedRate>,
  scalerAtRate: FixedRate | undefined,
): Promise<void> {
  const bare = await startUntilReady(process.execPath, ["--input-type=module", "-e", BARE_SERVER], /bare server listening on \d+/);
  try {
    const port = /bare server listening on (\d+)/.exec(bare.output())?.[1];
    console.log("");
    console.log(`driving a bare node:http server with the same requests, ${seconds} s ...`);
    await autocannon(options(2, `http://127.0.0.1:${port}`));
    const result = await autocannon(options(seconds, `http://127.0.0.1:${port}`));
    console.log(
      `bare server          ${servedPerSecond(result).toFixed(0)} requests/s, p50 / p99 ${result.latency.p50} ms / ${result.latency.p99} ms`,
    );
    console.log(
      `scaler / bare        ${((100 * servedPerSecond(scaler)) / Math.max(servedPerSecond(result), 1)).toFixed(0)}% of the requests/s this machine served at all`,
    );
    if (scalerAtRate !== undefined) {
      const bareAtRate = await driveAtRate(`http://127.0.0.1:${port}`, bare.child.pid ?? -1);
      const p99 = ({ report }: FixedRate) => report.latencies["99th"] / 1e6;
      console.log(
        `scaler / bare p99    ${(p99(scalerAtRate) / Math.max(p99(bareAtRate), 0.001)).toFixed(1)}x the bare server's p99 at ${RATE} check-ins/s`,
      );
    }
  } finally {
    await bare.stop();
  }
}

await main();
