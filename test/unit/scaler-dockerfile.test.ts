import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/** The Dockerfile's instructions, continuation lines joined: `[instruction, arguments]`. */
function instructions(text: string): [string, string][] {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.trimStart().startsWith("#"))
    .map((line) => {
      const [instruction = "", ...rest] = line.trim().split(/\s+/);
      return [instruction.toUpperCase(), rest.join(" ")];
    });
}

describe("the scaler's image (files/scaler.Dockerfile)", () => {
  const steps = instructions(readFileSync(new URL("../../files/scaler.Dockerfile", import.meta.url), "utf8"));

  it("puts the Pulumi CLI where the installer writes it and on PATH", () => {
    const install = steps.find(([instruction, args]) => instruction === "RUN" && args.includes("get.pulumi.com"))?.[1] ?? "";
    // Without --install-root the installer writes to $HOME/.pulumi, which nothing else in the image looks at.
    const root = /--install-root\s+"?([^"\s]+)"?/.exec(install)?.[1];
    expect(root, install).toBeDefined();
    const env = Object.fromEntries(
      steps.filter(([instruction]) => instruction === "ENV").map(([, args]) => args.split("=") as [string, string]),
    );
    const resolved = (root ?? "").replace(/\$\{(\w+)\}/g, (_match, name: string) => env[name] ?? "");
    expect(env.PATH?.split(":")).toContain(`${resolved}/bin`);
    // The plugin installs run after it, with the CLI found on PATH.
    expect(install).toMatch(/&& pulumi version/);
  });

  it("fails the build when a piped download fails (hadolint DL4006)", () => {
    const firstPipe = steps.findIndex(([instruction, args]) => instruction === "RUN" && /[^|]\|[^|]/.test(args));
    const shell = steps.findIndex(([instruction, args]) => instruction === "SHELL" && args.includes("pipefail"));
    expect(firstPipe).toBeGreaterThan(-1);
    expect(shell).toBeGreaterThan(-1);
    expect(shell).toBeLessThan(firstPipe);
  });
});
