import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeLoopbackPort } from "./ports.js";
import { requireProgram, startUntilReady, type ManagedProcess } from "./process.js";

/** A real redis-server on a free loopback port, private to one test file. */
export class RedisServer {
  private process: ManagedProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<RedisServer> {
    const dir = await mkdtemp(join(tmpdir(), "confscale-redis-"));
    const server = new RedisServer(await freeLoopbackPort(), dir);
    await server.resume();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server again on the same port after `pause()` (an outage a client must survive). */
  async resume(): Promise<void> {
    const binary = requireProgram("redis-server", "redis-server");
    this.process = await startUntilReady(
      binary,
      [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
      ],
      /Ready to accept connections/,
    );
  }

  /** Stops the server but keeps its port and directory for `resume()`. */
  async pause(): Promise<void> {
    await this.process?.stop();
    this.process = undefined;
  }

  async stop(): Promise<void> {
    await this.pause();
    await rm(this.dir, { recursive: true, force: true });
  }
}
