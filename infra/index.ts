import * as pulumi from "@pulumi/pulumi";
import { loadEnvironmentConfig } from "./stackConfig.js";

// The environment program: one stack per environment (stacks/Pulumi.<env>.yaml).
// Config is validated before any resource is declared, so a bad stack fails `pulumi preview` with every problem listed.
const config = loadEnvironmentConfig();

export const cloud = config.cloud;
export const fleetStack = `${pulumi.getStack()}-fleet`;
