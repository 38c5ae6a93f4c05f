/**
 * One segment of a key: ids are percent-encoded (`encodeURIComponent`), so no id holds a `:` and none can name another
 * key (an instance `jvb-2:audit` would otherwise be the audit stream of `jvb-2`). Ids of letters, digits, `_ . -` are
 * unchanged by it.
 */
const segment = (id: string): string => encodeURIComponent(id);

/** Where each piece of state lives; every key starts with the configured prefix. */
export class Keys {
  constructor(private readonly prefix: string) {}
  groups = () => `${this.prefix}groups`;
  /** Groups sidecars report to that nobody configured (jitsi-autoscaler accepts them; an operator adopts them). */
  untrackedGroups = () => `${this.prefix}groups:untracked`;
  globalPause = () => `${this.prefix}paused`;
  /** Written by the readiness probe: a Redis that refuses writes is not ready. */
  writeProbe = () => `${this.prefix}ready-probe`;
  group = (group: string) => `${this.prefix}group:${segment(group)}`;
  live = (group: string) => `${this.group(group)}:live`;
  stress = (group: string) => `${this.group(group)}:stress`;
  groupAudit = (group: string) => `${this.group(group)}:audit`;
  instance = (group: string, instance: string) => `${this.group(group)}:instance:${segment(instance)}`;
  commands = (group: string, instance: string) => `${this.instance(group, instance)}:commands`;
  instanceAudit = (group: string, instance: string) => `${this.instance(group, instance)}:audit`;
  loadProfile = (group: string) => `${this.group(group)}:load-profile`;
  datedWindows = (group: string) => `${this.group(group)}:dated-windows`;
  schedules = (group: string) => `${this.group(group)}:schedules`;
  /** Capability tokens' digests → the schedule each applies (scaler/store/schedules.ts). */
  hooks = () => `${this.prefix}hooks`;
  /** Revoked sidecar key ids (scaler/api/asap.ts), and the channel their changes are announced on. */
  revokedSidecarKeys = () => `${this.prefix}sidecar-keys:revoked`;
  /** Jitsi workers' sidecar public keys by key id, published by their fleets from the fleet stack's outputs. */
  jitsiSidecarKeys = () => `${this.prefix}sidecar-keys:jitsi`;
}
