// A scaler's actuator in a process of its own, so a test can kill it in the middle of an update, as a crash would.
// Usage: tsx test/harness/actuatorProcess.ts '<json: {endpoints, sandbox, redisUrl, baseline, leaseTtlMs, shardSize?, decisions?}>'
import type { Decision } from "../../scaler/policy/types.js";
import { openEmulatedFleet, type EmulatorEndpoints } from "./fleetRig.js";

const options = JSON.parse(process.argv[2] ?? "{}") as {
  endpoints: EmulatorEndpoints;
  sandbox: { dir: string; backendUrl: string; env: Record<string, string> };
  redisUrl: string;
  baseline: number;
  leaseTtlMs: number;
  shardSize?: number;
  /** The decisions of the cycle it runs (none: the cycle brings a new fleet to its baseline). */
  decisions?: Decision[];
};
const rig = await openEmulatedFleet({ ...options, settings: { baseline: options.baseline }, owner: `child-${process.pid}` });
await rig.actuator.start();
process.stdout.write("started\n");
await rig.actuator.cycle(options.decisions ?? []);
process.stdout.write("cycled\n");
await rig.close();
