import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { Emulator } from "../emulator/emulator.js";

const clockSnapshot = z.object({ now: z.number(), mode: z.object({ kind: z.enum(["real", "manual"]) }).loose() });
const state = z.object({
  servers: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      vmState: z.string(),
      state: z.string(),
      serving: z.boolean(),
      meetings: z.array(z.object({ participants: z.number() })),
    }),
  ),
});

describe("control API over HTTP: time, state, direct servers", () => {
  let emulator: Emulator;
  const control = async (method: string, path: string, body?: unknown) =>
    fetch(`${emulator.url}/_control${path}`, {
      method,
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const cloud = async (method: string, path: string, body?: unknown) =>
    fetch(`${emulator.cloudApiUrl}${path}`, {
      method,
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${emulator.credentials.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  beforeAll(async () => {
    emulator = await Emulator.start({
      clock: { kind: "manual" },
      timings: { requestQueuedMs: 1_000, requestRunningMs: 60_000, bootMs: 120_000 },
    });
  });

  afterAll(async () => {
    await emulator.stop();
  });

  it("advances a manual clock by exactly the requested amount", async () => {
    const before = clockSnapshot.parse(await (await control("GET", "/clock")).json());
    const after = clockSnapshot.parse(await (await control("POST", "/clock/advance", { ms: 90_000 })).json());
    expect(after.now - before.now).toBe(90_000);
    expect(after.mode.kind).toBe("manual");
  });

  it("a scaled clock runs a minute-long request to DONE in wall-clock moments", async () => {
    const created = await cloud("POST", `/datacenters/${emulator.defaultDatacenterId}/servers`, {
      properties: { name: "scaled", cores: 2, ram: 2048 },
    });
    expect(created.status).toBe(202);
    const location = created.headers.get("location")!;
    expect((await control("POST", "/clock/mode", { kind: "real", scale: 10_000 })).status).toBe(200);
    const deadline = Date.now() + 30_000;
    let status = "";
    while (Date.now() < deadline) {
      status = z
        .object({ metadata: z.object({ status: z.string() }) })
        .parse(await (await cloud("GET", location.slice(emulator.cloudApiUrl.length))).json()).metadata.status;
      if (status === "DONE") break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe("DONE");
    await control("POST", "/clock/mode", { kind: "manual" });
  });

  it("adds a running server directly, places a meeting on it and shows both in the state", async () => {
    const added = await control("POST", "/servers", { name: "direct", cores: 4, ram: 8192 });
    expect(added.status).toBe(201);
    const { id } = z.object({ id: z.string() }).parse(await added.json());
    expect((await control("POST", `/servers/${id}/meetings`, { participants: 12, videos: 2, durationMs: 60_000 })).status).toBe(201);
    const view = state.parse(await (await control("GET", "/state")).json()).servers.find((server) => server.id === id);
    expect(view).toMatchObject({ name: "direct", vmState: "RUNNING", state: "AVAILABLE", serving: true, meetings: [{ participants: 12 }] });

    await control("POST", "/clock/advance", { ms: 60_000 });
    expect(state.parse(await (await control("GET", "/state")).json()).servers.find((server) => server.id === id)?.meetings).toEqual([]);
  });

  it("rejects a malformed fault and reports an unknown server as 404", async () => {
    expect((await control("POST", "/faults", { kind: "meteorStrike" })).status).toBe(400);
    expect((await control("POST", "/servers/no-such-server/crash")).status).toBe(404);
  });
});
