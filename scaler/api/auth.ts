import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { ApiToken, Role } from "../settings.js";
import { bearerToken } from "./asap.js";
import { HttpError } from "./http.js";

export interface Principal {
  name: string;
  role: Role;
}

export type ApiEnv = { Variables: { principal: Principal } };

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/**
 * Control-plane bearer tokens: opaque configured secrets, compared in constant time (as SHA-256 digests, so lengths
 * leak nothing either). A sidecar's ASAP token is never among them, so it never opens this API.
 */
export function apiAuth(tokens: readonly ApiToken[]): MiddlewareHandler<ApiEnv> {
  const known = tokens.map((token) => ({ name: token.name, role: token.role, digest: digest(token.token) }));
  return async (c, next) => {
    const presented = bearerToken(c.req.header("authorization"));
    if (presented === undefined) throw new HttpError(401, "unauthorized", "expected Authorization: Bearer <API token>");
    const presentedDigest = digest(presented);
    let match: Principal | undefined;
    for (const token of known) {
      // Compare with every token, so the time taken does not tell which one (if any) matched.
      if (timingSafeEqual(token.digest, presentedDigest) && match === undefined) match = { name: token.name, role: token.role };
    }
    if (match === undefined) throw new HttpError(401, "unauthorized", "unknown API token");
    c.set("principal", match);
    await next();
  };
}

export function requireRole(role: Role): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const principal = c.get("principal");
    if (RANK[principal.role] < RANK[role]) {
      throw new HttpError(403, "forbidden", `requires the ${role} role; token ${principal.name} has ${principal.role}`);
    }
    await next();
  };
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
