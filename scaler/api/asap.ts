import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import type { Redis } from "ioredis";
import { decodeProtectedHeader, importSPKI, jwtVerify, type CryptoKey, type JWTPayload } from "jose";
import { parseJitsiWorkerKeyId, parseWorkerKeyId, workerPublicKeyPem, workerSigningKey } from "../../infra/workerCredentials.js";
import { storeFault } from "../store/errors.js";

export interface AsapOptions {
  keyBaseUrl: string;
  acceptedIssuers: readonly string[];
  audience: string;
  keyCacheSeconds: number;
  /** A key server that failed or did not know the key is asked again after this long. */
  missCacheSeconds?: number;
  fetchTimeoutMs?: number;
  /**
   * Key-server fetches for key ids not yet known, at most this many a minute (all of them at once, e.g. when the
   * scaler starts): a flood of made-up key ids beyond it is refused without reaching the key server.
   */
  keyFetchesPerMinute?: number;
  /**
   * Accept RS256 tokens without a `sub` naming their group and instance, for any group and instance: what an unmodified
   * jitsi-autoscaler-sidecar sends. On unless set false; EdDSA worker tokens are always scoped by their key id.
   */
  allowUnscopedTokens?: boolean;
  /**
   * The fleet's master secret (CONFSCALE_BBB_SECRET): with it, the EdDSA keys of confscale workers
   * (`confscale-worker/<fleet>/<server>`, infra/workerCredentials.ts) are derived here, never fetched.
   */
  workerMasterSecret?: string;
  /** Revoked key ids; a token of a revoked key is refused from the moment it is revoked. */
  revocations?: KeyRevocations;
  /**
   * The public key a Jitsi worker's fleet published for a key id `confscale-jitsi/<fleet>/<server>/<fingerprint>`
   * (infra/workerCredentials.ts): read from the scaler's own store, never fetched, and scoped to that worker.
   */
  jitsiSidecarKey?: (kid: string) => Promise<string | undefined>;
}

/** A sidecar token was refused; `reason` is safe to return to the caller (it never echoes the token). */
export class AsapError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "AsapError";
  }
}

/** What a token may speak for: one group, and one instance of it or (`instanceId` undefined) any of its instances. */
export interface TokenScope {
  group: string;
  instanceId?: string;
}

export interface VerifiedToken {
  payload: JWTPayload;
  kid: string;
  /** Undefined only for an unscoped token, accepted with `allowUnscopedTokens`. */
  scope: TokenScope | undefined;
}

/** A check-in body names a group or instance its token does not speak for; `field` is the body's field. */
export class TokenScopeError extends Error {
  constructor(
    readonly field: "group" | "instanceId",
    message: string,
  ) {
    super(message);
    this.name = "TokenScopeError";
  }
}

/** Refuses a body whose group or instance the token may not speak for. */
export function checkScope(token: VerifiedToken, body: { group: string; instanceId: string }): void {
  const scope = token.scope;
  if (scope === undefined) return;
  if (body.group !== scope.group) throw new TokenScopeError("group", `the token speaks for group ${scope.group}, not ${body.group}`);
  if (scope.instanceId !== undefined && body.instanceId !== scope.instanceId)
    throw new TokenScopeError("instanceId", `the token speaks for instance ${scope.instanceId}, not ${body.instanceId}`);
}

interface CachedKey {
  key: Promise<CryptoKey | KeyObject | undefined>;
  expiresAt: number;
}

const MAX_CACHED_KEYS = 1_000;
const MAX_VERIFIED_TOKENS = 100_000;
/** Longest token lifetime (`exp - iat`) accepted: a leaked token is worth an hour at most. */
export const MAX_TOKEN_LIFETIME_SECONDS = 3_600;
/** How far a sidecar's clock may run ahead of the scaler's. */
const CLOCK_SKEW_SECONDS = 60;
const SUBJECT = /^([^/]+)\/([^/]+)$/;

/**
 * Verifies sidecar tokens: RS256 ASAP tokens as jitsi-autoscaler-sidecar sends them (`kid` names a public key served
 * at `<keyBaseUrl>/<sha256 hex of kid>.pem`, cached, misses too), and EdDSA tokens of confscale workers, whose public
 * key is derived from the key id. `aud` must match, `iss` be accepted, the token live at most an hour and its key not be
 * revoked; the scope it names (`sub` = `<group>/<instanceId>` or `<group>/*`, or the worker key id's fleet and
 * server) is what `checkScope` holds a body to.
 */
export class AsapVerifier {
  readonly revocations: KeyRevocations | undefined;
  private readonly keys = new Map<string, CachedKey>();
  /**
   * Tokens that verified, until they expire (or their key's cache time ends): a sidecar sends the same token for an
   * hour, and a signature verification costs far more than the rest of a check-in.
   */
  private readonly verified = new Map<string, { token: VerifiedToken; validUntil: number }>();
  private readonly fetchBudget: TokenBucket;

  constructor(private readonly options: AsapOptions) {
    this.revocations = options.revocations;
    const perMinute = options.keyFetchesPerMinute ?? 60;
    this.fetchBudget = new TokenBucket(perMinute, perMinute / 60_000);
  }

  /** The public key (SPKI PEM) of a confscale worker's key id, when this verifier derives worker keys. */
  workerPublicKey(kid: string): string | undefined {
    const master = this.options.workerMasterSecret;
    return master === undefined ? undefined : workerPublicKeyPem(master, kid);
  }

  async verify(authorization: string | undefined): Promise<VerifiedToken> {
    const token = bearerToken(authorization);
    if (token === undefined) throw new AsapError("expected Authorization: Bearer <ASAP token>");
    const now = Date.now();
    let known = this.verified.get(token);
    if (known !== undefined && known.validUntil <= now) {
      this.verified.delete(token);
      known = undefined;
    }
    const verified = known?.token ?? (await this.verifyToken(token, now));
    const revocations = this.options.revocations;
    if (revocations !== undefined) {
      // Let the I/O that arrived with this request run first: a revocation published before it was sent is then applied.
      await new Promise((resolve) => setImmediate(resolve));
      const revoked = revocations.isRevoked(verified.kid);
      if (revoked === true || (revoked !== false && (await revoked))) throw new AsapError("signing key revoked");
    }
    return verified;
  }

  private async verifyToken(token: string, now: number): Promise<VerifiedToken> {
    const verified = await this.verifySignature(token);
    if (this.verified.size >= MAX_VERIFIED_TOKENS) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    const validUntil = Math.min((verified.payload.exp ?? 0) * 1000, now + this.options.keyCacheSeconds * 1000);
    this.verified.set(token, { token: verified, validUntil });
    return verified;
  }

  private async verifySignature(token: string): Promise<VerifiedToken> {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new AsapError("malformed token");
    }
    const kid = header.kid;
    if (kid === undefined || kid === "") throw new AsapError("token header has no kid");
    const worker = this.options.workerMasterSecret === undefined ? undefined : parseWorkerKeyId(kid);
    const published = this.options.jitsiSidecarKey;
    const jitsi = worker !== undefined || published === undefined ? undefined : parseJitsiWorkerKeyId(kid);
    try {
      const key = worker !== undefined ? this.workerKey(kid, worker) : await this.keyFor(kid, jitsi === undefined ? undefined : published);
      const { payload } = await jwtVerify(token, key, {
        algorithms: [worker === undefined ? "RS256" : "EdDSA"],
        audience: this.options.audience,
        issuer: [...this.options.acceptedIssuers],
        requiredClaims: ["exp", "iat", "iss", "aud"],
        clockTolerance: CLOCK_SKEW_SECONDS,
      });
      checkLifetime(payload);
      const scope =
        worker !== undefined ? workerScope(payload, worker) : jitsi !== undefined ? jitsiScope(payload, jitsi) : this.scopeOf(payload);
      return { payload, kid, scope };
    } catch (error) {
      if (error instanceof AsapError) throw error;
      const code = (error as { code?: string }).code ?? "";
      throw new AsapError(reasonFor(code, error, worker === undefined ? "RS256" : "EdDSA"));
    }
  }

  private scopeOf(payload: JWTPayload): TokenScope | undefined {
    if (payload.sub === undefined) {
      if (this.options.allowUnscopedTokens !== false) return undefined;
      throw new AsapError("token has no sub naming the group and instance it speaks for (<group>/<instanceId> or <group>/*)");
    }
    const match = SUBJECT.exec(payload.sub);
    if (match === null) throw new AsapError("token claim sub must be <group>/<instanceId> or <group>/*");
    return { group: match[1]!, ...(match[2] === "*" ? {} : { instanceId: match[2]! }) };
  }

  /** A confscale worker's public key, derived from its key id (cached: a derivation costs more than a verification). */
  private workerKey(kid: string, worker: { fleet: string; server: string }): KeyObject {
    const cached = this.derived.get(kid);
    if (cached !== undefined) return cached;
    const key = createPublicKey(workerSigningKey(this.options.workerMasterSecret!, worker.fleet, worker.server));
    if (this.derived.size >= MAX_CACHED_KEYS) this.derived.delete(this.derived.keys().next().value!);
    this.derived.set(kid, key);
    return key;
  }
  private readonly derived = new Map<string, KeyObject>();

  /** A key from the key server (lookups rate-limited), or with `published` from the scaler's own store (not limited). */
  private async keyFor(kid: string, published?: (kid: string) => Promise<string | undefined>): Promise<CryptoKey | KeyObject> {
    const now = Date.now();
    let cached = this.keys.get(kid);
    if (cached === undefined || cached.expiresAt <= now) {
      if (published === undefined && !this.fetchBudget.take(now))
        throw new AsapError("unknown signing key (key lookups are rate-limited; try again later)");
      if (this.keys.size >= MAX_CACHED_KEYS) this.dropExpired(now);
      const key = published === undefined ? this.fetchKey(kid) : publishedKey(kid, published);
      cached = { key, expiresAt: now + (this.options.missCacheSeconds ?? 30) * 1000 };
      this.keys.set(kid, cached);
      const entry = cached;
      void key.then((found) => {
        if (found !== undefined) entry.expiresAt = Date.now() + this.options.keyCacheSeconds * 1000;
      });
    }
    const key = await cached.key;
    if (key === undefined) throw new AsapError("unknown signing key");
    return key;
  }

  private async fetchKey(kid: string): Promise<CryptoKey | undefined> {
    const url = `${this.options.keyBaseUrl.replace(/\/+$/, "")}/${keyFileName(kid)}`;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(this.options.fetchTimeoutMs ?? 5_000) });
      if (!response.ok) return undefined;
      return await importSPKI(await response.text(), "RS256");
    } catch {
      return undefined;
    }
  }

  private dropExpired(now: number): void {
    for (const [kid, entry] of this.keys) {
      if (entry.expiresAt <= now) this.keys.delete(kid);
    }
    // Still full of live entries: forget the oldest rather than grow without bound.
    while (this.keys.size >= MAX_CACHED_KEYS) {
      const oldest = this.keys.keys().next().value;
      if (oldest === undefined) break;
      this.keys.delete(oldest);
    }
  }
}

/**
 * The verifier of a scaler process: its settings, the revocations kept in the store's Redis, and the workers' master
 * secret from the environment (CONFSCALE_BBB_SECRET), when set.
 */
export function sidecarVerifier(
  options: Omit<AsapOptions, "revocations" | "workerMasterSecret">,
  store: { redis: Redis; keys: { revokedSidecarKeys(): string }; jitsiSidecarKey?(kid: string): Promise<string | undefined> },
  env: NodeJS.ProcessEnv = process.env,
): AsapVerifier {
  const masterSecret = env.CONFSCALE_BBB_SECRET;
  return new AsapVerifier({
    ...options,
    revocations: new KeyRevocations(store.redis, store.keys.revokedSidecarKeys()),
    ...(store.jitsiSidecarKey === undefined ? {} : { jitsiSidecarKey: (kid: string) => store.jitsiSidecarKey!(kid) }),
    ...(masterSecret === undefined || masterSecret === "" ? {} : { workerMasterSecret: masterSecret }),
  });
}

/** `<sha256 hex of kid>.pem`: the file name a key server publishes a key id's public key under. */
export function keyFileName(kid: string): string {
  return `${createHash("sha256").update(kid).digest("hex")}.pem`;
}

function checkLifetime(payload: JWTPayload): void {
  const { iat, exp } = payload as { iat: number; exp: number };
  if (exp - iat > MAX_TOKEN_LIFETIME_SECONDS) throw new AsapError(`token lives longer than ${MAX_TOKEN_LIFETIME_SECONDS} s (exp - iat)`);
  if (iat > Date.now() / 1000 + CLOCK_SKEW_SECONDS) throw new AsapError("token claim iat is in the future");
}

/** A Jitsi worker's published public key, or undefined when none is (or it cannot be read). */
async function publishedKey(kid: string, published: (kid: string) => Promise<string | undefined>): Promise<CryptoKey | undefined> {
  try {
    const pem = await published(kid);
    return pem === undefined ? undefined : await importSPKI(pem, "RS256");
  } catch {
    return undefined;
  }
}

/**
 * A Jitsi worker's key speaks for its own group (the fleet `jitsi-<group>`, infra/jitsi.ts) and server only; a `sub`,
 * if present, must say the same. The unmodified sidecar sends none.
 */
function jitsiScope(payload: JWTPayload, worker: { fleet: string; server: string }): TokenScope {
  const group = worker.fleet.replace(/^jitsi-/, "");
  if (payload.sub !== undefined && payload.sub !== `${group}/${worker.server}`)
    throw new AsapError("token claim sub differs from its key id's group and server");
  return { group, instanceId: worker.server };
}

/** A worker's key speaks for its own fleet and server only; a `sub`, if present, must say the same. */
function workerScope(payload: JWTPayload, worker: { fleet: string; server: string }): TokenScope {
  if (payload.sub !== undefined && payload.sub !== `${worker.fleet}/${worker.server}`)
    throw new AsapError("token claim sub differs from its key id's fleet and server");
  return { group: worker.fleet, instanceId: worker.server };
}

/** A token bucket: `capacity` at once, refilled at `perMs` tokens a millisecond. */
class TokenBucket {
  private tokens: number;
  private at = Date.now();

  constructor(
    private readonly capacity: number,
    private readonly perMs: number,
  ) {
    this.tokens = capacity;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Revoked sidecar key ids: a Redis set, held in memory and kept current by the changes published on its channel, so a
 * check-in reads no extra key. While the subscription is down (connecting, or Redis lost), each check-in reads the set
 * instead, so a revocation is never missed.
 */
export class KeyRevocations {
  private revoked = new Set<string>();
  private subscriber: Redis | undefined;
  private current = false;
  private loading: Promise<Set<string>> | undefined;
  /** Changes heard while a load was in flight: its answer may predate them. */
  private heardDuringLoad: string[] = [];

  constructor(
    private readonly redis: Redis,
    /** The Redis set of revoked key ids; its name is the channel changes are announced on too. */
    private readonly key: string,
  ) {}

  /** Revoked (true), not (false), or a promise of it when the in-memory copy may be behind. */
  isRevoked(kid: string): boolean | Promise<boolean> {
    if (this.subscriber === undefined) this.subscribe();
    if (this.current) return this.revoked.has(kid);
    return this.load().then((set) => set.has(kid));
  }

  async revoke(kid: string): Promise<void> {
    this.revoked.add(kid);
    await this.redis
      .multi()
      .sadd(this.key, kid)
      .publish(this.key, `+${kid}`)
      .exec()
      .catch((error: unknown) => Promise.reject(storeFault("revoke a sidecar key", error)));
  }

  async restore(kid: string): Promise<void> {
    await this.redis
      .multi()
      .srem(this.key, kid)
      .publish(this.key, `-${kid}`)
      .exec()
      .catch((error: unknown) => Promise.reject(storeFault("restore a sidecar key", error)));
    this.revoked.delete(kid);
  }

  async list(): Promise<string[]> {
    return [...(await this.load())].sort();
  }

  close(): void {
    this.subscriber?.disconnect();
  }

  private apply(change: string): void {
    if (change.startsWith("+")) this.revoked.add(change.slice(1));
    else if (change.startsWith("-")) this.revoked.delete(change.slice(1));
  }

  private load(): Promise<Set<string>> {
    this.loading ??= this.redis
      .smembers(this.key)
      // Redis down or refusing: the check-in answers 503 like every other store call, never 500.
      .catch((error: unknown) => Promise.reject(storeFault("read the revoked sidecar keys", error)))
      .then((members) => {
        this.revoked = new Set(members);
        for (const change of this.heardDuringLoad) this.apply(change);
        return this.revoked;
      })
      .finally(() => {
        this.loading = undefined;
        this.heardDuringLoad = [];
      });
    return this.loading;
  }

  private subscribe(): void {
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    subscriber.on("error", () => undefined);
    // Whatever was missed while unsubscribed is read again before the copy counts as current.
    subscriber.on("close", () => {
      this.current = false;
    });
    // The subscription may come back before the store's connection does (a Sentinel failover): the set is then read
    // once that one is ready, and a failed read must not go unhandled (it would end the process).
    const catchUp = (): void => {
      void this.load().then(
        () => (this.current = subscriber.status === "ready"),
        () => this.redis.once("ready", catchUp),
      );
    };
    subscriber.on("ready", () => {
      void subscriber.subscribe(this.key).then(catchUp, () => undefined);
    });
    subscriber.on("message", (_channel: string, change: string) => {
      if (this.loading !== undefined) this.heardDuringLoad.push(change);
      this.apply(change);
    });
    // The store's connection ending is the scaler (or worker) stopping: the subscription goes with it.
    this.redis.once("end", () => subscriber.disconnect());
  }
}

export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer +([^ ]+)$/i.exec(authorization?.trim() ?? "");
  return match?.[1];
}

function reasonFor(code: string, error: unknown, algorithm: string): string {
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return "token expired";
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return "token signature does not verify";
    case "ERR_JWT_CLAIM_VALIDATION_FAILED": {
      const claim = (error as { claim?: string }).claim ?? "";
      return claim === "" ? "token claims refused" : `token claim ${claim} refused`;
    }
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return `token algorithm must be ${algorithm}`;
    default:
      return "malformed token";
  }
}
