// A scaler's Jitsi group fleet in a process of its own, so a test can kill it in the middle of an update, as a crash would.
// Usage: tsx test/harness/jitsiFleetProcess.ts '<json: {endpoints, sandbox, redisUrl, leaseTtlMs, group}>'
import type { EmulatorEndpoints } from "./fleetRig.js";
import { openEmulatedJitsiFleet, openJitsiStore } from "./jitsiRig.js";

const options = JSON.parse(process.argv[2] ?? "{}") as {
  endpoints: EmulatorEndpoints;
  sandbox: { dir: string; backendUrl: string; env: Record<string, string> };
  redisUrl: string;
  leaseTtlMs: number;
  group: Parameters<typeof openEmulatedJitsiFleet>[0]["group"];
};
const { redis, store } = openJitsiStore(options.redisUrl);
const { fleet } = await openEmulatedJitsiFleet({ ...options, redis, store, owner: `child-${process.pid}` });
await fleet.start();
process.stdout.write("started\n");
await fleet.period();
process.stdout.write("cycled\n");
await fleet.stop();
redis.disconnect();
