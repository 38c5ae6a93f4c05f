// A program host (scaler/actuator/programHost.ts): runs the fleet program of one stack at a time, as its parent asks
// over the IPC channel, and exits with its parent.
import { FleetStack, causeSummary, type FleetStackSettings } from "./fleetStack.js";
import type { ProgramReply, ProgramRequest } from "./programHost.js";

/** Stacks opened, by name, directory and backend: opening one costs engine commands, a run of an open one does not. */
const stacks = new Map<string, { stackName: string; stack: Promise<FleetStack> }>();
const aborts = new Map<number, AbortController>();

function stackOf(settings: FleetStackSettings): Promise<FleetStack> {
  const stackName = settings.stackName ?? `${settings.env}-fleet`;
  const key = JSON.stringify([stackName, settings.workDir, settings.backendUrl]);
  const known = stacks.get(key);
  if (known !== undefined) return known.stack;
  const stack = FleetStack.open(settings);
  stacks.set(key, { stackName, stack });
  // A stack that failed to open is opened afresh next time.
  stack.catch(() => stacks.delete(key));
  return stack;
}

function reply(message: ProgramReply): void {
  if (process.connected) process.send!(message);
}

async function run(request: Extract<ProgramRequest, { kind: "run" }>): Promise<void> {
  const { id } = request;
  const abort = new AbortController();
  aborts.set(id, abort);
  try {
    const stack = await stackOf(request.settings);
    const result =
      request.operation === "up"
        ? await stack.up(request.spec, (step) => reply({ kind: "step", id, step }), { ...request.options, signal: abort.signal })
        : await stack.preview(request.spec);
    reply({ kind: "done", id, result });
  } catch (error) {
    // The parent wraps it with the stack's name and the operation again.
    reply({ kind: "failed", id, message: causeSummary(error instanceof Error && error.cause !== undefined ? error.cause : error) });
  } finally {
    aborts.delete(id);
  }
}

process.on("message", (request: ProgramRequest) => {
  if (request.kind === "abort") aborts.get(request.id)?.abort();
  else if (request.kind === "forget") {
    for (const [key, entry] of stacks) if (entry.stackName === request.stackName) stacks.delete(key);
  } else void run(request);
});
// The parent is gone (it exited or was killed): nothing is left to report to.
process.on("disconnect", () => process.exit(0));
