import { ionosFamilyProvider } from "../ionos/index.js";

/** The emulator's address when it runs as `npm run emulator -- --port 8780` (test/emulator/main.ts). */
export const EMULATOR_URL = "http://127.0.0.1:8780";

/**
 * The local emulated cloud (test/emulator): it speaks the IONOS Cloud and Cloud DNS APIs on loopback, so it is the
 * IONOS provider with the emulator's endpoints as defaults. Its machines have no SSH server: stacks on it set
 * `confscale:deployScaler: false`.
 */
export const emulatedProvider = ionosFamilyProvider({
  name: "emulated",
  title: "the local emulated cloud",
  defaultEndpoint: `${EMULATOR_URL}/cloudapi/v6`,
  defaultDnsEndpoint: `${EMULATOR_URL}/dns`,
  sshUser: "ubuntu",
});
