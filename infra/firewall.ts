import type { FirewallRule } from "./clouds/types.js";

const ANYWHERE = ["0.0.0.0/0", "::/0"];

/**
 * Ports every BigBlueButton worker serves, the same that `bbb-install -w` opens in ufw (22, 80, 443, UDP media) plus
 * node-exporter for the control node, which the worker's cloud-init adds to ufw. No TURN server runs on a worker, so
 * 3478 and 7443 stay closed. SSH and node-exporter stay closed to the world.
 */
export function workerFirewallRules(adminCidrs: string[], controlNodeIp: string): FirewallRule[] {
  return [
    { description: "http (ACME challenge, redirect)", protocol: "tcp", fromPort: 80, toPort: 80, sourceCidrs: ANYWHERE },
    { description: "https", protocol: "tcp", fromPort: 443, toPort: 443, sourceCidrs: ANYWHERE },
    { description: "media (RTP)", protocol: "udp", fromPort: 16384, toPort: 32768, sourceCidrs: ANYWHERE },
    { description: "ssh from admins", protocol: "tcp", fromPort: 22, toPort: 22, sourceCidrs: [...adminCidrs] },
    // Prometheus scrapes from the compose network, which has no IPv6: its scrapes leave by the node's IPv4 address.
    {
      description: "node-exporter from the control node",
      protocol: "tcp",
      fromPort: 9100,
      toPort: 9100,
      sourceCidrs: [`${controlNodeIp}/32`],
    },
  ];
}

/** The control node publishes only its TLS front; Scalelite's API, Redis, PostgreSQL and Prometheus stay inside. */
export function controlNodeFirewallRules(adminCidrs: string[]): FirewallRule[] {
  return [
    { description: "http (ACME challenge, redirect)", protocol: "tcp", fromPort: 80, toPort: 80, sourceCidrs: ANYWHERE },
    { description: "https", protocol: "tcp", fromPort: 443, toPort: 443, sourceCidrs: ANYWHERE },
    { description: "ssh from admins", protocol: "tcp", fromPort: 22, toPort: 22, sourceCidrs: [...adminCidrs] },
  ];
}
