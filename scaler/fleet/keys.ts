/** Where a fleet's state lives in Redis; every key starts with the scaler's configured prefix. */
export function fleetKeys(prefix: string, fleet: string) {
  const base = `${prefix}fleet:${fleet}`;
  return {
    /** The lease: `<token> <owner>`, with a TTL its holder renews. */
    lock: `${base}:lock`,
    /** The fencing counter: every lease gets a larger token. */
    fence: `${base}:fence`,
    /** Servers, phases, holds and the update in flight (one JSON document). */
    state: `${base}:state`,
    /** The policy's own history: one entry per period, scored by its time, trimmed by age. */
    history: `${base}:history`,
  };
}
