import { Hono } from "hono";
import { bundleSidecar, SIDECAR_BUNDLE_PATH } from "../../sidecar/bundle.js";

/**
 * `GET /dist/confscale-sidecar.mjs`: the worker sidecar of this scaler's own version, bundled on first request and
 * kept, which every worker's confscale-sidecar.service downloads before it starts, so the two never drift apart.
 */
export function sidecarBundleRoutes(bundle: () => Promise<string> = bundleSidecar): Hono {
  let built: Promise<string> | undefined;
  const app = new Hono();
  app.get(SIDECAR_BUNDLE_PATH, async (c) => {
    built ??= bundle().catch((error: unknown) => {
      built = undefined; // a failed build is tried again by the next request
      throw error;
    });
    return c.body(await built, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" });
  });
  return app;
}
