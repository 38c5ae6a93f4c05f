import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { declareEnvironment } from "./environment.js";
import { loadEnvironmentConfig } from "./stackConfig.js";

// The environment program: one stack per environment (stacks/Pulumi.<env>.yaml).
// Config is validated before any resource is declared, so a bad stack fails `pulumi preview` with every problem listed.
const config = loadEnvironmentConfig();
const environment = declareEnvironment(pulumi.getStack(), config, { repositoryRoot: fileURLToPath(new URL("..", import.meta.url)) });

export const cloud = config.cloud;
export const fleetStack = environment.fleetStack;
export const controlNodeAddress = environment.controlNodeAddress;
export const scaleliteUrl = environment.scaleliteUrl;
export const grafanaUrl = environment.grafanaUrl;
export const scalerUrl = environment.scalerUrl;
export const workerPlacement = environment.workerPlacement;
export const workerFirewallRules = environment.workerFirewallRules;
export const scalerCommit = environment.scalerCommit;
