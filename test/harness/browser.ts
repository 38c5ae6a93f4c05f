import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { requireProgram } from "./process.js";

interface Pending {
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

/**
 * A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol on its own pipe
 * (`--remote-debugging-pipe`: messages as NUL-terminated JSON on file descriptors 3 and 4), so no WebSocket client
 * is needed. One page at a time: load a URL, read what a person sees, take a screenshot.
 */
export class HeadlessBrowser {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners: ((message: { method?: string; sessionId?: string }) => void)[] = [];
  private session: string | undefined;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    private readonly input: Writable,
    output: Readable,
  ) {
    let buffer = "";
    output.setEncoding("utf8");
    output.on("data", (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf("\0"); end >= 0; end = buffer.indexOf("\0")) {
        const message = JSON.parse(buffer.slice(0, end)) as {
          id?: number;
          result?: Record<string, unknown>;
          error?: { message: string };
          method?: string;
          sessionId?: string;
        };
        buffer = buffer.slice(end + 1);
        if (message.id !== undefined) {
          const waiting = this.pending.get(message.id);
          this.pending.delete(message.id);
          if (message.error !== undefined) waiting?.reject(new Error(`DevTools: ${message.error.message}`));
          else waiting?.resolve(message.result ?? {});
        } else for (const listener of [...this.listeners]) listener(message);
      }
    });
  }

  static async start(size = { width: 1280, height: 1000 }): Promise<HeadlessBrowser> {
    const binary = requireProgram("chromium", "chromium");
    const dir = await mkdtemp(join(tmpdir(), "confscale-chromium-"));
    const child = spawn(
      binary,
      [
        "--headless",
        // The tests run as root in a container, where Chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--remote-debugging-pipe",
        `--user-data-dir=${join(dir, "profile")}`,
        `--window-size=${size.width},${size.height}`,
        "about:blank",
      ],
      { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] },
    );
    const browser = new HeadlessBrowser(child, dir, child.stdio[3] as Writable, child.stdio[4] as Readable);
    const { targetId } = (await browser.send("Target.createTarget", { url: "about:blank" })) as { targetId: string };
    const { sessionId } = (await browser.send("Target.attachToTarget", { targetId, flatten: true })) as { sessionId: string };
    browser.session = sessionId;
    await browser.send("Page.enable", {}, sessionId);
    return browser;
  }

  private send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const result = new Promise<Record<string, unknown>>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.input.write(`${JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) })}\0`);
    return result;
  }

  private event(method: string): Promise<void> {
    return new Promise((resolve) => {
      const listener = (message: { method?: string; sessionId?: string }) => {
        if (message.method !== method || message.sessionId !== this.session) return;
        this.listeners.splice(this.listeners.indexOf(listener), 1);
        resolve();
      };
      this.listeners.push(listener);
    });
  }

  /** Loads `url` and resolves once its load event fired. */
  async open(url: string): Promise<void> {
    const loaded = this.event("Page.loadEventFired");
    const navigation = (await this.send("Page.navigate", { url }, this.session)) as { errorText?: string };
    if (navigation.errorText !== undefined) throw new Error(`chromium could not load ${url}: ${navigation.errorText}`);
    await loaded;
  }

  /** The page's text as rendered (`innerText`: what is visible, laid out in lines). */
  async visibleText(selector = "body"): Promise<string> {
    return this.evaluate<string>(`document.querySelector(${JSON.stringify(selector)})?.innerText ?? ""`);
  }

  async evaluate<T>(expression: string): Promise<T> {
    const { result, exceptionDetails } = (await this.send("Runtime.evaluate", { expression, returnByValue: true }, this.session)) as {
      result: { value: T };
      exceptionDetails?: { text: string };
    };
    if (exceptionDetails !== undefined) throw new Error(`in the page: ${exceptionDetails.text}`);
    return result.value;
  }

  /** A PNG of the whole page, as a person scrolling it would see it. */
  async screenshot(): Promise<Buffer> {
    const { data } = (await this.send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true }, this.session)) as {
      data: string;
    };
    return Buffer.from(data, "base64");
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, "exit");
      this.child.kill("SIGTERM");
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
