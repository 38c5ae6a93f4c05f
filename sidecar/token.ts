import { sign, type KeyObject } from "node:crypto";

export interface TokenClaims {
  kid: string;
  issuer: string;
  audience: string;
  /** `<group>/<instanceId>`: what the token may speak for. */
  subject: string;
  /** Seconds the token lives; the scaler refuses more than an hour. */
  lifetimeSeconds: number;
}

const base64url = (value: string | Buffer) => Buffer.from(value).toString("base64url");

/** A compact JWS (RFC 7515) signed with Ed25519: alg EdDSA, as the scaler verifies worker tokens. */
export function signToken(key: KeyObject, claims: TokenClaims, nowSeconds: number): string {
  const header = base64url(JSON.stringify({ alg: "EdDSA", typ: "JWT", kid: claims.kid }));
  const payload = base64url(
    JSON.stringify({
      iss: claims.issuer,
      aud: claims.audience,
      sub: claims.subject,
      iat: nowSeconds,
      exp: nowSeconds + claims.lifetimeSeconds,
    }),
  );
  const signature = sign(null, Buffer.from(`${header}.${payload}`), key);
  return `${header}.${payload}.${base64url(signature)}`;
}

/** Hands out a token, minting a new one when the current one has less than a tenth of its life left. */
export class TokenSource {
  private current: { token: string; expiresAt: number } | undefined;

  constructor(
    private readonly key: KeyObject,
    private readonly claims: TokenClaims,
  ) {}

  token(nowMs: number): string {
    const margin = (this.claims.lifetimeSeconds * 1000) / 10;
    if (this.current === undefined || this.current.expiresAt - margin <= nowMs) {
      const now = Math.floor(nowMs / 1000);
      this.current = { token: signToken(this.key, this.claims, now), expiresAt: (now + this.claims.lifetimeSeconds) * 1000 };
    }
    return this.current.token;
  }
}
