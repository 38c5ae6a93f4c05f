import * as pulumi from "@pulumi/pulumi";
import { beforeAll } from "vitest";

/** A resource a program declared under Pulumi's mocks. */
export interface DeclaredResource {
  type: string;
  name: string;
  urn: string;
  inputs: Record<string, unknown>;
  provider?: string;
}

export interface RecordingMocksOptions {
  /** The stack the program runs in (`pulumi.getStack()`). */
  stack: string;
  /** As in a preview (`pulumi.runtime.isDryRun()`). */
  dryRun: boolean;
  /** The public IPv4 address every created machine gets; without it, addresses stay unknown as in a preview of new machines. */
  ipv4?: string;
  /** The IPv6 address a droplet gets (DigitalOcean's provider reports it as `ipv6Address`). */
  ipv6?: string;
  /** More state for a resource, as its provider's create would return (a dynamic provider's create does not run under mocks). */
  extraState?: (args: pulumi.runtime.MockResourceArgs) => Record<string, unknown> | undefined;
}

/** Installs Pulumi's mocks for the file (in its beforeAll) and answers the list every declared resource is added to. */
export function useRecordingMocks(options: RecordingMocksOptions): DeclaredResource[] {
  const declared: DeclaredResource[] = [];
  beforeAll(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          declared.push({
            type: args.type,
            name: args.name,
            urn: `urn:pulumi:${options.stack}::confscale::${args.type}::${args.name}`,
            inputs: args.inputs as Record<string, unknown>,
            ...(args.provider === undefined ? {} : { provider: args.provider }),
          });
          if (options.ipv4 === undefined) return { id: undefined, state: args.inputs };
          const addresses = {
            publicIp: options.ipv4,
            ipv4Address: options.ipv4,
            ...(options.ipv6 !== undefined && args.type === "digitalocean:index/droplet:Droplet" ? { ipv6Address: options.ipv6 } : {}),
            serverId: `${args.name}-id`,
            datacenterId: "dc-1",
            lanId: 1,
          };
          return { id: `${args.name}-id`, state: { ...args.inputs, ...addresses, ...options.extraState?.(args) } };
        },
        call: (args) => args.inputs,
      },
      "confscale",
      options.stack,
      options.dryRun,
    );
  });
  return declared;
}
