import { Hono, type Context } from "hono";
import { z } from "zod";
import type { ApiToken } from "../settings.js";
import type { ScalerStore } from "../store/store.js";
import { groupIdSchema, groupSpecSchema, instanceIdSchema, instanceTypeSchema } from "../store/schemas.js";
import { apiAuth, requireRole, type ApiEnv } from "./auth.js";
import { fleetRoutes, type OperableFleet } from "./fleets.js";
import { parseWith, readJson } from "./http.js";
import { scheduleRoutes } from "./schedules.js";

const CONTROL_BODY_LIMIT = 1024 * 1024;

const desiredBody = z.strictObject({ desired: z.number().int().min(0) });
const fullScalingBody = z.strictObject({
  direction: z.enum(["up", "down"]),
  /** Default: the group's max (up) or min (down); always clamped to [min, max]. */
  target: z.number().int().min(0).optional(),
  instanceType: instanceTypeSchema.optional(),
  environment: z.string().min(1).optional(),
});
const instanceList = z.array(instanceIdSchema).min(1).max(1_000);
const reconfigureBody = z.strictObject({ instances: instanceList.optional() });
const shutdownBody = z.strictObject({ instances: instanceList });
const createBody = z.looseObject({ id: groupIdSchema });
const auditQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(1_000).default(100) });
const stressQuery = z.strictObject({ since: z.coerce.number().int().min(0).optional() });

function groupId(c: Context): string {
  return parseWith(groupIdSchema, c.req.param("id"), "id");
}

/**
 * The control-plane REST API under `/api/v1`: viewer reads, operator steers, admin defines groups; the fleets this
 * scaler drives under `/fleets`. Every route authenticates here, once.
 */
export function controlRoutes({
  store,
  tokens,
  fleets,
}: {
  store: ScalerStore;
  tokens: readonly ApiToken[];
  fleets: readonly OperableFleet[];
}): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
  api.use("*", apiAuth(tokens));
  api.route("/fleets", scheduleRoutes(store));
  api.route("/fleets", fleetRoutes(fleets));
  const viewer = requireRole("viewer");
  const operator = requireRole("operator");
  const admin = requireRole("admin");
  const actor = (c: Context<ApiEnv>) => c.get("principal").name;

  api.get("/groups", viewer, async (c) => c.json({ groups: await store.listGroups() }));
  // Groups sidecars report to that nobody configured: listed here until an operator creates (adopts) them.
  api.get("/untracked", viewer, async (c) => c.json({ groups: await store.untrackedGroups() }));

  api.post("/groups", admin, async (c) => {
    const { id, ...rest } = await readJson(c, createBody, CONTROL_BODY_LIMIT);
    const spec = parseWith(groupSpecSchema, rest);
    return c.json(await store.createGroup(id, spec, actor(c)), 201);
  });

  api.post("/groups/full-scaling", operator, async (c) => {
    const request = await readJson(c, fullScalingBody, CONTROL_BODY_LIMIT);
    return c.json({ changes: await store.fullScaling(request, `${actor(c)} (scheduler)`) });
  });

  api.get("/groups/:id", viewer, async (c) => c.json(await store.requireGroup(groupId(c))));

  api.put("/groups/:id", admin, async (c) => {
    const id = groupId(c);
    return c.json(await store.replaceGroup(id, await readJson(c, groupSpecSchema, CONTROL_BODY_LIMIT), actor(c)));
  });

  api.delete("/groups/:id", admin, async (c) => {
    await store.deleteGroup(groupId(c), actor(c));
    return c.body(null, 204);
  });

  api.put("/groups/:id/desired", operator, async (c) => {
    const id = groupId(c);
    const { desired } = await readJson(c, desiredBody, CONTROL_BODY_LIMIT);
    return c.json(await store.setDesired(id, desired, actor(c)));
  });

  api.post("/groups/:id/pause", operator, async (c) => c.json(await store.setGroupPaused(groupId(c), true, actor(c))));
  api.post("/groups/:id/resume", operator, async (c) => c.json(await store.setGroupPaused(groupId(c), false, actor(c))));

  api.post("/groups/:id/reconfigure", operator, async (c) => {
    const id = groupId(c);
    const { instances } = await readJson(c, reconfigureBody, CONTROL_BODY_LIMIT);
    return c.json(await store.requestReconfigure(id, instances, actor(c)), 202);
  });

  api.post("/groups/:id/shutdown", operator, async (c) => {
    const id = groupId(c);
    const { instances } = await readJson(c, shutdownBody, CONTROL_BODY_LIMIT);
    await store.requestShutdown(id, instances, actor(c));
    return c.json({ instanceIds: [...new Set(instances)] }, 202);
  });

  api.get("/groups/:id/report", viewer, async (c) => c.json(await store.groupReport(groupId(c))));

  api.get("/groups/:id/stress", viewer, async (c) => {
    const id = groupId(c);
    const { since } = parseWith(stressQuery, c.req.query());
    await store.requireGroup(id);
    return c.json({ points: await store.stressSeries(id, since) });
  });

  api.get("/groups/:id/audit", viewer, async (c) => {
    const id = groupId(c);
    const { limit } = parseWith(auditQuery, c.req.query());
    await store.requireAuditedGroup(id);
    return c.json({ entries: await store.readAudit(id, { limit }) });
  });

  api.get("/groups/:id/instances/:instanceId/audit", viewer, async (c) => {
    const id = groupId(c);
    const instanceId = parseWith(instanceIdSchema, c.req.param("instanceId"), "instanceId");
    const { limit } = parseWith(auditQuery, c.req.query());
    await store.requireAuditedGroup(id);
    return c.json({ entries: await store.readAudit(id, { instanceId, limit }) });
  });

  api.get("/pause", viewer, async (c) => c.json(await store.getGlobalPause()));
  api.post("/pause", operator, async (c) => c.json(await store.setGlobalPause(true, actor(c))));
  api.post("/resume", operator, async (c) => c.json(await store.setGlobalPause(false, actor(c))));

  return api;
}
