/**
 * Wall time of the fleet stack's `up` through the Automation API (the real Pulumi CLI, the IONOS dynamic provider)
 * against the emulated IONOS cloud, on fleets of 10, 50 and 200 servers:
 *   - no change: the spec the stack already holds (the scaler's most frequent `up`);
 *   - resize 1: one server's cores/RAM changed in place;
 *   - create 20: a scale-out burst of 20 new servers;
 *   - destroy 20: the same 20 removed again (restores the fleet for the next repetition).
 *
 * Engine overhead and cloud latency are told apart by running every measurement twice on the same fleet:
 *   - zero-latency cloud: the emulator finishes every request in ~2 ms and the provider polls every 10 ms, so the
 *     time left is the engine's (CLI start, inline program, diffs, provider process, checkpoints): the overhead;
 *   - realistic cloud: every request stays QUEUED 0.5 s and RUNNING 1.5 s, as the real IONOS API's small writes
 *     take 1–3 s, and the provider polls every second as it would against it; wall time minus the overhead is the
 *     time spent waiting on the cloud.
 * Each scenario's time is also given against the no-change `up` of the same fleet and latency in the same run.
 * Fleets are grown from one size to the next on the zero-latency cloud; that time is printed, not tabled.
 *
 * Runtime on a 2-core machine, measured while other test suites kept it busy (load average 7–10): an `up` took
 * 10–20 s at 10 or 50 servers and 40–70 s at 200; growing to 200 servers ~3 minutes. --quick (10 servers, 1
 * repetition) ~3 minutes; --reps 1 ~17 minutes; each further repetition adds ~11 minutes, so the default (2
 * repetitions) takes ~28 minutes on such a machine and less on an idle one.
 *
 * Usage: npm run bench:fleet [-- --sizes 10,50,200] [--reps 2] [--parallel 8] [--quick]
 *   --parallel caps the engine's concurrent resource operations (default: the engine's own, as the scaler runs it).
 */
import type { FleetServer, FleetSpec } from "../../infra/fleet.js";
import type { FleetStack, FleetUpdateReport } from "../../scaler/actuator/fleetStack.js";
import { parseCommandLine, UsageError } from "../../scaler/commandLine.js";
import type { CloudTimings } from "../emulator/cloud.js";
import { Emulator } from "../emulator/emulator.js";
import { emulatedFleetTemplate, openEmulatedFleetStack } from "../harness/fleetRig.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

const options = parseCommandLine(
  {
    name: "npm run bench:fleet",
    usage: `usage: npm run bench:fleet [-- --sizes 10,50,200] [--reps 2] [--parallel 8] [--quick]
  Wall time of fleet stack updates against the emulator, at zero and at realistic cloud latency.
  --sizes     fleet sizes to measure (10,50,200)
  --reps      repetitions of each measurement (2)
  --parallel  cap on the engine's concurrent resource operations (default: the engine's own)
  --quick     one repetition on a fleet of 10`,
    flags: {
      sizes: { type: "string", default: "10,50,200" },
      reps: { type: "string", default: "2" },
      parallel: { type: "string" },
      quick: { type: "boolean", default: false },
    },
  },
  ({ values }) => ({
    sizes: values.quick ? [10] : values.sizes.split(",").map((size) => positiveInteger(size, "--sizes")),
    reps: values.quick ? 1 : positiveInteger(values.reps, "--reps"),
    parallel: values.parallel === undefined ? undefined : positiveInteger(values.parallel, "--parallel"),
  }),
);
const SIZES = options.sizes;
const REPS = options.reps;
const PARALLEL = options.parallel;
const BURST = 20;

interface Latency {
  label: string;
  timings: Pick<CloudTimings, "requestQueuedMs" | "requestRunningMs">;
  pollIntervalMs: number;
}
const ZERO: Latency = { label: "zero", timings: { requestQueuedMs: 1, requestRunningMs: 1 }, pollIntervalMs: 10 };
const REALISTIC: Latency = { label: "realistic", timings: { requestQueuedMs: 500, requestRunningMs: 1_500 }, pollIntervalMs: 1_000 };

const SCENARIOS = ["no change", "resize 1", `create ${BURST}`, `destroy ${BURST}`] as const;
type Scenario = (typeof SCENARIOS)[number];

const BASE_SIZE = { cores: 2, ramGb: 8 };
const GROWN_SIZE = { cores: 4, ramGb: 16 };

function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new UsageError(`${flag}: expected a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

function server(name: string): FleetServer {
  return { name, size: BASE_SIZE, power: "running", image: "ubuntu:22.04" };
}

/** One timed `up`: wall time and the cloud requests (async writes) it made, checked against what it had to change. */
interface Sample {
  ms: number;
  requests: number;
}

class FleetBench {
  /** Wall times by fleet size, latency and scenario. */
  readonly samples = new Map<string, Sample[]>();
  private servers: FleetServer[] = [];
  private grown = false;

  constructor(
    private readonly emulator: Emulator,
    private readonly fleet: FleetStack,
    private readonly template: Omit<FleetSpec, "servers">,
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
  ): Promise<{ report: FleetUpdateReport; requests: number }> {
    Object.assign(this.emulator.cloud.timings, latency.timings);
    const before = this.emulator.cloud.requests.size;
    const report = await this.fleet.up(this.spec(latency, servers), undefined, PARALLEL === undefined ? {} : { parallel: PARALLEL });
    // A benchmark that timed the wrong change would mislead: every `up` must do exactly what its scenario says.
    for (const [op, count] of Object.entries(expect)) {
      if ((report.summary[op] ?? 0) !== count) throw new Error(`expected ${count} ${op} in ${JSON.stringify(report.summary)}`);
    }
    const changed = Object.entries(report.summary).filter(([op, count]) => op !== "same" && count > 0 && !(op in expect));
    if (changed.length > 0) throw new Error(`unexpected changes ${JSON.stringify(report.summary)}`);
    this.servers = servers;
    return { report, requests: this.emulator.cloud.requests.size - before };
  }

  /** Brings the fleet to `size` servers on the zero-latency cloud; returns the seconds it took. */
  async grow(size: number): Promise<number> {
    const target = Array.from({ length: size }, (_, index) => this.servers[index] ?? server(`bbb-${index + 1}`));
    const creates = Math.max(0, size - this.servers.length);
    const deletes = Math.max(0, this.servers.length - size);
    // The first `up` of the stack also creates the stack resource itself.
    const stackCreate = this.grown ? 0 : 1;
    const { report } = await this.up(ZERO, target, { create: creates + stackCreate, delete: deletes });
    this.grown = true;
    return report.durationMs / 1000;
  }

  /**
   * Switches the provider's poll interval without timing it. The engine reports no change, yet it still stores every
   * server's new inputs (the connection): that `up` took 153 s at 200 servers against 47 s for a true no-change one,
   * and must not be taken for the first no-change `up` of the next latency.
   */
  async settle(latency: Latency): Promise<number> {
    const { report } = await this.up(latency, this.servers, {});
    return report.durationMs / 1000;
  }

  private record(size: number, latency: Latency, scenario: Scenario, sample: { report: FleetUpdateReport; requests: number }): void {
    const key = sampleKey(size, latency, scenario);
    this.samples.set(key, [...(this.samples.get(key) ?? []), { ms: sample.report.durationMs, requests: sample.requests }]);
    process.stdout.write(`  ${size} servers, ${latency.label} latency, ${scenario}: ${(sample.report.durationMs / 1000).toFixed(2)} s\n`);
  }

  /** One repetition of every scenario; the resized server flips between two sizes so each resize is a change. */
  async repetition(size: number, latency: Latency): Promise<void> {
    const fleet = this.servers;
    this.record(size, latency, "no change", await this.up(latency, fleet, {}));

    const [first, ...rest] = fleet;
    const resized = { ...first!, size: first!.size.cores === BASE_SIZE.cores ? GROWN_SIZE : BASE_SIZE };
    this.record(size, latency, "resize 1", await this.up(latency, [resized, ...rest], { update: 1 }));

    const steady = this.servers;
    const burst = Array.from({ length: BURST }, (_, index) => server(`burst-${index + 1}`));
    this.record(size, latency, `create ${BURST}`, await this.up(latency, [...steady, ...burst], { create: BURST }));
    this.record(size, latency, `destroy ${BURST}`, await this.up(latency, steady, { delete: BURST }));
  }
}

function sampleKey(size: number, latency: Latency, scenario: Scenario): string {
  return `${size}/${latency.label}/${scenario}`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const seconds = (ms: number) => (ms / 1000).toFixed(2);

function printTable(samples: Map<string, Sample[]>): void {
  const header = [
    "fleet",
    "scenario",
    "cloud requests",
    "wall s (median [min–max])",
    "engine overhead s",
    "cloud latency s",
    "cloud share",
    "× no change",
    "× no change, zero latency",
  ];
  const rows: string[][] = [];
  for (const size of SIZES) {
    const noChange = (latency: Latency) => median(samples.get(sampleKey(size, latency, "no change"))!.map((sample) => sample.ms));
    for (const scenario of SCENARIOS) {
      const realistic = samples.get(sampleKey(size, REALISTIC, scenario))!;
      const zero = samples.get(sampleKey(size, ZERO, scenario))!;
      const wall = median(realistic.map((sample) => sample.ms));
      const overhead = median(zero.map((sample) => sample.ms));
      // Engine time does not shrink when the cloud gets slower; a negative difference is noise, shown as zero.
      const cloud = Math.max(0, wall - overhead);
      const times = realistic.map((sample) => sample.ms);
      rows.push([
        String(size),
        scenario,
        String(median(realistic.map((sample) => sample.requests))),
        `${seconds(wall)} [${seconds(Math.min(...times))}–${seconds(Math.max(...times))}]`,
        seconds(overhead),
        seconds(cloud),
        `${Math.round((100 * cloud) / wall)}%`,
        (wall / noChange(REALISTIC)).toFixed(2),
        (overhead / noChange(ZERO)).toFixed(2),
      ]);
    }
  }
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join("  ");
  console.log(line(header));
  console.log(line(widths.map((width) => "-".repeat(width))));
  for (const row of rows) console.log(line(row));
}

let emulator: Emulator | undefined;
let sandbox: PulumiSandbox | undefined;
let cleaning: Promise<void> | undefined;

/** Stops the emulator and removes the sandbox once, whether the run ends, fails or is interrupted. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await emulator?.stop();
    await sandbox?.cleanup();
  })();
  return cleaning;
}

// Ctrl-C also reaches the Pulumi CLI, which cancels its update; the emulator and the sandbox directory are ours to remove.
process.on("SIGINT", () => {
  void cleanUp().finally(() => process.exit(130));
});

try {
  emulator = await Emulator.start({ timings: { ...ZERO.timings, bootMs: 1 } });
  sandbox = await createPulumiSandbox();
  const fleet = await openEmulatedFleetStack(emulator, sandbox, "bench");
  const bench = new FleetBench(emulator, fleet, emulatedFleetTemplate(emulator, "bench", "bbb"));
  console.log(
    `fleet up: sizes ${SIZES.join(",")}, ${REPS} repetition(s), parallel ${PARALLEL ?? "engine default"}; ` +
      `realistic cloud: requests ${REALISTIC.timings.requestQueuedMs} ms queued + ${REALISTIC.timings.requestRunningMs} ms running, poll every ${REALISTIC.pollIntervalMs} ms`,
  );
  for (const size of SIZES) {
    console.log(`fleet of ${size}: grown in ${(await bench.grow(size)).toFixed(1)} s (zero latency)`);
    for (const latency of [ZERO, REALISTIC]) {
      console.log(`  switched to ${latency.label} latency in ${(await bench.settle(latency)).toFixed(1)} s (untimed)`);
      for (let rep = 0; rep < REPS; rep++) await bench.repetition(size, latency);
    }
  }
  console.log(
    "\nwall: realistic cloud latency; engine overhead: the same `up` on the zero-latency cloud; cloud latency: wall minus overhead;\n" +
      "× no change: against the no-change `up` of the same fleet (realistic latency, then zero latency).\n",
  );
  printTable(bench.samples);
} finally {
  await cleanUp();
}
