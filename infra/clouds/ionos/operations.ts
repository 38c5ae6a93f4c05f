// The IONOS Cloud operations behind the dynamic provider, as plain functions.
// Pulumi serializes the provider with every function it reaches, so nothing here may use a
// module-level import at run time: the SDK and zod are loaded inside the functions, resolved from
// this file's folder (a plain string, which survives serialization).
import type * as IonosSdk from "@ionos-cloud/sdk-nodejs";
import type { AxiosResponse } from "axios";
import type * as ZodModule from "zod";
import type { FirewallRule } from "../types.js";

/** Where and as whom to call the API. Credentials fall back to IONOS_TOKEN or IONOS_USERNAME/IONOS_PASSWORD. */
export interface IonosConnection {
  /** API base URL, default https://api.ionos.com/cloudapi/v6 (the local stack points it at the emulator). */
  endpoint?: string;
  token?: string;
  username?: string;
  password?: string;
  /** How often a request's status is polled, default 2 s. */
  pollIntervalMs?: number;
  /** How long a request may take before giving up, default 20 min. */
  requestTimeoutMs?: number;
  /** Attempts for a call answered 429 or 5xx, default 6. */
  maxAttempts?: number;
  /** First back-off when no Retry-After is sent, doubled per attempt, default 1 s. */
  retryBaseMs?: number;
}

export type VmState = "RUNNING" | "SHUTOFF";

export interface IonosServerInputs {
  datacenterId: string;
  lanId: number;
  name: string;
  cores: number;
  ramMb: number;
  /** Image UUID or alias such as ubuntu:22.04. */
  image: string;
  volumeSizeGb: number;
  userData: string;
  sshKeys: string[];
  vmState: VmState;
  labels: Record<string, string>;
  firewallRules: FirewallRule[];
  connection: IonosConnection;
}

export interface IonosServerOutputs extends IonosServerInputs {
  serverId: string;
  volumeId: string;
  nicId: string;
  publicIp: string;
}

export interface IonosDatacenterInputs {
  name: string;
  location: string;
  connection: IonosConnection;
}

export interface IonosDatacenterOutputs extends IonosDatacenterInputs {
  datacenterId: string;
  lanId: number;
}

/** An API call or request that failed, with the API's own message. */
export class IonosApiError extends Error {
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    readonly apiMessage: string,
    readonly requestId?: string,
  ) {
    const message = `IONOS ${operation} failed${status === undefined ? "" : ` (HTTP ${status})`}: ${apiMessage}${requestId === undefined ? "" : ` [request ${requestId}]`}`;
    super(message);
    // Pulumi serializes this class for the dynamic provider with `super(…)` as a plain call of `Error`, which
    // initialises another object: without this the engine would report the failure as "undefined".
    this.message = message;
    this.name = "IonosApiError";
  }
}

type Sdk = typeof IonosSdk;
type Zod = typeof ZodModule;

const RESOLVE_FROM = new URL("./", import.meta.url).href;

function loadPackage<T>(name: string): T {
  const { createRequire } = process.getBuiltinModule("node:module");
  return createRequire(RESOLVE_FROM)(name) as T;
}

async function loadSdk(): Promise<Sdk> {
  return loadPackage<Sdk>("@ionos-cloud/sdk-nodejs");
}

async function sdkConfiguration(connection: IonosConnection) {
  const sdk = await loadSdk();
  const token = connection.token ?? process.env.IONOS_TOKEN;
  const username = connection.username ?? process.env.IONOS_USERNAME;
  const password = connection.password ?? process.env.IONOS_PASSWORD;
  if (token === undefined && (username === undefined || password === undefined)) {
    throw new IonosApiError("authentication", undefined, "no credentials: set IONOS_TOKEN, or IONOS_USERNAME and IONOS_PASSWORD");
  }
  const configuration = new sdk.Configuration({
    ...(token === undefined ? { username, password } : { apiKey: token }),
    basePath: (connection.endpoint ?? process.env.IONOS_API_URL ?? "https://api.ionos.com/cloudapi/v6").replace(/\/+$/, ""),
  });
  // The SDK's own retry sleeps before the first call and misses lowercase Retry-After headers; retries are ours.
  configuration.maxRetries = 1;
  configuration.maxWaitTime = 0;
  return { sdk, configuration };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The API's message from an error body `{httpStatus, messages: [{errorCode, message}]}`, else the transport's. */
async function describeFailure(error: unknown): Promise<{ status: number | undefined; message: string; retryAfterSeconds: number | undefined }> {
  const { z } = loadPackage<Zod>("zod");
  const failure = z
    .object({
      message: z.string().optional(),
      response: z
        .object({
          status: z.number(),
          headers: z.record(z.string(), z.unknown()).optional(),
          data: z.unknown(),
        })
        .optional(),
    })
    .safeParse(error);
  if (!failure.success) return { status: undefined, message: String(error), retryAfterSeconds: undefined };
  const response = failure.data.response;
  if (response === undefined) return { status: undefined, message: failure.data.message ?? String(error), retryAfterSeconds: undefined };
  const body = z.object({ messages: z.array(z.object({ errorCode: z.string().optional(), message: z.string() })).min(1) }).safeParse(response.data);
  const message = body.success
    ? body.data.messages.map((entry) => (entry.errorCode === undefined ? entry.message : `[${entry.errorCode}] ${entry.message}`)).join("; ")
    : typeof response.data === "string" && response.data.length > 0
      ? response.data
      : `HTTP ${response.status}`;
  const retryAfter = Number(response.headers?.["retry-after"]);
  return { status: response.status, message, retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined };
}

/**
 * Runs one API call, retrying 429 (honouring Retry-After) and, for calls safe to repeat, 5xx with
 * exponential back-off. A create is only retried on 429: after a 5xx it may have happened anyway.
 */
async function callApi<T>(operation: string, connection: IonosConnection, idempotent: boolean, call: () => Promise<AxiosResponse<T>>): Promise<AxiosResponse<T>> {
  const maxAttempts = connection.maxAttempts ?? 6;
  const retryBaseMs = connection.retryBaseMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const failure = await describeFailure(error);
      const retryable = failure.status === 429 || (idempotent && failure.status !== undefined && failure.status >= 500);
      if (!retryable || attempt >= maxAttempts) throw new IonosApiError(operation, failure.status, failure.message);
      await delay(failure.retryAfterSeconds !== undefined ? failure.retryAfterSeconds * 1000 : retryBaseMs * 2 ** (attempt - 1));
    }
  }
}

/** Polls the request behind a 202's Location header until DONE; FAILED or a timeout is an `IonosApiError`. */
async function waitForRequest(operation: string, connection: IonosConnection, response: AxiosResponse<unknown>): Promise<void> {
  const { z } = loadPackage<Zod>("zod");
  const location = (response.headers as Record<string, unknown>)["location"];
  const match = typeof location === "string" ? /\/requests\/([^/]+)\/status\/?$/.exec(location) : null;
  if (match === null || match[1] === undefined) {
    throw new IonosApiError(operation, response.status, `the API accepted the call but sent no request Location to wait on (got ${JSON.stringify(location)})`);
  }
  const requestId = match[1];
  const statusReply = z.object({ metadata: z.object({ status: z.enum(["QUEUED", "RUNNING", "DONE", "FAILED"]), message: z.string().optional() }) });
  const { sdk, configuration } = await sdkConfiguration(connection);
  const requests = new sdk.RequestsApi(configuration);
  const deadline = Date.now() + (connection.requestTimeoutMs ?? 20 * 60_000);
  for (;;) {
    const reply = await callApi(`${operation}: status of request ${requestId}`, connection, true, () => requests.requestsStatusGet({ requestId }));
    const status = statusReply.safeParse(reply.data);
    if (!status.success) throw new IonosApiError(operation, reply.status, `unexpected request status reply: ${status.error.message}`, requestId);
    if (status.data.metadata.status === "DONE") return;
    if (status.data.metadata.status === "FAILED") throw new IonosApiError(operation, undefined, status.data.metadata.message ?? "request FAILED", requestId);
    if (Date.now() > deadline) throw new IonosApiError(operation, undefined, `request still ${status.data.metadata.status} at the deadline`, requestId);
    await delay(connection.pollIntervalMs ?? 2000);
  }
}

function toApiFirewallRule(rule: FirewallRule, sourceCidr: string) {
  const ipv6 = sourceCidr.includes(":");
  const anywhere = sourceCidr === "0.0.0.0/0" || sourceCidr === "::/0";
  const sourceIp = sourceCidr.endsWith("/32") || sourceCidr.endsWith("/128") ? sourceCidr.slice(0, sourceCidr.indexOf("/")) : sourceCidr;
  return {
    properties: {
      name: rule.description.slice(0, 60),
      protocol: rule.protocol.toUpperCase(),
      type: "INGRESS",
      ipVersion: ipv6 ? "IPv6" : "IPv4",
      // The API reads an absent source as "any source" of the rule's IP version.
      ...(anywhere ? {} : { sourceIp }),
      portRangeStart: rule.fromPort,
      portRangeEnd: rule.toPort,
    },
  };
}

function apiFirewallRules(rules: FirewallRule[]) {
  return rules.flatMap((rule) => rule.sourceCidrs.map((cidr) => toApiFirewallRule(rule, cidr)));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Creates the server with its boot volume, a NIC on the public LAN with its firewall rules, and its labels. */
export async function createServer(inputs: IonosServerInputs): Promise<IonosServerOutputs> {
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const servers = new sdk.ServersApi(configuration);
  const operation = `create server ${inputs.name}`;
  const volume = {
    properties: {
      name: `${inputs.name}-boot`,
      type: "SSD",
      size: inputs.volumeSizeGb,
      ...(UUID.test(inputs.image) ? { image: inputs.image } : { imageAlias: inputs.image }),
      userData: Buffer.from(inputs.userData, "utf8").toString("base64"),
      sshKeys: inputs.sshKeys,
    },
  };
  const nic = {
    properties: { name: `${inputs.name}-public`, lan: inputs.lanId, dhcp: true, firewallActive: true, firewallType: "INGRESS" },
    entities: { firewallrules: { items: apiFirewallRules(inputs.firewallRules) } },
  };
  const created = await callApi(operation, inputs.connection, false, () =>
    servers.datacentersServersPost({
      datacenterId: inputs.datacenterId,
      server: {
        properties: { name: inputs.name, cores: inputs.cores, ram: inputs.ramMb },
        entities: { volumes: { items: [volume] }, nics: { items: [nic] } },
      } as never,
    }),
  );
  await waitForRequest(operation, inputs.connection, created);
  const serverId = created.data.id;
  if (serverId === undefined) throw new IonosApiError(operation, created.status, "the reply carried no server id");
  await applyLabels(inputs, serverId, {});
  if (inputs.vmState === "SHUTOFF") await setVmState(inputs, serverId, "SHUTOFF");
  return { ...inputs, ...(await readServerIds(inputs, serverId)) };
}

async function applyLabels(inputs: IonosServerInputs, serverId: string, current: Record<string, string>): Promise<void> {
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const labels = new sdk.LabelsApi(configuration);
  for (const [key, value] of Object.entries(inputs.labels)) {
    if (current[key] === value) continue;
    const operation = `label server ${inputs.name} ${key}`;
    if (key in current) {
      await callApi(operation, inputs.connection, true, () => labels.datacentersServersLabelsDelete({ datacenterId: inputs.datacenterId, serverId, key }));
    }
    await callApi(operation, inputs.connection, false, () =>
      labels.datacentersServersLabelsPost({ datacenterId: inputs.datacenterId, serverId, label: { properties: { key, value } } }),
    );
  }
}

async function setVmState(inputs: IonosServerInputs, serverId: string, state: VmState): Promise<void> {
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const servers = new sdk.ServersApi(configuration);
  const operation = `${state === "RUNNING" ? "start" : "stop"} server ${inputs.name}`;
  const reply = await callApi(operation, inputs.connection, true, () =>
    state === "RUNNING"
      ? servers.datacentersServersStartPost({ datacenterId: inputs.datacenterId, serverId })
      : servers.datacentersServersStopPost({ datacenterId: inputs.datacenterId, serverId }),
  );
  await waitForRequest(operation, inputs.connection, reply);
}

async function readServerIds(inputs: IonosServerInputs, serverId: string): Promise<{ serverId: string; volumeId: string; nicId: string; publicIp: string }> {
  const { z } = loadPackage<Zod>("zod");
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const servers = new sdk.ServersApi(configuration);
  const operation = `read server ${inputs.name}`;
  const reply = await callApi(operation, inputs.connection, true, () => servers.datacentersServersFindById({ datacenterId: inputs.datacenterId, serverId, depth: 3 }));
  const shape = z.object({
    id: z.string(),
    entities: z.object({
      volumes: z.object({ items: z.array(z.object({ id: z.string() })).min(1) }),
      nics: z.object({ items: z.array(z.object({ id: z.string(), properties: z.object({ ips: z.array(z.string()).min(1) }) })).min(1) }),
    }),
  });
  const server = shape.safeParse(reply.data);
  if (!server.success) throw new IonosApiError(operation, reply.status, `unexpected server reply: ${server.error.message}`);
  const [volume] = server.data.entities.volumes.items;
  const [nic] = server.data.entities.nics.items;
  if (volume === undefined || nic === undefined || nic.properties.ips[0] === undefined) throw new IonosApiError(operation, reply.status, "server without volume or addressed NIC");
  return { serverId: server.data.id, volumeId: volume.id, nicId: nic.id, publicIp: nic.properties.ips[0] };
}

/** Applies in-place changes: cores/RAM (PATCH), power state (start/stop), firewall rules, labels. */
export async function updateServer(olds: IonosServerOutputs, news: IonosServerInputs): Promise<IonosServerOutputs> {
  const { sdk, configuration } = await sdkConfiguration(news.connection);
  const servers = new sdk.ServersApi(configuration);
  const serverId = olds.serverId;
  if (olds.cores !== news.cores || olds.ramMb !== news.ramMb || olds.name !== news.name) {
    const operation = `resize server ${news.name}`;
    const reply = await callApi(operation, news.connection, true, () =>
      servers.datacentersServersPatch({ datacenterId: news.datacenterId, serverId, server: { name: news.name, cores: news.cores, ram: news.ramMb } }),
    );
    await waitForRequest(operation, news.connection, reply);
  }
  if (JSON.stringify(olds.firewallRules) !== JSON.stringify(news.firewallRules)) await replaceFirewallRules(news, serverId, olds.nicId);
  await applyLabels(news, serverId, olds.labels);
  if (olds.vmState !== news.vmState) await setVmState(news, serverId, news.vmState);
  return { ...news, serverId, volumeId: olds.volumeId, nicId: olds.nicId, publicIp: olds.publicIp };
}

async function replaceFirewallRules(inputs: IonosServerInputs, serverId: string, nicId: string): Promise<void> {
  const { z } = loadPackage<Zod>("zod");
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const firewall = new sdk.FirewallRulesApi(configuration);
  const where = { datacenterId: inputs.datacenterId, serverId, nicId };
  const listed = await callApi(`list firewall rules of ${inputs.name}`, inputs.connection, true, () => firewall.datacentersServersNicsFirewallrulesGet(where));
  const existing = z.object({ items: z.array(z.object({ id: z.string() })).default([]) }).parse(listed.data);
  // New rules first, old ones after: the server is never left without its rules.
  for (const rule of apiFirewallRules(inputs.firewallRules)) {
    const operation = `add firewall rule ${rule.properties.name} to ${inputs.name}`;
    const reply = await callApi(operation, inputs.connection, false, () => firewall.datacentersServersNicsFirewallrulesPost({ ...where, firewallrule: rule as never }));
    await waitForRequest(operation, inputs.connection, reply);
  }
  for (const rule of existing.items) {
    const operation = `remove firewall rule ${rule.id} from ${inputs.name}`;
    const reply = await callApi(operation, inputs.connection, true, () => firewall.datacentersServersNicsFirewallrulesDelete({ ...where, firewallruleId: rule.id }));
    await waitForRequest(operation, inputs.connection, reply);
  }
}

/** Deletes the server with its volumes; a server already gone counts as deleted. */
export async function deleteServer(olds: IonosServerOutputs): Promise<void> {
  const { sdk, configuration } = await sdkConfiguration(olds.connection);
  const servers = new sdk.ServersApi(configuration);
  const operation = `delete server ${olds.name}`;
  try {
    const reply = await callApi(operation, olds.connection, true, () =>
      servers.datacentersServersDelete({ datacenterId: olds.datacenterId, serverId: olds.serverId, deleteVolumes: true }),
    );
    await waitForRequest(operation, olds.connection, reply);
  } catch (error) {
    if (error instanceof IonosApiError && error.status === 404) return;
    throw error;
  }
}

export interface ServerDiff {
  changes: boolean;
  replaces: string[];
}

/** cores/RAM, name, power state, firewall rules and labels change in place; the boot disk's inputs replace the server. */
export function diffServer(olds: IonosServerOutputs, news: IonosServerInputs): ServerDiff {
  const replacing = ["datacenterId", "lanId", "image", "volumeSizeGb", "userData", "sshKeys"] as const;
  const inPlace = ["name", "cores", "ramMb", "vmState", "labels", "firewallRules"] as const;
  const differs = (key: keyof IonosServerInputs) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]);
  const replaces = replacing.filter(differs);
  return { changes: replaces.length > 0 || inPlace.some(differs), replaces: [...replaces] };
}

/** Creates a data center with one public LAN for the environment. */
export async function createDatacenter(inputs: IonosDatacenterInputs): Promise<IonosDatacenterOutputs> {
  const { z } = loadPackage<Zod>("zod");
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const datacenters = new sdk.DataCentersApi(configuration);
  const operation = `create data center ${inputs.name}`;
  const created = await callApi(operation, inputs.connection, false, () =>
    datacenters.datacentersPost({ datacenter: { properties: { name: inputs.name, location: inputs.location } } as never }),
  );
  await waitForRequest(operation, inputs.connection, created);
  const datacenterId = created.data.id;
  if (datacenterId === undefined) throw new IonosApiError(operation, created.status, "the reply carried no data center id");
  // The LAN is its own write, so the data center and its LAN each have a request to wait on.
  const lans = new sdk.LANsApi(configuration);
  const lanOperation = `create public LAN of ${inputs.name}`;
  // `public` is the API's field; the SDK's type calls it `_public` and sends bodies as they are given.
  const lanCreated = await callApi(lanOperation, inputs.connection, false, () =>
    lans.datacentersLansPost({ datacenterId, lan: { properties: { name: `${inputs.name}-public`, public: true } } as never }),
  );
  await waitForRequest(lanOperation, inputs.connection, lanCreated);
  const lan = z.object({ id: z.string().regex(/^\d+$/, "expected a numeric LAN id") }).safeParse(lanCreated.data);
  if (!lan.success) throw new IonosApiError(lanOperation, lanCreated.status, `unexpected LAN reply: ${lan.error.message}`);
  return { ...inputs, datacenterId, lanId: Number(lan.data.id) };
}

export async function deleteDatacenter(olds: IonosDatacenterOutputs): Promise<void> {
  const { sdk, configuration } = await sdkConfiguration(olds.connection);
  const datacenters = new sdk.DataCentersApi(configuration);
  const operation = `delete data center ${olds.name}`;
  try {
    const reply = await callApi(operation, olds.connection, true, () => datacenters.datacentersDelete({ datacenterId: olds.datacenterId }));
    await waitForRequest(operation, olds.connection, reply);
  } catch (error) {
    if (error instanceof IonosApiError && error.status === 404) return;
    throw error;
  }
}
