import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisServer } from "../harness/redis.js";
import { KeyServer, TOKENS, call, groupBody, startScaler, type ScalerUnderTest } from "./scaler-fixture.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));

let redis: RedisServer;
let keys: KeyServer;
let scaler: ScalerUnderTest;

beforeAll(async () => {
  redis = await RedisServer.start();
  keys = await KeyServer.start();
  scaler = await startScaler(redis, keys.baseUrl);
  for (const id of ["exams", "cli"]) {
    expect((await call(scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody(id, "JVB") })).status).toBe(201);
  }
  const berlin = groupBody("berlin", "JVB");
  berlin.policy = { ...(berlin.policy as Record<string, unknown>), timeZone: "Europe/Berlin" };
  expect((await call(scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: berlin })).status).toBe(201);
});

afterAll(async () => {
  await scaler?.stop();
  await keys?.stop();
  await redis?.stop();
});

/** `confscale` run as its bin runs, against the scaler under test, with an operator token from the environment. */
function confscale(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(repo, "scaler/cli.ts"), ...args],
      {
        cwd: repo,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? "/root",
          CONFSCALE_URL: scaler.url,
          CONFSCALE_TOKEN: TOKENS.operator,
        },
        timeout: 60_000,
      },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr }),
    );
  });
}

async function auditKinds(fleet: string): Promise<{ kind: string; actor: string; details?: Record<string, unknown> }[]> {
  const { body } = await call(scaler.url, "GET", `/api/v1/groups/${fleet}/audit`, { token: TOKENS.viewer });
  return body.entries as { kind: string; actor: string; details?: Record<string, unknown> }[];
}

const inHours = (hours: number) => new Date(Date.now() + hours * 3_600_000).toISOString();

describe("dated windows through the API", () => {
  it("adds, lists and removes a dated window, audited with its actor", async () => {
    const window = { name: "exam", from: inHours(-1), to: inHours(2), min: 20 };
    const added = await call(scaler.url, "POST", "/api/v1/fleets/exams/windows", { token: TOKENS.operator, body: window });
    expect(added).toMatchObject({ status: 201, body: { name: "exam", min: 20 } });

    const listed = await call(scaler.url, "GET", "/api/v1/fleets/exams/windows", { token: TOKENS.viewer });
    expect(listed.body.windows).toEqual([{ name: "exam", from: window.from, to: window.to, min: 20 }]);
    expect(await scaler.store.schedules.datedWindows("exams")).toEqual([
      { name: "exam", from: Date.parse(window.from), to: Date.parse(window.to), min: 20 },
    ]);
    expect((await auditKinds("exams"))[0]).toMatchObject({ kind: "window.added", actor: "oscar", details: { name: "exam", min: 20 } });

    expect((await call(scaler.url, "DELETE", "/api/v1/fleets/exams/windows/exam", { token: TOKENS.operator })).status).toBe(204);
    expect((await call(scaler.url, "GET", "/api/v1/fleets/exams/windows", { token: TOKENS.viewer })).body.windows).toEqual([]);
    expect((await auditKinds("exams"))[0]).toMatchObject({ kind: "window.removed", actor: "oscar" });
    expect((await call(scaler.url, "DELETE", "/api/v1/fleets/exams/windows/exam", { token: TOKENS.operator })).status).toBe(404);
  });

  it("drops a window that has ended", async () => {
    const past = { name: "yesterday", from: inHours(-30), to: inHours(-26), min: 5 };
    expect((await call(scaler.url, "POST", "/api/v1/fleets/exams/windows", { token: TOKENS.operator, body: past })).status).toBe(201);
    expect((await call(scaler.url, "GET", "/api/v1/fleets/exams/windows", { token: TOKENS.viewer })).body.windows).toEqual([]);
  });

  it("answers bad windows with 400 naming the field, and checks the role and the fleet", async () => {
    const post = (body: unknown, token: string = TOKENS.operator, fleet = "exams") =>
      call(scaler.url, "POST", `/api/v1/fleets/${fleet}/windows`, { token, body });
    const good = { name: "w", from: inHours(1), to: inHours(2), min: 3 };
    const fieldOf = async (body: unknown) => ((await post(body)).body.issues as { field: string }[]).map((issue) => issue.field);
    expect(await fieldOf({ ...good, from: "tomorrow" })).toEqual(["from"]);
    expect(await fieldOf({ ...good, to: inHours(0) })).toEqual(["to"]);
    expect(await fieldOf({ ...good, min: -1 })).toEqual(["min"]);
    expect(await fieldOf({ ...good, name: "Exam Room" })).toEqual(["name"]);
    expect(await fieldOf({ ...good, extra: 1 })).toEqual(["extra"]);
    expect((await post(good, TOKENS.viewer)).status).toBe(403);
    expect((await post(good, "nope")).status).toBe(401);
    expect((await post(good, TOKENS.operator, "no-such-fleet")).status).toBe(404);
    expect((await call(scaler.url, "GET", "/api/v1/fleets/exams/windows", { token: TOKENS.viewer })).body.windows).toEqual([]);
  });
});

describe("schedules and their capability URLs", () => {
  it("creates a schedule whose secret URL adds its window without an API token, until it is deleted", async () => {
    const created = await call(scaler.url, "POST", "/api/v1/fleets/exams/schedules", {
      token: TOKENS.operator,
      body: { name: "exam-morning", min: 20, durationMinutes: 180 },
    });
    expect(created.status).toBe(201);
    expect(created.body.hookPath).toMatch(/^\/hooks\/[A-Za-z0-9_-]{43}$/);
    const hookUrl = `${scaler.url}${created.body.hookPath as string}`;
    const token = hookUrl.split("/").at(-1) ?? "";
    // Stored only as a digest: nothing in Redis holds the token.
    const dump = JSON.stringify(await Promise.all((await scaler.store.redis.keys("test:*")).map((key) => scaler.store.redis.dump(key))));
    expect(dump).not.toContain(token);
    const listed = await call(scaler.url, "GET", "/api/v1/fleets/exams/schedules", { token: TOKENS.viewer });
    expect(listed.body.schedules).toEqual([
      expect.objectContaining({ name: "exam-morning", min: 20, durationMinutes: 180, startsInMinutes: 0 }),
    ]);
    expect(JSON.stringify(listed.body)).not.toContain(token);

    const before = Date.now();
    const ran = await fetch(hookUrl, { method: "POST" });
    expect(ran.status).toBe(200);
    const windows = await scaler.store.schedules.datedWindows("exams");
    expect(windows).toHaveLength(1);
    expect(windows[0]).toMatchObject({ name: "exam-morning", min: 20 });
    expect(windows[0]!.from).toBeGreaterThanOrEqual(before);
    expect(windows[0]!.to - windows[0]!.from).toBe(180 * 60_000);

    const audit = await auditKinds("exams");
    expect(audit.slice(0, 3).map((entry) => [entry.kind, entry.actor])).toEqual([
      ["window.added", "hook:exam-morning"],
      ["hook.run", "hook:exam-morning"],
      ["schedule.created", "oscar"],
    ]);
    expect(JSON.stringify(audit)).not.toContain(token);

    expect((await call(scaler.url, "DELETE", "/api/v1/fleets/exams/schedules/exam-morning", { token: TOKENS.operator })).status).toBe(204);
    const revoked = await fetch(hookUrl, { method: "POST" });
    expect(revoked.status).toBe(404);
    expect(await revoked.json()).toMatchObject({ error: "hook_not_found", issues: [{ field: "token" }] });
    expect((await auditKinds("exams"))[0]).toMatchObject({ kind: "schedule.deleted", actor: "oscar" });
  });

  it("replacing a schedule revokes its old URL; a guessed token is refused", async () => {
    const create = () =>
      call(scaler.url, "POST", "/api/v1/fleets/exams/schedules", {
        token: TOKENS.operator,
        body: { name: "again", min: 2, durationMinutes: 10 },
      });
    const first = `${scaler.url}${(await create()).body.hookPath as string}`;
    const second = `${scaler.url}${(await create()).body.hookPath as string}`;
    expect(second).not.toBe(first);
    expect((await fetch(first, { method: "POST" })).status).toBe(404);
    expect((await fetch(second, { method: "POST" })).status).toBe(200);
    expect((await fetch(`${scaler.url}/hooks/${"A".repeat(43)}`, { method: "POST" })).status).toBe(404);
    expect((await call(scaler.url, "POST", "/hooks/short")).body).toMatchObject({ issues: [{ field: "token" }] });
  });

  it("a schedule by time of day opens its window at those times in the fleet's zone", async () => {
    const created = await call(scaler.url, "POST", "/api/v1/fleets/berlin/schedules", {
      token: TOKENS.operator,
      body: { name: "exam", min: 20, at: "10:30", until: "13:30" },
    });
    expect(created.status).toBe(201);
    expect((await fetch(`${scaler.url}${created.body.hookPath as string}`, { method: "POST" })).status).toBe(200);
    const [window] = await scaler.store.schedules.datedWindows("berlin");
    const wall = (ms: number) => new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Berlin", timeStyle: "short" }).format(ms);
    expect([wall(window!.from), wall(window!.to), window!.min]).toEqual(["10:30", "13:30", 20]);
    expect(window!.to).toBeGreaterThan(Date.now());
    expect((await auditKinds("berlin")).find((entry) => entry.kind === "schedule.created")).toMatchObject({ actor: "oscar" });
  });

  it("answers bad schedules with 400 naming the field", async () => {
    const post = (body: unknown) => call(scaler.url, "POST", "/api/v1/fleets/exams/schedules", { token: TOKENS.operator, body });
    const fields = async (body: unknown) => ((await post(body)).body.issues as { field: string }[]).map((issue) => issue.field);
    expect(await fields({ name: "x", min: 2 })).toEqual(["durationMinutes"]);
    expect(await fields({ name: "x", min: 2.5, durationMinutes: 10 })).toEqual(["min"]);
    expect(await fields({ name: "x", min: 2, at: "10:30" })).toEqual(["until"]);
    expect(await fields({ name: "x", min: 2, at: "10:30", until: "25:00" })).toEqual(["until"]);
    expect(await fields({ name: "x", min: 2, at: "10:30", until: "13:30", durationMinutes: 10 })).toEqual(["durationMinutes"]);
    expect(
      (
        await call(scaler.url, "POST", "/api/v1/fleets/exams/schedules", {
          token: TOKENS.viewer,
          body: { name: "x", min: 2, durationMinutes: 10 },
        })
      ).status,
    ).toBe(403);
  });
});

describe("confscale windows and schedules", () => {
  it("adds and lists a dated window, creates a schedule whose printed URL works, all audited", async () => {
    const from = inHours(1);
    const to = inHours(4);
    const added = await confscale(["windows", "add", "exam", "--from", from, "--to", to, "--min", "20", "--fleet", "cli"]);
    expect(added, added.stderr).toMatchObject({ code: 0, stderr: "" });
    expect(added.stdout.trim()).toBe(`window exam: at least 20 servers from ${from} to ${to}`);
    const listed = await confscale(["windows", "list", "--fleet", "cli", "--json"]);
    expect(JSON.parse(listed.stdout)).toEqual([{ name: "exam", from, to, min: 20 }]);

    const created = await confscale([
      "schedules",
      "create",
      "lecture",
      "--min",
      "6",
      "--minutes",
      "90",
      "--starts-in",
      "15",
      "--fleet",
      "cli",
    ]);
    expect(created, created.stderr).toMatchObject({ code: 0, stderr: "" });
    const hookUrl = /hook URL \(shown once, keep it secret\): (\S+)/.exec(created.stdout)?.[1];
    expect(hookUrl).toMatch(new RegExp(`^${scaler.url}/hooks/[A-Za-z0-9_-]{43}$`));
    expect((await fetch(hookUrl!, { method: "POST" })).status).toBe(200);
    const windows = await scaler.store.schedules.datedWindows("cli");
    expect(windows.map((window) => [window.name, window.min])).toEqual([
      ["lecture", 6],
      ["exam", 20],
    ]);

    const audit = await auditKinds("cli");
    expect(audit.slice(0, 4).map((entry) => [entry.kind, entry.actor])).toEqual([
      ["window.added", "hook:lecture"],
      ["hook.run", "hook:lecture"],
      ["schedule.created", "oscar"],
      ["window.added", "oscar"],
    ]);

    const clock = await confscale([
      "schedules",
      "create",
      "exam-day",
      "--min",
      "20",
      "--at",
      "10:30",
      "--until",
      "13:30",
      "--fleet",
      "cli",
    ]);
    expect(clock.stdout).toContain("schedule exam-day: 20 servers 10:30-13:30\n");
    const table = await confscale(["schedules", "list", "--fleet", "cli"]);
    expect(table.stdout).toMatch(/exam-day\s+20\s+20 servers 10:30-13:30/);
    expect(table.stdout).toMatch(/lecture\s+6\s+6 servers for 90 min, from 15 min after the call/);

    const removed = await confscale(["windows", "remove", "exam", "--fleet", "cli"]);
    expect(removed.stdout.trim()).toBe("window exam removed");
    const deleted = await confscale(["schedules", "delete", "lecture", "--fleet", "cli"]);
    expect(deleted.stdout.trim()).toBe("schedule lecture deleted; its hook URL no longer works");
    expect((await fetch(hookUrl!, { method: "POST" })).status).toBe(404);
  });

  it("names the field the scaler refuses, on one line", async () => {
    const bad = await confscale(["windows", "add", "exam", "--from", "monday", "--to", inHours(1), "--min", "3", "--fleet", "cli"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^confscale: the scaler answered 400: from: /)]);
  });
});
