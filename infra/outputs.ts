import type { EnvironmentConfig } from "./config.js";
import type * as pulumi from "@pulumi/pulumi";
import type { FirewallRule, Placement } from "./clouds/types.js";

/** What the environment program declares, as its outputs list it. */
export interface EnvironmentOutputs {
  controlNodeAddress: pulumi.Output<string>;
  /** Absent in a Jitsi-only environment, which runs no Scalelite. */
  scaleliteUrl?: string;
  grafanaUrl: string;
  scalerUrl: string;
  /** The admin token of the scaler's API and the confscale CLI (a secret output). */
  scalerApiToken: pulumi.Output<string>;
  fleetStack: string;
  /** Where workers go and which rules they carry; the scaler hands it to the fleet program. */
  workerPlacement: pulumi.Output<Placement>;
  workerFirewallRules: pulumi.Output<FirewallRule[]>;
  scalerCommit?: string;
}

/**
 * The environment stack's outputs, one list for both ways the program runs: `pulumi up` of the project (infra/index.ts)
 * and the inline program of the Automation API (infra/workspace.ts).
 */
export function stackOutputs(config: EnvironmentConfig, environment: EnvironmentOutputs): Record<string, unknown> {
  return {
    cloud: config.cloud,
    fleetStack: environment.fleetStack,
    controlNodeAddress: environment.controlNodeAddress,
    ...(environment.scaleliteUrl === undefined ? {} : { scaleliteUrl: environment.scaleliteUrl }),
    grafanaUrl: environment.grafanaUrl,
    scalerUrl: environment.scalerUrl,
    scalerApiToken: environment.scalerApiToken,
    workerPlacement: environment.workerPlacement,
    workerFirewallRules: environment.workerFirewallRules,
    scalerCommit: environment.scalerCommit,
  };
}
