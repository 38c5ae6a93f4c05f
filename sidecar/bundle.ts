import { build, type BuildOptions } from "esbuild";
import { fileURLToPath } from "node:url";

/** Where the scaler serves the bundle, and the file `npm run build:sidecar` writes. */
export const SIDECAR_BUNDLE_PATH = "/dist/confscale-sidecar.mjs";

/** One ES module with no import but Node's own; BBB 2.7 workers run Node 18 or newer. */
const options: BuildOptions = {
  entryPoints: [fileURLToPath(new URL("./main.ts", import.meta.url))],
  bundle: true,
  platform: "node",
  target: "node18",
  format: "esm",
  legalComments: "none",
  banner: { js: "// confscale worker sidecar (sidecar/ of the confscale repository), bundled by esbuild" },
};

/** The sidecar bundled into one file's text. */
export async function bundleSidecar(): Promise<string> {
  const result = await build({ ...options, write: false, outfile: "confscale-sidecar.mjs" });
  const output = result.outputFiles?.[0];
  if (output === undefined) throw new Error("esbuild wrote no sidecar bundle");
  return output.text;
}

/** Writes the bundle to `outfile`. */
export async function writeSidecarBundle(outfile: string): Promise<void> {
  await build({ ...options, outfile });
}
