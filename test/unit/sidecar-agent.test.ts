import { createPublicKey } from "node:crypto";
import { jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { workerCredentials } from "../../infra/workerCredentials.js";
import { Agent, readCommands, type AgentPorts } from "../../sidecar/agent.js";
import { BbbApiError, parseGetMeetings, type BbbLoad } from "../../sidecar/bbb.js";
import { loadConfig } from "../../sidecar/config.js";
import { TokenSource } from "../../sidecar/token.js";
import { createPrivateKey } from "node:crypto";

const meeting = (fields: Record<string, string | number | boolean>) =>
  `<meeting>${Object.entries(fields)
    .map(([tag, value]) => `<${tag}>${value}</${tag}>`)
    .join("")}<attendees><attendee><userID>u1</userID></attendee></attendees><metadata><meeting-name>x</meeting-name></metadata></meeting>`;

describe("reading BBB's getMeetings", () => {
  it("sums every meeting's participants, streams, listeners and recordings", () => {
    const xml = `<?xml version="1.0"?><response><returncode>SUCCESS</returncode><meetings>${meeting({
      meetingID: "a",
      participantCount: 10,
      listenerCount: 4,
      voiceParticipantCount: 6,
      videoCount: 3,
      moderatorCount: 1,
      recording: true,
    })}${meeting({ meetingID: "b", participantCount: 2, listenerCount: 0, voiceParticipantCount: 2, videoCount: 0, moderatorCount: 1, recording: false })}</meetings></response>`;
    expect(parseGetMeetings(xml)).toEqual({
      meetings: 2,
      participants: 12,
      videos: 3,
      listeners: 4,
      voiceParticipants: 8,
      moderators: 2,
      recordings: 1,
    });
  });

  it("reads noMeetings as zero, and a FAILED answer as an error naming BBB's messageKey", () => {
    expect(
      parseGetMeetings(
        "<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey><message>none</message></response>",
      ).meetings,
    ).toBe(0);
    expect(() =>
      parseGetMeetings(
        "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey><message>bad checksum</message></response>",
      ),
    ).toThrow(/checksumError: bad checksum/);
    expect(() => parseGetMeetings("<html>502 Bad Gateway</html>")).toThrow(BbbApiError);
  });
});

/** An agent whose world is scripted: the meetings BBB reports, and every call it makes. */
function scriptedAgent(replies: unknown[] = []) {
  const calls: { path: string; body: Record<string, unknown> }[] = [];
  const hooks: string[] = [];
  let load: BbbLoad | Error = { meetings: 1, participants: 3, videos: 1, listeners: 1, voiceParticipants: 2, moderators: 1, recordings: 0 };
  const ports: AgentPorts = {
    post: async (path, body) => {
      calls.push({ path, body: body as Record<string, unknown> });
      return path === "/sidecar/poll" || path === "/sidecar/status"
        ? (replies.shift() ?? { shutdown: false, reconfigure: null })
        : { save: "OK" };
    },
    readLoad: async () => {
      if (load instanceof Error) throw load;
      return load;
    },
    stress: () => 0.25,
    runHook: async (hook) => {
      hooks.push(hook);
    },
    now: () => 1_700_000_000_000,
    log: () => undefined,
  };
  const agent = new Agent({ instanceId: "bbb-1", group: "bbb" }, ports);
  return { agent, calls, hooks, setLoad: (value: BbbLoad | Error) => (load = value) };
}

describe("the sidecar agent", () => {
  it("reports a BBB stats report the scaler's bbb schema reads", async () => {
    const { agent, calls } = scriptedAgent();
    await agent.reportStats();
    expect(calls[0]).toEqual({
      path: "/sidecar/stats",
      body: {
        instance: { instanceId: "bbb-1", instanceType: "bbb", group: "bbb" },
        stats: {
          meetings: 1,
          participants: 3,
          videos: 1,
          listeners: 1,
          voice_participants: 2,
          moderators: 1,
          recordings: 0,
          stress_level: 0.25,
          graceful_shutdown: false,
        },
        timestamp: 1_700_000_000_000,
        shutdownStatus: false,
      },
    });
  });

  it("drains on shutdown: keeps reporting while meetings run, confirms once the last one ended, then runs the shutdown hook", async () => {
    const { agent, calls, hooks, setLoad } = scriptedAgent([{ shutdown: true, reconfigure: null }]);
    await agent.reportStats();
    await agent.poll();
    expect(agent.phase).toBe("draining");
    expect(hooks).toEqual(["drain"]);
    expect(calls.some((call) => call.path === "/sidecar/shutdown")).toBe(false);
    expect(calls.at(-1)?.body).toMatchObject({ shutdownStatus: true, stats: { graceful_shutdown: true } });

    // A failed read never ends a drain.
    setLoad(new BbbApiError("getMeetings", "HTTP 502"));
    await agent.reportStats();
    expect(agent.phase).toBe("draining");

    setLoad({ meetings: 0, participants: 0, videos: 0, listeners: 0, voiceParticipants: 0, moderators: 0, recordings: 0 });
    await agent.reportStats();
    expect(agent.phase).toBe("drained");
    expect(calls.at(-1)).toEqual({ path: "/sidecar/shutdown", body: { instanceId: "bbb-1", instanceType: "bbb", group: "bbb" } });
    expect(hooks).toEqual(["drain", "shutdown"]);
  });

  it("serves again when the scaler takes a drain back before its meetings ended", async () => {
    const { agent } = scriptedAgent([
      { shutdown: true, reconfigure: null },
      { shutdown: false, reconfigure: null },
    ]);
    await agent.poll();
    expect(agent.phase).toBe("draining");
    await agent.poll();
    expect(agent.phase).toBe("serving");
  });

  it("runs a reconfigure once and echoes it as reconfigureComplete until the scaler clears it", async () => {
    const request = "2026-12-03T09:00:00.000Z";
    const { agent, calls, hooks } = scriptedAgent([
      { shutdown: false, reconfigure: request },
      { shutdown: false, reconfigure: request },
      { shutdown: false, reconfigure: null },
    ]);
    await agent.reportStats();
    await agent.poll();
    await agent.poll();
    expect(hooks).toEqual(["reconfigure"]);
    expect(calls.at(-1)).toMatchObject({ path: "/sidecar/status", body: { reconfigureComplete: request } });
    await agent.poll();
    await agent.poll();
    expect(calls.at(-1)?.body.reconfigureComplete).toBeUndefined();
  });

  it("reads an odd reply as no command", () => {
    expect(readCommands("nonsense")).toEqual({ shutdown: false, reconfigure: null });
    expect(readCommands({ shutdown: "yes", reconfigure: 5 })).toEqual({ shutdown: false, reconfigure: null });
  });
});

describe("the sidecar's settings and tokens", () => {
  const credentials = workerCredentials("m".repeat(40), "bbb", "bbb-1");
  const env = {
    CONFSCALE_SCALER_URL: "https://bbb.example.org/scaler/",
    CONFSCALE_GROUP: "bbb",
    CONFSCALE_INSTANCE_ID: "bbb-1",
    CONFSCALE_KEY_ID: credentials.keyId,
    CONFSCALE_KEY_FILE: "/etc/confscale/sidecar-key.pem",
    CONFSCALE_BBB_API_URL: "http://127.0.0.1:8090/bigbluebutton/api",
    CONFSCALE_BBB_SECRET_FILE: "/etc/confscale/bbb-secret",
  };
  const files: Record<string, string> = { "/etc/confscale/sidecar-key.pem": credentials.signingKeyPem, "/etc/confscale/bbb-secret": "s\n" };

  it("reads the unit's environment file, and lists every problem at once", () => {
    const config = loadConfig(env, (path) => files[path]!);
    expect(config).toMatchObject({ scalerUrl: "https://bbb.example.org/scaler", bbbSecret: "s", statsIntervalMs: 30_000 });
    expect(() =>
      loadConfig({ ...env, CONFSCALE_GROUP: "", CONFSCALE_SCALER_URL: "nope", CONFSCALE_POLL_INTERVAL_MS: "5" }, (path) => files[path]!),
    ).toThrow(/CONFSCALE_SCALER_URL[\s\S]*CONFSCALE_GROUP[\s\S]*CONFSCALE_POLL_INTERVAL_MS/);
  });

  it("signs EdDSA tokens that name the worker, live an hour and are renewed before they end", async () => {
    const source = new TokenSource(createPrivateKey(credentials.signingKeyPem), {
      kid: credentials.keyId,
      issuer: "jitsi-autoscaler-sidecar",
      audience: "jitsi-autoscaler",
      subject: "bbb/bbb-1",
      lifetimeSeconds: 3600,
    });
    const start = Date.now();
    const token = source.token(start);
    expect(source.token(start + 60_000)).toBe(token);
    const { payload, protectedHeader } = await jwtVerify(token, createPublicKey(createPrivateKey(credentials.signingKeyPem)), {
      algorithms: ["EdDSA"],
      audience: "jitsi-autoscaler",
    });
    expect(protectedHeader.kid).toBe("confscale-worker/bbb/bbb-1");
    expect(payload.sub).toBe("bbb/bbb-1");
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(source.token(start + 3_300_000)).not.toBe(token);
  });
});
