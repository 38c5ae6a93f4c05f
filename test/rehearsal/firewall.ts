/**
 * The cloud firewall, enforced: the FirewallRule list a stack renders for a machine (infra/firewall.ts) becomes an
 * nftables ruleset in the machine's own network namespace. Like a cloud firewall it is stateful (replies to the
 * machine's own connections come back) and lets in nothing that no rule opens; it rejects rather than drops, so a
 * test sees "refused" at once instead of waiting for a timeout.
 *
 * The ruleset is written in nftables' JSON syntax (libnftables-json(5)), so descriptions need no quoting.
 */
import { isIPv6 } from "node:net";
import type { FirewallRule } from "../../infra/clouds/types.js";
import type { Machine } from "./lab.js";

const TABLE = { family: "inet", name: "cloud_firewall" } as const;
const CHAIN = { ...TABLE, table: TABLE.name, name: "input" } as const;

type Expression = Record<string, unknown>;

function match(left: Expression, right: unknown, op = "=="): Expression {
  return { match: { op, left, right } };
}

function sourceMatch(cidr: string): Expression {
  const [addr = "", length] = cidr.split("/");
  const family = isIPv6(addr) ? "ip6" : "ip";
  const len = length === undefined ? (family === "ip6" ? 128 : 32) : Number(length);
  // A /0 is the whole family: nftables matches it by protocol rather than by a zero-length prefix.
  if (len === 0) return match({ meta: { key: "nfproto" } }, family === "ip6" ? "ipv6" : "ipv4");
  return match({ payload: { protocol: family, field: "saddr" } }, { prefix: { addr, len } });
}

function ruleStatements(rule: FirewallRule): Expression[][] {
  const port = rule.fromPort === rule.toPort ? rule.fromPort : { range: [rule.fromPort, rule.toPort] };
  return rule.sourceCidrs.map((cidr) => [
    sourceMatch(cidr),
    match({ payload: { protocol: rule.protocol, field: "dport" } }, port),
    { accept: null },
  ]);
}

/** The nftables ruleset (JSON) that enforces `rules` on traffic arriving at the machine. */
export function cloudFirewallRuleset(rules: readonly FirewallRule[]): { nftables: Expression[] } {
  const addRule = (expr: Expression[], comment?: string) => ({
    add: { rule: { ...CHAIN, chain: CHAIN.name, expr, ...(comment ? { comment } : {}) } },
  });
  return {
    nftables: [
      // Replace a ruleset applied before: add, delete and add again is one transaction that works either way.
      { add: { table: TABLE } },
      { delete: { table: TABLE } },
      { add: { table: TABLE } },
      {
        add: {
          chain: { family: CHAIN.family, table: CHAIN.table, name: CHAIN.name, type: "filter", hook: "input", prio: 0, policy: "accept" },
        },
      },
      addRule([match({ meta: { key: "iifname" } }, "lo"), { accept: null }], "the machine's own loopback"),
      addRule(
        [match({ ct: { key: "state" } }, ["established", "related"], "in"), { accept: null }],
        "replies (cloud firewalls are stateful)",
      ),
      ...rules.flatMap((rule) => ruleStatements(rule).map((expr) => addRule(expr, rule.description.slice(0, 120)))),
      addRule([match({ meta: { key: "l4proto" } }, "tcp"), { reject: { type: "tcp reset" } }], "no rule opens it"),
      addRule([{ reject: { type: "icmpx", expr: "admin-prohibited" } }], "no rule opens it"),
    ],
  };
}

/** Where a lab machine keeps the ruleset of its cloud firewall (nft reads a file: its stdin here is a socket). */
export const CLOUD_FIREWALL_FILE = "/etc/nftables.d/cloud-firewall.json";

/** Applies `rules` as the machine's cloud firewall, replacing the one it had. */
export async function applyCloudFirewall(machine: Pick<Machine, "exec" | "writeFile">, rules: readonly FirewallRule[]): Promise<void> {
  await machine.writeFile(CLOUD_FIREWALL_FILE, JSON.stringify(cloudFirewallRuleset(rules), null, 2));
  await machine.exec("nft", ["-j", "-f", CLOUD_FIREWALL_FILE]);
}
