import { Hono, type Context } from "hono";
import { z } from "zod";
import type { ScalerStore } from "../store/store.js";
import { groupIdSchema } from "../store/schemas.js";
import { scheduleNameSchema, scheduleSpecSchema } from "../store/schedules.js";
import { requireRole, type ApiEnv } from "./auth.js";
import { HttpError, parseWith, readJson } from "./http.js";

const BODY_LIMIT = 64 * 1024;
const nameSchema = scheduleNameSchema;

/** A dated one-off window: at least `min` servers from `from` to `to` (ISO datetimes with an offset or `Z`). */
const datedWindowBody = z
  .strictObject({
    name: nameSchema,
    from: z.iso.datetime({ offset: true }),
    to: z.iso.datetime({ offset: true }),
    min: z.number().int().min(0).max(1_000),
  })
  // NaN compares false: an unreadable time is refused by its own field alone.
  .refine((window) => !(Date.parse(window.to) <= Date.parse(window.from)), { path: ["to"], message: "expected a time after from" });

function notFound(kind: "window" | "schedule", name: string): HttpError {
  return new HttpError(404, `${kind}_not_found`, `no ${kind} ${name}`, [{ field: "name", message: `unknown ${kind}` }]);
}

/**
 * Dated windows and schedules of a fleet, under `/api/v1/fleets/:fleet` (the control API authenticates): viewers read
 * them, operators set and remove them. A fleet is named by its group's id.
 */
export function scheduleRoutes(store: ScalerStore): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
  const viewer = requireRole("viewer");
  const operator = requireRole("operator");
  const fleetOf = async (c: Context<ApiEnv>): Promise<string> => {
    const fleet = parseWith(groupIdSchema, c.req.param("fleet"), "fleet");
    await store.requireGroup(fleet);
    return fleet;
  };
  const actor = (c: Context<ApiEnv>) => c.get("principal").name;

  api.get("/:fleet/windows", viewer, async (c) => {
    const windows = await store.schedules.datedWindows(await fleetOf(c));
    return c.json({ windows: windows.map((window) => ({ ...window, from: iso(window.from), to: iso(window.to) })) });
  });

  api.post("/:fleet/windows", operator, async (c) => {
    const fleet = await fleetOf(c);
    const body = await readJson(c, datedWindowBody, BODY_LIMIT);
    const window = { name: body.name, from: Date.parse(body.from), to: Date.parse(body.to), min: body.min };
    await store.schedules.addDatedWindow(fleet, window, actor(c));
    return c.json({ ...window, from: iso(window.from), to: iso(window.to) }, 201);
  });

  api.delete("/:fleet/windows/:name", operator, async (c) => {
    const fleet = await fleetOf(c);
    const name = parseWith(nameSchema, c.req.param("name"), "name");
    if (!(await store.schedules.removeDatedWindow(fleet, name, actor(c)))) throw notFound("window", name);
    return c.body(null, 204);
  });

  api.get("/:fleet/schedules", viewer, async (c) => c.json({ schedules: await store.schedules.listSchedules(await fleetOf(c)) }));

  api.post("/:fleet/schedules", operator, async (c) => {
    const fleet = await fleetOf(c);
    const spec = await readJson(c, scheduleSpecSchema, BODY_LIMIT);
    const { schedule, token } = await store.schedules.createSchedule(fleet, spec, actor(c));
    // The only time the token is shown: it is a secret, stored as a digest. The path is relative to the scaler's base
    // URL as callers reach it (behind the control node's Caddy: https://<domain>/scaler), which only they know.
    return c.json({ schedule, hookPath: `/hooks/${token}` }, 201);
  });

  api.delete("/:fleet/schedules/:name", operator, async (c) => {
    const fleet = await fleetOf(c);
    const name = parseWith(nameSchema, c.req.param("name"), "name");
    if (!(await store.schedules.deleteSchedule(fleet, name, actor(c)))) throw notFound("schedule", name);
    return c.body(null, 204);
  });

  return api;
}

const tokenSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "expected a hook token");

/** `POST /hooks/:token`: the capability URL of a schedule; the token is the credential, so no bearer token is asked. */
export function hookRoutes(store: ScalerStore): Hono {
  const api = new Hono();
  api.post("/:token", async (c) => {
    const token = parseWith(tokenSchema, c.req.param("token"), "token");
    // Times of day are read in the fleet's zone, as its windows are.
    const ran = await store.schedules.runHook(token, async (fleet) => (await store.requireGroup(fleet)).policy.timeZone);
    if (ran === undefined)
      throw new HttpError(404, "hook_not_found", "unknown or revoked hook", [{ field: "token", message: "unknown or revoked" }]);
    return c.json({ fleet: ran.fleet, window: { ...ran.window, from: iso(ran.window.from), to: iso(ran.window.to) } });
  });
  return api;
}

function iso(at: number): string {
  return new Date(at).toISOString();
}
