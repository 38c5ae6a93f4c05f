import type { IncomingMessage } from "node:http";
import { timingSafeEqual } from "node:crypto";
import { Hono, type Context } from "hono";
import { z } from "zod";
import {
  CloudApiError,
  notFound,
  type CloudRequest,
  type Datacenter,
  type EmulatedCloud,
  type EmulatedServer,
  type FirewallRule,
  type Lan,
  type Nic,
  type ResourceMeta,
  type Volume,
} from "./cloud.js";

/** Credentials the emulated API accepts: HTTP basic (username/password) or `Authorization: Bearer <token>`. */
export interface CloudCredentials {
  username: string;
  password: string;
  token: string;
}

const ramMb = z
  .number()
  .int()
  .min(256)
  .refine((ram) => ram % 256 === 0, { message: "ram must be a multiple of 256 MB" });
const cores = z.number().int().min(1).max(62);

const firewallRuleBody = z.object({
  properties: z.looseObject({ protocol: z.enum(["TCP", "UDP", "ICMP", "ICMPv6", "GRE", "VRRP", "ESP", "AH", "ANY"]) }),
});
const nicBody = z.object({
  properties: z.looseObject({
    name: z.string().optional(),
    lan: z.number().int().positive(),
    ips: z.array(z.string()).nullable().optional(),
    dhcp: z.boolean().optional(),
    firewallActive: z.boolean().optional(),
  }),
  entities: z.object({ firewallrules: z.object({ items: z.array(firewallRuleBody) }).optional() }).optional(),
});
const volumeBody = z.object({
  properties: z.looseObject({ name: z.string().optional(), size: z.number().positive().optional(), type: z.string().optional() }),
});
const serverCreateBody = z.object({
  properties: z.looseObject({
    name: z.string().default("server"),
    cores,
    ram: ramMb,
    cpuFamily: z.string().optional(),
    availabilityZone: z.string().optional(),
    type: z.string().optional(),
  }),
  entities: z
    .object({
      volumes: z.object({ items: z.array(volumeBody) }).optional(),
      nics: z.object({ items: z.array(nicBody) }).optional(),
    })
    .optional(),
});
const serverPatchBody = z.looseObject({ name: z.string().optional(), cores: cores.optional(), ram: ramMb.optional() });
const datacenterBody = z.object({ properties: z.object({ name: z.string(), description: z.string().optional(), location: z.string() }) });
const lanBody = z.object({
  properties: z.looseObject({ name: z.string().optional(), public: z.boolean().optional(), _public: z.boolean().optional() }),
});
const labelBody = z.object({ properties: z.object({ key: z.string().min(1), value: z.string() }) });

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function metadata(meta: ResourceMeta): Record<string, unknown> {
  return {
    etag: meta.etag,
    createdDate: iso(meta.createdAt),
    createdBy: "emulator@confscale.test",
    createdByUserId: "00000000-0000-4000-8000-000000000001",
    lastModifiedDate: iso(meta.modifiedAt),
    lastModifiedBy: "emulator@confscale.test",
    lastModifiedByUserId: "00000000-0000-4000-8000-000000000001",
    state: meta.pendingRequests > 0 ? "BUSY" : "AVAILABLE",
  };
}

/**
 * Renders IONOS collections and resources with `depth` semantics: a collection at depth 0 lists bare
 * references; each further level expands one more generation of children.
 */
class Renderer {
  constructor(private readonly cloud: EmulatedCloud) {}

  ref(id: string, type: string, path: string): Record<string, unknown> {
    return { id, type, href: this.cloud.href(path) };
  }

  collection<T>(
    id: string,
    path: string,
    items: T[],
    depth: number,
    render: (item: T, depth: number) => Record<string, unknown>,
    page: Page = { offset: 0, limit: DEFAULT_PAGE_LIMIT },
  ): Record<string, unknown> {
    const rendered = items.slice(page.offset, page.offset + page.limit).map((item) => {
      const full = render(item, Math.max(0, depth - 1));
      return depth <= 0 ? { id: full.id, type: full.type, href: full.href } : full;
    });
    const link = (offset: number) => this.cloud.href(`${path}?offset=${offset}&limit=${page.limit}`);
    const links = {
      self: link(page.offset),
      ...(page.offset > 0 ? { prev: link(Math.max(0, page.offset - page.limit)) } : {}),
      ...(page.offset + page.limit < items.length ? { next: link(page.offset + page.limit) } : {}),
    };
    return { id, type: "collection", href: this.cloud.href(path), items: rendered, offset: page.offset, limit: page.limit, _links: links };
  }

  datacenter(datacenter: Datacenter, depth: number): Record<string, unknown> {
    const path = `/datacenters/${datacenter.id}`;
    return {
      ...this.ref(datacenter.id, "datacenter", path),
      metadata: metadata(datacenter.meta),
      properties: {
        name: datacenter.name,
        description: datacenter.description,
        location: datacenter.location,
        version: 1,
        features: [],
        secAuthProtection: false,
      },
      entities: {
        servers: this.collection(`${datacenter.id}/servers`, `${path}/servers`, [...datacenter.servers.values()], depth, (server, d) =>
          this.server(server, d),
        ),
        volumes: this.collection(`${datacenter.id}/volumes`, `${path}/volumes`, [...datacenter.volumes.values()], depth, (volume, d) =>
          this.volume(datacenter, volume, d),
        ),
        lans: this.collection(`${datacenter.id}/lans`, `${path}/lans`, [...datacenter.lans.values()], depth, (lan, d) =>
          this.lan(datacenter, lan, d),
        ),
      },
    };
  }

  lan(datacenter: Datacenter, lan: Lan, _depth: number): Record<string, unknown> {
    const { public: isPublic, ...rest } = lan.properties;
    return {
      ...this.ref(lan.id, "lan", `/datacenters/${datacenter.id}/lans/${lan.id}`),
      metadata: metadata(lan.meta),
      properties: { ...rest, public: isPublic, ipFailover: [] },
    };
  }

  server(server: EmulatedServer, depth: number): Record<string, unknown> {
    const path = `/datacenters/${server.datacenterId}/servers/${server.id}`;
    const datacenter = this.cloud.datacenter(server.datacenterId);
    const volumes = server.volumeIds.map((id) => datacenter.volumes.get(id)).filter((volume): volume is Volume => volume !== undefined);
    const bootVolume = volumes[0];
    return {
      ...this.ref(server.id, "server", path),
      metadata: metadata(server.meta),
      properties: {
        name: server.name,
        cores: server.cores,
        ram: server.ram,
        availabilityZone: server.availabilityZone,
        vmState: server.vmState,
        bootCdrom: null,
        bootVolume:
          bootVolume === undefined ? null : this.ref(bootVolume.id, "volume", `/datacenters/${datacenter.id}/volumes/${bootVolume.id}`),
        cpuFamily: server.cpuFamily,
        type: server.type,
      },
      entities: {
        cdroms: this.collection(`${server.id}/cdroms`, `${path}/cdroms`, [], depth, () => ({})),
        volumes: this.collection(`${server.id}/volumes`, `${path}/volumes`, volumes, depth, (volume, d) =>
          this.volume(datacenter, volume, d),
        ),
        nics: this.collection(`${server.id}/nics`, `${path}/nics`, [...server.nics.values()], depth, (nic, d) => this.nic(server, nic, d)),
      },
    };
  }

  volume(datacenter: Datacenter, volume: Volume, _depth: number): Record<string, unknown> {
    return {
      ...this.ref(volume.id, "volume", `/datacenters/${datacenter.id}/volumes/${volume.id}`),
      metadata: metadata(volume.meta),
      properties: { ...volume.properties, imagePassword: undefined, bootServer: volume.serverId ?? null },
    };
  }

  nic(server: EmulatedServer, nic: Nic, depth: number): Record<string, unknown> {
    const path = `/datacenters/${server.datacenterId}/servers/${server.id}/nics/${nic.id}`;
    return {
      ...this.ref(nic.id, "nic", path),
      metadata: metadata(nic.meta),
      properties: nic.properties,
      entities: {
        firewallrules: this.collection(
          `${nic.id}/firewallrules`,
          `${path}/firewallrules`,
          [...nic.firewallRules.values()],
          depth,
          (rule, d) => this.firewallRule(server, nic, rule, d),
        ),
      },
    };
  }

  firewallRule(server: EmulatedServer, nic: Nic, rule: FirewallRule, _depth: number): Record<string, unknown> {
    return {
      ...this.ref(
        rule.id,
        "firewall-rule",
        `/datacenters/${server.datacenterId}/servers/${server.id}/nics/${nic.id}/firewallrules/${rule.id}`,
      ),
      metadata: metadata(rule.meta),
      properties: rule.properties,
    };
  }

  label(server: EmulatedServer, key: string, value: string): Record<string, unknown> {
    return {
      ...this.ref(
        `urn:label:server:${server.id}:${key}`,
        "label",
        `/datacenters/${server.datacenterId}/servers/${server.id}/labels/${key}`,
      ),
      metadata: { etag: server.meta.etag, createdDate: iso(server.meta.createdAt) },
      properties: { key, value },
    };
  }

  requestStatus(request: CloudRequest): Record<string, unknown> {
    return {
      id: `${request.id}/status`,
      type: "request-status",
      href: this.cloud.href(`/requests/${request.id}/status`),
      metadata: {
        status: request.status,
        message: request.message,
        etag: request.id.replaceAll("-", ""),
        targets: request.targets.map((target) => ({ target, status: request.status })),
      },
    };
  }

  request(request: CloudRequest): Record<string, unknown> {
    return {
      id: request.id,
      type: "request",
      href: this.cloud.href(`/requests/${request.id}`),
      metadata: {
        createdDate: iso(request.createdAt),
        createdBy: "emulator@confscale.test",
        etag: request.id.replaceAll("-", ""),
        requestStatus: this.requestStatus(request),
      },
      properties: { method: request.method, headers: {}, body: request.body, url: this.cloud.href(request.url) },
    };
  }
}

/** The API's page of a collection: `offset` and `limit` query parameters, 1,000 elements unless asked otherwise. */
interface Page {
  offset: number;
  limit: number;
}
const DEFAULT_PAGE_LIMIT = 1_000;
const MAX_PAGE_LIMIT = 10_000;

function pageOf(c: Context): Page {
  const number = (name: string, fallback: number, min: number, max: number) => {
    const raw = c.req.query(name);
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      throw new CloudApiError(422, "100", `[(root).${name}] invalid ${name} '${raw}'`);
    return value;
  };
  return { offset: number("offset", 0, 0, Number.MAX_SAFE_INTEGER), limit: number("limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT) };
}

function depthOf(c: Context): number {
  const raw = c.req.query("depth");
  const depth = raw === undefined ? 0 : Number(raw);
  if (!Number.isInteger(depth) || depth < 0 || depth > 10) throw new CloudApiError(422, "100", `[(root).depth] invalid depth '${raw}'`);
  return depth;
}

async function parseBody<T>(c: Context, schema: z.ZodType<T>): Promise<T> {
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    throw new CloudApiError(400, "100", "The request body is not valid JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CloudApiError(422, "100", `[(root).${issue?.path.join(".") ?? ""}] ${issue?.message ?? "invalid body"}`);
  }
  return parsed.data;
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function authorised(header: string | undefined, credentials: CloudCredentials): boolean {
  if (header === undefined) return false;
  const [scheme, value] = header.split(" ", 2);
  if (value === undefined) return false;
  if (scheme?.toLowerCase() === "bearer") return sameSecret(value, credentials.token);
  if (scheme?.toLowerCase() === "basic") {
    const decoded = Buffer.from(value, "base64").toString();
    const colon = decoded.indexOf(":");
    return (
      colon >= 0 && sameSecret(decoded.slice(0, colon), credentials.username) && sameSecret(decoded.slice(colon + 1), credentials.password)
    );
  }
  return false;
}

export function errorBody(error: CloudApiError): Record<string, unknown> {
  return { httpStatus: error.httpStatus, messages: [{ errorCode: error.errorCode, message: error.message }] };
}

/** The IONOS Cloud API v6 subset, mounted under `/cloudapi/v6`. */
export function ionosApi(cloud: EmulatedCloud, credentials: CloudCredentials): Hono {
  const app = new Hono();
  const render = new Renderer(cloud);

  app.onError((error, c) => {
    if (error instanceof CloudApiError) return c.json(errorBody(error), error.httpStatus as 400);
    return c.json(errorBody(new CloudApiError(500, "000", error.message)), 500);
  });

  app.use("*", async (c, next) => {
    if (!authorised(c.req.header("authorization"), credentials)) {
      return c.json(errorBody(new CloudApiError(401, "315", "Unauthorized")), 401);
    }
    const method = c.req.method;
    const methodMatches = (fault: { methods?: string[] | undefined }) => fault.methods === undefined || fault.methods.includes(method);
    const throttle = cloud.faults.take("throttle429", methodMatches);
    if (throttle !== undefined) {
      c.header("Retry-After", String(throttle.retryAfterSeconds));
      return c.json(errorBody(new CloudApiError(429, "429", "Too many requests, please retry later")), 429);
    }
    if (cloud.faults.take("connectionReset", methodMatches) !== undefined) {
      (c.env as { incoming?: IncomingMessage }).incoming?.socket.destroy();
      return c.body(null, 500);
    }
    if (cloud.faults.take("error500", methodMatches) !== undefined) {
      return c.json(errorBody(new CloudApiError(500, "000", "Internal Server Error (injected)")), 500);
    }
    await next();
  });

  /** Answers a write: 202, the resource as it looks now, and the request's status URL in `Location`. */
  const accepted = (c: Context, request: CloudRequest, body: Record<string, unknown>) => {
    c.header("Location", cloud.href(`/requests/${request.id}/status`));
    return c.json(body, 202);
  };
  const pathOf = (c: Context) => c.req.path.replace(/^.*?\/cloudapi\/v6/, "");

  // ---- datacenters ----
  app.get("/datacenters", (c) =>
    c.json(
      render.collection("datacenters", "/datacenters", [...cloud.datacenters.values()], depthOf(c), (dc, d) => render.datacenter(dc, d)),
    ),
  );
  app.post("/datacenters", async (c) => {
    const body = await parseBody(c, datacenterBody);
    const datacenter = cloud.createDatacenter(body.properties);
    const request = cloud.submit(
      "POST",
      pathOf(c),
      body,
      [{ id: datacenter.id, type: "datacenter", href: cloud.href(`/datacenters/${datacenter.id}`) }],
      [datacenter.meta],
      () => undefined,
    );
    return accepted(c, request, render.datacenter(datacenter, 0));
  });
  app.get("/datacenters/:dc", (c) => c.json(render.datacenter(cloud.datacenter(c.req.param("dc")), depthOf(c))));
  app.delete("/datacenters/:dc", (c) => {
    const datacenter = cloud.datacenter(c.req.param("dc"));
    const request = cloud.submit("DELETE", pathOf(c), undefined, [], [datacenter.meta], () => cloud.deleteDatacenter(datacenter.id));
    return accepted(c, request, {});
  });

  // ---- LANs ----
  const lanOf = (c: Context): [Datacenter, Lan] => {
    const datacenter = cloud.datacenter(c.req.param("dc")!);
    const lan = datacenter.lans.get(c.req.param("lan")!);
    if (lan === undefined) throw notFound("lan", c.req.param("lan")!);
    return [datacenter, lan];
  };
  app.get("/datacenters/:dc/lans", (c) => {
    const datacenter = cloud.datacenter(c.req.param("dc"));
    return c.json(
      render.collection(
        `${datacenter.id}/lans`,
        `/datacenters/${datacenter.id}/lans`,
        [...datacenter.lans.values()],
        depthOf(c),
        (lan, d) => render.lan(datacenter, lan, d),
      ),
    );
  });
  app.post("/datacenters/:dc/lans", async (c) => {
    const datacenter = cloud.datacenter(c.req.param("dc"));
    const body = await parseBody(c, lanBody);
    const lan = cloud.createLan(datacenter, body.properties);
    const request = cloud.submit("POST", pathOf(c), body, [], [lan.meta], () => undefined);
    return accepted(c, request, render.lan(datacenter, lan, 0));
  });
  app.get("/datacenters/:dc/lans/:lan", (c) => {
    const [datacenter, lan] = lanOf(c);
    return c.json(render.lan(datacenter, lan, depthOf(c)));
  });
  app.patch("/datacenters/:dc/lans/:lan", async (c) => {
    const [datacenter, lan] = lanOf(c);
    const body = await parseBody(c, lanBody.shape.properties);
    const request = cloud.submit("PATCH", pathOf(c), body, [], [lan.meta], () => {
      Object.assign(lan.properties, body);
      cloud.touch(lan.meta);
    });
    return accepted(c, request, render.lan(datacenter, lan, 0));
  });
  app.delete("/datacenters/:dc/lans/:lan", (c) => {
    const [datacenter, lan] = lanOf(c);
    const request = cloud.submit("DELETE", pathOf(c), undefined, [], [lan.meta], () => datacenter.lans.delete(lan.id));
    return accepted(c, request, {});
  });

  // ---- volumes ----
  app.get("/datacenters/:dc/volumes", (c) => {
    const datacenter = cloud.datacenter(c.req.param("dc"));
    return c.json(
      render.collection(
        `${datacenter.id}/volumes`,
        `/datacenters/${datacenter.id}/volumes`,
        [...datacenter.volumes.values()],
        depthOf(c),
        (v, d) => render.volume(datacenter, v, d),
      ),
    );
  });
  app.get("/datacenters/:dc/volumes/:volume", (c) => {
    const datacenter = cloud.datacenter(c.req.param("dc"));
    const volume = datacenter.volumes.get(c.req.param("volume"));
    if (volume === undefined) throw notFound("volume", c.req.param("volume"));
    return c.json(render.volume(datacenter, volume, depthOf(c)));
  });

  // ---- servers ----
  const serverOf = (c: Context) => cloud.server(c.req.param("dc")!, c.req.param("server")!);
  const serverTarget = (server: EmulatedServer) => ({
    id: server.id,
    type: "server",
    href: cloud.href(`/datacenters/${server.datacenterId}/servers/${server.id}`),
  });

  app.get("/datacenters/:dc/servers", (c) => {
    const datacenter = cloud.datacenter(c.req.param("dc"));
    const filters = Object.entries(c.req.query()).filter(([key]) => key.startsWith("filter."));
    // Filters apply before paging, as in the API.
    const servers = [...datacenter.servers.values()].filter((server) => {
      const properties = render.server(server, 0).properties as Record<string, unknown>;
      return filters.every(([key, value]) => String(properties[key.slice("filter.".length)]) === value);
    });
    return c.json(
      render.collection(
        `${datacenter.id}/servers`,
        `/datacenters/${datacenter.id}/servers`,
        servers,
        depthOf(c),
        (server, d) => render.server(server, d),
        pageOf(c),
      ),
    );
  });

  app.post("/datacenters/:dc/servers", async (c) => {
    const datacenter = cloud.datacenter(c.req.param("dc"));
    const body = await parseBody(c, serverCreateBody);
    const nics = body.entities?.nics?.items ?? [];
    for (const [index, nic] of nics.entries()) {
      if (!datacenter.lans.has(String(nic.properties.lan))) {
        throw new CloudApiError(
          422,
          "100",
          `[(root).entities.nics.items[${index}].properties.lan] LAN ${nic.properties.lan} does not exist in the datacenter`,
        );
      }
    }
    const server = cloud.addServer(
      datacenter,
      body.properties,
      (body.entities?.volumes?.items ?? []).map((volume) => ({ properties: volume.properties })),
      nics.map((nic) => ({
        properties: nic.properties,
        firewallRules: (nic.entities?.firewallrules?.items ?? []).map((rule) => rule.properties),
      })),
    );
    const request = cloud.submit("POST", pathOf(c), body, [serverTarget(server)], [server.meta], () => {
      if (!cloud.servers.has(server.id)) throw new CloudApiError(404, "309", "the server was deleted before it was provisioned");
      cloud.powerOn(server);
    });
    if (cloud.faults.take("createFailsButHappens") !== undefined) {
      return c.json(errorBody(new CloudApiError(500, "000", "Internal Server Error (injected after the server was created)")), 500);
    }
    return accepted(c, request, render.server(server, 0));
  });

  app.get("/datacenters/:dc/servers/:server", (c) => c.json(render.server(serverOf(c), depthOf(c))));

  app.patch("/datacenters/:dc/servers/:server", async (c) => {
    const server = serverOf(c);
    const body = await parseBody(c, serverPatchBody);
    const request = cloud.submit("PATCH", pathOf(c), body, [serverTarget(server)], [server.meta], () => {
      cloud.resize(server, body.cores, body.ram);
      if (body.name !== undefined) server.name = body.name;
      cloud.touch(server.meta);
    });
    const view = render.server(server, 0);
    return accepted(c, request, { ...view, properties: { ...(view.properties as object), ...body } });
  });

  app.delete("/datacenters/:dc/servers/:server", (c) => {
    const server = serverOf(c);
    const request = cloud.submit("DELETE", pathOf(c), undefined, [serverTarget(server)], [server.meta], () => cloud.removeServer(server));
    return accepted(c, request, {});
  });

  const powerAction = (action: "start" | "stop" | "reboot") => (c: Context) => {
    const server = serverOf(c);
    const request = cloud.submit("POST", pathOf(c), undefined, [serverTarget(server)], [server.meta], () => {
      if (!cloud.servers.has(server.id)) throw notFound("server", server.id);
      if (action !== "start" && server.vmState === "RUNNING") cloud.powerOff(server, "SHUTOFF");
      if (action !== "stop" && server.vmState !== "RUNNING") cloud.powerOn(server);
      cloud.touch(server.meta);
    });
    return accepted(c, request, {});
  };
  app.post("/datacenters/:dc/servers/:server/start", powerAction("start"));
  app.post("/datacenters/:dc/servers/:server/stop", powerAction("stop"));
  app.post("/datacenters/:dc/servers/:server/reboot", powerAction("reboot"));

  app.get("/datacenters/:dc/servers/:server/volumes", (c) => {
    const server = serverOf(c);
    const datacenter = cloud.datacenter(server.datacenterId);
    const volumes = server.volumeIds.map((id) => datacenter.volumes.get(id)).filter((volume): volume is Volume => volume !== undefined);
    return c.json(
      render.collection(`${server.id}/volumes`, `/datacenters/${datacenter.id}/servers/${server.id}/volumes`, volumes, depthOf(c), (v, d) =>
        render.volume(datacenter, v, d),
      ),
    );
  });

  // ---- labels ----
  app.get("/datacenters/:dc/servers/:server/labels", (c) => {
    const server = serverOf(c);
    const labels = [...server.labels.entries()];
    return c.json(
      render.collection(
        `${server.id}/labels`,
        `/datacenters/${server.datacenterId}/servers/${server.id}/labels`,
        labels,
        Math.max(1, depthOf(c)),
        ([key, value]) => render.label(server, key, value),
      ),
    );
  });
  app.post("/datacenters/:dc/servers/:server/labels", async (c) => {
    const server = serverOf(c);
    const body = await parseBody(c, labelBody);
    if (server.labels.has(body.properties.key)) throw new CloudApiError(422, "100", `label ${body.properties.key} already exists`);
    server.labels.set(body.properties.key, body.properties.value);
    return c.json(render.label(server, body.properties.key, body.properties.value), 201);
  });
  app.get("/datacenters/:dc/servers/:server/labels/:key", (c) => {
    const server = serverOf(c);
    const value = server.labels.get(c.req.param("key"));
    if (value === undefined) throw notFound("label", c.req.param("key"));
    return c.json(render.label(server, c.req.param("key"), value));
  });
  app.delete("/datacenters/:dc/servers/:server/labels/:key", (c) => {
    const server = serverOf(c);
    if (!server.labels.delete(c.req.param("key"))) throw notFound("label", c.req.param("key"));
    return c.body(null, 202);
  });

  // ---- NICs and firewall rules ----
  app.get("/datacenters/:dc/servers/:server/nics", (c) => {
    const server = serverOf(c);
    return c.json(
      render.collection(
        `${server.id}/nics`,
        `/datacenters/${server.datacenterId}/servers/${server.id}/nics`,
        [...server.nics.values()],
        depthOf(c),
        (nic, d) => render.nic(server, nic, d),
      ),
    );
  });
  app.post("/datacenters/:dc/servers/:server/nics", async (c) => {
    const server = serverOf(c);
    const body = await parseBody(c, nicBody);
    if (!cloud.datacenter(server.datacenterId).lans.has(String(body.properties.lan)))
      throw new CloudApiError(422, "100", `[(root).properties.lan] LAN ${body.properties.lan} does not exist`);
    const nic = cloud.addNic(server, {
      properties: body.properties,
      firewallRules: (body.entities?.firewallrules?.items ?? []).map((rule) => rule.properties),
    });
    const request = cloud.submit("POST", pathOf(c), body, [serverTarget(server)], [nic.meta, server.meta], () => undefined);
    return accepted(c, request, render.nic(server, nic, 0));
  });
  app.get("/datacenters/:dc/servers/:server/nics/:nic", (c) => {
    const server = serverOf(c);
    return c.json(render.nic(server, cloud.nic(server.datacenterId, server.id, c.req.param("nic")), depthOf(c)));
  });
  app.patch("/datacenters/:dc/servers/:server/nics/:nic", async (c) => {
    const server = serverOf(c);
    const nic = cloud.nic(server.datacenterId, server.id, c.req.param("nic"));
    const body = await parseBody(c, nicBody.shape.properties.partial());
    const request = cloud.submit("PATCH", pathOf(c), body, [serverTarget(server)], [nic.meta], () => {
      Object.assign(nic.properties, body);
      cloud.touch(nic.meta);
    });
    return accepted(c, request, render.nic(server, nic, 0));
  });
  app.delete("/datacenters/:dc/servers/:server/nics/:nic", (c) => {
    const server = serverOf(c);
    const nic = cloud.nic(server.datacenterId, server.id, c.req.param("nic"));
    const request = cloud.submit("DELETE", pathOf(c), undefined, [serverTarget(server)], [nic.meta], () => server.nics.delete(nic.id));
    return accepted(c, request, {});
  });

  const ruleOf = (c: Context): [EmulatedServer, Nic, FirewallRule] => {
    const server = serverOf(c);
    const nic = cloud.nic(server.datacenterId, server.id, c.req.param("nic")!);
    const rule = nic.firewallRules.get(c.req.param("rule")!);
    if (rule === undefined) throw notFound("firewall rule", c.req.param("rule")!);
    return [server, nic, rule];
  };
  app.get("/datacenters/:dc/servers/:server/nics/:nic/firewallrules", (c) => {
    const server = serverOf(c);
    const nic = cloud.nic(server.datacenterId, server.id, c.req.param("nic"));
    const path = `/datacenters/${server.datacenterId}/servers/${server.id}/nics/${nic.id}/firewallrules`;
    return c.json(
      render.collection(`${nic.id}/firewallrules`, path, [...nic.firewallRules.values()], depthOf(c), (rule, d) =>
        render.firewallRule(server, nic, rule, d),
      ),
    );
  });
  app.post("/datacenters/:dc/servers/:server/nics/:nic/firewallrules", async (c) => {
    const server = serverOf(c);
    const nic = cloud.nic(server.datacenterId, server.id, c.req.param("nic"));
    const body = await parseBody(c, firewallRuleBody);
    const rule = cloud.addFirewallRule(nic, body.properties);
    const request = cloud.submit("POST", pathOf(c), body, [serverTarget(server)], [rule.meta, nic.meta], () => undefined);
    return accepted(c, request, render.firewallRule(server, nic, rule, 0));
  });
  app.get("/datacenters/:dc/servers/:server/nics/:nic/firewallrules/:rule", (c) => {
    const [server, nic, rule] = ruleOf(c);
    return c.json(render.firewallRule(server, nic, rule, depthOf(c)));
  });
  app.patch("/datacenters/:dc/servers/:server/nics/:nic/firewallrules/:rule", async (c) => {
    const [server, nic, rule] = ruleOf(c);
    const body = await parseBody(c, z.record(z.string(), z.unknown()));
    const request = cloud.submit("PATCH", pathOf(c), body, [serverTarget(server)], [rule.meta], () => {
      Object.assign(rule.properties, body);
      cloud.touch(rule.meta);
    });
    return accepted(c, request, render.firewallRule(server, nic, rule, 0));
  });
  app.delete("/datacenters/:dc/servers/:server/nics/:nic/firewallrules/:rule", (c) => {
    const [server, nic, rule] = ruleOf(c);
    const request = cloud.submit("DELETE", pathOf(c), undefined, [serverTarget(server)], [rule.meta], () =>
      nic.firewallRules.delete(rule.id),
    );
    return accepted(c, request, {});
  });

  // ---- requests ----
  const requestOf = (c: Context): CloudRequest => {
    const request = cloud.requests.get(c.req.param("request")!);
    if (request === undefined) throw notFound("request", c.req.param("request")!);
    return request;
  };
  app.get("/requests", (c) => {
    const requests = [...cloud.requests.values()].reverse();
    return c.json(render.collection("requests", "/requests", requests, depthOf(c), (request) => render.request(request)));
  });
  app.get("/requests/:request", (c) => c.json(render.request(requestOf(c))));
  app.get("/requests/:request/status", (c) => c.json(render.requestStatus(requestOf(c))));

  return app;
}

/** One record of the emulated Cloud DNS; a write is provisioned on the next read, as the real API's state moves on. */
interface DnsRecord {
  id: string;
  zoneId: string;
  name: string;
  type: string;
  content: string;
  ttl: number;
  enabled: boolean;
  state: "PROVISIONING" | "AVAILABLE" | "DESTROYING";
}

/** The IONOS Cloud DNS zones and records of the emulated contract. */
export class EmulatedDns {
  readonly zones = new Map<string, { id: string; zoneName: string }>();
  readonly records = new Map<string, DnsRecord>();

  constructor(zoneNames: string[]) {
    for (const zoneName of zoneNames) {
      const id = crypto.randomUUID();
      this.zones.set(id, { id, zoneName });
    }
  }

  /** The records as resolvers would see them: `fqdn type` → content, only those provisioned. */
  lookup(): Record<string, string> {
    const answers: Record<string, string> = {};
    for (const record of this.records.values()) {
      const zone = this.zones.get(record.zoneId);
      if (zone === undefined || record.state !== "AVAILABLE" || !record.enabled) continue;
      answers[`${record.name === "@" ? "" : `${record.name}.`}${zone.zoneName} ${record.type}`] = record.content;
    }
    return answers;
  }
}

const dnsRecordBody = z.object({
  properties: z.object({
    name: z.string().min(1),
    type: z.enum(["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA"]),
    content: z.string().min(1),
    ttl: z.number().int().min(60).max(86_400).default(3600),
    priority: z.number().int().optional(),
    enabled: z.boolean().default(true),
  }),
});

/** The IONOS Cloud DNS API subset (zones by name, records by id with PUT-to-ensure), mounted under `/dns`. */
export function ionosDnsApi(dns: EmulatedDns, credentials: CloudCredentials): Hono {
  const app = new Hono();
  const render = (record: DnsRecord) => {
    const zone = dns.zones.get(record.zoneId);
    return {
      id: record.id,
      type: "record",
      href: `/zones/${record.zoneId}/records/${record.id}`,
      metadata: { state: record.state, zoneId: record.zoneId, fqdn: `${record.name}.${zone?.zoneName ?? ""}` },
      properties: { name: record.name, type: record.type, content: record.content, ttl: record.ttl, enabled: record.enabled },
    };
  };
  const fail = (c: Context, status: 400 | 401 | 404, message: string) =>
    c.json({ httpStatus: status, messages: [{ errorCode: String(status), message }] }, status);

  app.use("*", async (c, next) => {
    if (!authorised(c.req.header("authorization"), credentials)) return fail(c, 401, "Unauthorized");
    await next();
  });
  app.get("/zones", (c) => {
    const name = c.req.query("filter.zoneName");
    const items = [...dns.zones.values()]
      .filter((zone) => name === undefined || zone.zoneName.includes(name))
      .map((zone) => ({ id: zone.id, type: "zone", href: `/zones/${zone.id}`, metadata: { state: "AVAILABLE" }, properties: zone }));
    return c.json({ id: "zones", type: "collection", href: "/zones", items, offset: 0, limit: 100 });
  });
  app.put("/zones/:zoneId/records/:recordId", async (c) => {
    const zoneId = c.req.param("zoneId");
    if (!dns.zones.has(zoneId)) return fail(c, 404, `zone ${zoneId} not found`);
    const body = dnsRecordBody.safeParse(await c.req.json().catch(() => undefined));
    if (!body.success) return fail(c, 400, body.error.message);
    const recordId = c.req.param("recordId");
    const record: DnsRecord = { id: recordId, zoneId, ...body.data.properties, state: "PROVISIONING" };
    dns.records.set(recordId, record);
    return c.json(render(record), 202);
  });
  app.get("/zones/:zoneId/records/:recordId", (c) => {
    const record = dns.records.get(c.req.param("recordId"));
    if (record === undefined || record.zoneId !== c.req.param("zoneId")) return fail(c, 404, "record not found");
    const shown = render(record);
    if (record.state === "PROVISIONING") record.state = "AVAILABLE";
    else if (record.state === "DESTROYING") dns.records.delete(record.id);
    return c.json(shown);
  });
  app.delete("/zones/:zoneId/records/:recordId", (c) => {
    const record = dns.records.get(c.req.param("recordId"));
    if (record === undefined || record.zoneId !== c.req.param("zoneId")) return fail(c, 404, "record not found");
    record.state = "DESTROYING";
    return c.body(null, 202);
  });
  return app;
}
