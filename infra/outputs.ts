import type { EnvironmentConfig } from "./config.js";
import type { EnvironmentOutputs } from "./environment.js";

/**
 * The environment stack's outputs, one list for both ways the program runs: `pulumi up` of the project (infra/index.ts)
 * and the inline program of the Automation API (infra/workspace.ts).
 */
export function stackOutputs(config: EnvironmentConfig, environment: EnvironmentOutputs): Record<string, unknown> {
  return {
    cloud: config.cloud,
    fleetStack: environment.fleetStack,
    controlNodeAddress: environment.controlNodeAddress,
    scaleliteUrl: environment.scaleliteUrl,
    grafanaUrl: environment.grafanaUrl,
    scalerUrl: environment.scalerUrl,
    scalerApiToken: environment.scalerApiToken,
    workerPlacement: environment.workerPlacement,
    workerFirewallRules: environment.workerFirewallRules,
    scalerCommit: environment.scalerCommit,
  };
}
