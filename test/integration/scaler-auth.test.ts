import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetServerNotFoundError, ServerActionConflictError } from "../../scaler/fleet/operator.js";
import type { FleetView } from "../../scaler/app.js";
import { FleetStartingError } from "../../scaler/loop/controller.js";
import { RedisServer } from "../harness/redis.js";
import {
  KeyServer,
  TOKENS,
  call,
  groupBody,
  signSidecarToken,
  startScaler,
  type ScalerUnderTest,
  type SigningKey,
} from "./scaler-fixture.js";

let redis: RedisServer;
let keys: KeyServer;
let scaler: ScalerUnderTest;
let key: SigningKey;
let sidecarToken: string;
/** Operator calls that reached the fleet; its behaviour behind the API is the e2e tests' part. */
const fleetCalls: string[] = [];
/** While set, the fleet answers operator calls as one waiting for its lease does. */
let fleetStarting = false;
const fleet: FleetView = {
  name: "bbb",
  status: () => ({ fleet: "bbb", starting: false, servers: [], lastPeriod: null, sanity: null }),
  scrapeTargets: () => [],
  operate: async (server, action, actor) => {
    if (fleetStarting) throw new FleetStartingError("bbb");
    if (server === "bbb-gone") throw new FleetServerNotFoundError("bbb", server);
    if (server === "bbb-busy") throw new ServerActionConflictError(server, action, "a resize of it is under way");
    fleetCalls.push(`${action} ${server} by ${actor}`);
    return { server, phase: action === "enable" ? "active" : "held" };
  },
  preview: async () => {
    if (fleetStarting) throw new FleetStartingError("bbb");
    return { same: 1 };
  },
  reconcile: async () => ({ fleet: "bbb" }),
};

beforeAll(async () => {
  redis = await RedisServer.start();
  keys = await KeyServer.start();
  scaler = await startScaler(redis, keys.baseUrl, { fleets: [fleet] });
  key = await keys.newKey("sidecar-1");
  sidecarToken = await signSidecarToken(key);
  expect((await call(scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("roles", "JVB") })).status).toBe(201);
});

afterAll(async () => {
  await scaler?.stop();
  await keys?.stop();
  await redis?.stop();
});

const instance = { instanceId: "jvb-auth", instanceType: "JVB", group: "roles" };
const poll = (token: string | undefined) => call(scaler.url, "POST", "/sidecar/poll", { token, body: instance });

describe("sidecar ASAP tokens", () => {
  it("accepts a token signed by a published key", async () => {
    expect(await poll(sidecarToken)).toEqual({ status: 200, body: { shutdown: false, reconfigure: null } });
  });

  it("refuses bad tokens with 401 and records nothing", async () => {
    const now = Math.floor(Date.now() / 1000);
    const unpublished = await keys.newKey("not-published", false);
    const impostor = { kid: key.kid, privateKey: (await keys.newKey("other", false)).privateKey };
    const cases: [string, string | undefined, string][] = [
      ["no token", undefined, "Bearer"],
      ["a key the key server does not know", await signSidecarToken(unpublished), "unknown signing key"],
      ["a known kid signed by another key", await signSidecarToken(impostor), "signature"],
      ["an expired token", await signSidecarToken(key, { issuedAt: now - 7200, expiresAt: now - 3600 }), "expired"],
      ["a wrong audience", await signSidecarToken(key, { audience: "someone-else" }), "aud"],
      ["an issuer not accepted", await signSidecarToken(key, { issuer: "mallory" }), "iss"],
      [
        "an HS256 token",
        await new SignJWT({})
          .setProtectedHeader({ alg: "HS256", kid: key.kid })
          .setIssuer("jitsi-autoscaler-sidecar")
          .setAudience("jitsi-autoscaler")
          .setIssuedAt()
          .setExpirationTime("1h")
          .sign(new TextEncoder().encode("x".repeat(32))),
        "RS256",
      ],
      ["a control-plane admin token", TOKENS.admin, "malformed"],
      ["garbage", "not.a.jwt", "malformed"],
    ];
    const refusedBefore = await authRefusals();
    for (const [what, token, reason] of cases) {
      const reply = await call(scaler.url, "POST", "/sidecar/poll", { token, body: { ...instance, instanceId: "jvb-refused" } });
      expect(reply.status, what).toBe(401);
      expect(reply.body.error, what).toBe("unauthorized");
      expect(String(reply.body.message), what).toContain(reason);
    }
    expect(await scaler.store.redis.exists(scaler.store.keys.instance("roles", "jvb-refused"))).toBe(0);
    // Each refusal is counted once, by its reason.
    expect((await authRefusals()) - refusedBefore).toBe(cases.length);
  });
});

/** The refused poll check-ins /metrics counts with reason "auth". */
async function authRefusals(): Promise<number> {
  const text = await (await fetch(`${scaler.url}/metrics`)).text();
  return Number(/^confscale_sidecar_checkins_refused_total\{kind="poll",reason="auth"\} (\d+)$/m.exec(text)?.[1] ?? "0");
}

describe("sidecar key cache", () => {
  it("fetches a key once for many tokens and check-ins, and remembers a miss", async () => {
    const shared = await keys.newKey("shared-by-a-fleet");
    for (let index = 0; index < 3; index += 1) {
      const token = await signSidecarToken(shared, { issuedAt: Math.floor(Date.now() / 1000) - index });
      for (let round = 0; round < 3; round += 1) expect((await poll(token)).status).toBe(200);
    }
    expect(keys.fetchesOf("shared-by-a-fleet")).toBe(1);

    const stranger = await signSidecarToken(await keys.newKey("never-published", false));
    for (let round = 0; round < 5; round += 1) expect((await poll(stranger)).status).toBe(401);
    expect(keys.fetchesOf("never-published")).toBe(1);
  });
});

type Role = "viewer" | "operator" | "admin";
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const spec = () => {
  const { id: _id, ...rest } = groupBody("roles", "JVB");
  return rest;
};

/** Every control-plane route with the least role that may call it. */
const ROUTES: { method: string; path: string; role: Role; body?: unknown }[] = [
  { method: "GET", path: "/groups", role: "viewer" },
  { method: "POST", path: "/groups", role: "admin", body: groupBody("created-by-role-test", "JVB") },
  { method: "POST", path: "/groups/full-scaling", role: "operator", body: { direction: "up" } },
  { method: "GET", path: "/groups/roles", role: "viewer" },
  { method: "PUT", path: "/groups/roles", role: "admin", body: spec() },
  { method: "DELETE", path: "/groups/absent", role: "admin" },
  { method: "PUT", path: "/groups/roles/desired", role: "operator", body: { desired: 3 } },
  { method: "POST", path: "/groups/roles/pause", role: "operator" },
  { method: "POST", path: "/groups/roles/resume", role: "operator" },
  { method: "POST", path: "/groups/roles/reconfigure", role: "operator", body: {} },
  { method: "POST", path: "/groups/roles/shutdown", role: "operator", body: { instances: ["jvb-auth"] } },
  { method: "GET", path: "/groups/roles/report", role: "viewer" },
  { method: "GET", path: "/groups/roles/stress", role: "viewer" },
  { method: "GET", path: "/groups/roles/audit", role: "viewer" },
  { method: "GET", path: "/groups/roles/instances/jvb-auth/audit", role: "viewer" },
  { method: "GET", path: "/pause", role: "viewer" },
  { method: "POST", path: "/pause", role: "operator" },
  { method: "POST", path: "/resume", role: "operator" },
  { method: "GET", path: "/fleets", role: "viewer" },
  { method: "GET", path: "/fleets/bbb", role: "viewer" },
  { method: "POST", path: "/fleets/bbb/servers/bbb-1/cordon", role: "operator" },
  { method: "POST", path: "/fleets/bbb/servers/bbb-1/enable", role: "operator" },
  { method: "POST", path: "/fleets/bbb/servers/bbb-1/panic", role: "operator" },
  { method: "POST", path: "/fleets/bbb/preview", role: "operator" },
  { method: "POST", path: "/fleets/bbb/reconcile", role: "operator" },
];

describe("control-plane roles", () => {
  it("refuses every route without a token, with an unknown token and with a sidecar token", async () => {
    for (const route of ROUTES) {
      for (const token of [undefined, "unknown-token-0123456789abcdef0123456789", sidecarToken]) {
        const reply = await call(scaler.url, route.method, `/api/v1${route.path}`, { token, body: route.body });
        expect(reply.status, `${route.method} ${route.path} with ${token === sidecarToken ? "a sidecar token" : String(token)}`).toBe(401);
      }
    }
  });

  it("enforces the least role of every route", async () => {
    for (const route of ROUTES) {
      for (const role of ["viewer", "operator", "admin"] as const) {
        const reply = await call(scaler.url, route.method, `/api/v1${route.path}`, { token: TOKENS[role], body: route.body });
        const what = `${route.method} ${route.path} as ${role}: ${JSON.stringify(reply.body)}`;
        if (RANK[role] < RANK[route.role]) {
          expect(reply.status, what).toBe(403);
          expect(String(reply.body.message), what).toContain(`requires the ${route.role} role`);
        } else {
          expect([401, 403], what).not.toContain(reply.status);
          expect(reply.status, what).toBeLessThan(500);
        }
      }
    }
  });

  it("lets no refused call reach a fleet", async () => {
    fleetCalls.length = 0;
    for (const token of [undefined, TOKENS.viewer, sidecarToken]) {
      for (const action of ["cordon", "enable", "panic"])
        await call(scaler.url, "POST", `/api/v1/fleets/bbb/servers/bbb-1/${action}`, { token });
    }
    expect(fleetCalls).toEqual([]);
    expect((await call(scaler.url, "POST", "/api/v1/fleets/bbb/servers/bbb-1/cordon", { token: TOKENS.operator })).status).toBe(200);
    expect(fleetCalls).toEqual(["cordon bbb-1 by oscar"]);
  });

  it("answers bad fleet calls with 4xx naming the field", async () => {
    const cases: [string, number, string][] = [
      ["/fleets/nope", 404, "fleet"],
      ["/fleets/bbb/servers/bbb-1/reboot", 400, "action"],
      ["/fleets/bbb/servers/BBB_1/cordon", 400, "server"],
      ["/fleets/Bad!/preview", 400, "fleet"],
      // A fleet is named by its group's id, which may start with a digit: a well-formed name this scaler does not drive.
      ["/fleets/9b/preview", 404, "fleet"],
    ];
    for (const [path, status, field] of cases) {
      const reply = await call(scaler.url, path.endsWith("nope") ? "GET" : "POST", `/api/v1${path}`, { token: TOKENS.operator });
      expect(reply.status, path).toBe(status);
      expect((reply.body.issues as { field: string }[])[0]?.field, path).toBe(field);
    }
  });

  it("answers what the fleet refuses with the status it calls for: unknown server 404, conflict 409, starting 503", async () => {
    const gone = await call(scaler.url, "POST", "/api/v1/fleets/bbb/servers/bbb-gone/cordon", { token: TOKENS.operator });
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({ error: "server_not_found", issues: [{ field: "server" }] });
    const busy = await call(scaler.url, "POST", "/api/v1/fleets/bbb/servers/bbb-busy/enable", { token: TOKENS.operator });
    expect(busy.status).toBe(409);
    expect(busy.body).toMatchObject({ error: "conflict", message: "cannot enable bbb-busy: a resize of it is under way" });
    fleetStarting = true;
    try {
      for (const path of ["/api/v1/fleets/bbb/preview", "/api/v1/fleets/bbb/servers/bbb-1/cordon"]) {
        const starting = await call(scaler.url, "POST", path, { token: TOKENS.operator });
        expect(starting.status, path).toBe(503);
        expect(starting.body, path).toMatchObject({ error: "starting", message: expect.stringContaining("retry shortly") });
      }
      // Reading the status does not wait for the fleet.
      expect((await call(scaler.url, "GET", "/api/v1/fleets/bbb", { token: TOKENS.viewer })).status).toBe(200);
    } finally {
      fleetStarting = false;
    }
  });

  it("changes nothing when a role is refused", async () => {
    const before = (await call(scaler.url, "GET", "/api/v1/groups/roles", { token: TOKENS.viewer })).body;
    expect((await call(scaler.url, "PUT", "/api/v1/groups/roles/desired", { token: TOKENS.viewer, body: { desired: 5 } })).status).toBe(
      403,
    );
    expect((await call(scaler.url, "DELETE", "/api/v1/groups/roles", { token: TOKENS.operator })).status).toBe(403);
    expect((await call(scaler.url, "GET", "/api/v1/groups/roles", { token: TOKENS.viewer })).body).toEqual(before);
  });
});
