import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const repo = fileURLToPath(new URL("../..", import.meta.url));

function sourcesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourcesUnder(path);
    return path.endsWith(".ts") && !path.endsWith(".d.ts") ? [path] : [];
  });
}

/** The relative modules a file imports or re-exports, read by the compiler; with `runtimeOnly`, not type-only ones. */
function importsOf(file: string, runtimeOnly: boolean): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest);
  const names: string[] = [];
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement)) {
      if (runtimeOnly && statement.importClause?.isTypeOnly === true) continue;
      names.push((statement.moduleSpecifier as ts.StringLiteral).text);
    } else if (ts.isExportDeclaration(statement) && statement.moduleSpecifier !== undefined) {
      if (runtimeOnly && statement.isTypeOnly) continue;
      names.push((statement.moduleSpecifier as ts.StringLiteral).text);
    }
  }
  return names.filter((name) => name.startsWith(".")).map((name) => relative(repo, resolve(dirname(file), name.replace(/\.js$/, ".ts"))));
}

/** Every relative import and re-export of every file under scaler/ and infra/, as repo paths. */
function importGraph(runtimeOnly = false): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of [...sourcesUnder(join(repo, "scaler")), ...sourcesUnder(join(repo, "infra"))]) {
    graph.set(relative(repo, file), importsOf(file, runtimeOnly));
  }
  return graph;
}

/** The import cycles of the graph: its strongly connected components of more than one file (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next);
    next += 1;
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!graph.has(target)) continue;
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) low.set(node, Math.min(low.get(node)!, index.get(target)!));
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string | undefined;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

/**
 * What each folder of the scaler may import (besides itself): scaler/api → scaler/fleet ← scaler/actuator →
 * infra/fleet → infra/clouds, scaler/signals → scaler/fleet, scaler/policy only its own types and the config schema.
 */
const ALLOWED: Record<string, readonly string[]> = {
  "scaler/policy": ["infra/config.ts"],
  "scaler/fleet": ["scaler/policy/", "scaler/store/scripts.ts", "infra/fleet.ts", "infra/config.ts"],
  "scaler/signals": ["scaler/fleet/", "scaler/policy/", "scaler/log.ts", "infra/config.ts"],
  // The actuator acts through the Scalelite and BBB API clients; it does not gather.
  "scaler/actuator": [
    "scaler/fleet/",
    "scaler/policy/",
    "scaler/signals/scalelite.ts",
    "scaler/signals/bbb.ts",
    "scaler/store/scripts.ts",
    "scaler/log.ts",
    "infra/",
  ],
  // The status page reads the fleet status and the audit kinds the loop defines (types and constants only).
  "scaler/api": [
    "scaler/loop/controller.ts",
    "scaler/loop/decisions.ts",
    "scaler/fleet/",
    "scaler/store/",
    "scaler/policy/",
    "scaler/log.ts",
    "scaler/metrics.ts",
    "scaler/settings.ts",
    "infra/config.ts",
    // Worker tokens are checked with the keys the workers' credentials derive; the scaler serves the sidecar's bundle.
    "infra/workerCredentials.ts",
    "sidecar/bundle.ts",
  ],
};

describe("imports flow one way", () => {
  const graph = importGraph();

  it("has no import cycle in scaler/ and infra/ (a type-only import loads nothing)", () => {
    expect(cycles(importGraph(true))).toEqual([]);
  });

  it("keeps each scaler folder to what it may import", () => {
    const breaches: string[] = [];
    for (const [file, targets] of graph) {
      const folder = Object.keys(ALLOWED).find((prefix) => file.startsWith(`${prefix}/`));
      if (folder === undefined) continue;
      for (const target of targets) {
        if (target.startsWith(`${folder}/`)) continue;
        if (!ALLOWED[folder]!.some((allowed) => target.startsWith(allowed))) breaches.push(`${file} → ${target}`);
      }
    }
    expect(breaches).toEqual([]);
  });
});
