import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import * as pulumi from "@pulumi/pulumi";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createServer as createIonosServer,
  diffServer,
  IonosApiError,
  IonosOwnershipConflictError,
  updateServer,
  type IonosServerInputs,
  type IonosServerOutputs,
} from "../../infra/clouds/ionos/operations.js";
import { ionosServerProvider } from "../../infra/clouds/ionos/provider.js";
import { workerFirewallRules } from "../../infra/firewall.js";

interface Recorded {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

type Handler = (request: Recorded, response: ServerResponse) => void;

/** A server the fake API holds: what creates, label writes and lookups see. */
interface FakeServer {
  id: string;
  name: string;
  cores: number;
  ram: number;
  vmState: string;
  labels: Record<string, string>;
  /** Metadata states the next reads show, consumed in order; the last one repeats. */
  states: string[];
  firewallRules: Record<string, unknown>[];
}

/** Answers like the IONOS Cloud API v6: writes are 202 with a Location to /requests/{id}/status. */
class FakeIonosApi {
  readonly requests: Recorded[] = [];
  /** Status replies per request id, consumed in order; the last one repeats. */
  readonly requestStatuses = new Map<string, { status: string; message?: string }[]>();
  /** Replies to hand out before the normal one, per "METHOD path" (e.g. a 429). */
  readonly interruptions = new Map<string, Handler[]>();
  readonly servers = new Map<string, FakeServer>();
  private server: Server | undefined;
  private requestCounter = 0;
  private serverCounter = 0;
  base = "";

  async start(): Promise<void> {
    this.server = createServer((incoming, response) => {
      const chunks: Buffer[] = [];
      incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
      incoming.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const url = new URL(incoming.url ?? "/", "http://127.0.0.1");
        const recorded: Recorded = {
          method: incoming.method ?? "GET",
          path: url.pathname,
          headers: incoming.headers,
          body: text === "" ? undefined : JSON.parse(text),
        };
        this.requests.push(recorded);
        const interruption = this.interruptions.get(`${recorded.method} ${recorded.path}`)?.shift();
        if (interruption !== undefined) return interruption(recorded, response);
        this.answer(recorded, response);
      });
    });
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/cloudapi/v6`;
  }

  async stop(): Promise<void> {
    if (this.server === undefined) return;
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, "close");
  }

  /** The next write's request id; its status replies can be set before the write happens. */
  nextRequestId(): string {
    return `req-${this.requestCounter + 1}`;
  }

  /** A server already in the data center, as an earlier create (ours or not) left it. */
  addServer(server: Partial<FakeServer> & { name: string }): FakeServer {
    this.serverCounter += 1;
    const added: FakeServer = {
      id: `srv-${this.serverCounter}`,
      cores: 2,
      ram: 8192,
      vmState: "RUNNING",
      labels: {},
      states: ["AVAILABLE"],
      firewallRules: [],
      ...server,
    };
    this.servers.set(added.id, added);
    return added;
  }

  /** Holds the server a create asks for and answers 500, as an API whose create happened though it failed. */
  failButCreate(): Handler {
    return (request, response) => {
      this.create(request);
      this.json(response, 500, { httpStatus: 500, messages: [{ errorCode: "300", message: "internal error" }] });
    };
  }

  posts(suffix: string): Recorded[] {
    return this.requests.filter((request) => request.method === "POST" && request.path.endsWith(suffix));
  }

  private create(request: Recorded): FakeServer {
    const body = request.body as {
      properties: { name: string; cores: number; ram: number };
      entities: { nics: { items: { entities: { firewallrules: { items: { properties: Record<string, unknown> }[] } } }[] } };
    };
    return this.addServer({
      name: body.properties.name,
      cores: body.properties.cores,
      ram: body.properties.ram,
      firewallRules: body.entities.nics.items[0]?.entities.firewallrules.items.map((rule) => rule.properties) ?? [],
    });
  }

  private accepted(response: ServerResponse, body: unknown): void {
    this.requestCounter += 1;
    const requestId = `req-${this.requestCounter}`;
    if (!this.requestStatuses.has(requestId))
      this.requestStatuses.set(requestId, [{ status: "QUEUED" }, { status: "RUNNING" }, { status: "DONE" }]);
    response.writeHead(202, { "content-type": "application/json", location: `${this.base}/requests/${requestId}/status` });
    response.end(JSON.stringify(body));
  }

  private json(response: ServerResponse, status: number, body: unknown): void {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  }

  private render(server: FakeServer): Record<string, unknown> {
    const state = server.states.length > 1 ? server.states.shift() : server.states[0];
    return {
      id: server.id,
      metadata: { state },
      properties: { name: server.name, cores: server.cores, ram: server.ram, vmState: server.vmState },
      entities: {
        volumes: { items: [{ id: "vol-1" }] },
        nics: {
          items: [
            {
              id: "nic-1",
              properties: { ips: ["198.51.100.7"] },
              entities: { firewallrules: { items: server.firewallRules.map((properties) => ({ properties })) } },
            },
          ],
        },
      },
    };
  }

  private answer(request: Recorded, response: ServerResponse): void {
    const path = request.path.replace(/^\/cloudapi\/v6/, "");
    let match: RegExpExecArray | null;
    if ((match = /^\/requests\/([^/]+)\/status$/.exec(path)) && request.method === "GET") {
      const queue = this.requestStatuses.get(match[1] ?? "") ?? [];
      const next = queue.length > 1 ? queue.shift() : queue[0];
      if (next === undefined)
        return this.json(response, 404, { httpStatus: 404, messages: [{ errorCode: "309", message: "unknown request" }] });
      return this.json(response, 200, { id: match[1], metadata: { status: next.status, message: next.message ?? "" } });
    }
    if (/^\/datacenters\/[^/]+\/servers$/.test(path) && request.method === "GET") {
      return this.json(response, 200, {
        items: [...this.servers.values()].map((server) => ({ id: server.id, properties: { name: server.name } })),
      });
    }
    if (/^\/datacenters\/[^/]+\/servers$/.test(path) && request.method === "POST")
      return this.accepted(response, { id: this.create(request).id, properties: {} });
    const serverId = /^\/datacenters\/[^/]+\/servers\/([^/]+)/.exec(path)?.[1];
    const server = serverId === undefined ? undefined : this.servers.get(serverId);
    if (server === undefined)
      return this.json(response, 404, { httpStatus: 404, messages: [{ errorCode: "309", message: `no route ${request.method} ${path}` }] });
    if (/\/labels$/.test(path) && request.method === "GET") {
      return this.json(response, 200, { items: Object.entries(server.labels).map(([key, value]) => ({ properties: { key, value } })) });
    }
    if (/\/labels$/.test(path) && request.method === "POST") {
      const label = (request.body as { properties: { key: string; value: string } }).properties;
      server.labels[label.key] = label.value;
      return this.json(response, 201, { id: "label" });
    }
    if (/\/nics\/nic-1\/firewallrules$/.test(path) && request.method === "GET") {
      return this.json(response, 200, { items: server.firewallRules.map((_rule, index) => ({ id: `rule-${index}` })) });
    }
    if (/\/nics\/nic-1\/firewallrules$/.test(path) && request.method === "POST") {
      server.firewallRules.push((request.body as { properties: Record<string, unknown> }).properties);
      return this.accepted(response, {});
    }
    if (/\/(start|stop)$/.test(path) && request.method === "POST") {
      server.vmState = path.endsWith("/start") ? "RUNNING" : "SHUTOFF";
      return this.accepted(response, {});
    }
    if (/^\/datacenters\/[^/]+\/servers\/[^/]+$/.test(path) && request.method === "PATCH") {
      Object.assign(server, request.body as object);
      return this.accepted(response, { id: server.id });
    }
    if (/^\/datacenters\/[^/]+\/servers\/[^/]+$/.test(path) && request.method === "GET")
      return this.json(response, 200, this.render(server));
    this.json(response, 404, { httpStatus: 404, messages: [{ errorCode: "309", message: `no route ${request.method} ${path}` }] });
  }
}

function serverInputs(api: FakeIonosApi, overrides: Partial<IonosServerInputs> = {}): IonosServerInputs {
  return {
    datacenterId: "dc-1",
    lanId: 1,
    name: "bbb-1",
    cores: 2,
    ramMb: 8192,
    image: "ubuntu:22.04",
    volumeSizeGb: 50,
    userData: "#cloud-config\npackages: [curl]\n",
    sshKeys: ["ssh-ed25519 AAAAC3Nza admin"],
    vmState: "RUNNING",
    labels: { "confscale:env": "prod", "confscale:role": "worker", "confscale:fleet": "bbb" },
    firewallRules: workerFirewallRules(["203.0.113.0/24"], "198.51.100.1"),
    connection: { endpoint: api.base, token: "test-token", pollIntervalMs: 5, retryBaseMs: 5 },
    ...overrides,
  };
}

/** The API firewall rules the inputs' rules expand to (one per source CIDR), as the create posts them. */
function ruleProperties(inputs: IonosServerInputs): Record<string, unknown>[] {
  return inputs.firewallRules.flatMap((rule) =>
    rule.sourceCidrs.map((cidr) => {
      const anywhere = cidr === "0.0.0.0/0" || cidr === "::/0";
      const sourceIp = cidr.endsWith("/32") ? cidr.slice(0, -3) : cidr;
      return {
        protocol: rule.protocol.toUpperCase(),
        ipVersion: cidr.includes(":") ? "IPv6" : "IPv4",
        ...(anywhere ? {} : { sourceIp }),
        portRangeStart: rule.fromPort,
        portRangeEnd: rule.toPort,
      };
    }),
  );
}

function apiRuleCount(inputs: IonosServerInputs): number {
  return ruleProperties(inputs).length;
}

describe("IONOS dynamic provider operations against an API on loopback", () => {
  let api: FakeIonosApi;
  beforeEach(async () => {
    api = new FakeIonosApi();
    await api.start();
  });
  afterEach(async () => {
    await api.stop();
  });

  it("creates the server with volume, NIC and firewall rules, and waits for the request to be DONE", async () => {
    const outs = await createIonosServer(serverInputs(api));

    expect(outs).toMatchObject({ serverId: "srv-1", volumeId: "vol-1", nicId: "nic-1", publicIp: "198.51.100.7" });
    const post = api.requests.find((request) => request.method === "POST" && request.path.endsWith("/datacenters/dc-1/servers"));
    expect(post?.headers.authorization).toBe("Bearer test-token");
    const body = post?.body as {
      properties: Record<string, unknown>;
      entities: {
        volumes: { items: { properties: Record<string, unknown> }[] };
        nics: {
          items: {
            properties: Record<string, unknown>;
            entities: { firewallrules: { items: { properties: Record<string, unknown> }[] } };
          }[];
        };
      };
    };
    expect(body.properties).toMatchObject({ name: "bbb-1", cores: 2, ram: 8192 });
    expect(Buffer.from(String(body.entities.volumes.items[0]?.properties.userData), "base64").toString("utf8")).toContain("#cloud-config");
    expect(body.entities.nics.items[0]?.properties).toMatchObject({ lan: 1, firewallActive: true });
    const rules = body.entities.nics.items[0]?.entities.firewallrules.items.map((rule) => rule.properties) ?? [];
    expect(rules.filter((rule) => rule.portRangeStart === 9100)).toEqual([
      expect.objectContaining({ sourceIp: "198.51.100.1", protocol: "TCP" }),
    ]);
    expect(rules.filter((rule) => rule.portRangeStart === 22)).toEqual([expect.objectContaining({ sourceIp: "203.0.113.0/24" })]);
    expect(
      rules.some(
        (rule) => rule.protocol === "UDP" && rule.portRangeStart === 16384 && rule.portRangeEnd === 32768 && rule.sourceIp === undefined,
      ),
    ).toBe(true);
    // polled until DONE (QUEUED, RUNNING, DONE) before reading the server back
    const polls = api.requests.filter((request) => request.path.endsWith("/requests/req-1/status"));
    expect(polls).toHaveLength(3);
    const labels = api.requests.filter((request) => request.path.endsWith("/servers/srv-1/labels")).map((request) => request.body);
    expect(labels).toContainEqual({ properties: { key: "confscale:fleet", value: "bbb" } });
  });

  it("fails with the request's message when the request ends FAILED", async () => {
    api.requestStatuses.set(api.nextRequestId(), [
      { status: "RUNNING" },
      { status: "FAILED", message: "[VDC-5-1813] not enough cores in the contract" },
    ]);

    const failure = createIonosServer(serverInputs(api));

    await expect(failure).rejects.toBeInstanceOf(IonosApiError);
    await expect(failure).rejects.toThrow(/create server bbb-1 failed: \[VDC-5-1813\] not enough cores in the contract \[request req-1\]/);
  });

  it("retries a 429 after the Retry-After the API asked for, then succeeds", async () => {
    api.interruptions.set("POST /cloudapi/v6/datacenters/dc-1/servers", [
      (_request, response) => {
        response.writeHead(429, { "content-type": "application/json", "retry-after": "1" });
        response.end(JSON.stringify({ httpStatus: 429, messages: [{ errorCode: "429", message: "rate limit exceeded" }] }));
      },
    ]);

    const outs = await createIonosServer(
      serverInputs(api, { connection: { endpoint: api.base, token: "test-token", pollIntervalMs: 5, retryBaseMs: 60_000 } }),
    );

    expect(outs.serverId).toBe("srv-1");
    expect(api.requests.filter((request) => request.method === "POST" && request.path.endsWith("/servers"))).toHaveLength(2);
  });

  it("posts a create answered with a 5xx again only after finding that it did not happen", async () => {
    api.interruptions.set("POST /cloudapi/v6/datacenters/dc-1/servers", [
      (_request, response) => {
        response.writeHead(500, { "content-type": "application/json" });
        response.end(JSON.stringify({ httpStatus: 500, messages: [{ errorCode: "300", message: "internal error" }] }));
      },
    ]);

    const outs = await createIonosServer(serverInputs(api));

    expect(api.posts("/datacenters/dc-1/servers")).toHaveLength(2);
    expect([...api.servers.values()].map((server) => server.name)).toEqual(["bbb-1"]);
    expect(outs.serverId).toBe("srv-1");
  });

  it("adopts the server a create made although it answered 500: one server, labelled, no second POST", async () => {
    api.interruptions.set("POST /cloudapi/v6/datacenters/dc-1/servers", [api.failButCreate()]);

    const outs = await createIonosServer(serverInputs(api));

    expect(api.posts("/datacenters/dc-1/servers")).toHaveLength(1);
    expect([...api.servers.values()]).toHaveLength(1);
    expect(outs).toMatchObject({ serverId: "srv-1", publicIp: "198.51.100.7" });
    expect(api.servers.get("srv-1")?.labels).toEqual({ "confscale:env": "prod", "confscale:role": "worker", "confscale:fleet": "bbb" });
  });

  it("gives up with the API's message when every create attempt fails and none happened", async () => {
    const failure: Handler = (_request, response) => {
      response.writeHead(503, { "content-type": "application/json" });
      response.end(JSON.stringify({ httpStatus: 503, messages: [{ errorCode: "300", message: "service unavailable" }] }));
    };
    api.interruptions.set("POST /cloudapi/v6/datacenters/dc-1/servers", [failure, failure, failure]);

    const created = createIonosServer(
      serverInputs(api, { connection: { endpoint: api.base, token: "test-token", pollIntervalMs: 5, retryBaseMs: 5, maxAttempts: 3 } }),
    );

    await expect(created).rejects.toThrow("create server bbb-1 failed (HTTP 503): [300] service unavailable");
    expect(api.posts("/datacenters/dc-1/servers")).toHaveLength(3);
    expect(api.servers.size).toBe(0);
  });

  it("adopts a half-finished create of ours (no labels yet) once it is no longer busy, instead of making a second server", async () => {
    const earlier = api.addServer({ name: "bbb-1", labels: {}, states: ["BUSY", "BUSY", "AVAILABLE"], firewallRules: [] });

    const outs = await createIonosServer(serverInputs(api));

    expect(api.posts("/datacenters/dc-1/servers")).toHaveLength(0);
    expect(outs.serverId).toBe(earlier.id);
    expect(earlier.labels).toEqual({ "confscale:env": "prod", "confscale:role": "worker", "confscale:fleet": "bbb" });
    // The NIC had no rules yet: the inputs' rules were added, each write waited for.
    expect(api.posts(`/servers/${earlier.id}/nics/nic-1/firewallrules`)).toHaveLength(apiRuleCount(serverInputs(api)));
    expect(
      api.requests.filter((request) => request.method === "GET" && request.path.endsWith(`/servers/${earlier.id}`)).length,
    ).toBeGreaterThanOrEqual(3);
  });

  it("adopts a server of ours whose labels were partly written, adding only the missing ones and fixing its size and power", async () => {
    const inputs = serverInputs(api, { vmState: "SHUTOFF" });
    const earlier = api.addServer({
      name: "bbb-1",
      cores: 1,
      ram: 4096,
      labels: { "confscale:env": "prod" },
      firewallRules: ruleProperties(inputs),
    });

    const outs = await createIonosServer(inputs);

    expect(outs.serverId).toBe(earlier.id);
    const writes = api.requests
      .filter((request) => request.method !== "GET")
      .map((request) => `${request.method} ${request.path.replace("/cloudapi/v6/datacenters/dc-1/servers/", "")}`);
    expect(writes).toEqual([`PATCH ${earlier.id}`, `POST ${earlier.id}/labels`, `POST ${earlier.id}/labels`, `POST ${earlier.id}/stop`]);
    expect(earlier).toMatchObject({
      cores: 2,
      ram: 8192,
      vmState: "SHUTOFF",
      labels: { "confscale:env": "prod", "confscale:role": "worker", "confscale:fleet": "bbb" },
    });
  });

  it("refuses a same-named server carrying another owner's labels, and leaves it untouched", async () => {
    const foreign = api.addServer({
      name: "bbb-1",
      labels: { "confscale:env": "staging", "confscale:role": "worker", "confscale:fleet": "bbb" },
    });

    const created = createIonosServer(serverInputs(api));

    await expect(created).rejects.toBeInstanceOf(IonosOwnershipConflictError);
    await expect(created).rejects.toThrow(
      /refused: data center dc-1 already holds a server named bbb-1 \(srv-1\) with labels \{"confscale:env":"staging"/,
    );
    expect(api.requests.filter((request) => request.method !== "GET")).toEqual([]);
    expect(foreign.labels["confscale:env"]).toBe("staging");
  });

  it("refuses a same-named server with labels but none of ours", async () => {
    api.addServer({ name: "bbb-1", labels: { team: "video" } });

    await expect(createIonosServer(serverInputs(api))).rejects.toThrow(
      /already holds a server named bbb-1 \(srv-1\) with labels \{"team":"video"\}/,
    );
    expect(api.requests.filter((request) => request.method !== "GET")).toEqual([]);
  });

  it("says clearly when no credentials are configured", async () => {
    const saved = { token: process.env.IONOS_TOKEN, username: process.env.IONOS_USERNAME };
    delete process.env.IONOS_TOKEN;
    delete process.env.IONOS_USERNAME;
    try {
      await expect(createIonosServer(serverInputs(api, { connection: { endpoint: api.base } }))).rejects.toThrow(
        /no credentials: set IONOS_TOKEN/,
      );
    } finally {
      if (saved.token !== undefined) process.env.IONOS_TOKEN = saved.token;
      if (saved.username !== undefined) process.env.IONOS_USERNAME = saved.username;
    }
    expect(api.requests).toHaveLength(0);
  });

  it("resizes in place with a PATCH and powers off with stop, each waited for", async () => {
    api.addServer({ name: "bbb-1" });
    const olds: IonosServerOutputs = {
      ...serverInputs(api),
      serverId: "srv-1",
      volumeId: "vol-1",
      nicId: "nic-1",
      publicIp: "198.51.100.7",
    };

    const outs = await updateServer(olds, serverInputs(api, { cores: 4, ramMb: 16384, vmState: "SHUTOFF" }));

    expect(outs).toMatchObject({ serverId: "srv-1", cores: 4, ramMb: 16384, vmState: "SHUTOFF", publicIp: "198.51.100.7" });
    const writes = api.requests
      .filter((request) => request.method !== "GET")
      .map((request) => `${request.method} ${request.path.replace("/cloudapi/v6", "")}`);
    expect(writes).toEqual(["PATCH /datacenters/dc-1/servers/srv-1", "POST /datacenters/dc-1/servers/srv-1/stop"]);
    expect(api.requests.find((request) => request.method === "PATCH")?.body).toMatchObject({ cores: 4, ram: 16384 });
    expect(api.requests.filter((request) => request.path.includes("/requests/"))).toHaveLength(6);
  });
});

describe("IONOS server diff", () => {
  const olds: IonosServerOutputs = {
    datacenterId: "dc-1",
    lanId: 1,
    name: "bbb-1",
    cores: 2,
    ramMb: 8192,
    image: "ubuntu:22.04",
    volumeSizeGb: 50,
    userData: "#cloud-config\n",
    sshKeys: [],
    vmState: "RUNNING",
    labels: {},
    firewallRules: [],
    connection: {},
    serverId: "srv-1",
    volumeId: "vol-1",
    nicId: "nic-1",
    publicIp: "198.51.100.7",
  };

  it("treats cores, RAM and power state as in-place updates", () => {
    expect(diffServer(olds, { ...olds, cores: 4, ramMb: 16384 })).toEqual({ changes: true, replaces: [] });
    expect(diffServer(olds, { ...olds, vmState: "SHUTOFF" })).toEqual({ changes: true, replaces: [] });
  });

  it("replaces the server when its image or user data change", () => {
    expect(diffServer(olds, { ...olds, image: "ubuntu:24.04" }).replaces).toEqual(["image"]);
    expect(diffServer(olds, { ...olds, userData: "#cloud-config\npackages: [curl]\n" }).replaces).toEqual(["userData"]);
  });

  it("reports no change when nothing but the connection settings differ", () => {
    expect(diffServer(olds, { ...olds, connection: { endpoint: "http://127.0.0.1:1" } })).toEqual({ changes: false, replaces: [] });
  });
});

describe("IONOS dynamic provider serialization", () => {
  let api: FakeIonosApi;
  beforeEach(async () => {
    api = new FakeIonosApi();
    await api.start();
  });
  afterEach(async () => {
    await api.stop();
  });

  it("still creates a server after Pulumi serializes the provider the way the dynamic provider host loads it", async () => {
    // As @pulumi/pulumi/dynamic does: serialize `() => provider`, then the host calls the `handler` export.
    const serialized = await pulumi.runtime.serializeFunction(() => ionosServerProvider, { allowSecrets: true });
    const requireFromString = createRequire(import.meta.url)("require-from-string") as (code: string) => {
      handler: () => typeof ionosServerProvider;
    };

    const result = await requireFromString(serialized.text).handler().create(serverInputs(api));

    expect(result.id).toBe("srv-1");
  });

  it("keeps the API's message on a failure after serialization, where the engine reports it", async () => {
    api.addServer({ name: "bbb-1", labels: { "confscale:env": "staging" } });
    const serialized = await pulumi.runtime.serializeFunction(() => ionosServerProvider, { allowSecrets: true });
    const requireFromString = createRequire(import.meta.url)("require-from-string") as (code: string) => {
      handler: () => typeof ionosServerProvider;
    };

    const failure = await requireFromString(serialized.text)
      .handler()
      .create(serverInputs(api))
      .then(
        () => undefined,
        (error: unknown) => error as Error,
      );

    expect(failure?.message).toMatch(/^IONOS create server bbb-1 refused: data center dc-1 already holds a server named bbb-1 \(srv-1\)/);
  });
});
