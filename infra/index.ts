import { defineEnvironment } from "./environment.js";

// The project's `main` (Pulumi.yaml): the engine calls the default export and takes what it returns as the stack's
// outputs, so `pulumi up` here exports exactly what the inline program of infra/workspace.ts exports.
export default defineEnvironment;
