import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { Logger } from "../log.js";
import type { ScalerMetrics } from "../metrics.js";
import { StoreConflictError, StoreUnavailableError } from "../store/errors.js";
import type { ScalerStore } from "../store/store.js";
import {
  DEFAULT_GROUP,
  groupIdSchema,
  instanceIdSchema,
  reportedInstanceTypeSchema,
  type CheckIn,
  type CheckInKind,
  type InstanceDetails,
  type InstanceType,
} from "../store/schemas.js";
import { AsapError, checkScope, TokenScopeError, type AsapVerifier, type VerifiedToken } from "./asap.js";
import { CLIENT_GONE_STATUS, ClientGoneError, HttpError, parseJsonBody, parseWith, readRequestBody } from "./http.js";

const metadata = z.string().max(256).nullish();

/** InstanceDetails of jitsi-autoscaler-sidecar; extra metadata keys are kept as they come. */
export const instanceDetailsSchema = z.looseObject({
  instanceId: instanceIdSchema,
  instanceType: reportedInstanceTypeSchema,
  // A report without a group is filed under `default`, as jitsi-autoscaler files it.
  group: groupIdSchema.default(DEFAULT_GROUP),
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
const REPORT_READERS: Record<InstanceType, ReportReader> = {
  JVB: readJitsiBridge,
  jigasi: readJitsiBridge,
  jibri: readJibri,
  "sip-jibri": readJibri,
  bbb: readBbb,
};

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

export interface SidecarHandlerDeps {
  store: ScalerStore;
  asap: AsapVerifier;
  metrics: ScalerMetrics;
  logger: Logger;
  maxBodyBytes: number;
  /** The status and JSON body an error is answered with, as for every other route of the listener. */
  answerError: (error: unknown, path: string) => ErrorAnswer;
}

export interface ErrorAnswer {
  status: ContentfulStatusCode;
  body: unknown;
}

/** The sidecar protocol's calls on a listener: which call a request is, and serving it. */
export interface SidecarHandler {
  /** The call a request makes, or undefined when it is not a sidecar call. */
  callOf(request: IncomingMessage): CheckInKind | undefined;
  serve(request: IncomingMessage, response: ServerResponse, kind: CheckInKind): Promise<void>;
}

const SIDECAR_PATHS = new Map<string, CheckInKind>([
  ["/sidecar/poll", "poll"],
  ["/sidecar/status", "status"],
  ["/sidecar/stats", "stats"],
  ["/sidecar/shutdown", "shutdown"],
]);

/**
 * The jitsi-autoscaler-sidecar protocol (REFERENCE §1): every call carries an ASAP token; poll and status answer with
 * the instance's pending commands, stats and shutdown answer `{"save":"OK"}`.
 *
 * Served on Node's own request and response rather than through Hono: check-ins are nearly all of the scaler's
 * requests, and the web `Request`/`Response` adapter, the router and the context cost about a third of a check-in's
 * CPU. The answers are the same JSON, and the same request histogram counts them.
 */
export function sidecarHandler({ store, asap, metrics, logger, maxBodyBytes, answerError }: SidecarHandlerDeps): SidecarHandler {
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

  const authenticate = async (request: IncomingMessage, kind: CheckInKind) => {
    try {
      return await asap.verify(request.headers.authorization);
    } catch (error) {
      if (!(error instanceof AsapError)) throw error;
      logger.info({ event: "sidecar.auth_refused", path: `/sidecar/${kind}`, reason: error.reason }, "sidecar token refused");
      throw new HttpError(401, "unauthorized", error.reason);
    }
  };

  const answer = async (request: IncomingMessage, kind: CheckInKind): Promise<unknown> => {
    const token = await authenticate(request, kind);
    const body = parseJsonBody(await readRequestBody(request, maxBodyBytes));
    const scoped = (checkIn: CheckIn) => withinScope(token, checkIn, kind);
    switch (kind) {
      case "poll":
        return accept(scoped(fromDetails(kind, parseWith(instanceDetailsSchema, body))));
      case "status":
        return accept(scoped(fromReport(kind, body)));
      case "stats":
        await accept(scoped(fromReport(kind, body)));
        return SAVED;
      case "shutdown":
        await accept(scoped(fromDetails(kind, parseWith(instanceDetailsSchema, body))));
        return SAVED;
    }
  };

  return {
    callOf(request) {
      if (request.method !== "POST" || request.url === undefined) return undefined;
      const query = request.url.indexOf("?");
      return SIDECAR_PATHS.get(query === -1 ? request.url : request.url.slice(0, query));
    },
    async serve(request, response, kind) {
      const started = performance.now();
      let status = 200;
      let body: unknown;
      try {
        body = await answer(request, kind);
      } catch (error) {
        metrics.checkInsRefused.inc({ kind, reason: refusalReason(error) });
        ({ status, body } = answerError(error, `/sidecar/${kind}`));
      }
      try {
        // A client gone is counted, not answered: there is nobody to answer.
        if (status !== CLIENT_GONE_STATUS && !response.destroyed) sendJson(response, status, body);
        metrics.httpRequestDuration.observe(
          { method: "POST", route: `/sidecar/${kind}`, status: String(status) },
          (performance.now() - started) / 1000,
        );
      } catch (error) {
        // Nothing may escape: the listener does not wait for this promise.
        logger.error({ event: "sidecar.reply_failed", path: `/sidecar/${kind}`, err: error }, "check-in reply failed");
        response.destroy();
      }
    },
  };
}

const SAVED = { save: "OK" };

/** A token speaks only for its own group and instance: anything else is a 403 naming the body's field. */
function withinScope(token: VerifiedToken, checkIn: CheckIn, kind: CheckInKind): CheckIn {
  try {
    checkScope(token, checkIn.details);
  } catch (error) {
    if (!(error instanceof TokenScopeError)) throw error;
    const field = kind === "poll" || kind === "shutdown" ? error.field : `instance.${error.field}`;
    throw new HttpError(403, "forbidden", error.message, [{ field, message: error.message }]);
  }
  return checkIn;
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

function refusalReason(error: unknown): string {
  if (error instanceof HttpError) return error.code === "unauthorized" ? "auth" : error.code;
  if (error instanceof StoreConflictError) return error.code;
  if (error instanceof StoreUnavailableError) return "unavailable";
  if (error instanceof ClientGoneError) return "client_gone";
  return "error";
}
