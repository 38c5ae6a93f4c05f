import { defineEnvironment } from "./environment.js";

// The project's `main` (Pulumi.yaml): the stack outputs are the environment program's.
const outputs = defineEnvironment();

export const cloud = outputs.cloud;
export const fleetStack = outputs.fleetStack;
