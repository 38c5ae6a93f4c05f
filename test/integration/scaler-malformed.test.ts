import { beforeAll, describe, expect, it } from "vitest";
import { TOKENS, call, groupBody, useSidecarScaler } from "./scaler-fixture.js";

const rig = useSidecarScaler("sidecar-malformed", [
  ["bridges", "JVB"],
  ["recorders", "jibri"],
  ["bbb", "bbb"],
]);

beforeAll(async () => {
  expect(
    (
      await call(rig.scaler.url, "POST", "/sidecar/poll", {
        token: rig.token,
        body: { instanceId: "jvb-1", instanceType: "JVB", group: "bridges" },
      })
    ).status,
  ).toBe(200);
});

/**
 * Every key with its value: equal snapshots mean Redis holds exactly the same state. Hashes are compared by their
 * sorted fields, because a large hash's serialized field order changes as Redis rehashes it, without any write.
 */
async function snapshot(): Promise<Map<string, string>> {
  const client = rig.scaler.store.redis;
  const names = (await client.keys("*")).sort();
  const values = await Promise.all(
    names.map(async (name) =>
      (await client.type(name)) === "hash"
        ? JSON.stringify(Object.entries(await client.hgetall(name)).sort(([a], [b]) => a.localeCompare(b)))
        : ((await client.dumpBuffer(name))?.toString("base64") ?? ""),
    ),
  );
  return new Map(names.map((name, index) => [name, values[index] ?? ""]));
}

const jvb = { instanceId: "jvb-1", instanceType: "JVB", group: "bridges" };
const jibri = { instanceId: "jibri-1", instanceType: "jibri", group: "recorders" };
const bbb = { instanceId: "bbb-1", instanceType: "bbb", group: "bbb" };
const now = Date.now();

interface BadRequest {
  what: string;
  method?: string;
  path: string;
  body?: unknown;
  rawBody?: string;
  status: number;
  field: string;
}

const SIDECAR: BadRequest[] = [
  { what: "non-JSON body", path: "/sidecar/poll", rawBody: "{instanceId: jvb-1", status: 400, field: "body" },
  { what: "empty body", path: "/sidecar/poll", rawBody: "", status: 400, field: "body" },
  { what: "JSON string instead of an object", path: "/sidecar/shutdown", rawBody: '"hello"', status: 400, field: "body" },
  { what: "JSON array instead of a report", path: "/sidecar/status", body: [jvb], status: 400, field: "body" },
  { what: "missing instanceId", path: "/sidecar/poll", body: { instanceType: "JVB", group: "bridges" }, status: 400, field: "instanceId" },
  { what: "instanceId of the wrong type", path: "/sidecar/poll", body: { ...jvb, instanceId: 42 }, status: 400, field: "instanceId" },
  {
    what: "instanceId that would escape a key",
    path: "/sidecar/poll",
    body: { ...jvb, instanceId: "../../x y" },
    status: 400,
    field: "instanceId",
  },
  // Unknown instance types and groups are accepted as jitsi-autoscaler accepts them (sidecar-tolerance.test.ts); names
  // that cannot be one are not.
  {
    what: "malformed instance type",
    path: "/sidecar/poll",
    body: { ...jvb, instanceType: "toaster oven" },
    status: 400,
    field: "instanceType",
  },
  { what: "malformed group", path: "/sidecar/poll", body: { ...jvb, group: "no/where" }, status: 400, field: "group" },
  {
    what: "malformed group in a report",
    path: "/sidecar/stats",
    body: { instance: { ...jvb, group: "no where" }, stats: {}, timestamp: now },
    status: 400,
    field: "instance.group",
  },
  {
    what: "report without instance",
    path: "/sidecar/status",
    body: { stats: { stress_level: 0.1 }, timestamp: now },
    status: 400,
    field: "instance",
  },
  {
    what: "report with missing instance.instanceId",
    path: "/sidecar/stats",
    body: { instance: { instanceType: "JVB", group: "bridges" }, stats: {}, timestamp: now },
    status: 400,
    field: "instance.instanceId",
  },
  {
    what: "stats that are a list",
    path: "/sidecar/status",
    body: { instance: jvb, stats: [0.5], timestamp: now },
    status: 400,
    field: "stats",
  },
  {
    what: "negative stress level",
    path: "/sidecar/status",
    body: { instance: jvb, stats: { stress_level: -0.2 }, timestamp: now },
    status: 400,
    field: "stats.stress_level",
  },
  {
    what: "negative participant count",
    path: "/sidecar/stats",
    body: { instance: jvb, stats: { participants: -3 }, timestamp: now },
    status: 400,
    field: "stats.participants",
  },
  {
    what: "participant count as text",
    path: "/sidecar/stats",
    body: { instance: jvb, stats: { participants: "many" }, timestamp: now },
    status: 400,
    field: "stats.participants",
  },
  {
    what: "unknown jibri busy status",
    path: "/sidecar/status",
    body: { instance: jibri, stats: { status: { busyStatus: "SLEEPING" } }, timestamp: now },
    status: 400,
    field: "stats.status.busyStatus",
  },
  {
    what: "negative BBB meeting count",
    path: "/sidecar/stats",
    body: { instance: bbb, stats: { meetings: -1 }, timestamp: now },
    status: 400,
    field: "stats.meetings",
  },
  {
    what: "timestamp as text",
    path: "/sidecar/stats",
    body: { instance: jvb, stats: {}, timestamp: "yesterday" },
    status: 400,
    field: "timestamp",
  },
  {
    what: "shutdownStatus as text",
    path: "/sidecar/status",
    body: { instance: jvb, stats: {}, timestamp: now, shutdownStatus: "yes" },
    status: 400,
    field: "shutdownStatus",
  },
  {
    what: "huge payload",
    path: "/sidecar/stats",
    body: { instance: jvb, stats: { padding: "x".repeat(100 * 1024) }, timestamp: now },
    status: 413,
    field: "body",
  },
];

const API: BadRequest[] = [
  {
    what: "group with min above max",
    path: "/api/v1/groups",
    body: groupBody("g1", "JVB", {
      policy: { min: 4, max: 2, baseline: 2, defaultSize: { cores: 2, ramGb: 8 }, maxSize: { cores: 4, ramGb: 16 } },
    }),
    status: 400,
    field: "policy.min",
  },
  {
    what: "group with desired above max",
    path: "/api/v1/groups",
    body: groupBody("g1", "JVB", { desired: 9 }),
    status: 400,
    field: "desired",
  },
  {
    what: "group with negative desired",
    path: "/api/v1/groups",
    body: groupBody("g1", "JVB", { desired: -1 }),
    status: 400,
    field: "desired",
  },
  {
    what: "group without instance type",
    path: "/api/v1/groups",
    body: { ...groupBody("g1", "JVB"), instanceType: undefined },
    status: 400,
    field: "instanceType",
  },
  {
    what: "group with an unknown field",
    path: "/api/v1/groups",
    body: groupBody("g1", "JVB", { colour: "blue" }),
    status: 400,
    field: "colour",
  },
  { what: "group id with spaces", path: "/api/v1/groups", body: groupBody("Has Spaces", "JVB"), status: 400, field: "id" },
  { what: "group that exists", path: "/api/v1/groups", body: groupBody("bridges", "JVB"), status: 409, field: "id" },
  { what: "group body that is not JSON", path: "/api/v1/groups", rawBody: "id=g1", status: 400, field: "body" },
  {
    what: "huge group body",
    path: "/api/v1/groups",
    body: groupBody("g1", "JVB", { environment: "x".repeat(2 * 1024 * 1024) }),
    status: 413,
    field: "body",
  },
  {
    what: "replace an unknown group",
    method: "PUT",
    path: "/api/v1/groups/unknown-group",
    body: (({ id: _id, ...rest }) => rest)(groupBody("x", "JVB")),
    status: 404,
    field: "id",
  },
  { what: "desired as text", method: "PUT", path: "/api/v1/groups/bridges/desired", body: { desired: "3" }, status: 400, field: "desired" },
  {
    what: "desired outside [min, max]",
    method: "PUT",
    path: "/api/v1/groups/bridges/desired",
    body: { desired: 99 },
    status: 400,
    field: "desired",
  },
  {
    what: "desired of an unknown group",
    method: "PUT",
    path: "/api/v1/groups/unknown-group/desired",
    body: { desired: 2 },
    status: 404,
    field: "id",
  },
  { what: "full scaling sideways", path: "/api/v1/groups/full-scaling", body: { direction: "sideways" }, status: 400, field: "direction" },
  { what: "shutdown of no instances", path: "/api/v1/groups/bridges/shutdown", body: { instances: [] }, status: 400, field: "instances" },
  {
    what: "reconfigure with instances as text",
    path: "/api/v1/groups/bridges/reconfigure",
    body: { instances: "all" },
    status: 400,
    field: "instances",
  },
  { what: "audit with a negative limit", method: "GET", path: "/api/v1/groups/bridges/audit?limit=-5", status: 400, field: "limit" },
];

describe("malformed input", () => {
  it("has at least twenty cases", () => {
    expect(SIDECAR.length + API.length).toBeGreaterThanOrEqual(20);
  });

  for (const bad of [...SIDECAR, ...API]) {
    it(`answers ${bad.status} to ${bad.what}, naming ${bad.field}, and changes nothing`, async () => {
      const before = await snapshot();
      const token = bad.path.startsWith("/sidecar") ? rig.token : TOKENS.admin;
      const reply = await call(rig.scaler.url, bad.method ?? "POST", bad.path, { token, body: bad.body, rawBody: bad.rawBody });
      expect(reply.status, JSON.stringify(reply.body)).toBe(bad.status);
      expect(typeof reply.body.message).toBe("string");
      expect(String(reply.body.message).length).toBeGreaterThan(5);
      const fields = (reply.body.issues as { field: string }[] | undefined)?.map((issue) => issue.field) ?? [];
      expect(fields, JSON.stringify(reply.body)).toContain(bad.field);
      expect(await snapshot()).toEqual(before);
    });
  }
});
