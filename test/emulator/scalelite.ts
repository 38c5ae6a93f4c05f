import { randomUUID } from "node:crypto";
import { Hono, type Context } from "hono";
import { z } from "zod";
import { BBB_VERSION } from "./bbb-api.js";
import { verifyChecksum } from "./checksum.js";
import type { EmulatedCloud, EmulatedServer, Meeting } from "./cloud.js";

export type ScaleliteState = "enabled" | "cordoned" | "disabled";

export interface ScaleliteServer {
  id: string;
  url: string;
  secret: string;
  tag: string;
  loadMultiplier: number;
  state: ScaleliteState;
  online: boolean;
  failedPolls: number;
}

/** A meeting as the load driver or a test asks Scalelite to create it. */
export const meetingRequestSchema = z.object({
  meetingId: z.string().min(1).optional(),
  name: z.string().optional(),
  participants: z.number().int().nonnegative(),
  videos: z.number().int().nonnegative().default(0),
  listenOnly: z.number().int().nonnegative().default(0),
  durationMs: z.number().positive(),
});
export type MeetingRequest = z.input<typeof meetingRequestSchema>;

/** Scalelite counts a young meeting as at least this many participants, so a fresh room is not piled onto. */
const MIN_LOAD_OF_YOUNG_MEETING = 15;
const YOUNG_MEETING_MS = 15 * 60_000;
/** Failed polls after which a server is marked offline (one good poll brings it back online). */
const FAILED_POLLS_OFFLINE = 2;

export class NoServerAvailableError extends Error {
  constructor() {
    super("no enabled and online server can take the meeting");
    this.name = "NoServerAvailableError";
  }
}

/**
 * Scalelite's server registry, poller and meeting placement over the emulated servers. A registered URL
 * of the form `.../servers/<serverId>/bigbluebutton/api` points at that emulated server; any other URL
 * never answers a poll.
 */
export class ScaleliteEmulator {
  readonly servers = new Map<string, ScaleliteServer>();
  private cancelPoller: (() => void) | undefined;

  constructor(
    private readonly cloud: EmulatedCloud,
    readonly secret: string,
    private readonly pollIntervalMs: number,
  ) {}

  startPoller(): void {
    const tick = () => {
      this.poll();
      this.cancelPoller = this.cloud.clock.after(this.pollIntervalMs, tick);
    };
    this.cancelPoller = this.cloud.clock.after(this.pollIntervalMs, tick);
  }

  stopPoller(): void {
    this.cancelPoller?.();
  }

  /** The server behind a registered URL other than the emulator's own /servers/<id>/ ones (the rehearsal's host names). */
  serverOfUrl: ((url: string) => EmulatedServer | undefined) | undefined;

  emulatedServerOf(entry: ScaleliteServer): EmulatedServer | undefined {
    const match = /\/servers\/([^/]+)\/bigbluebutton\/api\/?$/.exec(entry.url);
    return match === null ? this.serverOfUrl?.(entry.url) : this.cloud.servers.get(match[1]!);
  }

  /** Load as Scalelite computes it: participants (at least 15 for young meetings) times the multiplier. */
  load(entry: ScaleliteServer): number {
    const server = this.emulatedServerOf(entry);
    if (server === undefined) return 0;
    const now = this.cloud.clock.now();
    let load = 0;
    for (const meeting of server.meetings.values()) {
      load +=
        now - meeting.createTime < YOUNG_MEETING_MS ? Math.max(MIN_LOAD_OF_YOUNG_MEETING, meeting.participants) : meeting.participants;
    }
    return load * entry.loadMultiplier;
  }

  /** One poller round: getMeetings on every server decides online/offline; drained cordoned servers turn disabled. */
  poll(): void {
    for (const entry of this.servers.values()) {
      const server = this.emulatedServerOf(entry);
      const answered = server !== undefined && this.cloud.isServing(server) && entry.secret === this.cloud.bbbSecretOf(server);
      if (answered) {
        entry.online = true;
        entry.failedPolls = 0;
      } else {
        entry.failedPolls += 1;
        if (entry.failedPolls >= FAILED_POLLS_OFFLINE) entry.online = false;
      }
      if (entry.state === "cordoned" && answered && this.load(entry) === 0) entry.state = "disabled";
    }
  }

  add(url: string, secret: string, loadMultiplier: number, tag: string): ScaleliteServer {
    const entry: ScaleliteServer = { id: randomUUID(), url, secret, tag, loadMultiplier, state: "disabled", online: false, failedPolls: 0 };
    this.servers.set(entry.id, entry);
    return entry;
  }

  /** Places a meeting on the least-loaded enabled online server, as Scalelite's `create` does. */
  placeMeeting(request: MeetingRequest): { server: ScaleliteServer; meeting: Meeting } {
    const meeting = meetingRequestSchema.parse(request);
    let best: { entry: ScaleliteServer; load: number; server: EmulatedServer } | undefined;
    for (const entry of this.servers.values()) {
      if (entry.state !== "enabled" || !entry.online) continue;
      const server = this.emulatedServerOf(entry);
      if (server === undefined || !this.cloud.isServing(server)) continue;
      const load = this.load(entry);
      if (best === undefined || load < best.load) best = { entry, load, server };
    }
    if (best === undefined) throw new NoServerAvailableError();
    return { server: best.entry, meeting: this.cloud.startMeeting(best.server, meeting) };
  }

  panic(entry: ScaleliteServer, keepState: boolean): void {
    const server = this.emulatedServerOf(entry);
    if (server !== undefined) for (const meetingId of [...server.meetings.keys()]) this.cloud.endMeeting(server, meetingId);
    if (!keepState) entry.state = "disabled";
  }

  toJson(entry: ScaleliteServer): Record<string, unknown> {
    return {
      id: entry.id,
      url: entry.url,
      secret: entry.secret,
      tag: entry.tag,
      bbb_version: entry.online ? BBB_VERSION : "",
      state: entry.state,
      load: entry.online ? this.load(entry) : "unavailable",
      // Scalelite answers the decimal as a string, "1.0" or "0.75", never rounded.
      load_multiplier: Number.isInteger(entry.loadMultiplier) ? entry.loadMultiplier.toFixed(1) : String(entry.loadMultiplier),
      online: entry.online ? "online" : "offline",
    };
  }
}

const addServerBody = z.object({
  server: z.object({
    url: z.string().min(1),
    secret: z.string().min(1),
    load_multiplier: z.coerce.number().optional(),
    tag: z.string().optional(),
  }),
});
const updateServerBody = z.object({
  id: z.string(),
  server: z.object({
    state: z.enum(["enable", "cordon", "disable"]).optional(),
    load_multiplier: z.coerce.number().optional(),
    secret: z.string().min(1).optional(),
    tag: z.string().optional(),
  }),
});
const idBody = z.object({
  id: z.string(),
  keep_state: z.boolean().optional(),
  server: z.object({ keep_state: z.boolean().optional() }).optional(),
});

const STATE_OF_ACTION: Record<"enable" | "cordon" | "disable", ScaleliteState> = {
  enable: "enabled",
  cordon: "cordoned",
  disable: "disabled",
};

/** Scalelite's server API (REFERENCE §2), mounted under `/scalelite/api`. */
export function scaleliteApi(scalelite: ScaleliteEmulator): Hono {
  const app = new Hono();

  app.use("/:action", async (c, next) => {
    const rawQuery = new URL(c.req.url).search.slice(1);
    if (!verifyChecksum(c.req.param("action"), rawQuery, scalelite.secret)) {
      return c.body(
        '<?xml version="1.0" encoding="UTF-8"?>\n<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey><message>You did not pass the checksum security check</message></response>',
        200,
        { "Content-Type": "application/xml; charset=utf-8" },
      );
    }
    await next();
  });

  const parse = async <T>(c: Context, schema: z.ZodType<T>): Promise<T | Response> => {
    const parsed = schema.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: parsed.error.issues[0]?.message ?? "invalid body" }, 400);
    return parsed.data;
  };
  const entryOr404 = (c: Context, id: string): ScaleliteServer | Response =>
    scalelite.servers.get(id) ?? c.json({ error: `Couldn't find server with id=${id}` }, 404);

  app.get("/getServers", (c) => {
    if (scalelite.servers.size === 0) return c.json({ error: "No servers are configured" }, 404);
    return c.json([...scalelite.servers.values()].map((entry) => scalelite.toJson(entry)));
  });
  app.get("/getServerInfo", (c) => {
    const entry = entryOr404(c, c.req.query("id") ?? "");
    return entry instanceof Response ? entry : c.json(scalelite.toJson(entry));
  });
  app.post("/addServer", async (c) => {
    const body = await parse(c, addServerBody);
    if (body instanceof Response) return body;
    const multiplier = body.server.load_multiplier === undefined || body.server.load_multiplier === 0 ? 1 : body.server.load_multiplier;
    return c.json(scalelite.toJson(scalelite.add(body.server.url, body.server.secret, multiplier, body.server.tag ?? "")), 201);
  });
  app.post("/updateServer", async (c) => {
    const body = await parse(c, updateServerBody);
    if (body instanceof Response) return body;
    const entry = entryOr404(c, body.id);
    if (entry instanceof Response) return entry;
    if (body.server.state !== undefined) entry.state = STATE_OF_ACTION[body.server.state];
    if (body.server.load_multiplier !== undefined && body.server.load_multiplier !== 0) entry.loadMultiplier = body.server.load_multiplier;
    if (body.server.secret !== undefined) entry.secret = body.server.secret;
    if (body.server.tag !== undefined) entry.tag = body.server.tag;
    return c.json(scalelite.toJson(entry));
  });
  app.post("/deleteServer", async (c) => {
    const body = await parse(c, idBody);
    if (body instanceof Response) return body;
    const entry = entryOr404(c, body.id);
    if (entry instanceof Response) return entry;
    scalelite.servers.delete(entry.id);
    return c.json({ success: `Server id=${entry.id} was destroyed` });
  });
  app.post("/panicServer", async (c) => {
    const body = await parse(c, idBody);
    if (body instanceof Response) return body;
    const entry = entryOr404(c, body.id);
    if (entry instanceof Response) return entry;
    scalelite.panic(entry, body.keep_state ?? body.server?.keep_state ?? false);
    return c.json({ success: `Server id=${entry.id} has been disabled and the meetings have been destroyed` });
  });

  return app;
}
