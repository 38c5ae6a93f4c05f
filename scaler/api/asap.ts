import { createHash } from "node:crypto";
import { importSPKI, jwtVerify, type CryptoKey, type JWTPayload } from "jose";

export interface AsapOptions {
  keyBaseUrl: string;
  acceptedIssuers: readonly string[];
  audience: string;
  keyCacheSeconds: number;
  /** A key server that failed or did not know the key is asked again after this long. */
  missCacheSeconds?: number;
  fetchTimeoutMs?: number;
}

/** A sidecar token was refused; `reason` is safe to return to the caller (it never echoes the token). */
export class AsapError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "AsapError";
  }
}

interface CachedKey {
  key: Promise<CryptoKey | undefined>;
  expiresAt: number;
}

const MAX_CACHED_KEYS = 1_000;
const MAX_VERIFIED_TOKENS = 100_000;

/**
 * Verifies ASAP tokens as jitsi-autoscaler-sidecar sends them: RS256, `kid` names a public key served at
 * `<keyBaseUrl>/<sha256 hex of kid>.pem`, `aud` must match and `iss` must be accepted. Keys are cached, and so are
 * misses (briefly), so that a flood of made-up key ids cannot make the scaler hammer the key server.
 */
export class AsapVerifier {
  private readonly keys = new Map<string, CachedKey>();
  /**
   * Tokens that verified, until they expire (or their key's cache time ends): a sidecar sends the same token for an
   * hour, and an RS256 verification costs far more than the rest of a check-in.
   */
  private readonly verified = new Map<string, { payload: JWTPayload; validUntil: number }>();

  constructor(private readonly options: AsapOptions) {}

  async verify(authorization: string | undefined): Promise<JWTPayload> {
    const token = bearerToken(authorization);
    if (token === undefined) throw new AsapError("expected Authorization: Bearer <ASAP token>");
    const now = Date.now();
    const known = this.verified.get(token);
    if (known !== undefined && known.validUntil > now) return known.payload;
    if (known !== undefined) this.verified.delete(token);
    const payload = await this.verifySignature(token);
    if (this.verified.size >= MAX_VERIFIED_TOKENS) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(token, { payload, validUntil: Math.min((payload.exp ?? 0) * 1000, now + this.options.keyCacheSeconds * 1000) });
    return payload;
  }

  private async verifySignature(token: string): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, (header) => this.keyFor(header.kid), {
        algorithms: ["RS256"],
        audience: this.options.audience,
        issuer: [...this.options.acceptedIssuers],
        requiredClaims: ["exp", "iat", "iss", "aud"],
        clockTolerance: 60,
      });
      return payload;
    } catch (error) {
      if (error instanceof AsapError) throw error;
      const code = (error as { code?: string }).code ?? "";
      throw new AsapError(reasonFor(code, error));
    }
  }

  private async keyFor(kid: string | undefined): Promise<CryptoKey> {
    if (kid === undefined || kid === "") throw new AsapError("token header has no kid");
    const now = Date.now();
    let cached = this.keys.get(kid);
    if (cached === undefined || cached.expiresAt <= now) {
      if (this.keys.size >= MAX_CACHED_KEYS) this.dropExpired(now);
      const key = this.fetchKey(kid);
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
    const url = `${this.options.keyBaseUrl.replace(/\/+$/, "")}/${createHash("sha256").update(kid).digest("hex")}.pem`;
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

export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer +([^ ]+)$/i.exec(authorization?.trim() ?? "");
  return match?.[1];
}

function reasonFor(code: string, error: unknown): string {
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
      return "token algorithm must be RS256";
    default:
      return "malformed token";
  }
}
