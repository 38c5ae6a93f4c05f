import { XMLParser } from "fast-xml-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { signedQuery, type ChecksumAlgorithm } from "../emulator/checksum.js";
import { Emulator } from "../emulator/emulator.js";

const POLL_MS = 60_000;
const xml = new XMLParser({ isArray: (name) => name === "meeting" });

const scaleliteServer = z.object({
  id: z.string(),
  url: z.string(),
  secret: z.string(),
  state: z.enum(["enabled", "cordoned", "disabled"]),
  load: z.union([z.number(), z.literal("unavailable")]),
  load_multiplier: z.string(),
  online: z.enum(["online", "offline"]),
});
type ScaleliteServerJson = z.infer<typeof scaleliteServer>;

describe("Scalelite emulator: server API, poller and meeting placement", () => {
  let emulator: Emulator;
  const serverIds: string[] = [];
  const registered = new Map<string, string>();

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "manual" }, scalelitePollMs: POLL_MS });
    for (const name of ["bbb-a", "bbb-b", "bbb-c"]) serverIds.push(emulator.addRunningServer({ name, cores: 4, ram: 8192 }).id);
  });

  afterAll(async () => {
    await emulator.stop();
  });

  async function call(
    action: string,
    body?: unknown,
    params: Record<string, string> = {},
    algorithm: ChecksumAlgorithm = "sha256",
    secret = emulator.scalelite.secret,
  ) {
    return fetch(`${emulator.scaleliteApiUrl}/${action}?${signedQuery(action, params, secret, algorithm)}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }
  const info = async (id: string): Promise<ScaleliteServerJson> =>
    scaleliteServer.parse(await (await call("getServerInfo", undefined, { id })).json());
  const place = (participants: number, durationMs = 30 * 60_000) =>
    fetch(`${emulator.url}/_control/meetings`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ participants, videos: 1, durationMs }),
    });
  const placedOn = async (participants: number, durationMs?: number): Promise<string> => {
    const response = await place(participants, durationMs);
    expect(response.status).toBe(201);
    return z.object({ scaleliteServerId: z.string() }).parse(await response.json()).scaleliteServerId;
  };
  const getMeetings = async (serverId: string, secret = emulator.cloud.bbbSecret, algorithm: ChecksumAlgorithm = "sha1") => {
    const response = await fetch(`${emulator.bbbUrl(serverId)}/getMeetings?${signedQuery("getMeetings", {}, secret, algorithm)}`);
    return xml.parse(await response.text()).response as {
      returncode: string;
      messageKey?: string;
      meetings?: { meeting?: { meetingID: string; participantCount: number; videoCount: number }[] } | "";
    };
  };

  it("refuses a wrong or missing checksum and accepts SHA-1, SHA-256 and SHA-512", async () => {
    const wrong = await call("getServers", undefined, {}, "sha256", "not-the-secret");
    expect(xml.parse(await wrong.text()).response).toMatchObject({ returncode: "FAILED", messageKey: "checksumError" });
    const missing = await fetch(`${emulator.scaleliteApiUrl}/getServers`);
    expect(xml.parse(await missing.text()).response).toMatchObject({ returncode: "FAILED", messageKey: "checksumError" });
    for (const algorithm of ["sha1", "sha256", "sha512"] as const) {
      const response = await call("getServers", undefined, {}, algorithm);
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({ error: "No servers are configured" });
    }
  });

  it("adds servers disabled and offline; enabled ones come online after a poll and then take meetings", async () => {
    for (const id of serverIds) {
      const added = await call("addServer", { server: { url: emulator.bbbUrl(id), secret: emulator.cloud.bbbSecret } });
      expect(added.status).toBe(201);
      const server = scaleliteServer.parse(await added.json());
      expect(server).toMatchObject({ state: "disabled", online: "offline", load: "unavailable", load_multiplier: "1.0" });
      registered.set(id, server.id);
      expect((await call("updateServer", { id: server.id, server: { state: "enable" } })).status).toBe(200);
    }
    expect((await place(10)).status).toBe(503);
    emulator.clock.advance(POLL_MS);
    for (const scaleliteId of registered.values())
      expect(await info(scaleliteId)).toMatchObject({ state: "enabled", online: "online", load: 0 });
  });

  it("places each meeting on the least-loaded enabled server (young meetings count at least 15)", async () => {
    const [a, b, c] = [registered.get(serverIds[0]!)!, registered.get(serverIds[1]!)!, registered.get(serverIds[2]!)!];
    const first = await placedOn(40);
    const second = await placedOn(25);
    const third = await placedOn(5);
    expect(new Set([first, second, third])).toEqual(new Set([a, b, c]));
    expect((await info(third)).load).toBe(15);
    // 15 (the small young meeting) is the least load, so it gets the next one.
    expect(await placedOn(8)).toBe(third);
    expect(await placedOn(3)).toBe(second);

    const bbbView = await getMeetings(serverIds[[a, b, c].indexOf(first)]!);
    expect(bbbView.returncode).toBe("SUCCESS");
    const meetings = bbbView.meetings === "" || bbbView.meetings === undefined ? [] : (bbbView.meetings.meeting ?? []);
    expect(meetings.map((meeting) => meeting.participantCount)).toEqual([40]);
  });

  it("BBB getMeetings verifies its checksum (sha1/256/384/512) and says noMeetings when empty", async () => {
    const wrong = await getMeetings(serverIds[0]!, "wrong-secret");
    expect(wrong).toMatchObject({ returncode: "FAILED", messageKey: "checksumError" });
    for (const algorithm of ["sha256", "sha384", "sha512"] as const)
      expect((await getMeetings(serverIds[0]!, undefined, algorithm)).returncode).toBe("SUCCESS");
    const spare = emulator.addRunningServer({ name: "bbb-spare", cores: 2, ram: 4096 });
    expect(await getMeetings(spare.id)).toMatchObject({ returncode: "SUCCESS", messageKey: "noMeetings" });
  });

  it("cordon stops new meetings; the poller turns a cordoned server disabled once its meetings are over", async () => {
    const busiest = [...registered.values()].sort(
      (x, y) =>
        Number(emulator.scalelite.load(emulator.scalelite.servers.get(y)!)) -
        Number(emulator.scalelite.load(emulator.scalelite.servers.get(x)!)),
    )[0]!;
    expect((await info(busiest)).load).toBeGreaterThan(0);
    const cordoned = scaleliteServer.parse(await (await call("updateServer", { id: busiest, server: { state: "cordon" } })).json());
    expect(cordoned.state).toBe("cordoned");
    for (let index = 0; index < 6; index += 1) expect(await placedOn(1, 5 * 60_000)).not.toBe(busiest);

    emulator.clock.advance(POLL_MS);
    expect((await info(busiest)).state).toBe("cordoned");
    // All meetings placed above last 30 minutes at most; the next poll after that drains it.
    emulator.clock.advance(30 * 60_000 + POLL_MS);
    expect(await info(busiest)).toMatchObject({ state: "disabled", load: 0, online: "online" });
  });

  it("a stopped server goes offline after two failed polls; panic ends meetings and disables; delete removes", async () => {
    const [first, second] = [serverIds[0]!, serverIds[1]!];
    await call("updateServer", { id: registered.get(first)!, server: { state: "enable" } });
    emulator.crashServer(first);
    emulator.clock.advance(POLL_MS);
    expect((await info(registered.get(first)!)).online).toBe("online");
    emulator.clock.advance(POLL_MS);
    expect((await info(registered.get(first)!)).online).toBe("offline");

    await call("updateServer", { id: registered.get(second)!, server: { state: "enable" } });
    await placedOn(12);
    const panicked = await call("panicServer", { id: registered.get(second)! });
    expect(panicked.status).toBe(200);
    expect(await info(registered.get(second)!)).toMatchObject({ state: "disabled", load: 0 });
    expect(emulator.serverById(second).meetings.size).toBe(0);

    expect((await call("deleteServer", { id: registered.get(second)! })).status).toBe(200);
    expect((await call("getServerInfo", undefined, { id: registered.get(second)! })).status).toBe(404);
  });
});
