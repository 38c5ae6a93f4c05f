import { Hono, type Context } from "hono";
import { z } from "zod";
import { CloudApiError } from "./cloud.js";
import { faultSchema } from "./faults.js";
import { parseTrace, replayOptionsSchema } from "./load-driver.js";
import { meetingRequestSchema, NoServerAvailableError } from "./scalelite.js";
import { sidecarOptionsSchema } from "./sidecar.js";
import type { Emulator } from "./emulator.js";

const advanceBody = z.object({ ms: z.number().nonnegative() });
const modeBody = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("real"), scale: z.number().positive().default(1) }),
  z.object({ kind: z.literal("manual") }),
]);
const directServerBody = z.object({
  datacenterId: z.string().optional(),
  name: z.string().min(1),
  cores: z.number().int().min(1).default(2),
  ram: z.number().int().min(256).default(8192),
  booted: z.boolean().default(true),
});
const stuckBody = z.object({ stuck: z.boolean().default(true) });
const replayBody = replayOptionsSchema.extend({ csv: z.string().min(1) });

async function parse<T>(c: Context, schema: z.ZodType<T>): Promise<T> {
  const parsed = schema.safeParse(await c.req.json().catch(() => ({})));
  if (!parsed.success)
    throw new CloudApiError(
      400,
      "100",
      `${parsed.error.issues[0]?.path.join(".") ?? ""}: ${parsed.error.issues[0]?.message ?? "invalid body"}`,
    );
  return parsed.data;
}

/** The test-only control API under `/_control`: time, faults, state, load, sidecars. */
export function controlApi(emulator: Emulator): Hono {
  const app = new Hono();
  app.onError((error, c) => {
    if (error instanceof CloudApiError) return c.json({ error: error.message }, error.httpStatus as 400);
    if (error instanceof NoServerAvailableError) return c.json({ error: error.message }, 503);
    return c.json({ error: error.message }, 500);
  });

  app.get("/state", (c) => c.json(emulator.state()));
  app.get("/clock", (c) => c.json(emulator.clock.snapshot()));
  app.post("/clock/advance", async (c) => {
    emulator.clock.advance((await parse(c, advanceBody)).ms);
    return c.json(emulator.clock.snapshot());
  });
  app.post("/clock/mode", async (c) => {
    emulator.clock.setMode(await parse(c, modeBody));
    return c.json(emulator.clock.snapshot());
  });

  app.get("/faults", (c) => c.json(emulator.cloud.faults.pending()));
  app.post("/faults", async (c) => {
    emulator.cloud.faults.add(await parse(c, faultSchema));
    return c.json(emulator.cloud.faults.pending(), 201);
  });
  app.delete("/faults", (c) => {
    emulator.cloud.faults.clear();
    return c.body(null, 204);
  });

  app.post("/servers", async (c) => {
    const body = await parse(c, directServerBody);
    return c.json(emulator.serverView(emulator.addRunningServer(body)), 201);
  });
  app.post("/servers/:id/crash", (c) => {
    emulator.crashServer(c.req.param("id"));
    return c.json(emulator.serverView(emulator.serverById(c.req.param("id"))));
  });
  app.post("/servers/:id/stuck-booting", async (c) => {
    emulator.setStuckBooting(c.req.param("id"), (await parse(c, stuckBody)).stuck);
    return c.json(emulator.serverView(emulator.serverById(c.req.param("id"))));
  });
  app.post("/servers/:id/meetings", async (c) => {
    const server = emulator.serverById(c.req.param("id"));
    const meeting = emulator.cloud.startMeeting(server, await parse(c, meetingRequestSchema));
    return c.json({ meetingId: meeting.meetingId, serverId: server.id }, 201);
  });
  app.delete("/servers/:id/meetings/:meetingId", (c) => {
    emulator.cloud.endMeeting(emulator.serverById(c.req.param("id")), c.req.param("meetingId"));
    return c.body(null, 204);
  });
  app.post("/servers/:id/sidecar", async (c) => {
    emulator.startSidecar(c.req.param("id"), await parse(c, sidecarOptionsSchema));
    return c.json({ keyBaseUrl: emulator.keyBaseUrl, kid: emulator.sidecarKey.kid }, 201);
  });
  app.delete("/servers/:id/sidecar", (c) => {
    emulator.stopSidecar(c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/meetings", async (c) => {
    const placed = emulator.scalelite.placeMeeting(await parse(c, meetingRequestSchema));
    return c.json({ meetingId: placed.meeting.meetingId, scaleliteServerId: placed.server.id, url: placed.server.url }, 201);
  });
  app.post("/scalelite/poll", (c) => {
    emulator.scalelite.poll();
    return c.json([...emulator.scalelite.servers.values()].map((entry) => emulator.scalelite.toJson(entry)));
  });

  app.post("/load-driver", async (c) => {
    const { csv, ...options } = await parse(c, replayBody);
    emulator.loadDriver.replay(parseTrace(csv), options);
    return c.json(emulator.loadDriver.stats, 201);
  });
  app.get("/load-driver", (c) => c.json(emulator.loadDriver.stats));
  app.delete("/load-driver", (c) => {
    emulator.loadDriver.stop();
    return c.body(null, 204);
  });

  app.get("/prometheus/targets", (c) => c.json(emulator.prometheusTargets()));

  return app;
}
