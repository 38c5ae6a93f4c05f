import type { FirewallRule } from "./clouds/types.js";

const ANYWHERE = ["0.0.0.0/0", "::/0"];

/** Ports every BigBlueButton worker serves; SSH and node-exporter stay closed to the world. */
export function workerFirewallRules(adminCidrs: string[], controlNodeIp: string): FirewallRule[] {
  return [
    { description: "http (ACME challenge, redirect)", protocol: "tcp", fromPort: 80, toPort: 80, sourceCidrs: ANYWHERE },
    { description: "https", protocol: "tcp", fromPort: 443, toPort: 443, sourceCidrs: ANYWHERE },
    { description: "bbb-webrtc-sfu / freeswitch websocket", protocol: "tcp", fromPort: 7443, toPort: 7443, sourceCidrs: ANYWHERE },
    { description: "TURN", protocol: "tcp", fromPort: 3478, toPort: 3478, sourceCidrs: ANYWHERE },
    { description: "media (RTP)", protocol: "udp", fromPort: 16384, toPort: 32768, sourceCidrs: ANYWHERE },
    { description: "ssh from admins", protocol: "tcp", fromPort: 22, toPort: 22, sourceCidrs: [...adminCidrs] },
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
