import { z } from "zod";
import { serverSizeSchema } from "./clouds/types.js";

/**
 * Jitsi groups: each is a fleet of one Jitsi component (videobridges, recorders, ...) that joins an existing Jitsi Meet
 * deployment's signaling node and runs the unmodified jitsi-autoscaler-sidecar. The stack config's `jitsi` block is
 * validated here; the control node renders it into scaler.yaml, and the scaler runs one fleet per group.
 */

/** The Ubuntu release Jitsi workers install on: jitsi-videobridge2, jibri and Google Chrome all support it. */
export const JITSI_UBUNTU = "22.04";

/** The components confscale can install from Jitsi's Debian repository (any sidecar type may still check in). */
export const JITSI_COMPONENTS = ["JVB", "jibri"] as const;
export const jitsiComponentSchema = z.enum(JITSI_COMPONENTS);
export type JitsiComponent = z.infer<typeof jitsiComponentSchema>;

const xmppName = z
  .string()
  .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, "expected an XMPP domain or host name such as meet.example.org");
const xmppUser = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, "expected an XMPP user name: lowercase letters, digits, _ and -");
const cidr = z.string().regex(/^[0-9a-fA-F.:]+\/\d{1,3}$/, "expected a CIDR block such as 203.0.113.7/32");

/**
 * The existing Jitsi Meet deployment the workers join (prosody and jicofo run there, not on the control node). The
 * optional names default to what Jitsi's Debian packages set up (jitsi-meet-prosody, jitsi-videobridge2's postinst and
 * jibri's README): `jitsiSignalingDefaults` fills them.
 */
export const jitsiSignalingSchema = z.strictObject({
  /** The XMPP domain of the deployment, e.g. meet.example.org. */
  xmppDomain: xmppName,
  /** Where prosody listens for client connections (host or host:port; port 5222 when omitted). */
  xmppHost: z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, "expected host or host:port such as meet.example.org:5222"),
  /** Where the bridges and recorders log in (auth.<xmppDomain>). */
  authDomain: xmppName.optional(),
  /** The MUC domain of the breweries (internal.auth.<xmppDomain>). */
  internalMucDomain: xmppName.optional(),
  /** The domain of the conference rooms (conference.<xmppDomain>): jibri strips its first label from a room's JID. */
  mucDomain: xmppName.optional(),
  /** The hidden domain the recorder joins calls from (recorder.<xmppDomain>). */
  recorderDomain: xmppName.optional(),
  /** The MUC jicofo finds its bridges in (JvbBrewery) and its recorders in (JibriBrewery). */
  jvbBrewery: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .optional(),
  jibriBrewery: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .optional(),
  /** XMPP users of the bridges (jvb), the recorders' control login (jibri) and their call login (recorder). */
  jvbUser: xmppUser.optional(),
  jibriUser: xmppUser.optional(),
  recorderUser: xmppUser.optional(),
  /**
   * Trust any certificate prosody presents: its auth domain's certificate is self-signed in a quick-install deployment
   * (what Jitsi's own docker setup assumes too). Set false when prosody has a certificate the workers can verify.
   */
  trustAllXmppCerts: z.boolean().optional(),
  /**
   * Addresses of the signaling node(s), whose nginx proxies the bridges' colibri websockets (/colibri-ws/<bridge>/) to
   * each bridge's port 9090; without them that port stays closed (bridge channels then need another transport).
   */
  websocketProxyCidrs: z.array(cidr).min(1).optional(),
});
export type JitsiSignaling = z.infer<typeof jitsiSignalingSchema>;
export type ResolvedJitsiSignaling = Required<Omit<JitsiSignaling, "websocketProxyCidrs">> & {
  xmppHostName: string;
  xmppPort: number;
  websocketProxyCidrs: string[];
};

/** The signaling settings with every default filled in, as the worker templates use them. */
export function jitsiSignalingDefaults(signaling: JitsiSignaling): ResolvedJitsiSignaling {
  const [xmppHostName, port] = signaling.xmppHost.split(":") as [string, string | undefined];
  const authDomain = signaling.authDomain ?? `auth.${signaling.xmppDomain}`;
  return {
    ...signaling,
    xmppHostName,
    xmppPort: port === undefined ? 5222 : Number(port),
    authDomain,
    internalMucDomain: signaling.internalMucDomain ?? `internal.${authDomain}`,
    mucDomain: signaling.mucDomain ?? `conference.${signaling.xmppDomain}`,
    recorderDomain: signaling.recorderDomain ?? `recorder.${signaling.xmppDomain}`,
    jvbBrewery: signaling.jvbBrewery ?? "JvbBrewery",
    jibriBrewery: signaling.jibriBrewery ?? "JibriBrewery",
    jvbUser: signaling.jvbUser ?? "jvb",
    jibriUser: signaling.jibriUser ?? "jibri",
    recorderUser: signaling.recorderUser ?? "recorder",
    trustAllXmppCerts: signaling.trustAllXmppCerts ?? true,
    websocketProxyCidrs: signaling.websocketProxyCidrs ?? [],
  };
}

/** jitsi-autoscaler's scalingOptions, with its names: thresholds on the group's stress (JVB) or available count (jibri). */
export const jitsiScalingSchema = z.strictObject({
  minDesired: z.number().int().min(0),
  maxDesired: z.number().int().min(1),
  desiredCount: z.number().int().min(0),
  scaleUpQuantity: z.number().int().min(1).default(1),
  scaleDownQuantity: z.number().int().min(1).default(1),
  scaleUpThreshold: z.number().min(0),
  scaleDownThreshold: z.number().min(0),
  /** Seconds per evaluation period. */
  scalePeriod: z.number().int().min(10).default(60),
  scaleUpPeriodsCount: z.number().int().min(1).default(2),
  scaleDownPeriodsCount: z.number().int().min(1).default(4),
});
export type JitsiScaling = z.infer<typeof jitsiScalingSchema>;

/** One Jitsi group as the stack config names it. */
export const jitsiGroupConfigSchema = z.strictObject({
  /** The group name the sidecars report (free text in jitsi-autoscaler; here a stack and machine name part too). */
  name: z.string().regex(/^[a-z][a-z0-9-]{0,40}$/, "expected a lowercase name: letters, digits, -"),
  type: jitsiComponentSchema,
  size: serverSizeSchema,
  /** The machine image; defaults to the cloud's Ubuntu image. */
  image: z.string().min(1).optional(),
  scaling: jitsiScalingSchema,
  enableAutoScale: z.boolean().default(true),
  enableScheduler: z.boolean().default(false),
  /** Seconds an instance may take to finish its graceful shutdown before it is destroyed anyway. */
  gracefulShutdownSeconds: z.number().int().min(0).default(3600),
  /** Seconds the autoscaler leaves desired alone after any change of it (jitsi-autoscaler's gracePeriodTTLSec). */
  gracePeriodTTLSec: z.number().int().min(0).default(480),
});
export type JitsiGroupConfig = z.infer<typeof jitsiGroupConfigSchema>;

/**
 * jitsi-autoscaler's rules for a group's scaling options, each problem at its key: desired within [min, max], and the
 * thresholds the right way round: a bridge group scales up above its stress threshold and down below the lower one,
 * a recorder group scales up when fewer than scaleUpThreshold recorders are available and down when more than
 * scaleDownThreshold are.
 */
function checkScaling(group: { type: JitsiComponent; scaling: JitsiScaling }, index: number, ctx: z.RefinementCtx): void {
  const { minDesired, maxDesired, desiredCount, scaleUpThreshold, scaleDownThreshold } = group.scaling;
  const issue = (key: keyof JitsiScaling, message: string) =>
    ctx.addIssue({ code: "custom", path: ["groups", index, "scaling", key], message });
  if (minDesired > maxDesired) issue("minDesired", `minDesired (${minDesired}) must not exceed maxDesired (${maxDesired})`);
  if (desiredCount < minDesired || desiredCount > maxDesired)
    issue("desiredCount", `desiredCount (${desiredCount}) must lie within [minDesired, maxDesired] = [${minDesired}, ${maxDesired}]`);
  if (group.type === "JVB") {
    if (scaleDownThreshold >= scaleUpThreshold)
      issue(
        "scaleDownThreshold",
        `scaleDownThreshold (${scaleDownThreshold}) must be below scaleUpThreshold (${scaleUpThreshold}) for a JVB group`,
      );
  } else if (scaleDownThreshold <= scaleUpThreshold) {
    issue(
      "scaleDownThreshold",
      `scaleDownThreshold (${scaleDownThreshold}) must be above scaleUpThreshold (${scaleUpThreshold}) for a jibri group: both count available recorders`,
    );
  }
}

/** The stack config's `jitsi` block. */
export const jitsiConfigSchema = z
  .strictObject({
    signaling: jitsiSignalingSchema,
    groups: z.array(jitsiGroupConfigSchema).min(1),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.groups.forEach((group, index) => {
      checkScaling(group, index, ctx);
      if (seen.has(group.name))
        ctx.addIssue({ code: "custom", path: ["groups", index, "name"], message: `duplicate group name ${group.name}` });
      seen.add(group.name);
    });
  });

/** The fleet that runs a Jitsi group's machines (and the `<env>-jitsi-<group>` stack's name part). */
export function jitsiFleetName(group: string): string {
  return `jitsi-${group}`;
}

/**
 * The stack secrets of the existing deployment's XMPP accounts (`pulumi config set --secret confscale:<key>`), each
 * needed once the stack has a group of its component, and the scaler env variable it reaches the fleet program by.
 */
export const JITSI_SECRETS = {
  jitsiJvbPassword: { component: "JVB", env: "CONFSCALE_JITSI_JVB_PASSWORD", account: "the bridges' XMPP user (jvbUser)" },
  jitsiJibriPassword: { component: "jibri", env: "CONFSCALE_JITSI_JIBRI_PASSWORD", account: "the recorders' control login (jibriUser)" },
  jitsiRecorderPassword: {
    component: "jibri",
    env: "CONFSCALE_JITSI_RECORDER_PASSWORD",
    account: "the recorders' call login (recorderUser)",
  },
} as const satisfies Record<string, { component: JitsiComponent; env: string; account: string }>;
export type JitsiSecretKey = keyof typeof JITSI_SECRETS;
export const JITSI_SECRET_KEYS = Object.keys(JITSI_SECRETS) as JitsiSecretKey[];

/** What the fleet program needs to render a Jitsi worker: the passwords of its component's XMPP accounts. */
export type JitsiSecrets = Partial<Record<JitsiSecretKey, string>>;

/** The Jitsi secrets from the scaler's environment (its env file carries them under `JITSI_SECRETS[key].env`). */
export function jitsiSecretsFromEnv(env: Readonly<Record<string, string | undefined>>): JitsiSecrets {
  const secrets: JitsiSecrets = {};
  for (const key of JITSI_SECRET_KEYS) {
    const value = env[JITSI_SECRETS[key].env];
    if (value !== undefined && value !== "") secrets[key] = value;
  }
  return secrets;
}
export type JitsiConfig = z.infer<typeof jitsiConfigSchema>;

/** What a fleet's machines run: BigBlueButton workers (the default) or one Jitsi group's component. */
export const fleetWorkloadSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("bbb") }),
  z.strictObject({ kind: z.literal("jitsi"), group: z.string().min(1), component: jitsiComponentSchema, signaling: jitsiSignalingSchema }),
]);
export type FleetWorkload = z.infer<typeof fleetWorkloadSchema>;
