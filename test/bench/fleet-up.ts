/**
 * Engine time of the fleet's `up` through the Automation API (the real Pulumi CLI, the IONOS dynamic provider) against
 * the emulated IONOS cloud, with the fleet in shard stacks as the scaler runs it (scaler/actuator/shards.ts), on
 * fleets of 10, 200 and 1,000 servers:
 *   - no change: the spec the shards already hold (the scaler's most frequent period: no engine command runs);
 *   - resize 1: one server's cores/RAM changed in place (an `up` of its shard alone);
 *   - create 20: a scale-out burst of 20 new servers, named on from the fleet's last as the scaler names them;
 *   - destroy 20: the same 20 removed again (restores the fleet for the next repetition);
 * and, reported apart, a full converging `up`: every shard, refreshed from the cloud first (the periodic drift check).
 *
 * The cloud answers every request in ~2 ms and the provider polls every 10 ms, so the time is the engine's (CLI start,
 * inline program, diffs, provider process, checkpoints). With --realistic each scenario is measured again with every
 * request QUEUED 0.5 s and RUNNING 1.5 s, as the real IONOS API's small writes take 1–3 s, the provider polling every
 * second; wall time minus engine time is then the time spent waiting on the cloud.
 *
 * Verdict (issue #22): at the largest fleet against the smallest, "resize 1" may take at most 1.5× and "create 20" 2×
 * the engine time; the ratios are printed and the run exits 1 when one is missed.
 *
 * Each fleet grows as the scaler would grow it: ordinary `up`s of its shard stacks, as many at once as the scaler runs
 * (each shard's program in a host process of its own, scaler/actuator/programHost.ts), so its stacks hold what a real
 * fleet's would. Runtime on a 2-core machine kept busy by other work (load average 7–18): growing to 1,000 servers
 * 15–20 minutes, each repetition of the four scenarios ~1 minute per fleet size, a full converge of 1,000 servers
 * ~5 minutes; --quick (10 servers, 1 repetition) ~1 minute.
 *
 * Usage: npm run bench:fleet [-- --sizes 10,200,1000] [--reps 3] [--parallel 8] [--realistic] [--quick]
 *   --parallel caps each engine's concurrent resource operations (default: the engine's own, as the scaler runs it).
 */
import { cpus, loadavg } from "node:os";
import type { FleetServer, FleetSpec } from "../../infra/fleet.js";
import type { ShardedFleetStack, ShardedUpdateReport } from "../../scaler/actuator/shards.js";
import { parseCommandLine, UsageError } from "../../scaler/commandLine.js";
import type { CloudTimings } from "../emulator/cloud.js";
import { Emulator } from "../emulator/emulator.js";
import { emulatedFleetTemplate, openEmulatedShardedFleetStack } from "../harness/fleetRig.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

const options = parseCommandLine(
  {
    name: "npm run bench:fleet",
    usage: `usage: npm run bench:fleet [-- --sizes 10,200,1000] [--reps 3] [--parallel 8] [--realistic] [--quick]
  Engine time of fleet updates (shard stacks) against the emulator; --realistic adds a run at realistic cloud latency.
  --sizes      fleet sizes to measure (10,200,1000)
  --reps       repetitions of each measurement (3)
  --parallel   cap on each engine's concurrent resource operations (default: the engine's own)
  --realistic  measure every scenario at realistic cloud latency too
  --quick      one repetition on a fleet of 10`,
    flags: {
      sizes: { type: "string", default: "10,200,1000" },
      reps: { type: "string", default: "3" },
      parallel: { type: "string" },
      realistic: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
    },
  },
  ({ values }) => ({
    sizes: values.quick ? [10] : values.sizes.split(",").map((size) => positiveInteger(size, "--sizes")),
    reps: values.quick ? 1 : positiveInteger(values.reps, "--reps"),
    parallel: values.parallel === undefined ? undefined : positiveInteger(values.parallel, "--parallel"),
    realistic: values.realistic,
  }),
);
const SIZES = options.sizes;
const REPS = options.reps;
const PARALLEL = options.parallel;
const BURST = 20;
/** Issue #22's bounds on engine time at the largest fleet against the smallest. */
const BOUNDS: Partial<Record<Scenario, number>> = { "resize 1": 1.5, [`create ${BURST}`]: 2 };

interface Latency {
  label: string;
  timings: Pick<CloudTimings, "requestQueuedMs" | "requestRunningMs">;
  pollIntervalMs: number;
}
const ZERO: Latency = { label: "zero", timings: { requestQueuedMs: 1, requestRunningMs: 1 }, pollIntervalMs: 10 };
const REALISTIC: Latency = { label: "realistic", timings: { requestQueuedMs: 500, requestRunningMs: 1_500 }, pollIntervalMs: 1_000 };
const LATENCIES = options.realistic ? [ZERO, REALISTIC] : [ZERO];

const SCENARIOS = ["no change", "resize 1", `create ${BURST}`, `destroy ${BURST}`] as const;
type Scenario = (typeof SCENARIOS)[number];
const CONVERGE = "full converge";

const BASE_SIZE = { cores: 2, ramGb: 8 };
const GROWN_SIZE = { cores: 4, ramGb: 16 };

function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new UsageError(`${flag}: expected a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

function server(index: number): FleetServer {
  return { name: `bbb-${index}`, size: BASE_SIZE, power: "running", image: "ubuntu:22.04" };
}

/** One timed `up`: its time, the stacks it ran and the cloud requests (async writes) it made. */
interface Sample {
  ms: number;
  stacks: number;
  requests: number;
}

class FleetBench {
  private servers: FleetServer[] = [];

  constructor(
    private readonly emulator: Emulator,
    private readonly fleet: ShardedFleetStack,
    private readonly template: Omit<FleetSpec, "servers">,
    /** Samples by fleet size, latency and scenario, shared by the fleets of every size. */
    private readonly samples: Map<string, Sample[]>,
  ) {}

  private spec(latency: Latency, servers: FleetServer[]): FleetSpec {
    // The poll interval is a connection setting: the provider's diff ignores it, so switching it changes no server.
    const ionos = { ...this.template.placement.ionos!, pollIntervalMs: latency.pollIntervalMs };
    return { ...this.template, placement: { ...this.template.placement, ionos }, servers };
  }

  private async up(
    latency: Latency,
    servers: FleetServer[],
    expect: Record<string, number>,
    converge = false,
  ): Promise<{ report: ShardedUpdateReport; requests: number }> {
    Object.assign(this.emulator.cloud.timings, latency.timings);
    const before = this.emulator.cloud.requests.size;
    const report = await this.fleet.up(this.spec(latency, servers), undefined, {
      converge,
      ...(PARALLEL === undefined ? {} : { parallel: PARALLEL }),
    });
    // A benchmark that timed the wrong change would mislead: every `up` must do exactly what its scenario says.
    const ops: Record<string, number> = {};
    for (const step of report.steps) if (step.op !== "same" && step.op !== "refresh") ops[step.op] = (ops[step.op] ?? 0) + 1;
    for (const [op, count] of Object.entries(expect)) {
      if ((ops[op] ?? 0) !== count) throw new Error(`expected ${count} ${op} in ${JSON.stringify(ops)}`);
    }
    const changed = Object.keys(ops).filter((op) => !(op in expect));
    if (changed.length > 0) throw new Error(`unexpected changes ${JSON.stringify(ops)}`);
    this.servers = servers;
    return { report, requests: this.emulator.cloud.requests.size - before };
  }

  /** Brings the fleet to `size` servers on the zero-latency cloud; returns the seconds it took. */
  async grow(size: number): Promise<number> {
    const target = Array.from({ length: size }, (_, index) => this.servers[index] ?? server(index + 1));
    const { report } = await this.up(ZERO, target, {
      create: Math.max(0, size - this.servers.length),
      delete: Math.max(0, this.servers.length - size),
    });
    return report.durationMs / 1000;
  }

  /** Switches the provider's poll interval without timing it: every shard stores its servers' new inputs. */
  async settle(latency: Latency): Promise<number> {
    const { report } = await this.up(latency, this.servers, {});
    return report.durationMs / 1000;
  }

  private record(size: number, latency: Latency, scenario: string, sample: { report: ShardedUpdateReport; requests: number }): void {
    const key = sampleKey(size, latency, scenario);
    const { durationMs, stacks } = sample.report;
    this.samples.set(key, [...(this.samples.get(key) ?? []), { ms: durationMs, stacks: stacks.length, requests: sample.requests }]);
    process.stdout.write(
      `  ${size} servers, ${latency.label} latency, ${scenario}: ${(durationMs / 1000).toFixed(2)} s, ${stacks.length} stack(s)\n`,
    );
  }

  /** One repetition of every scenario; the resized server flips between two sizes so each resize is a change. */
  async repetition(size: number, latency: Latency): Promise<void> {
    const fleet = this.servers;
    this.record(size, latency, "no change", await this.up(latency, fleet, {}));

    const [first, ...rest] = fleet;
    const resized = { ...first!, size: first!.size.cores === BASE_SIZE.cores ? GROWN_SIZE : BASE_SIZE };
    this.record(size, latency, "resize 1", await this.up(latency, [resized, ...rest], { update: 1 }));

    const steady = this.servers;
    const burst = Array.from({ length: BURST }, (_, index) => server(size + index + 1));
    this.record(size, latency, `create ${BURST}`, await this.up(latency, [...steady, ...burst], { create: BURST }));
    this.record(size, latency, `destroy ${BURST}`, await this.up(latency, steady, { delete: BURST }));
  }

  /** A full converging `up`: every shard, refreshed from the cloud first; nothing drifted, so nothing changes. */
  async converge(size: number): Promise<void> {
    this.record(size, ZERO, CONVERGE, await this.up(ZERO, this.servers, {}, true));
  }
}

function sampleKey(size: number, latency: Latency, scenario: string): string {
  return `${size}/${latency.label}/${scenario}`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const seconds = (ms: number) => (ms / 1000).toFixed(2);

function printRows(header: string[], rows: string[][]): void {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join("  ");
  console.log(line(header));
  console.log(line(widths.map((width) => "-".repeat(width))));
  for (const row of rows) console.log(line(row));
}

/** Median engine time of a scenario at a fleet size (zero latency). */
function engineMs(samples: Map<string, Sample[]>, size: number, scenario: string): number {
  return median(samples.get(sampleKey(size, ZERO, scenario))!.map((sample) => sample.ms));
}

function printTable(samples: Map<string, Sample[]>): void {
  const smallest = SIZES[0]!;
  const header = [
    "fleet",
    "scenario",
    "stacks run",
    "cloud requests",
    "engine s (median [min–max])",
    `× at ${smallest}`,
    ...(options.realistic ? ["wall s, realistic", "cloud latency s", "cloud share"] : []),
  ];
  const rows: string[][] = [];
  for (const size of SIZES) {
    for (const scenario of [...SCENARIOS, CONVERGE]) {
      const zero = samples.get(sampleKey(size, ZERO, scenario))!;
      const times = zero.map((sample) => sample.ms);
      const engine = median(times);
      const row = [
        String(size),
        scenario,
        String(median(zero.map((sample) => sample.stacks))),
        String(median(zero.map((sample) => sample.requests))),
        `${seconds(engine)} [${seconds(Math.min(...times))}–${seconds(Math.max(...times))}]`,
        scenario === "no change" ? "-" : (engine / engineMs(samples, smallest, scenario)).toFixed(2),
      ];
      const realistic = samples.get(sampleKey(size, REALISTIC, scenario));
      if (options.realistic) {
        const wall = realistic === undefined ? undefined : median(realistic.map((sample) => sample.ms));
        // Engine time does not shrink when the cloud gets slower; a negative difference is noise, shown as zero.
        const cloud = wall === undefined ? undefined : Math.max(0, wall - engine);
        row.push(
          wall === undefined ? "-" : seconds(wall),
          cloud === undefined ? "-" : seconds(cloud),
          cloud === undefined || wall === undefined || wall === 0 ? "-" : `${Math.round((100 * cloud) / wall)}%`,
        );
      }
      rows.push(row);
    }
  }
  printRows(header, rows);
}

/** Issue #22's verdicts: engine time at the largest fleet against the smallest. True when every bound holds. */
function printVerdicts(samples: Map<string, Sample[]>): boolean {
  const smallest = SIZES[0]!;
  const largest = SIZES[SIZES.length - 1]!;
  if (largest === smallest) return true;
  let met = true;
  console.log(`\nverdicts: engine time at ${largest} servers against ${smallest}`);
  for (const [scenario, bound] of Object.entries(BOUNDS)) {
    const ratio = engineMs(samples, largest, scenario) / engineMs(samples, smallest, scenario);
    const ok = ratio <= bound!;
    met &&= ok;
    console.log(
      `  ${scenario}: ${seconds(engineMs(samples, largest, scenario))} s / ${seconds(engineMs(samples, smallest, scenario))} s = ${ratio.toFixed(2)}× (bound ${bound}×) ${ok ? "met" : "MISSED"}`,
    );
  }
  return met;
}

/** The machine's conditions: other work on it slows every engine alike. */
function machine(): string {
  return `${cpus().length} cores, load average ${loadavg()
    .map((load) => load.toFixed(2))
    .join(" ")}`;
}

let emulator: Emulator | undefined;
let sandbox: PulumiSandbox | undefined;
let cleaning: Promise<void> | undefined;
const fleets: ShardedFleetStack[] = [];

/** Stops the program hosts and the emulator and removes the sandbox once, whether the run ends, fails or is interrupted. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const fleet of fleets) fleet.close();
    await emulator?.stop();
    await sandbox?.cleanup();
  })();
  return cleaning;
}

// Ctrl-C also reaches the Pulumi CLI, which cancels its update; the emulator and the sandbox directory are ours to remove.
process.on("SIGINT", () => {
  void cleanUp().finally(() => process.exit(130));
});

let verdictsMet = true;
try {
  emulator = await Emulator.start({ timings: { ...ZERO.timings, bootMs: 1 } });
  sandbox = await createPulumiSandbox();
  console.log(
    `fleet up: sizes ${SIZES.join(",")}, ${REPS} repetition(s), parallel ${PARALLEL ?? "engine default"}; ${machine()}` +
      (options.realistic
        ? `; realistic cloud: requests ${REALISTIC.timings.requestQueuedMs} ms queued + ${REALISTIC.timings.requestRunningMs} ms running, poll every ${REALISTIC.pollIntervalMs} ms`
        : ""),
  );
  // One fleet per size, each its own environment: the repetitions take turns between the sizes, so a machine whose
  // load changes during the run slows every size alike and the ratios stay fair.
  const samples = new Map<string, Sample[]>();
  const benches = new Map<number, FleetBench>();
  for (const size of SIZES) {
    const env = `bench-${size}`;
    // Its own data center: the IONOS adapter looks a new server's name up among the data center's servers.
    const datacenter = emulator.cloud.createDatacenter({ name: env, location: "de/fra" });
    emulator.cloud.createLan(datacenter, { name: "public", public: true });
    const template = emulatedFleetTemplate(emulator, env, "bbb");
    template.placement = { ...template.placement, ionos: { ...template.placement.ionos!, datacenterId: datacenter.id } };
    const fleet = await openEmulatedShardedFleetStack(emulator, sandbox, env);
    fleets.push(fleet);
    const bench = new FleetBench(emulator, fleet, template, samples);
    console.log(`fleet of ${size}: grown in ${(await bench.grow(size)).toFixed(1)} s (zero latency), through ordinary shard ups`);
    benches.set(size, bench);
  }
  for (const latency of LATENCIES) {
    for (const [size, bench] of benches)
      console.log(`  ${size} servers switched to ${latency.label} latency in ${(await bench.settle(latency)).toFixed(1)} s (untimed)`);
    for (let rep = 0; rep < REPS; rep++) for (const [size, bench] of benches) await bench.repetition(size, latency);
  }
  for (const [size, bench] of benches) {
    if (options.realistic) await bench.settle(ZERO);
    await bench.converge(size);
  }
  console.log(
    "\nengine s: the `up` on the zero-latency cloud, from the first shard's engine start to the last one's end; stacks run: the\n" +
      "shard stacks it ran; × at the smallest fleet: engine time against the same scenario there.\n",
  );
  printTable(samples);
  verdictsMet = printVerdicts(samples);
  console.log(`at the end: ${machine()}`);
} finally {
  await cleanUp();
}
if (!verdictsMet) process.exit(1);
