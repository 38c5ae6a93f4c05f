import { exportSPKI, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jitsiWorkerKeyId } from "../../infra/workerCredentials.js";
import { RedisServer } from "../harness/redis.js";
import { KeyServer, TOKENS, call, groupBody, signSidecarToken, startScaler, type ScalerUnderTest } from "./scaler-fixture.js";

let redis: RedisServer;
let keys: KeyServer;
let scaler: ScalerUnderTest;

beforeAll(async () => {
  redis = await RedisServer.start();
  keys = await KeyServer.start();
  scaler = await startScaler(redis, keys.baseUrl, { keyPrefix: "jitsi-keys:" });
  for (const id of ["bridges", "other"])
    expect((await call(scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody(id, "JVB") })).status).toBe(201);
});

afterAll(async () => {
  await scaler?.stop();
  await keys?.stop();
  await redis?.stop();
});

/** A Jitsi worker's own RS256 key, with the key id its fleet stack exports (infra/jitsiSidecarKey.ts). */
async function workerKey(fleet: string, server: string) {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const publicKeyPem = await exportSPKI(publicKey);
  return { keyId: jitsiWorkerKeyId(fleet, server, publicKeyPem), publicKeyPem, privateKey };
}

const poll = (token: string, instanceId: string, group: string) =>
  call(scaler.url, "POST", "/sidecar/poll", { token, body: { instanceId, instanceType: "JVB", group } });

describe("a Jitsi worker's own sidecar key, published by its fleet", () => {
  it("lets the unmodified sidecar (no sub) speak for its own group and server only, and stops working once its worker is gone", async () => {
    const jvb1 = await workerKey("jitsi-bridges", "jitsi-bridges-1");
    await scaler.store.publishSidecarKeys("jitsi-bridges", [jvb1]);
    const token = await signSidecarToken({ kid: jvb1.keyId, privateKey: jvb1.privateKey });

    expect((await poll(token, "jitsi-bridges-1", "bridges")).status).toBe(200);
    expect(await poll(token, "jitsi-bridges-2", "bridges")).toMatchObject({ status: 403, body: { issues: [{ field: "instanceId" }] } });
    expect(await poll(token, "jitsi-bridges-1", "other")).toMatchObject({ status: 403, body: { issues: [{ field: "group" }] } });
    // Never fetched from the key server: the scaler's own store holds the fleet's keys.
    expect(keys.fetchesOf(jvb1.keyId)).toBe(0);

    // The worker is destroyed: its fleet publishes its keys without it; a fresh scaler (no cache) refuses the token.
    await scaler.store.publishSidecarKeys("jitsi-bridges", []);
    const fresh = await startScaler(redis, keys.baseUrl, { keyPrefix: "jitsi-keys:" });
    try {
      const refused = await call(fresh.url, "POST", "/sidecar/poll", {
        token,
        body: { instanceId: "jitsi-bridges-1", instanceType: "JVB", group: "bridges" },
      });
      expect(refused.status).toBe(401);
    } finally {
      await fresh.stop();
    }
  });

  it("refuses a token signed by another worker's key under this worker's key id", async () => {
    const jvb3 = await workerKey("jitsi-bridges", "jitsi-bridges-3");
    const impostor = await workerKey("jitsi-bridges", "jitsi-bridges-4");
    await scaler.store.publishSidecarKeys("jitsi-bridges", [jvb3, impostor]);
    const forged = await signSidecarToken({ kid: jvb3.keyId, privateKey: impostor.privateKey });
    expect((await poll(forged, "jitsi-bridges-3", "bridges")).status).toBe(401);
  });
});
