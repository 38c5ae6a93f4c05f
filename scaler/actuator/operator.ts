/** What an operator can do to one server through the API or the CLI (a module of its own, light for the CLI). */
export const OPERATOR_ACTIONS = ["cordon", "enable", "panic"] as const;
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number];
