/**
 * A fake OpenAI Chat Completions server for the fan-out benchmark. It speaks the real streaming wire
 * format (the frames come from api/test/fakes' openAIWire), but writes each content chunk's send time
 * into the chunk itself, `[t=<wall ms>]`, taken immediately before the write. A request whose prompt
 * contains GATE waits (after the response headers) until release() is called, so subscribers can be in
 * place before the stream starts.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { openAIWire, type ReplyContext } from '../../api/test/fakes/index.js';
import { wallNow } from './stats.js';

export const GATE = '[bench:gate]';
export const STAMP = /\[t=(\d+\.\d+)\]/g;

export interface StampedRequest {
  gated: boolean;
  receivedAt: number;
  chunksSent: number;
  /** Everything sent as content, in order (the expected run output). */
  text: string;
  /** How late each chunk went out versus its schedule (ms): the fake's own health. */
  maxLateMs: number;
  done: boolean;
}

export interface StampedOpenAI {
  url: string;
  requests: StampedRequest[];
  /** Resolves when a gated request has arrived and sent its headers. */
  gatedArrived(): Promise<StampedRequest>;
  release(): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startStampedOpenAI(opts: { apiKey: string; chunks: number; intervalMs: number; warmChunks?: number }): Promise<StampedOpenAI> {
  const requests: StampedRequest[] = [];
  let releaseGate!: () => void;
  const gate = new Promise<void>((r) => (releaseGate = r));
  let announceGated!: (r: StampedRequest) => void;
  const gatedArrived = new Promise<StampedRequest>((r) => (announceGated = r));
  let counter = 0;

  const server = createServer((req, res) => {
    void (async () => {
      const receivedAt = wallNow();
      const raw = await readBody(req);
      if (req.headers.authorization !== `Bearer ${opts.apiKey}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'bad key', type: 'invalid_request_error' } }));
        return;
      }
      const body = JSON.parse(raw) as { model: string; messages: { content: string }[]; stream_options?: unknown };
      const gated = body.messages.some((m) => m.content.includes(GATE));
      const record: StampedRequest = { gated, receivedAt, chunksSent: 0, text: '', maxLateMs: 0, done: false };
      requests.push(record);
      const chunks = gated ? opts.chunks : (opts.warmChunks ?? 5);
      const ctx: ReplyContext = {
        id: `chatcmpl-bench${(++counter).toString().padStart(6, '0')}`,
        model: body.model,
        created: Math.floor(Date.now() / 1000),
        text: '',
        usage: { inputTokens: 20, cachedInputTokens: 0, outputTokens: chunks, reasoningTokens: 0 },
        requestBody: body,
      };
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.flushHeaders();
      for (const f of openAIWire.streamStart(ctx)) res.write(f);
      if (gated) {
        announceGated(record);
        await gate;
      }
      const interval = gated ? opts.intervalMs : 1;
      const start = performance.now();
      for (let k = 0; k < chunks; k++) {
        const due = start + k * interval;
        const wait = due - performance.now();
        if (wait > 0) await delay(wait);
        if (res.destroyed) return;
        record.maxLateMs = Math.max(record.maxLateMs, performance.now() - due);
        const piece = `[t=${wallNow().toFixed(3)}] `;
        for (const f of openAIWire.streamDelta(ctx, piece)) res.write(f);
        record.text += piece;
        record.chunksSent++;
      }
      for (const f of openAIWire.streamEnd(ctx)) res.write(f);
      res.end();
      record.done = true;
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    gatedArrived: () => gatedArrived,
    release: () => releaseGate(),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
