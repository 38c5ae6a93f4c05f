import { createPrivateKey } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { workerCredentials } from "../../infra/workerCredentials.js";
import { keyFileName } from "../../scaler/api/asap.js";
import { RedisServer } from "../harness/redis.js";
import { KeyServer, TOKENS, call, groupBody, signSidecarToken, startScaler, type ScalerUnderTest } from "./scaler-fixture.js";

const MASTER = "worker-master-secret-0123456789abcdef0123456789";

let redis: RedisServer;
let keys: KeyServer;
let scaler: ScalerUnderTest;
/** A second scaler process's view on the same Redis, as a check-in worker is. */
let other: ScalerUnderTest;

beforeAll(async () => {
  // The scaler derives worker keys from the fleet's master secret in its environment (this file's own process).
  process.env.CONFSCALE_BBB_SECRET = MASTER;
  redis = await RedisServer.start();
  keys = await KeyServer.start();
  scaler = await startScaler(redis, keys.baseUrl, { keyPrefix: "tokens:" });
  other = await startScaler(redis, keys.baseUrl, { keyPrefix: "tokens:" });
  for (const [id, type] of [
    ["bbb", "bbb"],
    ["bridges", "JVB"],
    ["groupb", "JVB"],
    ["jvbs", "bbb"],
  ]) {
    expect((await call(scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody(id!, type!) })).status).toBe(201);
  }
});

afterAll(async () => {
  await other?.stop();
  await scaler?.stop();
  await keys?.stop();
  await redis?.stop();
});

/** A token as the confscale worker sidecar signs it (sidecar/token.ts), with claims to vary. */
async function workerToken(server: string, claims: { issuedAt?: number; expiresAt?: number; fleet?: string } = {}): Promise<string> {
  const fleet = claims.fleet ?? "bbb";
  const credentials = workerCredentials(MASTER, fleet, server);
  const now = Math.floor(Date.now() / 1000);
  const issuedAt = claims.issuedAt ?? now;
  return new SignJWT({})
    .setProtectedHeader({ alg: "EdDSA", kid: credentials.keyId })
    .setIssuer("jitsi-autoscaler-sidecar")
    .setAudience("jitsi-autoscaler")
    .setSubject(`${fleet}/${server}`)
    .setIssuedAt(issuedAt)
    .setExpirationTime(claims.expiresAt ?? issuedAt + 3600)
    .sign(createPrivateKey(credentials.signingKeyPem));
}

const details = (instanceId: string, group = "bbb") => ({ instanceId, instanceType: "bbb", group });
const stats = (instanceId: string, group = "bbb") => ({
  instance: details(instanceId, group),
  stats: { meetings: 1, participants: 5, videos: 1, listeners: 2, stress_level: 0.2 },
  timestamp: Date.now(),
});

describe("confscale worker tokens", () => {
  it("check in with a key the scaler derives itself, without asking the key server", async () => {
    const fetchesBefore = [...keys.fetches.values()].reduce((sum, count) => sum + count, 0);
    const token = await workerToken("bbb-1");
    expect(await call(scaler.url, "POST", "/sidecar/stats", { token, body: stats("bbb-1") })).toEqual({
      status: 200,
      body: { save: "OK" },
    });
    expect((await call(scaler.url, "POST", "/sidecar/poll", { token, body: details("bbb-1") })).status).toBe(200);
    expect([...keys.fetches.values()].reduce((sum, count) => sum + count, 0)).toBe(fetchesBefore);
    expect(await scaler.store.redis.exists(scaler.store.keys.instance("bbb", "bbb-1"))).toBe(1);
  });

  it("refuses a worker's token for another worker and for another group with 403 naming the field, and stores nothing", async () => {
    const token = await workerToken("bbb-1");
    const asOther = await call(scaler.url, "POST", "/sidecar/poll", { token, body: details("bbb-2") });
    expect(asOther.status).toBe(403);
    expect(asOther.body).toMatchObject({ error: "forbidden", issues: [{ field: "instanceId" }] });
    const statsAsOther = await call(scaler.url, "POST", "/sidecar/stats", { token, body: stats("bbb-2") });
    expect(statsAsOther.body).toMatchObject({ error: "forbidden", issues: [{ field: "instance.instanceId" }] });
    const otherGroup = await call(scaler.url, "POST", "/sidecar/shutdown", { token, body: details("bbb-1", "jvbs") });
    expect(otherGroup.status).toBe(403);
    expect(otherGroup.body).toMatchObject({ error: "forbidden", issues: [{ field: "group" }] });
    expect(await scaler.store.redis.exists(scaler.store.keys.instance("bbb", "bbb-2"))).toBe(0);
    expect(await scaler.store.redis.exists(scaler.store.keys.instance("jvbs", "bbb-1"))).toBe(0);
  });

  it("refuses expired, future-dated and over-long tokens", async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, string, string][] = [
      ["expired", await workerToken("bbb-1", { issuedAt: now - 7200, expiresAt: now - 3600 }), "expired"],
      ["issued a day ahead", await workerToken("bbb-1", { issuedAt: now + 86_400 }), "iat"],
      ["ten years long", await workerToken("bbb-1", { issuedAt: now, expiresAt: now + 10 * 365 * 86_400 }), "longer than 3600"],
      ["two hours long", await workerToken("bbb-1", { issuedAt: now - 60, expiresAt: now + 7140 }), "longer than 3600"],
    ];
    for (const [what, token, reason] of cases) {
      const reply = await call(scaler.url, "POST", "/sidecar/poll", { token, body: details("bbb-1") });
      expect(reply.status, what).toBe(401);
      expect(String(reply.body.message), what).toContain(reason);
    }
  });

  it("refuses a key revoked on one scaler process at once, on every process, and takes it back when restored", async () => {
    const token = await workerToken("bbb-3");
    expect((await call(other.url, "POST", "/sidecar/poll", { token, body: details("bbb-3") })).status).toBe(200);
    const kid = "confscale-worker/bbb/bbb-3";
    expect((await call(scaler.url, "POST", "/api/v1/sidecar-keys/revoked", { token: TOKENS.operator, body: { kid } })).status).toBe(403);
    expect((await call(scaler.url, "POST", "/api/v1/sidecar-keys/revoked", { token: TOKENS.admin, body: { kid } })).status).toBe(201);
    for (const target of [scaler, other]) {
      const refused = await call(target.url, "POST", "/sidecar/poll", { token, body: details("bbb-3") });
      expect(refused).toMatchObject({ status: 401, body: { message: "signing key revoked" } });
    }
    expect((await call(scaler.url, "GET", "/api/v1/sidecar-keys/revoked", { token: TOKENS.viewer })).body).toEqual({ revoked: [kid] });
    // Other workers are untouched.
    expect((await call(other.url, "POST", "/sidecar/poll", { token: await workerToken("bbb-4"), body: details("bbb-4") })).status).toBe(
      200,
    );
    await call(scaler.url, "POST", "/api/v1/sidecar-keys/restored", { token: TOKENS.admin, body: { kid } });
    expect((await call(other.url, "POST", "/sidecar/poll", { token, body: details("bbb-3") })).status).toBe(200);
  });

  it("serves each worker's public key at /keys/<sha256 hex of kid>.pem only for workers of its fleets", async () => {
    const fleetScaler = await startScaler(redis, keys.baseUrl, {
      keyPrefix: "tokens-keys:",
      fleets: [
        {
          name: "bbb",
          status: () => ({ fleet: "bbb", starting: true, servers: [], lastPeriod: null, sanity: null }),
          scrapeTargets: () => [{ targets: ["192.0.2.1:9100"], labels: { instance: "192.0.2.1:9100", server: "bbb-1" } }],
          operate: async () => ({ server: "", phase: "" }),
          preview: async () => ({}),
          reconcile: async () => ({}),
        },
      ],
    });
    try {
      const pem = await fetch(`${fleetScaler.url}/keys/${keyFileName("confscale-worker/bbb/bbb-1")}`);
      expect(pem.status).toBe(200);
      const text = await pem.text();
      expect(text).toContain("BEGIN PUBLIC KEY");
      expect(text).not.toContain("PRIVATE");
      expect((await fetch(`${fleetScaler.url}/keys/${keyFileName("confscale-worker/bbb/bbb-9")}`)).status).toBe(404);
      expect((await fetch(`${fleetScaler.url}/keys/not-a-hash.pem`)).status).toBe(400);
    } finally {
      await fleetScaler.stop();
    }
  });
});

describe("jitsi sidecar tokens with a scope", () => {
  it("speak only for the group (and instance) their sub names", async () => {
    const key = await keys.newKey("jitsi/bridges");
    const now = Math.floor(Date.now() / 1000);
    const groupToken = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid: key.kid })
      .setIssuer("jitsi-autoscaler-sidecar")
      .setAudience("jitsi-autoscaler")
      .setSubject("bridges/*")
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(key.privateKey);
    const jvb = (instanceId: string, group: string) => ({ instanceId, instanceType: "JVB", group });
    expect((await call(scaler.url, "POST", "/sidecar/poll", { token: groupToken, body: jvb("jvb-1", "bridges") })).status).toBe(200);
    expect((await call(scaler.url, "POST", "/sidecar/poll", { token: groupToken, body: jvb("jvb-2", "bridges") })).status).toBe(200);
    const elsewhere = await call(scaler.url, "POST", "/sidecar/poll", { token: groupToken, body: jvb("jvb-1", "groupb") });
    expect(elsewhere).toMatchObject({ status: 403, body: { issues: [{ field: "group" }] } });
  });

  it("fetch unknown key ids at a bounded rate: 200 made-up key ids cause at most a minute's budget of fetches", async () => {
    const before = [...keys.fetches.values()].reduce((sum, count) => sum + count, 0);
    // One private key under 200 key ids the key server does not know.
    const { privateKey } = await keys.newKey("made-up", false);
    const replies: { status: number }[] = [];
    const started = Date.now();
    for (let index = 0; index < 200; index += 1) {
      replies.push(
        await call(scaler.url, "POST", "/sidecar/poll", {
          token: await signSidecarToken({ kid: `made-up-${index}`, privateKey }),
          body: { instanceId: "jvb-x", instanceType: "JVB", group: "bridges" },
        }),
      );
    }
    expect(replies.filter((reply) => reply.status !== 401)).toEqual([]);
    const fetched = [...keys.fetches.values()].reduce((sum, count) => sum + count, 0) - before;
    // sidecar.keyFetchesPerMinute: 60 by default (a few spent by the tests above), refilled at one a second while the
    // 200 requests run: a slow machine earns a fetch for each second they take, never one per key id.
    const refilled = Math.ceil((Date.now() - started) / 1000);
    expect(fetched).toBeLessThanOrEqual(60 + refilled);
    expect(fetched).toBeGreaterThan(0);
  });
});
