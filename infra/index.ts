import { defineEnvironment } from "./environment.js";

// The project's `main` (Pulumi.yaml): the stack outputs are the environment program's.
const outputs = defineEnvironment();

export const cloud = outputs.cloud;
export const fleetStack = outputs.fleetStack;
export const controlNodeAddress = outputs.controlNodeAddress;
export const scaleliteUrl = outputs.scaleliteUrl;
export const grafanaUrl = outputs.grafanaUrl;
export const scalerUrl = outputs.scalerUrl;
export const workerPlacement = outputs.workerPlacement;
export const workerFirewallRules = outputs.workerFirewallRules;
export const scalerCommit = outputs.scalerCommit;
