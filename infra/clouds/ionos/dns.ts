// IONOS Cloud DNS records behind the dynamic provider, as plain functions (the API: zones and records under
// https://dns.de-fra.ionos.com, the same credentials as the Cloud API). As in operations.ts, nothing here may use a
// module-level import at run time: Pulumi serializes the provider with every function it reaches.
import type * as ZodModule from "zod";
import { IonosApiError, NO_IONOS_CREDENTIALS, hasIonosCredentials, type IonosConnection } from "./operations.js";

export interface IonosDnsRecordInputs {
  /** The zone's name, e.g. example.org; its id is looked up. */
  zoneName: string;
  /** The record's name relative to the zone, e.g. bbb-1.bbb. */
  name: string;
  type: "A" | "AAAA";
  content: string;
  ttl: number;
  /** `endpoint` is the Cloud DNS API's base URL. */
  connection: IonosConnection;
}

export interface IonosDnsRecordOutputs extends IonosDnsRecordInputs {
  zoneId: string;
  recordId: string;
}

const RESOLVE_FROM = new URL("./", import.meta.url).href;

function loadZod(): typeof ZodModule {
  const { createRequire } = process.getBuiltinModule("node:module");
  return createRequire(RESOLVE_FROM)("zod") as typeof ZodModule;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One call of the DNS API with the connection's credentials (else the engine's IONOS_* variables); 429 and 5xx are retried. */
async function dnsCall(
  operation: string,
  connection: IonosConnection,
  method: "GET" | "PUT" | "DELETE",
  path: string,
  body?: unknown,
): Promise<{ status: number; data: unknown }> {
  const source = hasIonosCredentials(connection)
    ? connection
    : { token: process.env.IONOS_TOKEN, username: process.env.IONOS_USERNAME, password: process.env.IONOS_PASSWORD };
  if (!hasIonosCredentials(source)) throw new IonosApiError(operation, undefined, NO_IONOS_CREDENTIALS);
  const authorization = source.token
    ? `Bearer ${source.token}`
    : `Basic ${Buffer.from(`${source.username}:${source.password}`, "utf8").toString("base64")}`;
  const base = (connection.endpoint ?? "https://dns.de-fra.ionos.com").replace(/\/+$/, "");
  const maxAttempts = connection.maxAttempts ?? 6;
  for (let attempt = 1; ; attempt++) {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers: {
          Authorization: authorization,
          Accept: "application/json",
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (error) {
      // Every call here is safe to repeat: the record's id is chosen before its PUT.
      if (attempt >= maxAttempts) throw new IonosApiError(operation, undefined, error instanceof Error ? error.message : String(error));
      await pause((connection.retryBaseMs ?? 1000) * 2 ** (attempt - 1));
      continue;
    }
    const text = await response.text();
    let data: unknown = text;
    try {
      data = text === "" ? undefined : JSON.parse(text);
    } catch {
      // Not JSON: kept as text for the error message.
    }
    if (response.ok || response.status === 404) return { status: response.status, data };
    const retryable = response.status === 429 || response.status >= 500;
    if (!retryable || attempt >= maxAttempts) {
      const { z } = loadZod();
      const messages = z.object({ messages: z.array(z.object({ message: z.string() })).min(1) }).safeParse(data);
      throw new IonosApiError(
        operation,
        response.status,
        messages.success ? messages.data.messages.map((entry) => entry.message).join("; ") : `HTTP ${response.status}`,
      );
    }
    const retryAfter = Number(response.headers.get("retry-after"));
    await pause(Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : (connection.retryBaseMs ?? 1000) * 2 ** (attempt - 1));
  }
}

/** The id of the zone named `zoneName`; a zone the account does not hold is an error naming it. */
async function zoneIdOf(connection: IonosConnection, zoneName: string): Promise<string> {
  const { z } = loadZod();
  const operation = `find DNS zone ${zoneName}`;
  const reply = await dnsCall(operation, connection, "GET", `/zones?filter.zoneName=${encodeURIComponent(zoneName)}`);
  const zones = z
    .object({ items: z.array(z.object({ id: z.string(), properties: z.object({ zoneName: z.string() }) })).default([]) })
    .safeParse(reply.data);
  if (!zones.success) throw new IonosApiError(operation, reply.status, `unexpected zone list: ${zones.error.message}`);
  // The filter matches parts of names: only the zone of exactly this name is the one.
  const zone = zones.data.items.find((item) => item.properties.zoneName.toLowerCase() === zoneName.toLowerCase());
  if (zone === undefined)
    throw new IonosApiError(operation, reply.status, `the account has no DNS zone ${zoneName}: create it in Cloud DNS first`);
  return zone.id;
}

/** Waits until the record is provisioned (`AVAILABLE`), or gone when `gone` is set; `FAILED` is an error. */
async function settle(operation: string, connection: IonosConnection, path: string, gone: boolean): Promise<void> {
  const { z } = loadZod();
  const deadline = Date.now() + (connection.requestTimeoutMs ?? 10 * 60_000);
  for (;;) {
    const reply = await dnsCall(operation, connection, "GET", path);
    if (reply.status === 404) {
      if (gone) return;
      throw new IonosApiError(operation, 404, "the record vanished while it was being provisioned");
    }
    const record = z.object({ metadata: z.object({ state: z.string() }) }).safeParse(reply.data);
    if (!record.success) throw new IonosApiError(operation, reply.status, `unexpected record reply: ${record.error.message}`);
    const state = record.data.metadata.state;
    if (state === "FAILED") throw new IonosApiError(operation, reply.status, "the record's provisioning FAILED");
    if (!gone && state === "AVAILABLE") return;
    if (Date.now() > deadline) throw new IonosApiError(operation, undefined, `the record is still ${state} at the deadline`);
    await pause(connection.pollIntervalMs ?? 2000);
  }
}

async function ensureRecord(
  inputs: IonosDnsRecordInputs,
  zoneId: string,
  recordId: string,
  operation: string,
): Promise<IonosDnsRecordOutputs> {
  const path = `/zones/${zoneId}/records/${recordId}`;
  // PUT with an id of our choosing creates or updates: a create whose answer was lost is simply repeated.
  await dnsCall(operation, inputs.connection, "PUT", path, {
    properties: { name: inputs.name, type: inputs.type, content: inputs.content, ttl: inputs.ttl, enabled: true },
  });
  await settle(operation, inputs.connection, path, false);
  return { ...inputs, zoneId, recordId };
}

export async function createDnsRecord(inputs: IonosDnsRecordInputs): Promise<IonosDnsRecordOutputs> {
  const zoneId = await zoneIdOf(inputs.connection, inputs.zoneName);
  const recordId = process.getBuiltinModule("node:crypto").randomUUID();
  return ensureRecord(inputs, zoneId, recordId, `create DNS record ${inputs.type} ${inputs.name}.${inputs.zoneName}`);
}

export async function updateDnsRecord(olds: IonosDnsRecordOutputs, news: IonosDnsRecordInputs): Promise<IonosDnsRecordOutputs> {
  return ensureRecord(news, olds.zoneId, olds.recordId, `update DNS record ${news.type} ${news.name}.${news.zoneName}`);
}

/** Deletes the record; one already gone counts as deleted. */
export async function deleteDnsRecord(olds: IonosDnsRecordOutputs): Promise<void> {
  const operation = `delete DNS record ${olds.type} ${olds.name}.${olds.zoneName}`;
  const path = `/zones/${olds.zoneId}/records/${olds.recordId}`;
  const reply = await dnsCall(operation, olds.connection, "DELETE", path);
  if (reply.status === 404) return;
  await settle(operation, olds.connection, path, true);
}

/** The zone, name and type identify a record: changing them makes a new one; content and TTL change in place. */
export function diffDnsRecord(olds: IonosDnsRecordOutputs, news: IonosDnsRecordInputs): { changes: boolean; replaces: string[] } {
  const differs = (key: keyof IonosDnsRecordInputs) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]);
  const replaces = (["zoneName", "name", "type"] as const).filter(differs);
  return { changes: replaces.length > 0 || differs("content") || differs("ttl"), replaces: [...replaces] };
}
