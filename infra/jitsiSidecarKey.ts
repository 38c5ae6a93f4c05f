import * as pulumi from "@pulumi/pulumi";
import { JITSI_SIDECAR_KEY_BITS, newJitsiSidecarKeyPair, publicKeyFingerprint, type JitsiSidecarKeyPair } from "./workerCredentials.js";

interface SidecarKeyInputs {
  bits: number;
}
type SidecarKeyOutputs = SidecarKeyInputs & JitsiSidecarKeyPair;

/** Generates the pair once, on create; kept in the stack's state from then on, so every later `up` sees no change. */
const sidecarKeyProvider: pulumi.dynamic.ResourceProvider<SidecarKeyInputs, SidecarKeyOutputs> = {
  async create(inputs) {
    const pair = newJitsiSidecarKeyPair(inputs.bits);
    return { id: publicKeyFingerprint(pair.publicKeyPem), outs: { bits: inputs.bits, ...pair } };
  },
  async diff(_id, olds, news) {
    const replace = olds.bits !== news.bits;
    return { changes: replace, replaces: replace ? ["bits"] : [] };
  },
  async delete() {
    // Nothing outside the state: the key goes with the resource.
  },
};

/** One Jitsi worker's sidecar signing key (infra/workerCredentials.ts); its private half is a secret output. */
export class JitsiSidecarKey extends pulumi.dynamic.Resource {
  declare readonly privateKeyPem: pulumi.Output<string>;
  declare readonly publicKeyPem: pulumi.Output<string>;

  constructor(name: string, opts?: pulumi.CustomResourceOptions) {
    super(
      sidecarKeyProvider,
      name,
      { bits: JITSI_SIDECAR_KEY_BITS, privateKeyPem: undefined, publicKeyPem: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["privateKeyPem"] }),
      "confscale",
      "JitsiSidecarKey",
    );
  }
}
