/**
 * What an operator can do to one server through the API or the CLI, and how it is refused: a module of its own, so the
 * CLI and the HTTP surface load neither the actuator nor the fleet program's cloud packages.
 */
export const OPERATOR_ACTIONS = ["cordon", "enable", "panic"] as const;
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number];

export class FleetServerNotFoundError extends Error {
  constructor(
    readonly fleet: string,
    readonly server: string,
  ) {
    super(`fleet ${fleet} has no server ${server}`);
    this.name = "FleetServerNotFoundError";
  }
}

/** An operator action the server's present phase does not allow; the message says what to do instead. */
export class ServerActionConflictError extends Error {
  constructor(
    readonly server: string,
    readonly action: OperatorAction,
    reason: string,
  ) {
    super(`cannot ${action} ${server}: ${reason}`);
    this.name = "ServerActionConflictError";
  }
}

/** The fleet is still waiting for its lease or recovering an interrupted update. */
export class FleetStartingError extends Error {
  constructor(readonly fleet: string) {
    super(`fleet ${fleet} is starting (waiting for its lease or recovering an interrupted update); retry shortly`);
    this.name = "FleetStartingError";
  }
}
