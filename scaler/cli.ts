#!/usr/bin/env -S node --import tsx
/**
 * confscale: the operator's command line for a running scaler, through its API (`/api/v1/fleets`).
 *
 *   confscale status [fleet]
 *   confscale servers cordon|enable <server> [--fleet bbb]
 *   confscale servers panic <server> --yes [--fleet bbb]
 *   confscale fleet preview|up [--fleet bbb]
 *   confscale windows list|add|remove [--fleet bbb]
 *   confscale schedules list|create|delete [--fleet bbb]
 *
 * The scaler's URL comes from --url or CONFSCALE_URL (default http://127.0.0.1:8080), the API token from
 * CONFSCALE_TOKEN (`pulumi stack output scalerApiToken --show-secrets`), never from an argument that shell history
 * keeps. Inside the scaler's container the token configured there is used.
 */
import { Command, Option } from "commander";
import { z } from "zod";
import { OPERATOR_ACTIONS } from "./fleet/operator.js";
import { describeSchedule } from "./policy/timeWindows.js";

const DEFAULT_FLEET = "bbb";
/** A period or a preview may wait for an `up` in progress, which takes minutes on a large fleet. */
const CALL_TIMEOUT_MS = 15 * 60_000;

class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}

const readingSchema = z.looseObject({ value: z.number().nullable(), status: z.string() });
const serverSchema = z.looseObject({
  name: z.string(),
  cores: z.number(),
  ramGb: z.number(),
  power: z.string(),
  phase: z.string(),
  lastCheckIn: z.string().nullable().optional(),
  readings: z.looseObject({ at: z.number(), cpu: readingSchema, memory: readingSchema }).optional(),
});
const fleetStatusSchema = z.looseObject({
  fleet: z.string(),
  starting: z.boolean(),
  servers: z.array(serverSchema),
  lastPeriod: z
    .looseObject({
      at: z.string(),
      decisions: z.array(z.looseObject({ kind: z.string(), server: z.string().nullable(), reason: z.string(), dryRun: z.boolean() })),
      held: z.array(z.string()),
      update: z.looseObject({ summary: z.record(z.string(), z.number()), durationMs: z.number() }).nullable(),
    })
    .nullable(),
  sanity: z
    .looseObject({
      untracked: z.array(z.looseObject({ id: z.string(), name: z.string() })),
      missing: z.array(z.string()),
      danglingRegistrations: z.array(z.looseObject({ id: z.string(), url: z.string() })),
    })
    .nullable(),
});
type FleetStatus = z.infer<typeof fleetStatusSchema>;
/** A Jitsi group's fleet (scaler/fleet/jitsiGroup.ts JitsiFleetStatus), told apart by its group and component. */
const jitsiFleetStatusSchema = z.looseObject({
  fleet: z.string(),
  group: z.string(),
  component: z.string(),
  starting: z.boolean(),
  servers: z.array(serverSchema.extend({ sidecar: z.looseObject({ state: z.string(), stress: z.number().nullable() }).nullable() })),
  lastPeriod: z
    .looseObject({
      at: z.string(),
      desired: z.number(),
      figure: z.number().nullable(),
      autoscale: z.looseObject({ kind: z.string(), reason: z.string() }).nullable(),
      actions: z.array(z.looseObject({ kind: z.string(), server: z.string().nullable(), reason: z.string() })),
      update: z.looseObject({ summary: z.record(z.string(), z.number()), durationMs: z.number() }).nullable(),
    })
    .nullable(),
  sanity: z.looseObject({ untracked: z.array(z.string()), silent: z.array(z.string()) }).nullable(),
});
type JitsiFleetStatus = z.infer<typeof jitsiFleetStatusSchema>;
const anyFleetStatusSchema = z.union([jitsiFleetStatusSchema, fleetStatusSchema]);
type AnyFleetStatus = z.infer<typeof anyFleetStatusSchema>;
const errorBodySchema = z.looseObject({ message: z.string() });

interface Connection {
  url: string;
  token: string;
}

function connection(url: string, env: NodeJS.ProcessEnv): Connection {
  const token = env.CONFSCALE_TOKEN ?? tokenFromScalerEnvironment(env.SCALER_API_TOKENS);
  if (token === undefined || token === "") {
    throw new CliError(
      "set CONFSCALE_TOKEN to an operator token of the scaler's API (pulumi stack output scalerApiToken --show-secrets -s <env>)",
    );
  }
  return { url, token };
}

/** In the scaler's own container: its first operator or admin token (entries are name:role:token). */
function tokenFromScalerEnvironment(tokens: string | undefined): string | undefined {
  for (const entry of (tokens ?? "").split(",")) {
    const [, role, ...rest] = entry.trim().split(":");
    if ((role === "operator" || role === "admin") && rest.length > 0) return rest.join(":");
  }
  return undefined;
}

async function call<Schema extends z.ZodType>(
  target: Connection,
  method: "GET" | "POST" | "DELETE",
  path: string,
  schema: Schema,
  body?: unknown,
): Promise<z.infer<Schema>> {
  const url = new URL(`api/v1/${path}`, target.url.endsWith("/") ? target.url : `${target.url}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${target.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch (error) {
    const cause = error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
    throw new CliError(`cannot reach the scaler at ${target.url}: ${cause}`);
  }
  const answer: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const problem = errorBodySchema.safeParse(answer);
    throw new CliError(`the scaler answered ${response.status}: ${problem.success ? problem.data.message : response.statusText}`);
  }
  const parsed = schema.safeParse(answer);
  if (!parsed.success)
    throw new CliError(`unexpected answer from ${url.pathname}: ${parsed.error.issues[0]?.message ?? "invalid"} (is --url the scaler?)`);
  return parsed.data;
}

/** Columns padded to their widest cell. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function describeChanges(summary: Record<string, number>): string {
  const changes = Object.entries(summary).filter(([operation, count]) => operation !== "same" && count > 0);
  return changes.length === 0 ? "no changes" : changes.map(([operation, count]) => `${operation} ${count}`).join(", ");
}

const groupPolicySchema = z.looseObject({ policy: z.looseObject({ timeZone: z.string() }) });

/** The fleet's time zone (its policy's `timeZone`, in which its windows are read), so times read as the rest of the fleet's do. */
async function timeZoneOf(target: Connection, fleet: string): Promise<string> {
  const group = await call(target, "GET", `groups/${encodeURIComponent(fleet)}`, groupPolicySchema);
  return group.policy.timeZone;
}

/** `2026-11-23 08:05:00 Europe/Berlin`: a period's time as the fleet's operators read clocks. */
function localTime(iso: string, timeZone: string): string {
  const text = new Intl.DateTimeFormat("sv-SE", { timeZone, dateStyle: "short", timeStyle: "medium" }).format(new Date(iso));
  return `${text} ${timeZone}`;
}

/** A fleet's status as text, and the group whose policy's time zone its times are read in. */
async function describeStatus(target: Connection, status: AnyFleetStatus): Promise<string> {
  if ("component" in status)
    return formatJitsiStatus(status as JitsiFleetStatus, await timeZoneOf(target, (status as JitsiFleetStatus).group));
  return formatStatus(status, await timeZoneOf(target, status.fleet));
}

function formatJitsiStatus(status: JitsiFleetStatus, timeZone: string): string {
  const title = `fleet ${status.fleet} (Jitsi group ${status.group}, ${status.component})`;
  if (status.starting) return `${title}: starting (waiting for its lease or recovering an interrupted update)`;
  const lines = [
    `${title}: ${status.servers.length} machines`,
    table(
      ["MACHINE", "SIZE", "PHASE", "SIDECAR", "STRESS"],
      status.servers.map((server) => [
        server.name,
        `${server.cores} cores / ${server.ramGb} GB`,
        server.phase,
        server.sidecar?.state ?? "-",
        server.sidecar?.stress == null ? "-" : server.sidecar.stress.toFixed(2),
      ]),
    ),
  ];
  const period = status.lastPeriod;
  if (period !== null) {
    const update = period.update === null ? "" : `, update ${describeChanges(period.update.summary)}`;
    lines.push("", `last period ${localTime(period.at, timeZone)}: desired ${period.desired}, figure ${period.figure ?? "-"}${update}`);
    if (period.autoscale !== null) lines.push(`  autoscaler: ${period.autoscale.reason}`);
    for (const action of period.actions)
      lines.push(`  ${action.kind}${action.server === null ? "" : ` ${action.server}`}: ${action.reason}`);
  }
  if (status.sanity !== null) {
    const problems = [
      ...status.sanity.untracked.map((id) => `sidecar ${id} reports to the group but is no machine of it`),
      ...status.sanity.silent.map((name) => `machine ${name} never checked in`),
    ];
    lines.push(
      "",
      problems.length === 0 ? "sanity: machines and sidecars agree" : `sanity: ${problems.length} disagreements (nothing deleted)`,
    );
    for (const problem of problems) lines.push(`  ${problem}`);
  }
  return lines.join("\n");
}

function formatStatus(status: FleetStatus, timeZone: string, now: () => number = Date.now): string {
  if (status.starting) return `fleet ${status.fleet}: starting (waiting for its lease or recovering an interrupted update)`;
  const phases = new Map<string, number>();
  for (const server of status.servers) phases.set(server.phase, (phases.get(server.phase) ?? 0) + 1);
  const lines = [
    `fleet ${status.fleet}: ${status.servers.length} servers (${[...phases].map(([phase, count]) => `${count} ${phase}`).join(", ") || "none"})`,
    table(
      ["SERVER", "SIZE", "POWER", "PHASE"],
      status.servers.map((server) => [server.name, `${server.cores} cores / ${server.ramGb} GB`, server.power, server.phase]),
    ),
  ];
  // What the scaler last heard from each server: node-exporter through Prometheus, and its sidecar's check-in.
  const heard = status.servers.filter((server) => server.readings !== undefined || (server.lastCheckIn ?? null) !== null);
  if (heard.length > 0) {
    const share = (reading: { value: number | null; status: string } | undefined) =>
      reading === undefined || reading.value === null ? "-" : `${Math.round(reading.value * 100)} % (${reading.status})`;
    const ago = (iso: string | null | undefined) =>
      iso == null ? "never" : `${Math.max(0, Math.round((now() - Date.parse(iso)) / 1000))} s ago`;
    lines.push(
      "",
      table(
        ["SERVER", "CPU", "MEMORY", "CHECK-IN"],
        heard.map((server) => [server.name, share(server.readings?.cpu), share(server.readings?.memory), ago(server.lastCheckIn)]),
      ),
    );
  }
  const period = status.lastPeriod;
  if (period !== null) {
    lines.push(
      "",
      `last period ${localTime(period.at, timeZone)}: ${period.decisions.length} decision${period.decisions.length === 1 ? "" : "s"}${period.update === null ? "" : `, update ${describeChanges(period.update.summary)} in ${(period.update.durationMs / 1000).toFixed(1)} s`}`,
    );
    for (const decision of period.decisions)
      lines.push(
        `  ${decision.dryRun ? "(dry run) " : ""}${decision.kind}${decision.server === null ? "" : ` ${decision.server}`}: ${decision.reason}`,
      );
    for (const held of period.held) lines.push(`  ${held}`);
  }
  if (status.sanity !== null) {
    const { untracked, missing, danglingRegistrations } = status.sanity;
    const problems = [
      ...untracked.map((machine) => `untracked machine ${machine.name} (${machine.id})`),
      ...missing.map((name) => `missing server ${name}`),
      ...danglingRegistrations.map((registration) => `dangling Scalelite registration ${registration.id} (${registration.url})`),
    ];
    lines.push(
      "",
      problems.length === 0
        ? "sanity: fleet stack, cloud and Scalelite agree"
        : `sanity: ${problems.length} disagreements (nothing deleted)`,
    );
    for (const problem of problems) lines.push(`  ${problem}`);
  }
  return lines.join("\n");
}

function buildProgram(env: NodeJS.ProcessEnv, print: (text: string) => void, progress: (text: string) => void): Command {
  const program = new Command("confscale")
    .description("operate the fleets of a running confscale scaler through its API")
    .addOption(
      new Option("--url <url>", "the scaler's base URL, e.g. https://bbb.example.org/scaler")
        .env("CONFSCALE_URL")
        .default("http://127.0.0.1:8080"),
    )
    .option("--json", "print the scaler's answers as JSON")
    // One line for a misuse, as from any command of the repo; set before the subcommands, which inherit it.
    .configureOutput({
      outputError: (text, write) =>
        write(
          `confscale: ${text
            .replace(/^error: /, "")
            .trim()
            .replace(/\.$/, "")} (see confscale --help)\n`,
        ),
    })
    .exitOverride();
  const target = () => connection(program.opts<{ url: string }>().url, env);
  const json = () => program.opts<{ json?: boolean }>().json === true;
  const fleetOption = () => new Option("--fleet <name>", "the fleet").default(DEFAULT_FLEET);

  program
    .command("status")
    .description("servers with size, power and phase; the last period's decisions; the last sanity check")
    .argument("[fleet]", "one fleet (default: every fleet)")
    .action(async (fleet: string | undefined) => {
      const statuses =
        fleet === undefined
          ? (await call(target(), "GET", "fleets", z.looseObject({ fleets: z.array(anyFleetStatusSchema) }))).fleets
          : [await call(target(), "GET", `fleets/${encodeURIComponent(fleet)}`, anyFleetStatusSchema)];
      if (json()) return print(JSON.stringify(statuses, null, 2));
      const texts = await Promise.all(statuses.map((status) => describeStatus(target(), status)));
      print(texts.join("\n\n") || "this scaler drives no fleet");
    });

  const servers = program.command("servers").description("act on one server in Scalelite");
  for (const action of OPERATOR_ACTIONS) {
    const description = {
      cordon: "take no new meetings (running ones go on); the policy leaves the server alone until it is enabled",
      enable: "take meetings again and hand the server back to the policy",
      panic: "end every meeting on the server and take no new ones (needs --yes)",
    }[action];
    const command = servers
      .command(action)
      .description(description)
      .argument("<server>", "the server's name, e.g. bbb-3")
      .addOption(fleetOption());
    if (action === "panic") command.option("--yes", "confirm that the server's meetings are ended");
    command.action(async (server: string, options: { fleet: string; yes?: boolean }) => {
      if (action === "panic" && options.yes !== true) throw new CliError(`panic ends every meeting on ${server}: add --yes to confirm`);
      const result = await call(
        target(),
        "POST",
        `fleets/${encodeURIComponent(options.fleet)}/servers/${encodeURIComponent(server)}/${action}`,
        z.looseObject({ server: z.string(), phase: z.string() }),
      );
      print(
        json()
          ? JSON.stringify(result)
          : `${result.server}: ${action === "enable" ? "enabled" : action === "cordon" ? "cordoned" : "panicked"}, now ${result.phase}`,
      );
    });
  }

  const fleet = program.command("fleet").description("the fleet stack: what an update would change, or a period now");
  fleet
    .command("preview")
    .description("what the fleet stack's next update would change, without changing anything")
    .addOption(fleetOption())
    .action(async (options: { fleet: string }) => {
      progress(`previewing fleet ${options.fleet} (after the period in progress, if any)…`);
      const { changes } = await call(
        target(),
        "POST",
        `fleets/${encodeURIComponent(options.fleet)}/preview`,
        z.looseObject({ changes: z.record(z.string(), z.number()) }),
      );
      print(json() ? JSON.stringify(changes) : `fleet ${options.fleet}: ${describeChanges(changes)}`);
    });
  fleet
    .command("up")
    .description("run one gather → decide → act period now: the policy decides and the fleet stack is updated")
    .addOption(fleetOption())
    .action(async (options: { fleet: string }) => {
      progress(`running a period of fleet ${options.fleet} (an update can take minutes)…`);
      const status = await call(target(), "POST", `fleets/${encodeURIComponent(options.fleet)}/reconcile`, anyFleetStatusSchema);
      print(json() ? JSON.stringify(status, null, 2) : await describeStatus(target(), status));
    });
  addWindowCommands(program, { target, json, print, fleetOption });
  addScheduleCommands(program, { target, json, print, fleetOption });
  return program;
}

interface CommandContext {
  target: () => Connection;
  json: () => boolean;
  print: (text: string) => void;
  fleetOption: () => Option;
}

const datedWindowSchema = z.looseObject({ name: z.string(), from: z.string(), to: z.string(), min: z.number() });
const scheduleSchema = z.looseObject({
  name: z.string(),
  min: z.number(),
  durationMinutes: z.number().optional(),
  startsInMinutes: z.number().optional(),
  at: z.string().optional(),
  until: z.string().optional(),
});

function integer(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value)) throw new CliError(`expected a whole number, got ${text}`);
  return value;
}

/** `confscale windows`: dated one-off windows that raise the fleet's minimum between two instants. */
function addWindowCommands(program: Command, { target, json, print, fleetOption }: CommandContext): void {
  const windows = program.command("windows").description("dated one-off windows: at least N servers between two dates");
  const path = (fleet: string) => `fleets/${encodeURIComponent(fleet)}/windows`;
  windows
    .command("list")
    .description("the fleet's dated windows that have not ended")
    .addOption(fleetOption())
    .action(async (options: { fleet: string }) => {
      const { windows: list } = await call(target(), "GET", path(options.fleet), z.looseObject({ windows: z.array(datedWindowSchema) }));
      if (json()) return print(JSON.stringify(list, null, 2));
      print(
        list.length === 0
          ? `fleet ${options.fleet}: no dated windows`
          : table(
              ["NAME", "FROM", "TO", "MIN"],
              list.map((window) => [window.name, window.from, window.to, String(window.min)]),
            ),
      );
    });
  windows
    .command("add")
    .description("keep at least --min servers from --from to --to (ISO datetimes, e.g. 2026-12-07T10:30:00+01:00)")
    .argument("<name>", "the window's name; adding a name again replaces it")
    .requiredOption("--from <datetime>", "when it opens")
    .requiredOption("--to <datetime>", "when it closes")
    .requiredOption("--min <servers>", "the minimum of active servers while it is open")
    .addOption(fleetOption())
    .action(async (name: string, options: { from: string; to: string; min: string; fleet: string }) => {
      const window = await call(target(), "POST", path(options.fleet), datedWindowSchema, {
        name,
        from: options.from,
        to: options.to,
        min: integer(options.min),
      });
      print(json() ? JSON.stringify(window) : `window ${window.name}: at least ${window.min} servers from ${window.from} to ${window.to}`);
    });
  windows
    .command("remove")
    .description("remove a dated window")
    .argument("<name>", "the window's name")
    .addOption(fleetOption())
    .action(async (name: string, options: { fleet: string }) => {
      await call(target(), "DELETE", `${path(options.fleet)}/${encodeURIComponent(name)}`, z.unknown());
      print(json() ? JSON.stringify({ removed: name }) : `window ${name} removed`);
    });
}

/** `confscale schedules`: named policies applied by a secret capability URL (`POST /hooks/<token>`), e.g. from a timetable. */
function addScheduleCommands(program: Command, { target, json, print, fleetOption }: CommandContext): void {
  const schedules = program.command("schedules").description("named policies a secret hook URL applies, without an API token");
  const path = (fleet: string) => `fleets/${encodeURIComponent(fleet)}/schedules`;
  schedules
    .command("list")
    .description("the fleet's schedules (their hook URLs are shown only when created)")
    .addOption(fleetOption())
    .action(async (options: { fleet: string }) => {
      const { schedules: list } = await call(target(), "GET", path(options.fleet), z.looseObject({ schedules: z.array(scheduleSchema) }));
      if (json()) return print(JSON.stringify(list, null, 2));
      print(
        list.length === 0
          ? `fleet ${options.fleet}: no schedules`
          : table(
              ["NAME", "MIN", "WINDOW"],
              list.map((schedule) => [schedule.name, String(schedule.min), describeSchedule(schedule)]),
            ),
      );
    });
  schedules
    .command("create")
    .description(
      "create a schedule and print its hook URL once; a POST to it keeps --min servers for --minutes, or from --at until --until",
    )
    .argument("<name>", "the schedule's name; creating a name again replaces it and revokes its old URL")
    .requiredOption("--min <servers>", "the minimum of active servers while its window is open")
    .option("--minutes <minutes>", "how long the window stays open, from the hook's call")
    .option("--starts-in <minutes>", "how long after the hook's call the window opens (with --minutes)")
    .option("--at <HH:MM>", "the time of day the window opens, in the fleet's time zone (with --until)")
    .option("--until <HH:MM>", "the time of day the window closes, in the fleet's time zone")
    .addOption(fleetOption())
    .action(
      async (name: string, options: { min: string; minutes?: string; startsIn?: string; at?: string; until?: string; fleet: string }) => {
        // The scaler checks the combination and names the field; the CLI sends only what was given.
        const created = await call(
          target(),
          "POST",
          path(options.fleet),
          z.looseObject({ schedule: scheduleSchema, hookPath: z.string() }),
          {
            name,
            min: integer(options.min),
            ...(options.minutes === undefined ? {} : { durationMinutes: integer(options.minutes) }),
            ...(options.startsIn === undefined ? {} : { startsInMinutes: integer(options.startsIn) }),
            ...(options.at === undefined ? {} : { at: options.at }),
            ...(options.until === undefined ? {} : { until: options.until }),
          },
        );
        const base = target().url;
        const hookUrl = `${base.endsWith("/") ? base.slice(0, -1) : base}${created.hookPath}`;
        print(
          json()
            ? JSON.stringify({ ...created, hookUrl })
            : `schedule ${name}: ${describeSchedule(created.schedule)}\nhook URL (shown once, keep it secret): ${hookUrl}`,
        );
      },
    );
  schedules
    .command("delete")
    .description("delete a schedule and revoke its hook URL")
    .argument("<name>", "the schedule's name")
    .addOption(fleetOption())
    .action(async (name: string, options: { fleet: string }) => {
      await call(target(), "DELETE", `${path(options.fleet)}/${encodeURIComponent(name)}`, z.unknown());
      print(json() ? JSON.stringify({ deleted: name }) : `schedule ${name} deleted; its hook URL no longer works`);
    });
}

async function main(): Promise<void> {
  const program = buildProgram(
    process.env,
    (text) => process.stdout.write(`${text}\n`),
    (text) => process.stderr.write(`${text}\n`),
  );
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`confscale: ${error.message}\n`);
      process.exitCode = 1;
      return;
    }
    // commander has printed its own message (usage error, --help, --version); a misuse exits 2.
    if (error instanceof Error && "exitCode" in error && typeof error.exitCode === "number") {
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    throw error;
  }
}

await main();
