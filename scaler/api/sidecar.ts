import { Hono } from "hono";
import { z } from "zod";
import type { Logger } from "../log.js";
import type { ScalerMetrics } from "../metrics.js";
import { StoreConflictError, StoreUnavailableError } from "../store/errors.js";
import type { ScalerStore } from "../store/store.js";
import { groupIdSchema, instanceIdSchema, instanceTypeSchema, type CheckIn, type CheckInKind, type InstanceDetails, type InstanceType } from "../store/schemas.js";
import { AsapError, type AsapVerifier } from "./asap.js";
import { HttpError, parseWith, readJson } from "./http.js";

const metadata = z.string().max(256).nullish();

/** InstanceDetails of jitsi-autoscaler-sidecar; extra metadata keys are kept as they come. */
export const instanceDetailsSchema = z.looseObject({
  instanceId: instanceIdSchema,
  instanceType: instanceTypeSchema,
  group: groupIdSchema,
  region: metadata,
  cloud: metadata,
  name: metadata,
  version: metadata,
  privateIp: metadata,
  publicIp: metadata,
  environment: metadata,
});

const count = z.number().int().min(0);

export const statsReportSchema = z.looseObject({
  instance: instanceDetailsSchema,
  stats: z.record(z.string(), z.unknown()),
  timestamp: z.number().min(0).optional(),
  shutdownStatus: z.boolean().optional(),
  shutdownError: z.boolean().optional(),
  reconfigureError: z.boolean().optional(),
  reconfigureComplete: z.string().max(64).nullish(),
  statsError: z.boolean().optional(),
});

const jitsiBridgeStats = z.looseObject({
  stress_level: z.number().min(0).optional(),
  participants: count.optional(),
  connections: count.optional(),
  graceful_shutdown: z.boolean().optional(),
});
const jibriStats = z.looseObject({
  status: z.looseObject({
    busyStatus: z.enum(["IDLE", "BUSY", "EXPIRED"]),
    health: z.looseObject({ healthStatus: z.string() }).optional(),
  }),
});
const bbbStats = z.looseObject({
  meetings: count.optional(),
  participants: count.optional(),
  videos: count.optional(),
  listeners: count.optional(),
  stress_level: z.number().min(0).optional(),
});

/** Validates the stats of one instance type and reads the figure kept in the stress series. */
function readStats(type: InstanceType, stats: Record<string, unknown>): { stress?: number; shuttingDown: boolean } {
  switch (type) {
    case "JVB":
    case "jigasi": {
      const parsed = parseWith(jitsiBridgeStats, stats, "stats");
      return { stress: parsed.stress_level, shuttingDown: parsed.graceful_shutdown === true };
    }
    case "jibri":
    case "sip-jibri": {
      const busy = parseWith(jibriStats, stats, "stats").status.busyStatus;
      // An EXPIRED jibri takes no work: it adds nothing to the group's load.
      return { stress: busy === "BUSY" ? 1 : busy === "IDLE" ? 0 : undefined, shuttingDown: false };
    }
    case "bbb":
      return { stress: parseWith(bbbStats, stats, "stats").stress_level, shuttingDown: false };
  }
}

function details(instance: z.infer<typeof instanceDetailsSchema>): InstanceDetails {
  return Object.fromEntries(Object.entries(instance).filter(([, value]) => value !== null && value !== undefined)) as InstanceDetails;
}

function fromReport(kind: CheckInKind, report: z.infer<typeof statsReportSchema>): CheckIn {
  const read = report.statsError === true ? { stress: undefined, shuttingDown: false } : readStats(report.instance.instanceType, report.stats);
  return {
    kind,
    details: details(report.instance),
    stats: report.stats,
    stress: read.stress,
    sidecarTimestamp: report.timestamp,
    shuttingDown: report.shutdownStatus === true || read.shuttingDown,
    reconfigureComplete: report.reconfigureComplete ?? undefined,
    reconfigureError: report.reconfigureError === true,
  };
}

function fromDetails(kind: CheckInKind, instance: z.infer<typeof instanceDetailsSchema>): CheckIn {
  return { kind, details: details(instance), shuttingDown: false, reconfigureError: false };
}

export interface SidecarRouteDeps {
  store: ScalerStore;
  asap: AsapVerifier;
  metrics: ScalerMetrics;
  logger: Logger;
  maxBodyBytes: number;
}

/**
 * The jitsi-autoscaler-sidecar protocol (REFERENCE §1): every call carries an ASAP token; poll and status answer with
 * the instance's pending commands, stats and shutdown answer `{"save":"OK"}`.
 */
export function sidecarRoutes({ store, asap, metrics, logger, maxBodyBytes }: SidecarRouteDeps): Hono {
  const routes = new Hono();

  routes.use("*", async (c, next) => {
    try {
      await asap.verify(c.req.header("authorization"));
    } catch (error) {
      if (!(error instanceof AsapError)) throw error;
      metrics.checkInsRefused.inc({ kind: kindOf(c.req.path), reason: "auth" });
      logger.info({ event: "sidecar.auth_refused", path: c.req.path, reason: error.reason }, "sidecar token refused");
      throw new HttpError(401, "unauthorized", error.reason);
    }
    await next();
    if (c.error !== undefined) metrics.checkInsRefused.inc({ kind: kindOf(c.req.path), reason: refusalReason(c.error) });
  });

  const accept = async (checkIn: CheckIn) => {
    let reply;
    try {
      reply = await store.checkIn(checkIn);
    } catch (error) {
      // Poll and shutdown bodies are the instance details themselves: name the field as the sidecar sent it.
      if (error instanceof StoreConflictError && (checkIn.kind === "poll" || checkIn.kind === "shutdown")) {
        throw new StoreConflictError(error.code, error.field.replace(/^instance\./, ""), error.message);
      }
      throw error;
    }
    metrics.checkIns.inc({ group: checkIn.details.group, instance_type: checkIn.details.instanceType, kind: checkIn.kind });
    return reply;
  };

  routes.post("/poll", async (c) => c.json(await accept(fromDetails("poll", await readJson(c, instanceDetailsSchema, maxBodyBytes)))));
  routes.post("/status", async (c) => c.json(await accept(fromReport("status", await readJson(c, statsReportSchema, maxBodyBytes)))));
  routes.post("/stats", async (c) => {
    await accept(fromReport("stats", await readJson(c, statsReportSchema, maxBodyBytes)));
    return c.json({ save: "OK" });
  });
  routes.post("/shutdown", async (c) => {
    await accept(fromDetails("shutdown", await readJson(c, instanceDetailsSchema, maxBodyBytes)));
    return c.json({ save: "OK" });
  });

  return routes;
}

function refusalReason(error: Error): string {
  if (error instanceof HttpError) return error.code;
  if (error instanceof StoreConflictError) return error.code;
  if (error instanceof StoreUnavailableError) return "unavailable";
  return "error";
}

function kindOf(path: string): string {
  const last = path.split("/").pop() ?? "";
  return ["poll", "status", "stats", "shutdown"].includes(last) ? last : "other";
}
