import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BbbClient } from "../../scaler/signals/bbb.js";
import { SignalError } from "../../scaler/signals/http.js";
import { ScaleliteClient } from "../../scaler/signals/scalelite.js";

const SECRET = "a-shared-secret-of-some-length-0123456789";

interface Seen {
  call: string;
  query: string;
  checksum: string;
  body: string;
}

/** A loopback HTTP server answering each call from a table the test sets, remembering what it was asked. */
class Loopback {
  private server: Server | undefined;
  readonly seen: Seen[] = [];
  answers = new Map<string, { status: number; body: string; type?: string }>();

  async start(): Promise<string> {
    this.server = createServer((request, response) => {
      void read(request).then((body) => {
        const url = new URL(request.url ?? "/", "http://127.0.0.1");
        const call = url.pathname.split("/").pop() ?? "";
        const params = new URLSearchParams(url.search);
        const checksum = params.get("checksum") ?? "";
        params.delete("checksum");
        this.seen.push({ call, query: params.toString(), checksum, body });
        const answer = this.answers.get(call) ?? { status: 500, body: "no answer set" };
        response.writeHead(answer.status, { "content-type": answer.type ?? "application/json" });
        response.end(answer.body);
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

async function read(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const sha = (algorithm: string, text: string) => createHash(algorithm).update(text).digest("hex");

describe("Scalelite client", () => {
  const loopback = new Loopback();
  let client: ScaleliteClient;

  beforeAll(async () => {
    client = new ScaleliteClient({ baseUrl: `${await loopback.start()}/scalelite/api`, secret: SECRET });
  });
  afterAll(() => loopback.stop());
  beforeEach(() => {
    loopback.seen.length = 0;
    loopback.answers.clear();
  });

  it("signs the query: sha256 of call + query + secret, the checksum left out of the signed query", async () => {
    loopback.answers.set("getServerInfo", {
      status: 200,
      body: JSON.stringify({
        id: "bbb-1",
        url: "https://bbb-1.example.org/bigbluebutton/api",
        state: "enabled",
        load: 12.5,
        load_multiplier: "2.0",
        online: "online",
      }),
    });
    const server = await client.getServerInfo("bbb-1");
    const [seen] = loopback.seen;
    expect(seen?.query).toBe("id=bbb-1");
    expect(seen?.checksum).toBe(sha("sha256", `getServerInfo${seen?.query ?? ""}${SECRET}`));
    expect(server).toMatchObject({ id: "bbb-1", state: "enabled", online: true, load: 12.5, loadMultiplier: 2 });
  });

  it("reads the server list, with an unavailable load as unknown, not as zero", async () => {
    loopback.answers.set("getServers", {
      status: 200,
      body: JSON.stringify([
        { id: "a", url: "https://a/bigbluebutton/api", state: "cordoned", load: "unavailable", online: "offline" },
        { id: "b", url: "https://b/bigbluebutton/api", state: "disabled", load: 0, online: true },
      ]),
    });
    const servers = await client.getServers();
    expect(servers.map((server) => [server.id, server.state, server.online, server.load])).toEqual([
      ["a", "cordoned", false, null],
      ["b", "disabled", true, 0],
    ]);
    expect(loopback.seen[0]?.checksum).toBe(sha("sha256", `getServers${SECRET}`));
  });

  it("answers an empty list when Scalelite says 404 (no servers registered)", async () => {
    loopback.answers.set("getServers", { status: 404, body: JSON.stringify({ message: "no servers" }) });
    await expect(client.getServers()).resolves.toEqual([]);
  });

  it("throws a SignalError without the secret or checksum when the checksum is refused (XML, status 200)", async () => {
    loopback.answers.set("getServers", {
      status: 200,
      type: "application/xml",
      body: "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey><message>Checksums do not match</message></response>",
    });
    const error = await client.getServers().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SignalError);
    expect((error as SignalError).message).toMatch(/refused: checksumError/);
    expect((error as SignalError).url).not.toMatch(/checksum=/);
    expect((error as SignalError).message).not.toContain(SECRET);
  });

  it("posts state changes as JSON, outside the checksum", async () => {
    loopback.answers.set("updateServer", {
      status: 200,
      body: JSON.stringify({ id: "a", url: "https://a/bigbluebutton/api", state: "cordoned", load: 3, online: true }),
    });
    const server = await client.setState("a", "cordon");
    const [seen] = loopback.seen;
    expect(JSON.parse(seen?.body ?? "")).toEqual({ id: "a", server: { state: "cordon" } });
    expect(seen?.checksum).toBe(sha("sha256", `updateServer${SECRET}`));
    expect(server.state).toBe("cordoned");
  });

  it("rejects an answer of the wrong shape", async () => {
    loopback.answers.set("getServers", { status: 200, body: JSON.stringify([{ id: "a", state: "sleeping" }]) });
    await expect(client.getServers()).rejects.toThrow(/unexpected answer to getServers/);
  });
});

describe("BBB client", () => {
  const loopback = new Loopback();
  let base: string;

  beforeAll(async () => {
    base = `${await loopback.start()}/bigbluebutton/api`;
  });
  afterAll(() => loopback.stop());
  beforeEach(() => {
    loopback.seen.length = 0;
    loopback.answers.clear();
  });

  const meetingsXml = (meetings: string) =>
    `<?xml version="1.0"?><response><returncode>SUCCESS</returncode><meetings>${meetings}</meetings></response>`;
  const meetingXml = (id: string, createTime: number, participants: number, videos: number) =>
    `<meeting><meetingID>${id}</meetingID><createTime>${createTime}</createTime><running>true</running><participantCount>${participants}</participantCount><listenerCount>2</listenerCount><videoCount>${videos}</videoCount><isBreakout>false</isBreakout></meeting>`;

  it("signs getMeetings with sha256 by default and sums the meetings", async () => {
    loopback.answers.set("getMeetings", {
      status: 200,
      type: "text/xml",
      body: meetingsXml(meetingXml("m1", 1_700_000_000_000, 20, 3) + meetingXml("m2", 1_700_000_600_000, 7, 0)),
    });
    const load = await new BbbClient({ baseUrl: base, secret: SECRET }).getMeetings();
    expect(loopback.seen[0]?.checksum).toBe(sha("sha256", `getMeetings${SECRET}`));
    expect(load).toMatchObject({ meetings: 2, participants: 27, videos: 3, listeners: 4, newestCreatedAt: 1_700_000_600_000 });
    expect(load.list.map((meeting) => [meeting.meetingId, meeting.running, meeting.isBreakout])).toEqual([
      ["m1", true, false],
      ["m2", true, false],
    ]);
  });

  it("signs with sha1 for older servers", async () => {
    loopback.answers.set("getMeetings", { status: 200, type: "text/xml", body: meetingsXml(meetingXml("only", 1_700_000_000_000, 5, 1)) });
    const load = await new BbbClient({ baseUrl: base, secret: SECRET, algorithm: "sha1" }).getMeetings();
    expect(loopback.seen[0]?.checksum).toBe(sha("sha1", `getMeetings${SECRET}`));
    // One meeting parses to an object, not a list: still one meeting.
    expect(load).toMatchObject({ meetings: 1, participants: 5 });
  });

  it("reads noMeetings with an empty <meetings/> as zero meetings", async () => {
    loopback.answers.set("getMeetings", {
      status: 200,
      type: "text/xml",
      body: "<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey><message>no meetings were found on this server</message></response>",
    });
    await expect(new BbbClient({ baseUrl: base, secret: SECRET }).getMeetings()).resolves.toEqual({
      meetings: 0,
      participants: 0,
      videos: 0,
      listeners: 0,
      newestCreatedAt: null,
      list: [],
    });
  });

  it("throws a SignalError on FAILED, with BBB's message key", async () => {
    loopback.answers.set("getMeetings", {
      status: 200,
      type: "text/xml",
      body: "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey><message>You did not pass the checksum security check</message></response>",
    });
    const error = await new BbbClient({ baseUrl: base, secret: SECRET }).getMeetings().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SignalError);
    expect((error as SignalError).message).toMatch(/FAILED checksumError/);
    expect((error as SignalError).source).toBe("bbb");
  });

  it("throws a SignalError on an answer that is not the expected XML", async () => {
    loopback.answers.set("getMeetings", { status: 200, type: "text/html", body: "<html><body>maintenance</body></html>" });
    await expect(new BbbClient({ baseUrl: base, secret: SECRET }).getMeetings()).rejects.toBeInstanceOf(SignalError);
  });
});
