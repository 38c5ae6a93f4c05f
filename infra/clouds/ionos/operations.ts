// The IONOS Cloud operations behind the dynamic provider, as plain functions.
// Pulumi serializes the provider with every function it reaches, so nothing here may use a
// module-level import at run time: the SDK and zod are loaded inside the functions, resolved from
// this file's folder (a plain string, which survives serialization).
import type * as IonosSdk from "@ionos-cloud/sdk-nodejs";
import type { AxiosResponse } from "axios";
import type * as ZodModule from "zod";
import type { FirewallRule, ListedMachine } from "../types.js";

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

/** Servers named like the one to create exist but are not exactly one of ours (other labels, or several): left untouched. */
export class IonosOwnershipConflictError extends Error {
  constructor(
    readonly serverName: string,
    readonly datacenterId: string,
    readonly serverIds: string[],
    readonly foundLabels: Record<string, string>,
    readonly expectedLabels: Record<string, string>,
  ) {
    const message =
      `IONOS create server ${serverName} refused: data center ${datacenterId} already holds ${serverIds.length === 1 ? "a server" : `${serverIds.length} servers`} ` +
      `named ${serverName} (${serverIds.join(", ")}) with labels ${JSON.stringify(foundLabels)}, which is not exactly one server of ours ` +
      `(${JSON.stringify(expectedLabels)}): it is left untouched; rename one of them or resolve it in the cloud by hand`;
    super(message);
    // Set explicitly for the same reason as in IonosApiError: the serialized `super(…)` initialises another object.
    this.message = message;
    this.name = "IonosOwnershipConflictError";
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

/** Whether a connection carries credentials of its own: a token, or a username and password. */
export function hasIonosCredentials(connection: Pick<IonosConnection, "token" | "username" | "password">): boolean {
  return Boolean(connection.token) || (Boolean(connection.username) && Boolean(connection.password));
}

export const NO_IONOS_CREDENTIALS = "no credentials: set IONOS_TOKEN, or IONOS_USERNAME and IONOS_PASSWORD";

async function sdkConfiguration(connection: IonosConnection) {
  const sdk = await loadSdk();
  // Credentials come from one place, never mixed: the connection's when it has any, else the process environment's
  // (the dynamic provider's).
  const source = hasIonosCredentials(connection)
    ? connection
    : { token: process.env.IONOS_TOKEN, username: process.env.IONOS_USERNAME, password: process.env.IONOS_PASSWORD };
  if (!hasIonosCredentials(source)) throw new IonosApiError("authentication", undefined, NO_IONOS_CREDENTIALS);
  const token = source.token || undefined;
  const { username, password } = source;
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
async function describeFailure(
  error: unknown,
): Promise<{ status: number | undefined; message: string; retryAfterSeconds: number | undefined; transient: boolean }> {
  const { z } = loadPackage<Zod>("zod");
  const failure = z
    .object({
      message: z.string().optional(),
      code: z.string().optional(),
      response: z
        .object({
          status: z.number(),
          headers: z.record(z.string(), z.unknown()).optional(),
          data: z.unknown(),
        })
        .optional(),
    })
    .safeParse(error);
  if (!failure.success) return { status: undefined, message: String(error), retryAfterSeconds: undefined, transient: false };
  const response = failure.data.response;
  if (response === undefined) {
    // No answer: the connection broke (a kept-alive one the server had just closed, a reset under load).
    const transient = TRANSIENT_TRANSPORT_CODES.includes(failure.data.code ?? "");
    return { status: undefined, message: failure.data.message ?? String(error), retryAfterSeconds: undefined, transient };
  }
  const body = z
    .object({ messages: z.array(z.object({ errorCode: z.string().optional(), message: z.string() })).min(1) })
    .safeParse(response.data);
  const message = body.success
    ? body.data.messages
        .map((entry) => (entry.errorCode === undefined ? entry.message : `[${entry.errorCode}] ${entry.message}`))
        .join("; ")
    : typeof response.data === "string" && response.data.length > 0
      ? response.data
      : `HTTP ${response.status}`;
  const retryAfter = Number(response.headers?.["retry-after"]);
  return {
    status: response.status,
    message,
    retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined,
    transient: false,
  };
}

/**
 * Transport failures after which a call safe to repeat is repeated: the connection broke before an answer came (an
 * array: Pulumi cannot serialize a Set).
 */
const TRANSIENT_TRANSPORT_CODES = ["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "ECONNREFUSED", "EAI_AGAIN"];

/**
 * Runs one API call, retrying 429 (honouring Retry-After) and, for calls safe to repeat, 5xx and broken connections
 * with exponential back-off. A create is only retried on 429: after a 5xx or a reset it may have happened anyway.
 */
async function callApi<T>(
  operation: string,
  connection: IonosConnection,
  idempotent: boolean,
  call: () => Promise<AxiosResponse<T>>,
): Promise<AxiosResponse<T>> {
  const maxAttempts = connection.maxAttempts ?? 6;
  const retryBaseMs = connection.retryBaseMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const failure = await describeFailure(error);
      const retryable =
        failure.status === 429 || (idempotent && ((failure.status !== undefined && failure.status >= 500) || failure.transient));
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
    throw new IonosApiError(
      operation,
      response.status,
      `the API accepted the call but sent no request Location to wait on (got ${JSON.stringify(location)})`,
    );
  }
  const requestId = match[1];
  const statusReply = z.object({
    metadata: z.object({ status: z.enum(["QUEUED", "RUNNING", "DONE", "FAILED"]), message: z.string().optional() }),
  });
  const { sdk, configuration } = await sdkConfiguration(connection);
  const requests = new sdk.RequestsApi(configuration);
  const deadline = Date.now() + (connection.requestTimeoutMs ?? 20 * 60_000);
  for (;;) {
    const reply = await callApi(`${operation}: status of request ${requestId}`, connection, true, () =>
      requests.requestsStatusGet({ requestId }),
    );
    const status = statusReply.safeParse(reply.data);
    if (!status.success)
      throw new IonosApiError(operation, reply.status, `unexpected request status reply: ${status.error.message}`, requestId);
    if (status.data.metadata.status === "DONE") return;
    if (status.data.metadata.status === "FAILED")
      throw new IonosApiError(operation, undefined, status.data.metadata.message ?? "request FAILED", requestId);
    if (Date.now() > deadline)
      throw new IonosApiError(operation, undefined, `request still ${status.data.metadata.status} at the deadline`, requestId);
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

/** Labels that say who owns a machine (`confscale:env`, `confscale:role`, `confscale:fleet`). */
const OWNERSHIP_LABEL_PREFIX = "confscale:";

/** Server states in which an earlier create is still being carried out (an array: Pulumi cannot serialize a Set). */
const SERVER_STATES_IN_PROGRESS = ["BUSY", "DEPLOYING", "UPDATING"];

/**
 * Creates the server with its boot volume, a NIC on the public LAN with its firewall rules, and its labels.
 * Idempotent by name: a create that happened although its answer was lost (a 5xx, a crash before Pulumi recorded
 * it) left a server of this name behind, so one is looked for before every POST and adopted when it is ours.
 */
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
  const maxAttempts = inputs.connection.maxAttempts ?? 6;
  const retryBaseMs = inputs.connection.retryBaseMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    const earlier = await findOwnServer(inputs);
    if (earlier !== undefined) return adoptServer(inputs, earlier.id, earlier.labels);
    let created: AxiosResponse<IonosSdk.Server>;
    try {
      created = await callApi(operation, inputs.connection, false, () =>
        servers.datacentersServersPost({
          datacenterId: inputs.datacenterId,
          server: {
            properties: { name: inputs.name, cores: inputs.cores, ram: inputs.ramMb },
            entities: { volumes: { items: [volume] }, nics: { items: [nic] } },
          } as never,
        }),
      );
    } catch (error) {
      // A 5xx or a lost answer leaves it open whether the server was made: the lookup at the top of the next
      // attempt adopts it if so, and posting again is safe if not.
      const unknownOutcome = error instanceof IonosApiError && (error.status === undefined || error.status >= 500);
      if (!unknownOutcome || attempt >= maxAttempts) throw error;
      await delay(retryBaseMs * 2 ** (attempt - 1));
      continue;
    }
    await waitForRequest(operation, inputs.connection, created);
    const serverId = created.data.id;
    if (serverId === undefined) throw new IonosApiError(operation, created.status, "the reply carried no server id");
    await applyLabels(inputs, serverId, {});
    if (inputs.vmState === "SHUTOFF") await setVmState(inputs, serverId, "SHUTOFF");
    return { ...inputs, ...(await readServerIds(inputs, serverId)) };
  }
}

/**
 * The server named like `inputs` in its data center when it is ours: its ownership labels agree with the inputs',
 * or it has no labels at all yet (labels are written after the server exists, so a create of ours that was cut
 * short has none). A same-named server with anyone else's labels is an `IonosOwnershipConflictError`.
 */
async function findOwnServer(inputs: IonosServerInputs): Promise<{ id: string; labels: Record<string, string> } | undefined> {
  const listed = await datacenterServers(inputs.connection, inputs.datacenterId, `look for server ${inputs.name}`);
  const namesakes = listed.filter((server) => server.name === inputs.name);
  if (namesakes.length === 0) return undefined;
  const found = await Promise.all(namesakes.map(async (server) => ({ id: server.id, labels: await readLabels(inputs, server.id) })));
  const ours = found.filter(({ labels }) => {
    const entries = Object.entries(labels);
    const ownership = entries.filter(([key]) => key.startsWith(OWNERSHIP_LABEL_PREFIX));
    if (entries.length === 0) return true;
    return ownership.length > 0 && ownership.every(([key, value]) => inputs.labels[key] === value);
  });
  const [own] = ours;
  if (own === undefined || found.length > 1) {
    const foundLabels = Object.assign({}, ...found.map((server) => server.labels)) as Record<string, string>;
    throw new IonosOwnershipConflictError(
      inputs.name,
      inputs.datacenterId,
      found.map((server) => server.id),
      foundLabels,
      inputs.labels,
    );
  }
  return own;
}

async function readLabels(
  inputs: Pick<IonosServerInputs, "connection" | "datacenterId" | "name">,
  serverId: string,
): Promise<Record<string, string>> {
  const { z } = loadPackage<Zod>("zod");
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const labels = new sdk.LabelsApi(configuration);
  const operation = `read labels of server ${inputs.name}`;
  const reply = await callApi(operation, inputs.connection, true, () =>
    labels.datacentersServersLabelsGet({ datacenterId: inputs.datacenterId, serverId, depth: 1 }),
  );
  const shape = z.object({ items: z.array(z.object({ properties: z.object({ key: z.string(), value: z.string() }) })).default([]) });
  const parsed = shape.safeParse(reply.data);
  if (!parsed.success) throw new IonosApiError(operation, reply.status, `unexpected label list: ${parsed.error.message}`);
  return Object.fromEntries(parsed.data.items.map((label) => [label.properties.key, label.properties.value]));
}

/** Servers a page of the data center's list holds; the API's default, well below its maximum of 10,000. */
const SERVER_PAGE_LIMIT = 1_000;

/** Every server of a data center, by id and name (a server may have none), as the API lists them. */
async function datacenterServers(
  connection: IonosConnection,
  datacenterId: string,
  operation: string,
): Promise<{ id: string; name: string | undefined }[]> {
  const { z } = loadPackage<Zod>("zod");
  const { sdk, configuration } = await sdkConfiguration(connection);
  const servers = new sdk.ServersApi(configuration);
  const shape = z.object({
    items: z.array(z.object({ id: z.string(), properties: z.object({ name: z.string().optional() }) })).default([]),
  });
  // The API answers a page at a time (1,000 servers unless asked otherwise): a server on a later page is still there.
  const found: { id: string; name: string | undefined }[] = [];
  for (let offset = 0; ; offset += SERVER_PAGE_LIMIT) {
    const listed = await callApi(operation, connection, true, () =>
      servers.datacentersServersGet({ datacenterId, depth: 1, offset, limit: SERVER_PAGE_LIMIT }),
    );
    const reply = shape.safeParse(listed.data);
    if (!reply.success) throw new IonosApiError(operation, listed.status, `unexpected server list: ${reply.error.message}`);
    found.push(...reply.data.items.map((server) => ({ id: server.id, name: server.properties.name })));
    if (reply.data.items.length < SERVER_PAGE_LIMIT) return found;
  }
}

/** Every server of a data center with its labels, read-only. */
export async function listServers(connection: IonosConnection, datacenterId: string): Promise<ListedMachine[]> {
  const listed = await datacenterServers(connection, datacenterId, `list servers of data center ${datacenterId}`);
  return Promise.all(
    listed.map(async (server) => {
      const name = server.name ?? server.id;
      return { id: server.id, name, labels: await readLabels({ connection, datacenterId, name }, server.id) };
    }),
  );
}

/** Finishes an earlier create of this server: waits for it, then brings size, rules, labels and power to the inputs. */
async function adoptServer(inputs: IonosServerInputs, serverId: string, labels: Record<string, string>): Promise<IonosServerOutputs> {
  const { z } = loadPackage<Zod>("zod");
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const servers = new sdk.ServersApi(configuration);
  const operation = `adopt server ${inputs.name} (${serverId})`;
  const shape = z.object({
    metadata: z.object({ state: z.string() }),
    properties: z.object({ cores: z.number(), ram: z.number(), vmState: z.string().optional() }),
    entities: z.object({
      nics: z
        .object({
          items: z.array(
            z.object({
              id: z.string(),
              entities: z
                .object({
                  firewallrules: z.object({ items: z.array(z.object({ properties: z.record(z.string(), z.unknown()) })).default([]) }),
                })
                .optional(),
            }),
          ),
        })
        .optional(),
    }),
  });
  const deadline = Date.now() + (inputs.connection.requestTimeoutMs ?? 20 * 60_000);
  let server: ZodModule.infer<typeof shape>;
  for (;;) {
    const reply = await callApi(operation, inputs.connection, true, () =>
      servers.datacentersServersFindById({ datacenterId: inputs.datacenterId, serverId, depth: 3 }),
    );
    const parsed = shape.safeParse(reply.data);
    if (!parsed.success) throw new IonosApiError(operation, reply.status, `unexpected server reply: ${parsed.error.message}`);
    server = parsed.data;
    if (!SERVER_STATES_IN_PROGRESS.includes(server.metadata.state)) break;
    if (Date.now() > deadline)
      throw new IonosApiError(operation, undefined, `the earlier create is still ${server.metadata.state} at the deadline`);
    await delay(inputs.connection.pollIntervalMs ?? 2000);
  }
  if (server.metadata.state !== "AVAILABLE" && server.metadata.state !== "INACTIVE") {
    throw new IonosApiError(
      operation,
      undefined,
      `the earlier create left the server ${server.metadata.state}: remove it by hand or fix it in the cloud`,
    );
  }
  if (server.properties.cores !== inputs.cores || server.properties.ram !== inputs.ramMb) {
    const reply = await callApi(`resize server ${inputs.name}`, inputs.connection, true, () =>
      servers.datacentersServersPatch({ datacenterId: inputs.datacenterId, serverId, server: { cores: inputs.cores, ram: inputs.ramMb } }),
    );
    await waitForRequest(`resize server ${inputs.name}`, inputs.connection, reply);
  }
  const [nic] = server.entities.nics?.items ?? [];
  if (
    nic !== undefined &&
    !sameFirewallRules(nic.entities?.firewallrules.items.map((rule) => rule.properties) ?? [], inputs.firewallRules)
  ) {
    await replaceFirewallRules(inputs, serverId, nic.id);
  }
  await applyLabels(inputs, serverId, labels);
  if ((server.properties.vmState === "RUNNING") !== (inputs.vmState === "RUNNING")) await setVmState(inputs, serverId, inputs.vmState);
  return { ...inputs, ...(await readServerIds(inputs, serverId)) };
}

/** Whether the rules found on a NIC are the ones `rules` makes, in any order. */
function sameFirewallRules(found: Record<string, unknown>[], rules: FirewallRule[]): boolean {
  const fields = ["protocol", "ipVersion", "sourceIp", "portRangeStart", "portRangeEnd"] as const;
  const canonical = (rule: Record<string, unknown>) => JSON.stringify(fields.map((field) => rule[field] ?? null));
  const want = apiFirewallRules(rules)
    .map((rule) => canonical(rule.properties))
    .sort();
  const have = found.map(canonical).sort();
  return JSON.stringify(want) === JSON.stringify(have);
}

async function applyLabels(inputs: IonosServerInputs, serverId: string, current: Record<string, string>): Promise<void> {
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const labels = new sdk.LabelsApi(configuration);
  for (const [key, value] of Object.entries(inputs.labels)) {
    if (current[key] === value) continue;
    const operation = `label server ${inputs.name} ${key}`;
    if (key in current) {
      await callApi(operation, inputs.connection, true, () =>
        labels.datacentersServersLabelsDelete({ datacenterId: inputs.datacenterId, serverId, key }),
      );
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

async function readServerIds(
  inputs: IonosServerInputs,
  serverId: string,
): Promise<{ serverId: string; volumeId: string; nicId: string; publicIp: string }> {
  const { z } = loadPackage<Zod>("zod");
  const { sdk, configuration } = await sdkConfiguration(inputs.connection);
  const servers = new sdk.ServersApi(configuration);
  const operation = `read server ${inputs.name}`;
  const reply = await callApi(operation, inputs.connection, true, () =>
    servers.datacentersServersFindById({ datacenterId: inputs.datacenterId, serverId, depth: 3 }),
  );
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
  if (volume === undefined || nic === undefined || nic.properties.ips[0] === undefined)
    throw new IonosApiError(operation, reply.status, "server without volume or addressed NIC");
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
      servers.datacentersServersPatch({
        datacenterId: news.datacenterId,
        serverId,
        server: { name: news.name, cores: news.cores, ram: news.ramMb },
      }),
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
  const listed = await callApi(`list firewall rules of ${inputs.name}`, inputs.connection, true, () =>
    firewall.datacentersServersNicsFirewallrulesGet(where),
  );
  const existing = z.object({ items: z.array(z.object({ id: z.string() })).default([]) }).parse(listed.data);
  // New rules first, old ones after: the server is never left without its rules.
  for (const rule of apiFirewallRules(inputs.firewallRules)) {
    const operation = `add firewall rule ${rule.properties.name} to ${inputs.name}`;
    const reply = await callApi(operation, inputs.connection, false, () =>
      firewall.datacentersServersNicsFirewallrulesPost({ ...where, firewallrule: rule as never }),
    );
    await waitForRequest(operation, inputs.connection, reply);
  }
  for (const rule of existing.items) {
    const operation = `remove firewall rule ${rule.id} from ${inputs.name}`;
    const reply = await callApi(operation, inputs.connection, true, () =>
      firewall.datacentersServersNicsFirewallrulesDelete({ ...where, firewallruleId: rule.id }),
    );
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
