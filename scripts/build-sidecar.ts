import { fileURLToPath } from "node:url";
import { SIDECAR_BUNDLE_PATH, writeSidecarBundle } from "../sidecar/bundle.js";

// `npm run build:sidecar`: the worker sidecar as one file, dist/confscale-sidecar.mjs (the scaler serves the same).
const outfile = fileURLToPath(new URL(`..${SIDECAR_BUNDLE_PATH}`, import.meta.url));
await writeSidecarBundle(outfile);
process.stdout.write(`wrote ${outfile}\n`);
