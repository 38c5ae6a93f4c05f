import { Hono } from "hono";
import { z } from "zod";
import type { ApiToken } from "../settings.js";
import { keyFileName, type AsapVerifier } from "./asap.js";
import { apiAuth, requireRole, type ApiEnv } from "./auth.js";
import { HttpError, parseWith, readJson } from "./http.js";

const kidBody = z.strictObject({ kid: z.string().min(1).max(256) });
const keyFile = z.string().regex(/^[0-9a-f]{64}\.pem$/, "expected <sha256 hex of the key id>.pem");

export interface SidecarKeyRoutesDeps {
  asap: AsapVerifier;
  tokens: readonly ApiToken[];
  /** The key ids of the workers this scaler drives, whose public keys `/keys` serves. */
  workerKeyIds: () => Iterable<string>;
}

/**
 * `GET /keys/<sha256 hex of kid>.pem`: the public keys of the fleet's workers, derived here, so that a settings'
 * `keyBaseUrl` may name the scaler itself. Public keys are no secret.
 */
export function publicKeyRoutes({ asap, workerKeyIds }: Pick<SidecarKeyRoutesDeps, "asap" | "workerKeyIds">): Hono {
  const app = new Hono();
  app.get("/keys/:file", (c) => {
    const file = parseWith(keyFile, c.req.param("file"), "file");
    for (const kid of workerKeyIds()) {
      if (keyFileName(kid) !== file) continue;
      const pem = asap.workerPublicKey(kid);
      if (pem !== undefined) return c.body(pem, 200, { "content-type": "application/x-pem-file" });
    }
    throw new HttpError(404, "not_found", "no worker key with that file name");
  });
  return app;
}

/**
 * `/api/v1/sidecar-keys`: admins revoke a sidecar's key id (its tokens are refused from then on, by every check-in
 * process) with `POST revoked {kid}` or restore it with `POST restored {kid}`; viewers list the revoked ones.
 */
export function sidecarKeyRoutes({ asap, tokens }: Pick<SidecarKeyRoutesDeps, "asap" | "tokens">): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
  api.use("*", apiAuth(tokens));
  const revocations = () => {
    if (asap.revocations === undefined) throw new HttpError(404, "not_found", "this scaler keeps no key revocations");
    return asap.revocations;
  };
  api.get("/revoked", requireRole("viewer"), async (c) => c.json({ revoked: await revocations().list() }));
  api.post("/revoked", requireRole("admin"), async (c) => {
    const { kid } = await readJson(c, kidBody, 4096);
    await revocations().revoke(kid);
    return c.json({ revoked: kid }, 201);
  });
  api.post("/restored", requireRole("admin"), async (c) => {
    const { kid } = await readJson(c, kidBody, 4096);
    await revocations().restore(kid);
    return c.json({ restored: kid });
  });
  return api;
}
