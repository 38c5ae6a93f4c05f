import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { freeLoopbackPort } from "./ports.js";
import { startUntilReady, type ManagedProcess } from "./process.js";

/** Where `npm run setup` builds versitygw (scripts/setup.sh). */
const VERSITYGW = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "confscale", "tools", "bin", "versitygw");

/**
 * A real S3-compatible server on 127.0.0.1: Versity's S3 gateway (versitygw) serving a temporary directory with its
 * posix backend, one bucket made for the test. Its root credentials are random and go through the environment.
 */
export class S3Server {
  private constructor(
    private readonly process: ManagedProcess,
    private readonly root: string,
    readonly port: number,
    readonly bucket: string,
    /** The AWS variables a client (the Pulumi CLI) signs its requests with. */
    readonly env: Record<string, string>,
  ) {}

  static async start(bucket = "fleet-state"): Promise<S3Server> {
    if (!existsSync(VERSITYGW)) throw new Error(`versitygw is not installed at ${VERSITYGW}: run \`npm run setup\` (builds it with Go)`);
    const root = await mkdtemp(join(tmpdir(), "confscale-s3-"));
    // A bucket of the posix backend is a directory under its root.
    await mkdir(join(root, bucket));
    const port = await freeLoopbackPort();
    const accessKey = `confscale${randomBytes(6).toString("hex")}`;
    const secretKey = randomBytes(24).toString("base64url");
    const process = await startUntilReady(VERSITYGW, ["--port", `127.0.0.1:${port}`, "posix", root], /listening on/, {
      env: { PATH: globalThis.process.env.PATH ?? "", ROOT_ACCESS_KEY_ID: accessKey, ROOT_SECRET_ACCESS_KEY: secretKey },
    });
    return new S3Server(process, root, port, bucket, {
      AWS_ACCESS_KEY_ID: accessKey,
      AWS_SECRET_ACCESS_KEY: secretKey,
      AWS_REGION: "us-east-1",
    });
  }

  /** The Pulumi backend URL of the bucket, as README.md documents `confscale:fleetBackendUrl`. */
  get backendUrl(): string {
    return `s3://${this.bucket}?endpoint=127.0.0.1:${this.port}&disableSSL=true&s3ForcePathStyle=true&region=us-east-1`;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    await rm(this.root, { recursive: true, force: true });
  }
}
