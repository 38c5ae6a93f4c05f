import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect } from "vitest";
import { SignJWT, exportSPKI, generateKeyPair, type CryptoKey } from "jose";
import { createApp, listen, type FleetView } from "../../scaler/app.js";
import { createLogger } from "../../scaler/log.js";
import { parseSettings, type Settings } from "../../scaler/settings.js";
import { ScalerStore, connectRedis, type StoreOptions } from "../../scaler/store/store.js";
import { RedisServer } from "../harness/redis.js";

export const TOKENS = {
  admin: "admin-token-0123456789abcdef0123456789",
  operator: "operator-token-0123456789abcdef01234567",
  viewer: "viewer-token-0123456789abcdef0123456789",
} as const;

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
}

/** Serves ASAP public keys the way the scaler expects them: `/<sha256 hex of kid>.pem`, on loopback only. */
export class KeyServer {
  private readonly pems = new Map<string, string>();
  /** How often each key file was asked for. */
  readonly fetches = new Map<string, number>();
  private constructor(private readonly server: Server) {}

  static async start(): Promise<KeyServer> {
    const server = createServer();
    const keyServer = new KeyServer(server);
    server.on("request", (request, response) => {
      const file = (request.url ?? "").replace(/^\/keys\//, "");
      keyServer.fetches.set(file, (keyServer.fetches.get(file) ?? 0) + 1);
      const pem = keyServer.pems.get(file);
      response.writeHead(pem === undefined ? 404 : 200, { "content-type": "application/x-pem-file" }).end(pem ?? "not found");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return keyServer;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/keys`;
  }

  /** A fresh RS256 key pair whose public half this server publishes (unless `publish` is false). */
  async newKey(kid: string, publish = true): Promise<SigningKey> {
    const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
    if (publish) this.pems.set(`${createHash("sha256").update(kid).digest("hex")}.pem`, await exportSPKI(publicKey));
    return { kid, privateKey };
  }

  fetchesOf(kid: string): number {
    return this.fetches.get(`${createHash("sha256").update(kid).digest("hex")}.pem`) ?? 0;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function signSidecarToken(
  key: SigningKey,
  claims: { issuer?: string; audience?: string; expiresAt?: number; issuedAt?: number } = {},
): Promise<string> {
  const issuedAt = claims.issuedAt ?? Math.floor(Date.now() / 1000);
  // An hour from its issue, as jitsi-autoscaler-sidecar signs them (the scaler refuses longer).
  return new SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: key.kid })
    .setIssuer(claims.issuer ?? "jitsi-autoscaler-sidecar")
    .setAudience(claims.audience ?? "jitsi-autoscaler")
    .setIssuedAt(issuedAt)
    .setExpirationTime(claims.expiresAt ?? issuedAt + 3600)
    .sign(key.privateKey);
}

export interface ScalerUnderTest {
  url: string;
  store: ScalerStore;
  settings: Settings;
  stop(): Promise<void>;
}

/** The real app on a real loopback listener, backed by the given Redis. */
export async function startScaler(
  redis: RedisServer,
  keyBaseUrl: string,
  overrides: Partial<Pick<StoreOptions, "instanceTtl">> & { keyPrefix?: string; fleets?: FleetView[] } = {},
): Promise<ScalerUnderTest> {
  const settings = parseSettings({
    listen: { host: "127.0.0.1", port: 0 },
    redis: { url: redis.url, keyPrefix: overrides.keyPrefix ?? "test:", commandTimeoutMs: 1_000 },
    instanceTtl: overrides.instanceTtl,
    apiTokens: [
      { name: "alice", role: "admin", token: TOKENS.admin },
      { name: "oscar", role: "operator", token: TOKENS.operator },
      { name: "vera", role: "viewer", token: TOKENS.viewer },
    ],
    sidecar: { keyBaseUrl, maxBodyBytes: 64 * 1024 },
  });
  const client = connectRedis(settings.redis.url, settings.redis.commandTimeoutMs);
  client.on("error", () => undefined);
  if (client.status !== "ready") await new Promise((resolve) => client.once("ready", resolve));
  const store = new ScalerStore(client, {
    keyPrefix: settings.redis.keyPrefix,
    instanceTtl: settings.instanceTtl,
    retention: settings.retention,
  });
  const app = createApp({
    store,
    settings,
    logger: createLogger("scaler-test", "silent"),
    ...(overrides.fleets === undefined ? {} : { fleets: overrides.fleets }),
  });
  let server: Server | undefined;
  const port = await new Promise<number>((resolve) => {
    server = listen(app, "127.0.0.1", 0, resolve);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    settings,
    stop: async () => {
      await new Promise<void>((resolve) => server?.close(() => resolve()));
      await store.close();
    },
  };
}

export interface JsonResponse {
  status: number;
  body: Record<string, unknown>;
}

export async function call(
  url: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string } = {},
): Promise<JsonResponse> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  // A server may answer a too-large body before reading it all; such a connection must not be reused.
  if (body !== undefined && body.length > 32 * 1024) headers.connection = "close";
  const response = await fetch(url + path, { method, headers, body });
  const text = await response.text();
  return { status: response.status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

export function groupBody(id: string, instanceType: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    instanceType,
    desired: 2,
    policy: { min: 1, max: 5, baseline: 1, defaultSize: { cores: 2, ramGb: 8 }, maxSize: { cores: 4, ramGb: 16 } },
    ...overrides,
  };
}

/** Polls `check` until it returns true, failing after `timeoutMs`; for conditions that become true on their own. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** What `useSidecarScaler` starts; read inside tests (set once the file's beforeAll has run). */
export interface SidecarScalerRig {
  redis: RedisServer;
  keys: KeyServer;
  scaler: ScalerUnderTest;
  /** A sidecar token signed with the rig's one key. */
  token: string;
}

/**
 * A scaler in this process on a real Redis with a key server, one sidecar key (its id `keyId`) and the groups
 * `[id, instanceType]` created through the control API: the common ground of the sidecar protocol's tests.
 */
export function useSidecarScaler(keyId: string, groups: readonly (readonly [string, string])[]): SidecarScalerRig {
  const rig = {} as SidecarScalerRig;
  beforeAll(async () => {
    rig.redis = await RedisServer.start();
    rig.keys = await KeyServer.start();
    rig.scaler = await startScaler(rig.redis, rig.keys.baseUrl);
    rig.token = await signSidecarToken(await rig.keys.newKey(keyId));
    for (const [id, type] of groups) {
      const created = await call(rig.scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody(id, type) });
      expect(created.status).toBe(201);
    }
  });
  afterAll(async () => {
    await rig.scaler?.stop();
    await rig.keys?.stop();
    await rig.redis?.stop();
  });
  return rig;
}
