import * as pulumi from "@pulumi/pulumi";
import { loadEnvironmentConfig } from "./stackConfig.js";

/**
 * The environment program: one stack per environment (stacks/Pulumi.<env>.yaml). A function, so the same program
 * runs as the project's `main` (infra/index.ts) and inline through the Automation API (`npm run preview`, tests).
 * Config is validated before any resource is declared: a bad stack fails `pulumi preview` with every problem listed.
 */
export function defineEnvironment(): Record<string, unknown> {
  const config = loadEnvironmentConfig();
  return {
    cloud: config.cloud,
    fleetStack: `${pulumi.getStack()}-fleet`,
  };
}
