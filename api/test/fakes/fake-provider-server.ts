import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';

/** Token counts to report, in neutral terms; each wire format maps them to its own fields. */
export interface ScriptedUsage {
  /** Total prompt tokens, cached ones included. */
  inputTokens?: number;
  cachedInputTokens?: number;
  /** Total output tokens billed, reasoning tokens included. */
  outputTokens?: number;
  /** How many of `outputTokens` the model spent reasoning (not streamed as text). */
  reasoningTokens?: number;
}

export interface ReplyBehavior {
  kind: 'reply';
  /** Full assistant text; defaults to the server's deterministic default reply. */
  text?: string;
  /** Split the text into this many chunks (default: one chunk per word). */
  chunks?: number;
  /** Pause before each text chunk. */
  chunkDelayMs?: number;
  /** Pause before sending the status line and headers. */
  firstByteDelayMs?: number;
  /**
   * Pause after the headers, before the first event: a reasoning model at work (OpenAI's Chat Completions
   * stream sends nothing while it reasons).
   */
  firstEventDelayMs?: number;
  usage?: ScriptedUsage;
  /** Destroy the socket after this many text chunks (connection drop mid-stream). */
  dropAfterChunks?: number;
  /** Stop sending (but keep the connection open) after this many text chunks, until the client leaves. */
  stallAfterChunks?: number;
  /** Pause for `pauseMs` after this many text chunks, then go on (a stream that stalls for a while). */
  pauseAfterChunks?: number;
  pauseMs?: number;
  /**
   * While it waits once the headers are out (firstEventDelayMs, pauseMs), send the provider's keep-alive this
   * often: Anthropic's `ping` event (which its SDK drops), an SSE comment in the OpenAI format.
   */
  pingEveryMs?: number;
  /** Send the provider's in-stream error event after this many text chunks, then end. */
  errorAfterChunks?: number;
  /** End the response cleanly after the text, without the closing events (usage, [DONE] / message_stop). */
  omitTerminalEvents?: boolean;
  /** Send the closing events but the very last ([DONE] / message_stop), then cut the connection. */
  dropBeforeLastEvent?: boolean;
  /** Send no usage report although asked for one, as some OpenAI-compatible servers do (OpenAI format). */
  omitUsage?: boolean;
  /** Send this usage object as it is in place of the provider's own report (OpenAI format): a compatible server's odd one. */
  rawUsage?: Record<string, unknown>;
  headers?: Record<string, string>;
}

export interface ErrorBehavior {
  kind: 'error';
  status: number;
  /** Provider message; defaults to the provider's real message for that status. */
  message?: string;
  /** Provider error type/code; defaults per status. */
  type?: string;
  /** `retry-after` header value: seconds (number) or any string (e.g. an HTTP date). */
  retryAfter?: number | string;
  /** `retry-after-ms` header (OpenAI). */
  retryAfterMs?: number;
  headers?: Record<string, string>;
  /** Replace the whole JSON body. */
  body?: unknown;
}

/** Read the request and never answer until the client disconnects. */
export interface HangBehavior {
  kind: 'hang';
}

/** Destroy the socket without sending anything. */
export interface DestroyBehavior {
  kind: 'destroy';
}

export type FakeBehavior = ReplyBehavior | ErrorBehavior | HangBehavior | DestroyBehavior;

export interface RecordedRequest {
  index: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body, or the raw text when it isn't JSON. */
  body: any;
  behavior: FakeBehavior['kind'] | 'auth_failed' | 'not_found' | 'models';
  stream: boolean;
  /** performance.now() timestamps (ms). */
  receivedAt: number;
  firstByteAt: number | null;
  firstChunkAt: number | null;
  closedAt: number | null;
  /** Time from the request's arrival to the first response byte (status line + headers). */
  ttfbMs: number | null;
  chunksSent: number;
  /** Keep-alives sent (see ReplyBehavior.pingEveryMs). */
  pingsSent: number;
  /** True when the client went away before the response was complete. */
  disconnectedByClient: boolean;
  completed: boolean;
}

/** Everything a wire format needs to render one completed reply. */
export interface ReplyContext {
  id: string;
  model: string;
  created: number;
  text: string;
  usage: Required<ScriptedUsage>;
  requestBody: any;
  /** The scripted reply sends no usage report (see ReplyBehavior.omitUsage). */
  omitUsage?: boolean;
  /** See ReplyBehavior.rawUsage. */
  rawUsage?: Record<string, unknown>;
}

export interface WireFormat {
  name: string;
  /** Which route a request hits. */
  route(method: string, path: string): 'completion' | 'models' | undefined;
  authorized(headers: IncomingHttpHeaders, apiKey: string): boolean;
  isStreaming(body: any): boolean;
  model(body: any): string;
  /** Rough prompt size for the default usage report. */
  promptText(body: any): string;
  errorStatusDefaults(status: number, body: any, headers: IncomingHttpHeaders): { type: string; message: string };
  errorBody(status: number, type: string, message: string): unknown;
  responseHeaders(): Record<string, string>;
  json(ctx: ReplyContext): unknown;
  models(): unknown;
  /** SSE frames: before the text, per text chunk, after the text, and an in-stream error. */
  streamStart(ctx: ReplyContext): string[];
  streamDelta(ctx: ReplyContext, piece: string): string[];
  streamEnd(ctx: ReplyContext): string[];
  streamError(ctx: ReplyContext): string[];
  /** A keep-alive frame, sent while the model is at work. */
  streamPing(): string;
  idPrefix: string;
}

export interface FakeServerOptions {
  /** When set, requests carrying another key get the provider's real 401. */
  apiKey?: string;
  /** Used when the queue is empty (default: a plain reply). */
  defaultBehavior?: FakeBehavior;
  /**
   * Dynamic behaviour, consulted before the queue with the incoming request's record (body, headers,
   * index); return undefined to fall through to the queue / default.
   */
  respond?: (req: RecordedRequest) => FakeBehavior | undefined;
  /** Default reply text for `reply` behaviours without `text`. */
  defaultText?: (body: any) => string;
}

export function sseFrame(data: unknown, event?: string): string {
  const payload = typeof data === 'string' ? data : JSON.stringify(data);
  return `${event ? `event: ${event}\n` : ''}data: ${payload}\n\n`;
}

/** Split text into `n` non-empty, nearly equal parts (or per word when n is undefined). */
export function splitText(text: string, n?: number): string[] {
  if (text.length === 0) return [];
  if (n === undefined) return text.match(/\s*\S+\s*/g) ?? [text];
  const parts: string[] = [];
  const count = Math.max(1, Math.min(n, text.length));
  const size = text.length / count;
  for (let i = 0; i < count; i++) parts.push(text.slice(Math.round(i * size), Math.round((i + 1) * size)));
  return parts.filter((p) => p.length > 0);
}

/**
 * A scriptable fake of a provider's HTTP API on 127.0.0.1 (random port). Each request takes the
 * next queued behaviour (or the default), and is recorded with its headers, body and timings.
 */
export class FakeProviderServer {
  readonly requests: RecordedRequest[] = [];
  private queue: FakeBehavior[] = [];
  private defaultBehavior: FakeBehavior;
  private readonly waiters = new Set<() => void>();
  private idCounter = 0;

  private constructor(
    private readonly server: Server,
    private readonly wire: WireFormat,
    private readonly opts: FakeServerOptions,
    /** http://127.0.0.1:PORT */
    readonly origin: string,
    /** The value to use as the SDK's base URL. */
    readonly url: string,
  ) {
    this.defaultBehavior = opts.defaultBehavior ?? { kind: 'reply' };
  }

  static async start(wire: WireFormat, opts: FakeServerOptions, basePath: string): Promise<FakeProviderServer> {
    let instance: FakeProviderServer | undefined;
    const server = createServer((req, res) => {
      void instance?.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(err));
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const origin = `http://127.0.0.1:${port}`;
    instance = new FakeProviderServer(server, wire, opts, origin, `${origin}${basePath}`);
    return instance;
  }

  /** Queue behaviours for the next requests, in order. */
  enqueue(...behaviors: FakeBehavior[]): this {
    this.queue.push(...behaviors);
    return this;
  }

  setDefault(behavior: FakeBehavior): this {
    this.defaultBehavior = behavior;
    return this;
  }

  /** Forget queued behaviours and recorded requests. */
  reset(): this {
    this.queue = [];
    this.requests.length = 0;
    return this;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Resolves once `predicate` holds (re-checked on every request event), or rejects after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.wire.name} fake: condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  waitForRequests(count: number, timeoutMs?: number): Promise<void> {
    return this.waitFor(() => this.requests.length >= count, timeoutMs);
  }

  /** Resolves with the record once that request's connection has closed (completed or disconnected). */
  async whenClosed(index: number, timeoutMs?: number): Promise<RecordedRequest> {
    await this.waitFor(() => this.requests[index]?.closedAt != null, timeoutMs);
    return this.requests[index]!;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    const raw = await readBody(req);
    let body: any = raw;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      // keep the raw text
    }
    const path = new URL(req.url ?? '/', this.origin).pathname;
    const route = this.wire.route(req.method ?? 'GET', path);
    const record: RecordedRequest = {
      index: this.requests.length,
      method: req.method ?? 'GET',
      path,
      headers: req.headers,
      body,
      behavior: 'not_found',
      stream: route === 'completion' ? this.wire.isStreaming(body) : false,
      receivedAt,
      firstByteAt: null,
      firstChunkAt: null,
      closedAt: null,
      ttfbMs: null,
      chunksSent: 0,
      pingsSent: 0,
      disconnectedByClient: false,
      completed: false,
    };
    this.requests.push(record);
    let dropped = false;
    res.on('close', () => {
      record.closedAt = performance.now();
      record.completed = res.writableFinished;
      if (!res.writableFinished) record.disconnectedByClient = record.behavior !== 'destroy' && !dropped;
      this.notify();
    });
    const markFirstByte = () => {
      if (record.firstByteAt === null) {
        record.firstByteAt = performance.now();
        record.ttfbMs = record.firstByteAt - record.receivedAt;
      }
    };
    const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      markFirstByte();
      res.writeHead(status, { 'content-type': 'application/json', ...this.wire.responseHeaders(), ...headers });
      res.end(JSON.stringify(json));
    };
    this.notify();

    if (route === undefined) {
      const defaults = this.wire.errorStatusDefaults(404, body, req.headers);
      send(404, this.wire.errorBody(404, defaults.type, `Unknown route ${record.method} ${path}`));
      return;
    }
    if (this.opts.apiKey !== undefined && !this.wire.authorized(req.headers, this.opts.apiKey)) {
      record.behavior = 'auth_failed';
      const defaults = this.wire.errorStatusDefaults(401, body, req.headers);
      send(401, this.wire.errorBody(401, defaults.type, defaults.message));
      return;
    }
    if (route === 'models') {
      record.behavior = 'models';
      send(200, this.wire.models());
      return;
    }

    const behavior = this.opts.respond?.(record) ?? this.queue.shift() ?? this.defaultBehavior;
    record.behavior = behavior.kind;
    const closed = () => res.destroyed || res.writableEnded;

    switch (behavior.kind) {
      case 'hang':
        return; // the 'close' listener records the client leaving
      case 'destroy':
        req.socket.destroy();
        return;
      case 'error': {
        const defaults = this.wire.errorStatusDefaults(behavior.status, body, req.headers);
        const headers: Record<string, string> = { ...behavior.headers };
        if (behavior.retryAfter !== undefined) headers['retry-after'] = String(behavior.retryAfter);
        if (behavior.retryAfterMs !== undefined) headers['retry-after-ms'] = String(behavior.retryAfterMs);
        const errorBody =
          behavior.body ??
          this.wire.errorBody(behavior.status, behavior.type ?? defaults.type, behavior.message ?? defaults.message);
        send(behavior.status, errorBody, headers);
        return;
      }
      case 'reply':
        break;
    }

    const model = this.wire.model(body);
    const text = behavior.text ?? this.opts.defaultText?.(body) ?? `Hello from the fake ${this.wire.name} server.`;
    const pieces = splitText(text, behavior.chunks);
    const ctx: ReplyContext = {
      id: `${this.wire.idPrefix}${(++this.idCounter).toString().padStart(6, '0')}`,
      model,
      created: 1_700_000_000 + this.idCounter,
      text,
      usage: {
        inputTokens: behavior.usage?.inputTokens ?? Math.ceil(this.wire.promptText(body).length / 4),
        cachedInputTokens: behavior.usage?.cachedInputTokens ?? 0,
        outputTokens: behavior.usage?.outputTokens ?? Math.max(1, pieces.length),
        reasoningTokens: behavior.usage?.reasoningTokens ?? 0,
      },
      requestBody: body,
      omitUsage: behavior.omitUsage,
      rawUsage: behavior.rawUsage,
    };

    if (behavior.firstByteDelayMs) await delay(behavior.firstByteDelayMs);
    if (closed()) return;

    if (!record.stream) {
      send(200, this.wire.json(ctx), behavior.headers);
      return;
    }

    markFirstByte();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      ...this.wire.responseHeaders(),
      ...behavior.headers,
    });
    res.flushHeaders();
    const write = (frames: string[]) => {
      for (const frame of frames) if (!closed()) res.write(frame);
    };
    /** A wait with the model at work: silence, or keep-alives every pingEveryMs. */
    const wait = async (ms: number) => {
      const every = behavior.pingEveryMs;
      if (!every) return delay(ms);
      for (let left = ms; left > 0 && !closed(); ) {
        await delay(Math.min(every, left));
        left -= every;
        if (left > 0 && !closed()) {
          write([this.wire.streamPing()]);
          record.pingsSent++;
        }
      }
    };
    if (behavior.firstEventDelayMs) await wait(behavior.firstEventDelayMs);
    if (closed()) return;
    write(this.wire.streamStart(ctx));

    for (const piece of pieces) {
      if (behavior.dropAfterChunks !== undefined && record.chunksSent >= behavior.dropAfterChunks) {
        dropped = true;
        await dropConnection(res);
        return;
      }
      if (behavior.stallAfterChunks !== undefined && record.chunksSent >= behavior.stallAfterChunks) return;
      if (behavior.errorAfterChunks !== undefined && record.chunksSent >= behavior.errorAfterChunks) {
        write(this.wire.streamError(ctx));
        res.end();
        return;
      }
      if (behavior.pauseAfterChunks === record.chunksSent && behavior.pauseMs) await wait(behavior.pauseMs);
      if (behavior.chunkDelayMs) await delay(behavior.chunkDelayMs);
      if (closed()) return;
      write(this.wire.streamDelta(ctx, piece));
      record.chunksSent++;
      record.firstChunkAt ??= performance.now();
      this.notify();
    }
    if (behavior.dropAfterChunks !== undefined && record.chunksSent >= behavior.dropAfterChunks) {
      dropped = true;
      await dropConnection(res);
      return;
    }
    if (behavior.stallAfterChunks !== undefined) return;
    if (behavior.errorAfterChunks !== undefined) {
      write(this.wire.streamError(ctx));
      res.end();
      return;
    }
    if (behavior.dropBeforeLastEvent) {
      write(this.wire.streamEnd(ctx).slice(0, -1));
      dropped = true;
      await dropConnection(res);
      return;
    }
    if (!behavior.omitTerminalEvents) write(this.wire.streamEnd(ctx));
    res.end();
  }
}

/** Let what was already written reach the client, then cut the socket mid-response. */
async function dropConnection(res: ServerResponse): Promise<void> {
  if (!res.destroyed) await new Promise<void>((resolve) => res.write('', () => resolve()));
  await delay(5);
  res.socket?.destroy();
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  return auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
}
