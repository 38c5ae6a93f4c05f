import {
  Configuration,
  DataCentersApi,
  FirewallRulesApi,
  FirewallrulePropertiesProtocolEnum,
  LANsApi,
  NetworkInterfacesApi,
  RequestsApi,
  ServersApi,
  VolumePropertiesTypeEnum,
  waitForRequest,
} from "@ionos-cloud/sdk-nodejs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listServers } from "../../infra/clouds/ionos/operations.js";
import { Emulator } from "../emulator/emulator.js";

const timings = { requestQueuedMs: 500, requestRunningMs: 2_000, bootMs: 60_000 };

/** What axios (inside the SDK) throws for a non-2xx answer. */
interface SdkHttpError {
  response: {
    status: number;
    headers: Record<string, string>;
    data: { httpStatus: number; messages: { errorCode: string; message: string }[] };
  };
}

async function sdkFailure(promise: Promise<unknown>): Promise<SdkHttpError["response"]> {
  try {
    await promise;
  } catch (error) {
    const response = (error as Partial<SdkHttpError>).response;
    if (response !== undefined) return response;
    throw error;
  }
  throw new Error("the call succeeded but a failure was expected");
}

describe("IONOS Cloud API emulator driven by the unmodified @ionos-cloud/sdk-nodejs", () => {
  let emulator: Emulator;
  let config: Configuration;
  let servers: ServersApi;
  let requests: RequestsApi;
  let datacenterId: string;

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "manual" }, timings });
    config = new Configuration({
      username: emulator.credentials.username,
      password: emulator.credentials.password,
      basePath: emulator.cloudApiUrl,
    });
    // The SDK sleeps min(2^attempt s, maxWaitTime) before every attempt, the first one included.
    config.setMaxWaitTime(0);
    servers = new ServersApi(config);
    requests = new RequestsApi(config);
    datacenterId = emulator.defaultDatacenterId!;
  });

  afterAll(async () => {
    await emulator.stop();
  });

  const requestIdOf = (location: string) => /\/requests\/([^/]+)\/status$/.exec(location)![1]!;
  const statusOf = async (location: string) =>
    (await requests.requestsStatusGet({ requestId: requestIdOf(location) })).data.metadata!.status;
  const metricsStatus = async (serverId: string) => (await fetch(`${emulator.url}${emulator.metricsPath(serverId)}`)).status;
  const settle = () => emulator.clock.advance(timings.requestQueuedMs + timings.requestRunningMs);

  async function createServer(name: string): Promise<{ id: string; location: string }> {
    const response = await servers.datacentersServersPost({
      datacenterId,
      server: {
        properties: { name, cores: 2, ram: 4096, cpuFamily: "INTEL_SKYLAKE" },
        entities: {
          volumes: {
            items: [
              {
                properties: {
                  name: `${name}-boot`,
                  size: 40,
                  type: VolumePropertiesTypeEnum.Ssd,
                  imageAlias: "ubuntu:22.04",
                  userData: Buffer.from("#cloud-config\n").toString("base64"),
                },
              },
            ],
          },
          nics: {
            items: [
              {
                properties: { name: "public", lan: 1, dhcp: true, firewallActive: true },
                entities: {
                  firewallrules: {
                    items: [
                      {
                        properties: {
                          name: "https",
                          protocol: FirewallrulePropertiesProtocolEnum.Tcp,
                          portRangeStart: 443,
                          portRangeEnd: 443,
                        },
                      },
                    ],
                  },
                },
              },
            ],
          },
        },
      },
    });
    expect(response.status).toBe(202);
    return { id: response.data.id!, location: response.headers.location as string };
  }

  it("creates a server: 202 with a Location, the request goes QUEUED → RUNNING → DONE, the server BUSY then RUNNING and AVAILABLE", async () => {
    const { id, location } = await createServer("worker-1");
    expect(location).toMatch(new RegExp(`^${emulator.cloudApiUrl}/requests/[0-9a-f-]+/status$`));
    expect(await statusOf(location)).toBe("QUEUED");
    const provisioning = (await servers.datacentersServersFindById({ datacenterId, serverId: id })).data;
    expect(provisioning.metadata?.state).toBe("BUSY");
    expect(provisioning.properties?.vmState).not.toBe("RUNNING");

    emulator.clock.advance(timings.requestQueuedMs);
    expect(await statusOf(location)).toBe("RUNNING");

    // The SDK's own waiter polls once a second until DONE; the clock moves while it waits.
    const waiting = waitForRequest(config, location);
    emulator.clock.advance(timings.requestRunningMs);
    const done = await waiting;
    expect(done.data.metadata.status).toBe("DONE");
    expect(done.data.metadata.targets[0].target.id).toBe(id);

    const server = (await servers.datacentersServersFindById({ datacenterId, serverId: id, depth: 3 })).data;
    expect(server.metadata?.state).toBe("AVAILABLE");
    expect(server.properties).toMatchObject({ name: "worker-1", cores: 2, ram: 4096, vmState: "RUNNING" });
    expect(server.entities?.volumes?.items?.[0]?.properties).toMatchObject({ name: "worker-1-boot", size: 40, type: "SSD" });
    const nic = server.entities?.nics?.items?.[0];
    expect(nic?.properties).toMatchObject({ name: "public", lan: 1, firewallActive: true });
    expect(nic?.properties?.ips?.length).toBe(1);
    expect(nic?.entities?.firewallrules?.items?.[0]?.properties).toMatchObject({
      protocol: FirewallrulePropertiesProtocolEnum.Tcp,
      portRangeStart: 443,
    });

    // Running is not booted: node-exporter answers only after the boot time.
    expect(await metricsStatus(id)).toBe(503);
    emulator.clock.advance(timings.bootMs);
    expect(await metricsStatus(id)).toBe(200);
  });

  it("lists servers at depth 0 (references) and depth 1 (properties)", async () => {
    const shallow = (await servers.datacentersServersGet({ datacenterId })).data;
    expect(shallow.items?.[0]).toEqual({ id: expect.any(String), type: "server", href: expect.stringContaining("/servers/") });
    const deep = (await servers.datacentersServersGet({ datacenterId, depth: 1 })).data;
    expect(deep.items?.map((server) => server.properties?.name)).toContain("worker-1");
  });

  it("resizes with PATCH, stops and starts, then deletes, as a client polling the requests sees it", async () => {
    const { id, location } = await createServer("worker-2");
    settle();
    expect(await statusOf(location)).toBe("DONE");
    emulator.clock.advance(timings.bootMs);

    const patch = await servers.datacentersServersPatch({ datacenterId, serverId: id, server: { cores: 4, ram: 8192 } });
    expect(patch.status).toBe(202);
    expect((await servers.datacentersServersFindById({ datacenterId, serverId: id })).data.metadata?.state).toBe("BUSY");
    settle();
    expect(await statusOf(patch.headers.location)).toBe("DONE");
    const resized = (await servers.datacentersServersFindById({ datacenterId, serverId: id })).data;
    expect(resized.properties).toMatchObject({ cores: 4, ram: 8192, vmState: "RUNNING" });
    expect(resized.metadata?.state).toBe("AVAILABLE");
    const metrics = await (await fetch(`${emulator.url}${emulator.metricsPath(id)}`)).text();
    expect(metrics).toContain(`node_memory_MemTotal_bytes ${8192 * 2 ** 20}`);
    expect(metrics).toContain('node_cpu_seconds_total{cpu="3",mode="idle"}');

    const stop = await servers.datacentersServersStopPost({ datacenterId, serverId: id });
    expect(stop.status).toBe(202);
    expect((await servers.datacentersServersFindById({ datacenterId, serverId: id })).data.properties?.vmState).toBe("RUNNING");
    settle();
    expect((await servers.datacentersServersFindById({ datacenterId, serverId: id })).data.properties?.vmState).toBe("SHUTOFF");
    expect(await metricsStatus(id)).toBe(503);

    const start = await servers.datacentersServersStartPost({ datacenterId, serverId: id });
    settle();
    expect(await statusOf(start.headers.location)).toBe("DONE");
    expect((await servers.datacentersServersFindById({ datacenterId, serverId: id })).data.properties?.vmState).toBe("RUNNING");

    const deletion = await servers.datacentersServersDelete({ datacenterId, serverId: id });
    expect(deletion.status).toBe(202);
    settle();
    expect(await statusOf(deletion.headers.location)).toBe("DONE");
    const gone = await sdkFailure(servers.datacentersServersFindById({ datacenterId, serverId: id }));
    expect(gone.status).toBe(404);
    expect(gone.data).toMatchObject({ httpStatus: 404, messages: [{ errorCode: expect.any(String), message: expect.any(String) }] });
  });

  it("refuses wrong credentials with 401 and accepts a token", async () => {
    const wrong = new Configuration({
      username: emulator.credentials.username,
      password: "not-the-password",
      basePath: emulator.cloudApiUrl,
    });
    wrong.setMaxWaitTime(0);
    const refused = await sdkFailure(new DataCentersApi(wrong).datacentersGet({}));
    expect(refused.status).toBe(401);
    expect(refused.data.httpStatus).toBe(401);

    const withToken = new Configuration({ apiKey: emulator.credentials.token, basePath: emulator.cloudApiUrl });
    withToken.setMaxWaitTime(0);
    const datacenters = (await new DataCentersApi(withToken).datacentersGet({ depth: 1 })).data;
    expect(datacenters.items?.map((datacenter) => datacenter.id)).toContain(datacenterId);
  });

  it("manages LANs, NICs and firewall rules as an adapter would", async () => {
    const lans = new LANsApi(config);
    const lan = await lans.datacentersLansPost({ datacenterId, lan: { properties: { name: "private", _public: false } } });
    expect(lan.status).toBe(202);
    settle();
    const lanId = lan.data.id!;
    expect((await lans.datacentersLansFindById({ datacenterId, lanId })).data.properties?.name).toBe("private");

    const { id } = await createServer("worker-3");
    settle();
    const nics = new NetworkInterfacesApi(config);
    const nic = await nics.datacentersServersNicsPost({
      datacenterId,
      serverId: id,
      nic: { properties: { name: "private", lan: Number(lanId), dhcp: true } },
    });
    settle();
    const rules = new FirewallRulesApi(config);
    const rule = await rules.datacentersServersNicsFirewallrulesPost({
      datacenterId,
      serverId: id,
      nicId: nic.data.id!,
      firewallrule: {
        properties: {
          name: "node-exporter",
          protocol: FirewallrulePropertiesProtocolEnum.Tcp,
          portRangeStart: 9100,
          portRangeEnd: 9100,
          sourceIp: "10.0.0.1",
        },
      },
    });
    settle();
    const listed = (await rules.datacentersServersNicsFirewallrulesGet({ datacenterId, serverId: id, nicId: nic.data.id!, depth: 1 })).data;
    expect(listed.items?.map((item) => item.properties?.portRangeStart)).toEqual([9100]);
    await rules.datacentersServersNicsFirewallrulesDelete({
      datacenterId,
      serverId: id,
      nicId: nic.data.id!,
      firewallruleId: rule.data.id!,
    });
    settle();
    expect((await rules.datacentersServersNicsFirewallrulesGet({ datacenterId, serverId: id, nicId: nic.data.id! })).data.items).toEqual(
      [],
    );
    const unknownLan = await sdkFailure(nics.datacentersServersNicsPost({ datacenterId, serverId: id, nic: { properties: { lan: 99 } } }));
    expect(unknownLan.status).toBe(422);
  });

  it("rejects an invalid size with a 422 shaped like the real API", async () => {
    const invalid = await sdkFailure(
      servers.datacentersServersPost({ datacenterId, server: { properties: { name: "bad", cores: 2, ram: 1000 } } }),
    );
    expect(invalid.status).toBe(422);
    expect(invalid.data.messages[0]?.message).toMatch(/ram/);
  });
});

describe("IONOS emulator faults, as the SDK experiences them", () => {
  let emulator: Emulator;
  let config: Configuration;
  let servers: ServersApi;
  let datacenterId: string;
  const control = (path: string, body: unknown) =>
    fetch(`${emulator.url}/_control${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "manual" }, timings });
    config = new Configuration({ apiKey: emulator.credentials.token, basePath: emulator.cloudApiUrl });
    config.setMaxWaitTime(0);
    servers = new ServersApi(config);
    datacenterId = emulator.defaultDatacenterId!;
  });

  afterAll(async () => {
    await emulator.stop();
  });

  const serverNames = async () =>
    ((await servers.datacentersServersGet({ datacenterId, depth: 1 })).data.items ?? []).map((server) => server.properties?.name);
  const create = (name: string) => servers.datacentersServersPost({ datacenterId, server: { properties: { name, cores: 1, ram: 2048 } } });
  const settle = () => emulator.clock.advance(timings.requestQueuedMs + timings.requestRunningMs);

  it("answers 500 to the next N calls, then recovers", async () => {
    expect((await control("/faults", { kind: "error500", count: 2 })).status).toBe(201);
    expect((await sdkFailure(servers.datacentersServersGet({ datacenterId }))).status).toBe(500);
    expect((await sdkFailure(servers.datacentersServersGet({ datacenterId }))).status).toBe(500);
    expect((await servers.datacentersServersGet({ datacenterId })).status).toBe(200);
  });

  it("throttles with 429 and Retry-After; the SDK retries and succeeds", async () => {
    const rawResponse = async () =>
      fetch(`${emulator.cloudApiUrl}/datacenters`, { headers: { Authorization: `Bearer ${emulator.credentials.token}` } });
    await control("/faults", { kind: "throttle429", count: 1, retryAfterSeconds: 7 });
    const throttled = await rawResponse();
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("retry-after")).toBe("7");

    await control("/faults", { kind: "throttle429", count: 1, retryAfterSeconds: 0 });
    expect((await servers.datacentersServersGet({ datacenterId })).status).toBe(200);
    expect(emulator.cloud.faults.pending()).toEqual([]);
  });

  it("a create that answers 500 still creates the server", async () => {
    await control("/faults", { kind: "createFailsButHappens" });
    expect((await sdkFailure(create("ghost"))).status).toBe(500);
    settle();
    expect(await serverNames()).toContain("ghost");
  });

  it("a request can end FAILED with a message and no effect", async () => {
    const created = await create("resizable");
    settle();
    await control("/faults", { kind: "requestFails", message: "Insufficient resources in the datacenter" });
    const patch = await servers.datacentersServersPatch({ datacenterId, serverId: created.data.id!, server: { cores: 8 } });
    settle();
    const status = await waitForRequest(config, patch.headers.location);
    expect(status.data.metadata).toMatchObject({ status: "FAILED", message: "Insufficient resources in the datacenter" });
    expect((await servers.datacentersServersFindById({ datacenterId, serverId: created.data.id! })).data.properties?.cores).toBe(1);
  });

  it("a server can be stuck booting, and a running server can crash", async () => {
    await control("/faults", { kind: "stuckBooting" });
    const stuck = await create("stuck");
    const healthy = await create("healthy");
    settle();
    emulator.clock.advance(timings.bootMs * 10);
    const metricsStatus = async (id: string) => (await fetch(`${emulator.url}${emulator.metricsPath(id)}`)).status;
    expect((await servers.datacentersServersFindById({ datacenterId, serverId: stuck.data.id! })).data.properties?.vmState).toBe("RUNNING");
    expect(await metricsStatus(stuck.data.id!)).toBe(503);
    expect(await metricsStatus(healthy.data.id!)).toBe(200);

    expect((await control(`/servers/${healthy.data.id}/crash`, {})).status).toBe(200);
    expect((await servers.datacentersServersFindById({ datacenterId, serverId: healthy.data.id! })).data.properties?.vmState).toBe(
      "CRASHED",
    );
    expect(await metricsStatus(healthy.data.id!)).toBe(503);
  });
});

describe("a data center of more servers than one page of the API's list holds", () => {
  let emulator: Emulator;
  const SERVERS = 1_005;

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "manual" }, timings });
    const datacenter = emulator.cloud.datacenter(emulator.defaultDatacenterId!);
    for (let index = 1; index <= SERVERS; index += 1)
      emulator.cloud.addServer(datacenter, { name: `bbb-${index}`, cores: 2, ram: 4096 }, [], []);
  });

  afterAll(async () => {
    await emulator.stop();
  });

  it("is answered a page at a time, 1,000 servers unless the client asks otherwise, with a link to the next page", async () => {
    const config = new Configuration({
      username: emulator.credentials.username,
      password: emulator.credentials.password,
      basePath: emulator.cloudApiUrl,
    });
    const servers = new ServersApi(config);
    const datacenterId = emulator.defaultDatacenterId!;
    const first = (await servers.datacentersServersGet({ datacenterId })).data;
    expect(first).toMatchObject({ offset: 0, limit: 1_000 });
    expect(first.items).toHaveLength(1_000);
    expect(first._links?.next).toContain("offset=1000");
    const rest = (await servers.datacentersServersGet({ datacenterId, offset: 1_000 })).data;
    expect(rest.items).toHaveLength(SERVERS - 1_000);
    expect(rest._links?.next).toBeUndefined();
  });

  it("is read whole by the IONOS adapter, so a server on a later page is found (not created a second time after a crash)", async () => {
    const connection = { endpoint: emulator.cloudApiUrl, username: emulator.credentials.username, password: emulator.credentials.password };
    const listed = await listServers(connection, emulator.defaultDatacenterId!);
    expect(listed).toHaveLength(SERVERS);
    expect(listed.map((server) => server.name)).toContain(`bbb-${SERVERS}`);
  });
});
