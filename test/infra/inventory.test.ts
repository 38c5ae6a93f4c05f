import { generateKeyPairSync, verify } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { DigitalOceanApiError, listDigitalOceanMachines, ownershipLabelsFromTags } from "../../infra/clouds/digitalocean/index.js";
import { listMachines } from "../../infra/clouds/index.js";
import { listOciMachines, OciApiError, OciCredentialsError, type OciConnection } from "../../infra/clouds/oci/index.js";
import { ownershipTagList, ownershipTagMap, type Placement } from "../../infra/clouds/types.js";

type Handler = (request: IncomingMessage, url: URL, response: ServerResponse) => void;

/** A cloud API fake on loopback: every request is recorded and answered by the test's handler. */
class FakeApi {
  requests: IncomingMessage[] = [];
  base = "";
  private server: Server | undefined;

  async start(handler: Handler): Promise<void> {
    this.requests = [];
    this.server = createServer((request, response) => {
      this.requests.push(request);
      handler(request, new URL(request.url ?? "/", this.base), response);
    });
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    if (this.server === undefined) return;
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, "close");
    this.server = undefined;
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}

const api = new FakeApi();
afterEach(async () => {
  await api.stop();
  vi.unstubAllEnvs();
});

describe("DigitalOcean inventory", () => {
  const vpcId = "5a4981aa-9653-4bd1-bef5-d6bff52042e4";
  const placement: Placement = {
    cloud: "digitalocean",
    region: "fra1",
    digitalocean: { vpcId, workerTag: "confscale-prod-worker", controlNodeTag: "confscale-prod-control", sshKeyIds: ["512189"] },
  };
  const token = "dop_v1_test";

  function droplet(id: number, name: string, vpc: string, tags: string[]) {
    return {
      id,
      name,
      memory: 4096,
      vcpus: 2,
      disk: 80,
      locked: false,
      status: "active",
      created_at: "2025-01-10T09:00:00Z",
      vpc_uuid: vpc,
      tags,
      region: { slug: "fra1" },
      networks: { v4: [], v6: [] },
    };
  }

  /** Two pages of droplets, as the API pages them with `links.pages.next`. */
  function twoPages(): Handler {
    return (request, url, response) => {
      if (request.headers.authorization !== `Bearer ${token}`)
        return sendJson(response, 401, { id: "Unauthorized", message: "Unable to authenticate you" });
      if (url.pathname !== "/v2/droplets")
        return sendJson(response, 404, { id: "not_found", message: "The resource you were accessing could not be found." });
      if (url.searchParams.get("page") === "2") {
        return sendJson(response, 200, {
          droplets: [
            droplet(3002, "prod-bbb-2", vpcId, [
              "confscale:env:prod",
              "confscale:role:worker",
              "confscale:fleet:bbb",
              "confscale-prod-worker",
            ]),
          ],
          links: { pages: { first: `${api.base}/v2/droplets?page=1&per_page=200`, prev: `${api.base}/v2/droplets?page=1&per_page=200` } },
          meta: { total: 3 },
        });
      }
      return sendJson(response, 200, {
        droplets: [
          droplet(3001, "prod-control", vpcId, ["confscale:env:prod", "confscale:role:control", "confscale-prod-control"]),
          droplet(4001, "elsewhere", "0d3176ad-41e0-4021-b831-0c5c45c60959", [
            "confscale:env:prod",
            "confscale:role:worker",
            "confscale:fleet:bbb",
          ]),
        ],
        links: { pages: { last: `${api.base}/v2/droplets?page=2&per_page=200`, next: `${api.base}/v2/droplets?page=2&per_page=200` } },
        meta: { total: 3 },
      });
    };
  }

  it("reads every page, keeps the VPC's droplets and turns their tags into labels", async () => {
    await api.start(twoPages());
    const machines = await listDigitalOceanMachines(placement, { endpoint: api.base, token });
    expect(machines).toEqual([
      { id: "3001", name: "prod-control", labels: { "confscale:env": "prod", "confscale:role": "control" } },
      { id: "3002", name: "prod-bbb-2", labels: { "confscale:env": "prod", "confscale:role": "worker", "confscale:fleet": "bbb" } },
    ]);
    expect(api.requests.map((request) => request.url)).toEqual(["/v2/droplets?per_page=200", "/v2/droplets?page=2&per_page=200"]);
  });

  it("is what listMachines returns for a DigitalOcean placement, with token and endpoint from the environment", async () => {
    await api.start(twoPages());
    expect(
      (await listMachines(placement, { DIGITALOCEAN_TOKEN: token, DIGITALOCEAN_API_URL: api.base })).map((machine) => machine.id),
    ).toEqual(["3001", "3002"]);
  });

  it("reads flat tags back into the labels the adapter wrote", () => {
    const ownership = { env: "staging-2", role: "worker" as const, fleet: "bbb_large" };
    expect(ownershipLabelsFromTags([...ownershipTagList(ownership), "confscale-staging-2-worker", "team"])).toEqual(
      ownershipTagMap(ownership),
    );
  });

  it("turns a 401 into a DigitalOceanApiError naming the operation and status, without the token", async () => {
    await api.start(twoPages());
    const failure = await listDigitalOceanMachines(placement, { endpoint: api.base, token: "dop_v1_wrong" }).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(DigitalOceanApiError);
    expect(failure).toMatchObject({ status: 401, operation: `list droplets of VPC ${vpcId}` });
    expect((failure as Error).message).toContain("Unable to authenticate you");
    expect((failure as Error).message).not.toContain("dop_v1_wrong");
  });

  it("turns a 429 into a DigitalOceanApiError with the status", async () => {
    await api.start((_request, _url, response) =>
      sendJson(response, 429, { id: "too_many_requests", message: "API Rate limit exceeded." }, { "retry-after": "30" }),
    );
    await expect(listDigitalOceanMachines(placement, { endpoint: api.base, token })).rejects.toMatchObject({
      name: "DigitalOceanApiError",
      status: 429,
    });
  });

  it("turns a reply of the wrong shape into a DigitalOceanApiError", async () => {
    await api.start((_request, _url, response) => sendJson(response, 200, { droplets: [{ id: "not-a-number", name: 7 }] }));
    const failure = await listDigitalOceanMachines(placement, { endpoint: api.base, token }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DigitalOceanApiError);
    expect(failure).toMatchObject({ status: 200 });
    expect((failure as Error).message).toContain("unexpected droplet list");
  });

  it("refuses to send the token to a next page on another host", async () => {
    await api.start((_request, _url, response) =>
      sendJson(response, 200, { droplets: [], links: { pages: { next: "http://198.51.100.7/v2/droplets?page=2" } } }),
    );
    await expect(listDigitalOceanMachines(placement, { endpoint: api.base, token })).rejects.toThrow(/is not on http:\/\/127\.0\.0\.1/);
    expect(api.requests).toHaveLength(1);
  });

  it("names the missing token, and takes none from the scaler's own environment", async () => {
    await api.start(twoPages());
    vi.stubEnv("DIGITALOCEAN_TOKEN", token);
    await expect(listMachines(placement, { DIGITALOCEAN_API_URL: api.base })).rejects.toThrow(/no credentials: set DIGITALOCEAN_TOKEN/);
    expect(api.requests).toHaveLength(0);
  });
});

describe("Oracle Cloud inventory", () => {
  const compartmentId = "ocid1.compartment.oc1..aaaaaaaacompartment";
  const availabilityDomain = "Uocm:EU-FRANKFURT-1-AD-1";
  const placement: Placement = {
    cloud: "oci",
    region: "eu-frankfurt-1",
    oci: {
      subnetId: "ocid1.subnet.oc1.eu-frankfurt-1.aaaa",
      workerNsgId: "ocid1.networksecuritygroup.oc1.eu-frankfurt-1.aaaa",
      compartmentId,
      availabilityDomain,
      shape: "VM.Standard.E4.Flex",
    },
  };
  const tenancyOcid = "ocid1.tenancy.oc1..aaaaaaaatenancy";
  const userOcid = "ocid1.user.oc1..aaaaaaaauser";
  const fingerprint = "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34";
  let privateKey = "";
  let publicKey = "";

  beforeAll(() => {
    const pair = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    privateKey = pair.privateKey;
    publicKey = pair.publicKey;
  });

  function connection(): OciConnection {
    return { endpoint: api.base, tenancyOcid, userOcid, fingerprint, privateKey, region: "eu-frankfurt-1" };
  }

  function instance(id: string, displayName: string, lifecycleState: string, freeformTags: Record<string, string>) {
    return {
      id,
      displayName,
      lifecycleState,
      freeformTags,
      compartmentId,
      availabilityDomain,
      region: "eu-frankfurt-1",
      shape: "VM.Standard.E4.Flex",
      timeCreated: "2025-01-10T09:00:00.000Z",
      definedTags: {},
      metadata: {},
    };
  }

  /** The HTTP signature's parameters, or undefined when the request is not signed that way. */
  function signatureOf(request: IncomingMessage): Record<string, string> | undefined {
    const header = request.headers.authorization;
    if (header === undefined || !header.startsWith("Signature ")) return undefined;
    return Object.fromEntries([...header.slice("Signature ".length).matchAll(/(\w+)="([^"]*)"/g)].map((match) => [match[1], match[2]]));
  }

  /** Whether the signature verifies with the test's public key over the headers it names. */
  function signedCorrectly(request: IncomingMessage, signature: Record<string, string>): boolean {
    const lines = (signature.headers ?? "")
      .split(" ")
      .map((name) =>
        name === "(request-target)"
          ? `(request-target): ${request.method?.toLowerCase()} ${request.url}`
          : `${name}: ${String(request.headers[name])}`,
      );
    return verify("sha256", Buffer.from(lines.join("\n")), publicKey, Buffer.from(signature.signature ?? "", "base64"));
  }

  /** ListInstances over two pages (`opc-next-page` / `page`), answered only to requests signed with the test's key. */
  function listInstances(): Handler {
    return (request, url, response) => {
      const signature = signatureOf(request);
      if (
        signature === undefined ||
        signature.keyId !== `${tenancyOcid}/${userOcid}/${fingerprint}` ||
        !signedCorrectly(request, signature)
      ) {
        return sendJson(
          response,
          401,
          { code: "NotAuthenticated", message: "The required information to complete authentication was not provided or was incorrect." },
          { "opc-request-id": "req-401" },
        );
      }
      if (
        url.pathname !== "/20160918/instances" ||
        url.searchParams.get("compartmentId") !== compartmentId ||
        url.searchParams.get("availabilityDomain") !== availabilityDomain
      ) {
        return sendJson(response, 404, {
          code: "NotAuthorizedOrNotFound",
          message: "Authorization failed or requested resource not found.",
        });
      }
      if (url.searchParams.get("page") === "page-2") {
        return sendJson(response, 200, [
          instance("ocid1.instance.oc1.eu-frankfurt-1.bbb2", "prod-bbb-2", "STOPPED", {
            "confscale:env": "prod",
            "confscale:role": "worker",
            "confscale:fleet": "bbb",
          }),
        ]);
      }
      return sendJson(
        response,
        200,
        [
          instance("ocid1.instance.oc1.eu-frankfurt-1.bbb1", "prod-bbb-1", "RUNNING", {
            "confscale:env": "prod",
            "confscale:role": "worker",
            "confscale:fleet": "bbb",
          }),
          instance("ocid1.instance.oc1.eu-frankfurt-1.gone", "prod-bbb-0", "TERMINATED", {
            "confscale:env": "prod",
            "confscale:role": "worker",
            "confscale:fleet": "bbb",
          }),
          instance("ocid1.instance.oc1.eu-frankfurt-1.other", "bastion", "RUNNING", {}),
        ],
        { "opc-next-page": "page-2", "opc-request-id": "req-1" },
      );
    };
  }

  it("signs ListInstances, reads every page, skips terminated instances and maps freeform tags to labels", async () => {
    await api.start(listInstances());
    const machines = await listOciMachines(placement, connection());
    expect(machines).toEqual([
      {
        id: "ocid1.instance.oc1.eu-frankfurt-1.bbb1",
        name: "prod-bbb-1",
        labels: { "confscale:env": "prod", "confscale:role": "worker", "confscale:fleet": "bbb" },
      },
      { id: "ocid1.instance.oc1.eu-frankfurt-1.other", name: "bastion", labels: {} },
      {
        id: "ocid1.instance.oc1.eu-frankfurt-1.bbb2",
        name: "prod-bbb-2",
        labels: { "confscale:env": "prod", "confscale:role": "worker", "confscale:fleet": "bbb" },
      },
    ]);
    expect(api.requests).toHaveLength(2);
    for (const request of api.requests) {
      const signature = signatureOf(request);
      expect(signature).toMatchObject({ keyId: `${tenancyOcid}/${userOcid}/${fingerprint}`, algorithm: "rsa-sha256" });
      const signed = signature?.headers?.split(" ") ?? [];
      expect(signed).toEqual(expect.arrayContaining(["(request-target)", "host"]));
      // OCI takes x-date in place of date; the SDK signs x-date.
      expect(signed.includes("date") || signed.includes("x-date")).toBe(true);
    }
  });

  it("is what listMachines returns for an OCI placement, with credentials and endpoint from the environment", async () => {
    await api.start(listInstances());
    const env = {
      OCI_TENANCY_OCID: tenancyOcid,
      OCI_USER_OCID: userOcid,
      OCI_FINGERPRINT: fingerprint,
      OCI_PRIVATE_KEY: privateKey,
      OCI_REGION: "eu-frankfurt-1",
      OCI_API_URL: api.base,
    };
    expect((await listMachines(placement, env)).map((machine) => machine.name)).toEqual(["prod-bbb-1", "bastion", "prod-bbb-2"]);
  });

  it("turns a refused signature into an OciApiError with the status and the API's message", async () => {
    await api.start(listInstances());
    const { privateKey: otherKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const failure = await listOciMachines(placement, { ...connection(), privateKey: otherKey }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OciApiError);
    expect(failure).toMatchObject({
      status: 401,
      requestId: "req-401",
      operation: `list instances of compartment ${compartmentId} in ${availabilityDomain}`,
    });
    expect((failure as Error).message).toContain("NotAuthenticated");
  });

  it("turns a reply of the wrong shape into an OciApiError", async () => {
    await api.start((_request, _url, response) => sendJson(response, 200, [{ displayName: "no id", lifecycleState: "RUNNING" }]));
    await expect(listOciMachines(placement, connection())).rejects.toThrow(OciApiError);
  });

  it("names the missing credentials before any request, and takes none from the scaler's own environment", async () => {
    await api.start(listInstances());
    const { userOcid: _user, privateKey: _key, ...partial } = connection();
    vi.stubEnv("OCI_USER_OCID", _user);
    vi.stubEnv("OCI_PRIVATE_KEY", _key);
    const failure = await listOciMachines(placement, partial).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OciCredentialsError);
    expect(failure).toMatchObject({ variables: ["OCI_USER_OCID", "OCI_PRIVATE_KEY"] });
    expect(api.requests).toHaveLength(0);
  });

  it("names an unreadable private key without showing it", async () => {
    const failure = await listOciMachines(placement, {
      ...connection(),
      privateKey: "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----",
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OciCredentialsError);
    expect((failure as Error).message).toContain("OCI_PRIVATE_KEY");
    expect((failure as Error).message).not.toContain("not-a-key");
  });
});

describe("IONOS inventory", () => {
  const placement = (endpoint: string): Placement => ({
    cloud: "ionos",
    region: "de/fra",
    ionos: { datacenterId: "dc-1", lanId: 1, endpoint },
  });

  it("names the missing credentials before any request, and takes none from the scaler's own environment", async () => {
    await api.start((_request, _url, response) => sendJson(response, 200, { items: [] }));
    vi.stubEnv("IONOS_TOKEN", "token-of-another-account");
    vi.stubEnv("IONOS_API_URL", api.base);
    await expect(listMachines(placement(api.base), {})).rejects.toThrow(
      /list servers of data center dc-1 .*no credentials: set IONOS_TOKEN, or IONOS_USERNAME and IONOS_PASSWORD/,
    );
    expect(api.requests).toHaveLength(0);
  });
});
