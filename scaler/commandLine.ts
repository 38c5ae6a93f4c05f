import { parseArgs, type ParseArgsConfig } from "node:util";

/** The flags of a command, as node:util `parseArgs` takes them. */
export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** A command's usage error: one line for the person who typed it, exit status 2 as for any misused command. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface CommandLine<Flags extends FlagSpec> {
  /** The command as a person types it, e.g. `npm run emulator --`; starts every error line. */
  name: string;
  /** Printed by `--help` (and `-h`). */
  usage: string;
  flags: Flags;
  allowPositionals?: boolean;
}

/**
 * Parses `argv` strictly: `--help` prints the usage and exits 0; an unknown flag, a missing value or a stray
 * argument prints one line naming it and exits 2, never a stack trace. `check` may throw `UsageError` for values.
 */
export function parseCommandLine<Flags extends FlagSpec, Result>(
  command: CommandLine<Flags>,
  check: (parsed: ReturnType<typeof parseArgs<{ options: Flags; allowPositionals: boolean; strict: true }>>) => Result,
  argv: readonly string[] = process.argv.slice(2),
): Result {
  const flags = { ...command.flags, help: { type: "boolean", short: "h" } } as Flags;
  try {
    const parsed = parseArgs({ args: [...argv], options: flags, allowPositionals: command.allowPositionals ?? false, strict: true });
    if ((parsed.values as Record<string, unknown>).help === true) {
      process.stdout.write(`${command.usage.trimEnd()}\n`);
      process.exit(0);
    }
    return check(parsed);
  } catch (error) {
    if (!(error instanceof UsageError) && !isParseArgsError(error)) throw error;
    process.stderr.write(`${command.name}: ${oneLine(error.message)} (see --help)\n`);
    process.exit(2);
  }
}

/** node:util parseArgs reports misuse with these codes. */
function isParseArgsError(error: unknown): error is Error {
  return error instanceof Error && "code" in error && typeof error.code === "string" && error.code.startsWith("ERR_PARSE_ARGS_");
}

/** parseArgs appends advice ("To specify a positional argument starting with a '-'…"); the first sentence names the problem. */
function oneLine(message: string): string {
  return (message.split("\n")[0] ?? message).replace(/\. To specify .*$/, "").replace(/\.$/, "");
}
