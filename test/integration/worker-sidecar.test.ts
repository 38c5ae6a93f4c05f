import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderTemplate } from "../../infra/templates.js";
import { workerCredentials } from "../../infra/workerCredentials.js";
import type { InstanceStatus } from "../../scaler/store/schemas.js";
import { Emulator } from "../emulator/emulator.js";
import type { EmulatedServer } from "../emulator/cloud.js";
import { startUntilReady, type ManagedProcess } from "../harness/process.js";
import { RedisServer } from "../harness/redis.js";
import { KeyServer, TOKENS, call, eventually, groupBody, startScaler, type ScalerUnderTest } from "./scaler-fixture.js";

const MASTER = "fleet-master-secret-0123456789abcdef0123456789ab";
const credentials = workerCredentials(MASTER, "bbb", "bbb-1");

let redis: RedisServer;
let keys: KeyServer;
let scaler: ScalerUnderTest;
let emulator: Emulator;
let server: EmulatedServer;
let dir: string;
let sidecar: ManagedProcess | undefined;

beforeAll(async () => {
  process.env.CONFSCALE_BBB_SECRET = MASTER;
  redis = await RedisServer.start();
  keys = await KeyServer.start();
  scaler = await startScaler(redis, keys.baseUrl, { keyPrefix: "worker-sidecar:" });
  expect((await call(scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("bbb", "bbb") })).status).toBe(201);
  // The emulated worker's BBB answers to this worker's own secret only.
  emulator = await Emulator.start({ bbbSecret: credentials.bbbSecret, clock: { kind: "manual" } });
  server = emulator.addRunningServer({ name: "bbb-1", cores: 4, ram: 8192 });
  dir = await mkdtemp(join(tmpdir(), "confscale-sidecar-"));
});

afterAll(async () => {
  await sidecar?.stop();
  await emulator?.stop();
  await scaler?.stop();
  await keys?.stop();
  await redis?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function instance(): Promise<InstanceStatus | undefined> {
  return (await scaler.store.listInstances("bbb")).find((candidate) => candidate.instanceId === "bbb-1");
}

describe("the worker sidecar, bundled and run as its unit runs it", () => {
  it("checks in with its own key, reports BBB's meetings, drains on shutdown and confirms when the last meeting ended", async () => {
    const meeting = emulator.cloud.startMeeting(server, { participants: 7, videos: 2, listenOnly: 3, durationMs: 86_400_000 });

    // As the unit's ExecStartPre: the bundle the scaler serves.
    const bundle = await fetch(`${scaler.url}/dist/confscale-sidecar.mjs`);
    expect(bundle.status).toBe(200);
    const program = join(dir, "confscale-sidecar.mjs");
    await writeFile(program, await bundle.text());

    // As the worker's cloud-init writes them: sidecar.env from its template, the key and secret files root-only.
    const keyFile = join(dir, "sidecar-key.pem");
    const secretFile = join(dir, "bbb-secret");
    await writeFile(keyFile, credentials.signingKeyPem, { mode: 0o600 });
    await writeFile(secretFile, credentials.bbbSecret, { mode: 0o600 });
    const rendered = renderTemplate("worker/sidecar.env", {
      scalerUrl: scaler.url,
      fleet: "bbb",
      name: "bbb-1",
      env: "test",
      sidecarKeyId: credentials.keyId,
    });
    // Only what differs on this machine: where the files and the (emulated) BBB API are, and shorter periods.
    const envFile = join(dir, "sidecar.env");
    const hookFile = join(dir, "shut-down");
    await writeFile(
      envFile,
      rendered
        .replace(/^CONFSCALE_KEY_FILE=.*$/m, `CONFSCALE_KEY_FILE=${keyFile}`)
        .replace(/^CONFSCALE_BBB_SECRET_FILE=.*$/m, `CONFSCALE_BBB_SECRET_FILE=${secretFile}`)
        .replace(/^CONFSCALE_BBB_API_URL=.*$/m, `CONFSCALE_BBB_API_URL=${emulator.bbbUrl(server.id)}`)
        .concat(`CONFSCALE_STATS_INTERVAL_MS=300\nCONFSCALE_POLL_INTERVAL_MS=300\nCONFSCALE_SHUTDOWN_COMMAND=touch ${hookFile}\n`),
    );
    await chmod(envFile, 0o600);
    expect(rendered).toContain(`CONFSCALE_KEY_ID=${credentials.keyId}`);

    // node with the env file and nothing else of this process's environment: no master secret, no scaler secrets.
    sidecar = await startUntilReady(process.execPath, [`--env-file=${envFile}`, program], /"event":"started"/, {
      env: { PATH: process.env.PATH ?? "" },
    });

    await eventually(async () => (await instance())?.stats?.participants === 7, 30_000, "the sidecar's stats in the store");
    expect((await instance())?.stats).toMatchObject({ meetings: 1, participants: 7, videos: 2, listeners: 3, graceful_shutdown: false });

    await scaler.store.requestShutdown("bbb", ["bbb-1"], "test");
    await eventually(async () => (await instance())?.stats?.graceful_shutdown === true, 30_000, "the drain reported");
    // Draining with a meeting on: not shut down.
    expect(existsSync(hookFile)).toBe(false);

    emulator.cloud.endMeeting(server, meeting.meetingId);
    await eventually(async () => existsSync(hookFile), 30_000, "the shutdown hook run after the last meeting");
    const audit = await scaler.store.readAudit("bbb", { instanceId: "bbb-1" });
    expect(JSON.stringify(audit)).toMatch(/shutdown/i);
    expect(sidecar.output()).toContain('"event":"drain.finished"');
    expect(await readFile(program, "utf8")).not.toMatch(/^import .* from "(?!node:)/m);
  });
});
