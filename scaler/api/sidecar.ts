import { Hono } from "hono";
import { z } from "zod";
import type { Logger } from "../log.js";
import type { ScalerMetrics } from "../metrics.js";
import { StoreConflictError, StoreUnavailableError } from "../store/errors.js";
import type { ScalerStore } from "../store/store.js";
import { groupIdSchema, instanceIdSchema, instanceTypeSchema, type CheckIn, type CheckInKind, type InstanceDetails, type InstanceType } from "../store/schemas.js";
import { AsapError, type AsapVerifier } from "./asap.js";
import { HttpError, parseWith, readJson, readJsonValue, requestHeader } from "./http.js";

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

type StatsReport = z.infer<typeof statsReportSchema>;
/** What a check-in keeps of an instance's stats: the figure for the stress series, and whether it is leaving. */
interface StatsReading {
  stress?: number;
  shuttingDown: boolean;
}
type ReportReader = (value: unknown) => { report: StatsReport; reading: StatsReading };

// Per instance type, the report with its stats validated in the same pass as the rest of it.
const jitsiBridgeReport = statsReportSchema.extend({ stats: jitsiBridgeStats });
const jibriReport = statsReportSchema.extend({ stats: jibriStats });
const bbbReport = statsReportSchema.extend({ stats: bbbStats });

const readJitsiBridge: ReportReader = (value) => {
  const report = parseWith(jitsiBridgeReport, value);
  return { report, reading: { stress: report.stats.stress_level, shuttingDown: report.stats.graceful_shutdown === true } };
};
const readJibri: ReportReader = (value) => {
  const report = parseWith(jibriReport, value);
  const busy = report.stats.status.busyStatus;
  // An EXPIRED jibri takes no work: it adds nothing to the group's load.
  return { report, reading: { stress: busy === "BUSY" ? 1 : busy === "IDLE" ? 0 : undefined, shuttingDown: false } };
};
const readBbb: ReportReader = (value) => {
  const report = parseWith(bbbReport, value);
  return { report, reading: { stress: report.stats.stress_level, shuttingDown: false } };
};
const REPORT_READERS: Record<InstanceType, ReportReader> = { JVB: readJitsiBridge, jigasi: readJitsiBridge, jibri: readJibri, "sip-jibri": readJibri, bbb: readBbb };

/** A report whose sidecar could not fetch stats, or whose instance type is not known (its schema names the problem). */
const readUntypedReport: ReportReader = (value) => ({ report: parseWith(statsReportSchema, value), reading: { shuttingDown: false } });

/**
 * Validates a stats report and its stats in one pass of the schema library, by the schema of the instance type it
 * claims: the raw type only picks the schema, which validates it like every other field.
 */
function readReport(value: unknown): { report: StatsReport; reading: StatsReading } {
  if (isRecord(value) && value.statsError !== true && isRecord(value.instance)) {
    const type = value.instance.instanceType;
    if (typeof type === "string" && Object.hasOwn(REPORT_READERS, type)) return REPORT_READERS[type as InstanceType](value);
  }
  return readUntypedReport(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function details(instance: z.infer<typeof instanceDetailsSchema>): InstanceDetails {
  const present: Record<string, unknown> = {};
  for (const key in instance) {
    const value = instance[key];
    if (value !== null && value !== undefined) present[key] = value;
  }
  return present as InstanceDetails;
}

function fromReport(kind: CheckInKind, value: unknown): CheckIn {
  const { report, reading } = readReport(value);
  return {
    kind,
    details: details(report.instance),
    stats: report.stats,
    stress: reading.stress,
    sidecarTimestamp: report.timestamp,
    shuttingDown: report.shutdownStatus === true || reading.shuttingDown,
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
      await asap.verify(requestHeader(c, "authorization"));
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
  routes.post("/status", async (c) => c.json(await accept(fromReport("status", await readJsonValue(c, maxBodyBytes)))));
  routes.post("/stats", async (c) => {
    await accept(fromReport("stats", await readJsonValue(c, maxBodyBytes)));
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
