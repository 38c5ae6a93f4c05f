/**
 * The lab's stand-in for systemd: starts a machine's service from its unit file as systemd would, with the
 * unit's EnvironmentFile= and Environment= and its ExecStart= expanded by systemd's rules ($VAR splits into
 * words, ${VAR} stays one). The unit is the machine's own (/etc/systemd/system, e.g. written by cloud-init) or the
 * one its Debian package installs. User= is not rehearsed: a lab machine has a single user (README.md).
 */
import { readFile } from "node:fs/promises";
import { parseEnv } from "node:util";
import { waitFor, type LabProcess, type Machine } from "./lab.js";

export class UnitError extends Error {
  constructor(
    readonly machine: string,
    readonly unit: string,
    message: string,
  ) {
    super(`${machine}: ${unit}: ${message}`);
    this.name = "UnitError";
  }
}

export interface ServiceUnit {
  name: string;
  /** The unit file, as the machine sees it. */
  path: string;
  execStart: string[];
  /** ExecStartPre= commands; `mayFail` for those prefixed with "-". */
  execStartPre: { argv: string[]; mayFail: boolean }[];
  environment: Record<string, string>;
  workingDirectory?: string;
}

const UNIT_DIRS = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"];

function unitName(name: string): string {
  return name.includes(".") ? name : `${name}.service`;
}

/** The [Service] section's settings, each key with every value it was given, in order. */
function serviceSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = "";
  // Continuation lines end with a backslash.
  for (const line of text.replace(/\\\n/g, " ").split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(trimmed);
    if (header) {
      section = header[1] ?? "";
      continue;
    }
    const equals = trimmed.indexOf("=");
    if (section !== "Service" || equals < 0) continue;
    const key = trimmed.slice(0, equals).trim();
    settings.set(key, [...(settings.get(key) ?? []), trimmed.slice(equals + 1).trim()]);
  }
  return settings;
}

/** Splits a command line into words as systemd does: quotes group, $VAR is split into words, ${VAR} is one word. */
export function splitCommandLine(line: string, environment: Readonly<Record<string, string>>): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const token of line.matchAll(pattern)) {
    const [, doubleQuoted, singleQuoted, bare] = token;
    if (singleQuoted !== undefined) words.push(singleQuoted);
    else if (doubleQuoted !== undefined) words.push(doubleQuoted.replace(/\$\{(\w+)\}/g, (_m, name: string) => environment[name] ?? ""));
    else if (bare !== undefined && /^\$\w+$/.test(bare))
      words.push(...(environment[bare.slice(1)] ?? "").split(/\s+/).filter((word) => word !== ""));
    else if (bare !== undefined) words.push(bare.replace(/\$\{(\w+)\}/g, (_m, name: string) => environment[name] ?? ""));
  }
  return words;
}

async function readMachineText(machine: Machine, path: string): Promise<string | undefined> {
  // The machine's own file first (written by cloud-init); the host's for what the machine sees of it (packages).
  return (await machine.readFile(path).catch(() => undefined)) ?? (await readFile(path, "utf8").catch(() => undefined));
}

/** Reads a unit as the machine sees it and resolves its environment. */
export async function loadUnit(machine: Machine, name: string): Promise<ServiceUnit> {
  const unit = unitName(name);
  for (const dir of UNIT_DIRS) {
    const path = `${dir}/${unit}`;
    const text = await readMachineText(machine, path);
    if (text === undefined) continue;
    const settings = serviceSettings(text);
    const environment: Record<string, string> = {};
    for (const entry of settings.get("EnvironmentFile") ?? []) {
      const optional = entry.startsWith("-");
      const file = optional ? entry.slice(1) : entry;
      const content = await readMachineText(machine, file);
      if (content === undefined && !optional) throw new UnitError(machine.name, unit, `EnvironmentFile ${file} does not exist`);
      Object.assign(environment, parseEnv(content ?? ""));
    }
    for (const entry of settings.get("Environment") ?? []) {
      for (const assignment of splitCommandLine(entry, {})) {
        const equals = assignment.indexOf("=");
        if (equals > 0) environment[assignment.slice(0, equals)] = assignment.slice(equals + 1);
      }
    }
    const execStart = settings.get("ExecStart")?.at(-1);
    if (execStart === undefined) throw new UnitError(machine.name, unit, "has no ExecStart=");
    // Prefixes -, @, +, ! and : change how systemd runs the command, not what it runs.
    const command = splitCommandLine(execStart.replace(/^[-@+!:]+/, ""), environment);
    const execStartPre = (settings.get("ExecStartPre") ?? []).map((line) => ({
      argv: splitCommandLine(line.replace(/^[-@+!:]+/, ""), environment),
      mayFail: /^[@+!:]*-/.test(line),
    }));
    const workingDirectory = settings.get("WorkingDirectory")?.at(-1);
    return { name: unit, path, execStart: command, execStartPre, environment, ...(workingDirectory ? { workingDirectory } : {}) };
  }
  throw new UnitError(machine.name, unit, `no unit file in ${UNIT_DIRS.join(", ")}`);
}

const UNIT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/**
 * Node programs trust the public CAs bundled with Node, where Let's Encrypt's root is; the lab CA (pki.ts) stands in
 * for it, so they also trust the machine's bundle, which holds it (lab.ts).
 */
const LAB_TRUST = { NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt" };

/** The services of one machine, started and restarted as `systemctl` would. */
export class ServiceManager {
  private readonly running = new Map<string, LabProcess>();
  /** Units whose start failed, with why (as `systemctl status` would show it). */
  readonly failed = new Map<string, string>();

  constructor(private readonly machine: Machine) {}

  /** Starts a unit; a failing ExecStartPre= leaves it failed (see `failed`) without starting ExecStart=. */
  async start(name: string): Promise<LabProcess | undefined> {
    const unit = await loadUnit(this.machine, name);
    const existing = this.running.get(unit.name);
    if (existing?.running) return existing;
    const options = {
      env: { PATH: UNIT_PATH, ...LAB_TRUST, ...unit.environment },
      ...(unit.workingDirectory ? { cwd: unit.workingDirectory } : {}),
    };
    this.failed.delete(unit.name);
    for (const pre of unit.execStartPre) {
      const [command, ...args] = pre.argv;
      if (command === undefined) continue;
      const result = await this.machine.run(command, args, options).exited;
      if (result.code !== 0 && !pre.mayFail) {
        this.failed.set(unit.name, `ExecStartPre ${pre.argv.join(" ")} exited ${result.code}: ${result.stderr.trim()}`);
        return undefined;
      }
    }
    const [command, ...args] = unit.execStart;
    if (command === undefined) throw new UnitError(this.machine.name, unit.name, "ExecStart= is empty");
    const service = this.machine.run(command, args, options);
    this.running.set(unit.name, service);
    return service;
  }

  async stop(name: string): Promise<void> {
    const unit = unitName(name);
    await this.running.get(unit)?.kill();
    this.running.delete(unit);
  }

  async restart(name: string): Promise<LabProcess | undefined> {
    await this.stop(name);
    return this.start(name);
  }

  /** Resolves once the running service listens on `port`; rejects at once with its output if it is not running. */
  async waitUntilListening(name: string, port: number, timeoutMs = 20_000): Promise<void> {
    const unit = unitName(name);
    await waitFor(
      `${this.machine.name}'s ${unit} to listen on port ${port}`,
      async () => {
        const service = this.running.get(unit);
        if (service === undefined || !service.running) {
          const why = this.failed.get(unit) ?? (service ? `exited: ${service.stderr.trim().slice(-700)}` : "was never started");
          throw new UnitError(this.machine.name, unit, why);
        }
        return (await this.machine.listens(port)) ? true : undefined;
      },
      timeoutMs,
    );
  }

  /** The running process of a service, if it runs. */
  get(name: string): LabProcess | undefined {
    const service = this.running.get(unitName(name));
    return service?.running ? service : undefined;
  }

  /** Carries out one `systemctl` command line. */
  async systemctl(args: readonly string[]): Promise<void> {
    const words = args.filter((arg) => !arg.startsWith("-"));
    const [verb, ...units] = words;
    const now = args.includes("--now");
    for (const unit of units) {
      if (verb === "start" || (verb === "enable" && now)) await this.start(unit);
      else if (verb === "restart" || verb === "reload-or-restart" || verb === "try-restart" || verb === "reload") await this.restart(unit);
      else if (verb === "stop" || (verb === "disable" && now)) await this.stop(unit);
      else if (verb !== "enable" && verb !== "disable") throw new UnitError(this.machine.name, unit, `systemctl ${verb} is not rehearsed`);
    }
    if (verb !== "daemon-reload" && units.length === 0 && verb !== undefined)
      throw new UnitError(this.machine.name, "-", `systemctl ${verb} without a unit is not rehearsed`);
  }
}
