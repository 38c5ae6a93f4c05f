import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config.js";
import { parseEnvironmentConfig, type EnvironmentConfig } from "./config.js";

// The SDK tracks which config keys arrived encrypted but leaves `isConfigSecret` out of its typings.
const { isConfigSecret } = runtimeConfig as unknown as { isConfigSecret?: (key: string) => boolean };

/** The running stack's config, validated; throws `StackConfigError` listing every problem at once. */
export function loadEnvironmentConfig(): EnvironmentConfig {
  if (isConfigSecret === undefined) {
    throw new Error("@pulumi/pulumi no longer exports runtime isConfigSecret: secret config cannot be told from plaintext");
  }
  const raw = runtimeConfig.allConfig();
  const secretKeys = new Set(Object.keys(raw).filter((key) => isConfigSecret(key)));
  return parseEnvironmentConfig(pulumi.getStack(), raw, secretKeys);
}
