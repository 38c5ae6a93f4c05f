import type { FirewallRule } from "./clouds/types.js";
import type { JitsiComponent } from "./jitsi.js";

const ANYWHERE = ["0.0.0.0/0", "::/0"];

/** The ports workers serve, one source for the firewall rules and the templates that make the services listen. */
export const WORKER_PORTS = {
  /** node-exporter, scraped by the control node's Prometheus (files/worker/node-exporter.default). */
  nodeExporter: 9100,
  /** Let's Encrypt's HTTP-01 challenge (bbb-install on BBB workers, certbot --standalone on Jitsi workers). */
  acmeHttp: 80,
  /** jitsi-videobridge2's media: one UDP port for every participant (videobridge.ice.udp.port). */
  jvbMedia: 10000,
  /** jitsi-videobridge2's public HTTP server: colibri websockets, proxied by the signaling node's nginx. */
  jvbColibriWebsocket: 9090,
} as const;

function nodeExporterRule(controlNodeIp: string): FirewallRule {
  // Prometheus scrapes from the compose network, which has no IPv6: its scrapes leave by the node's IPv4 address.
  const port = WORKER_PORTS.nodeExporter;
  return {
    description: "node-exporter from the control node",
    protocol: "tcp",
    fromPort: port,
    toPort: port,
    sourceCidrs: [`${controlNodeIp}/32`],
  };
}

const acmeRule: FirewallRule = {
  description: "http (ACME challenge, redirect)",
  protocol: "tcp",
  fromPort: WORKER_PORTS.acmeHttp,
  toPort: WORKER_PORTS.acmeHttp,
  sourceCidrs: ANYWHERE,
};
const sshRule = (adminCidrs: string[]): FirewallRule => ({
  description: "ssh from admins",
  protocol: "tcp",
  fromPort: 22,
  toPort: 22,
  sourceCidrs: [...adminCidrs],
});

/** What the environment's Jitsi groups need of the worker firewall: their components and the signaling node's addresses. */
export interface JitsiFirewallNeeds {
  components: readonly JitsiComponent[];
  websocketProxyCidrs: readonly string[];
}

/**
 * Ports every BigBlueButton worker serves, the same that `bbb-install -w` opens in ufw (22, 80, 443, UDP media) plus
 * node-exporter for the control node, which the worker's cloud-init adds to ufw. No TURN server runs on a worker, so
 * 3478 and 7443 stay closed. SSH and node-exporter stay closed to the world. Where the cloud's worker firewall is one
 * for the whole environment (DigitalOcean tags, Oracle Cloud security groups), `jitsi` adds what the environment's
 * Jitsi workers serve beside them.
 */
export function workerFirewallRules(adminCidrs: string[], controlNodeIp: string, jitsi?: JitsiFirewallNeeds): FirewallRule[] {
  const bbb: FirewallRule[] = [
    acmeRule,
    { description: "https", protocol: "tcp", fromPort: 443, toPort: 443, sourceCidrs: ANYWHERE },
    { description: "media (RTP)", protocol: "udp", fromPort: 16384, toPort: 32768, sourceCidrs: ANYWHERE },
    sshRule(adminCidrs),
    nodeExporterRule(controlNodeIp),
  ];
  return jitsi === undefined ? bbb : [...bbb, ...componentRules(jitsi)];
}

/**
 * The environment's worker firewall (DigitalOcean, Oracle Cloud: one for every worker; the workerFirewallRules output):
 * the BigBlueButton workers' rules when the stack has them, and its Jitsi groups' beside or instead of them.
 */
export function environmentWorkerFirewallRules(
  adminCidrs: string[],
  controlNodeIp: string,
  bbb: boolean,
  jitsi?: JitsiFirewallNeeds,
): FirewallRule[] {
  if (bbb) return workerFirewallRules(adminCidrs, controlNodeIp, jitsi);
  return [acmeRule, sshRule(adminCidrs), nodeExporterRule(controlNodeIp), ...(jitsi === undefined ? [] : componentRules(jitsi))];
}

/** The rules a Jitsi component serves beyond SSH, ACME and node-exporter. */
function componentRules(needs: JitsiFirewallNeeds): FirewallRule[] {
  if (!needs.components.includes("JVB")) return [];
  const rules: FirewallRule[] = [
    {
      description: "jitsi-videobridge media (UDP)",
      protocol: "udp",
      fromPort: WORKER_PORTS.jvbMedia,
      toPort: WORKER_PORTS.jvbMedia,
      sourceCidrs: ANYWHERE,
    },
  ];
  if (needs.websocketProxyCidrs.length > 0)
    rules.push({
      description: "jitsi-videobridge colibri websockets from the signaling node",
      protocol: "tcp",
      fromPort: WORKER_PORTS.jvbColibriWebsocket,
      toPort: WORKER_PORTS.jvbColibriWebsocket,
      sourceCidrs: [...needs.websocketProxyCidrs],
    });
  return rules;
}

/**
 * A Jitsi worker's own rules, where the cloud binds rules to the machine (IONOS): SSH from admins, ACME for its
 * node-exporter certificate, node-exporter for the control node, and its component's ports. Jibri serves nothing else:
 * it and the sidecar only call out (to prosody, the meeting and the scaler).
 */
export function jitsiWorkerFirewallRules(
  component: JitsiComponent,
  adminCidrs: string[],
  controlNodeIp: string,
  websocketProxyCidrs: readonly string[],
): FirewallRule[] {
  return [
    acmeRule,
    sshRule(adminCidrs),
    nodeExporterRule(controlNodeIp),
    ...componentRules({ components: [component], websocketProxyCidrs }),
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

/** The firewall needs of a stack's Jitsi block, for the environment-wide worker firewall; undefined without groups. */
export function jitsiFirewallNeeds(
  jitsi: { groups: readonly { type: JitsiComponent }[]; signaling: { websocketProxyCidrs?: readonly string[] | undefined } } | undefined,
): JitsiFirewallNeeds | undefined {
  if (jitsi === undefined) return undefined;
  return { components: jitsi.groups.map((group) => group.type), websocketProxyCidrs: jitsi.signaling.websocketProxyCidrs ?? [] };
}
