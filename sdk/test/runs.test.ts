import {
  ConflictError,
  createClient,
  NetworkError,
  RateLimitedError,
  startsOver,
  TooManyConnectionsError,
  UnauthorizedError,
  type Agent,
  type HubClient,
  type RunEvent,
  type RunLogEvent,
  type RunUpdate,
  type RunUsageEvent,
} from '@hub/sdk';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { blackHoleRelay, BOOT_TIMEOUT_MS, clientFor, given, socketCutter, startTestServer, WebSocket, type TestServer } from './support.js';

let app: TestServer;
let client: HubClient;
let projectId: string;
let small: Agent;
let large: Agent;
let ownerToken: string;
let org: Awaited<ReturnType<ReturnType<typeof given>['anOrganization']>>;
const apiRequire = createRequire(new URL('../../api/package.json', import.meta.url));

beforeAll(async () => {
  // A few milliseconds per token make a large run last about two seconds: long enough to cut it mid-stream
  // three times, reconnecting in between, on a machine busy with other tests (at 5 ms a run could end first).
  app = await startTestServer({ env: { OFFLINE_TOKEN_DELAY_MS: '10' } });
  org = await given(app).anOrganization();
  projectId = (await given(app).aProject(org)).gid;
  ownerToken = org.owner.token;
  client = clientFor(app, ownerToken);
  small = await client.agents.create({ projectId, name: 'Small', provider: 'OFFLINE', model: 'offline-small' });
  large = await client.agents.create({ projectId, name: 'Large', provider: 'OFFLINE', model: 'offline-large', maxOutputTokens: 2000 });
}, BOOT_TIMEOUT_MS);
afterAll(async () => {
  await client.close();
  await app.close();
});

const tokenText = (events: RunEvent[]) => events.map((e) => (e.type === 'TOKEN' ? e.text : '')).join('');
const seqs = (events: RunEvent[]) => events.map((e) => e.seq);
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('starting and streaming a run', () => {
  it('streams the tokens of an offline run through to SUCCEEDED', async () => {
    const run = await client.runs.start({ agentId: small.id, input: 'Summarise the plan' });
    expect(run).toMatchObject({ input: 'Summarise the plan', agent: { id: small.id } });
    expect(['QUEUED', 'RUNNING']).toContain(run.status);

    const events: RunEvent[] = [];
    for await (const event of client.runs.stream(run.id)) events.push(event);

    expect(seqs(events)).toEqual(oneTo(events.length));
    expect(events[0]).toMatchObject({ type: 'STATUS', status: 'QUEUED' });
    expect(events.at(-1)).toMatchObject({ type: 'STATUS', status: 'SUCCEEDED' });
    expect(events.filter((e) => e.type === 'TOKEN').length).toBeGreaterThan(1);
    const finished = await client.runs.get(run.id);
    expect(finished).toMatchObject({ status: 'SUCCEEDED', provider: 'OFFLINE', model: 'offline-small', costMicros: '0', lastSeq: events.length });
    expect(tokenText(events)).toBe(finished.output);
  });

  it('survives dropped sockets: resumes after the last seq, every event exactly once and in order', async () => {
    // What the client sends and yields, in order: each subscription's afterSeq, and each event's seq.
    const timeline: ({ subscribedAfter: number } | { yielded: number })[] = [];
    const Ws = WebSocket as new (url: string, protocols?: string | string[]) => { send(data: string): void };
    class Recording extends Ws {
      override send(data: string) {
        const message = JSON.parse(data) as { type: string; payload?: { variables?: { afterSeq?: number } } };
        if (message.type === 'subscribe') timeline.push({ subscribedAfter: message.payload!.variables!.afterSeq! });
        super.send(data);
      }
    }
    const recorded = createClient({ url: app.graphqlUrl, token: ownerToken, webSocketImpl: Recording });
    const cutter = socketCutter(app);
    const run = await client.runs.start({ agentId: large.id, input: 'Write a long plan with many steps' });
    const events: RunEvent[] = [];
    let cuts = 0;
    let nextCutAt = 3;
    for await (const event of recorded.runs.stream(run.id)) {
      timeline.push({ yielded: event.seq });
      events.push(event);
      // Cut the live connection three times while tokens are still flowing. Events the old socket had
      // already received still arrive after a cut, so wait until the replacement socket is up.
      if (event.type === 'TOKEN' && cuts < 3 && event.seq >= nextCutAt && cutter.open > 0) {
        cutter.cutAll();
        cuts++;
        nextCutAt = event.seq + 3;
      }
    }
    cutter.stop();
    await recorded.close();

    expect(cuts).toBe(3);
    // One new connection after each cut.
    expect(cutter.opened).toBeGreaterThanOrEqual(3);
    // Each new subscription asked for the events after the last one yielded, not for the whole log again.
    const subscriptions: { after: number; lastYielded: number }[] = [];
    let lastYielded = 0;
    for (const entry of timeline) {
      if ('yielded' in entry) lastYielded = entry.yielded;
      else subscriptions.push({ after: entry.subscribedAfter, lastYielded });
    }
    expect(subscriptions.length).toBeGreaterThanOrEqual(4);
    for (const { after, lastYielded } of subscriptions) expect(after).toBe(lastYielded);
    expect(seqs(events)).toEqual(oneTo(events.length));
    expect(events.at(-1)).toMatchObject({ type: 'STATUS', status: 'SUCCEEDED' });
    const finished = await client.runs.get(run.id);
    expect(finished.lastSeq).toBe(events.length);
    expect(tokenText(events)).toBe(finished.output);
  });

  it('outlasts a restart of the API with the default reconnect options: no connection for longer than its shutdown grace', { timeout: 60_000 }, async () => {
    const run = await client.runs.start({ agentId: large.id, input: 'A plan that outlives a deploy' });
    const cutter = socketCutter(app);
    const events: RunEvent[] = [];
    let down = 0;
    for await (const event of client.runs.stream(run.id)) {
      events.push(event);
      if (event.type === 'TOKEN' && !down) {
        // A restarting API refuses connections while its runs get SHUTDOWN_GRACE_MS (10 s by default) to
        // finish, and then while the new process boots.
        down = Date.now();
        cutter.cutEverything();
        setTimeout(() => cutter.stop(), 12_000);
      }
    }
    cutter.stop();

    expect(Date.now() - down).toBeGreaterThanOrEqual(12_000);
    expect(seqs(events)).toEqual(oneTo(events.length));
    expect(events.at(-1)).toMatchObject({ type: 'STATUS', status: 'SUCCEEDED' });
    expect(tokenText(events)).toBe((await client.runs.get(run.id)).output);
  });

  it('notices a connection that went silent, with no close to say so, and resumes on a new one', { timeout: 30_000 }, async () => {
    const relay = await blackHoleRelay(app);
    const viaRelay = createClient({ url: relay.graphqlUrl, token: ownerToken, webSocketImpl: WebSocket, keepAliveMs: 300 });
    const run = await client.runs.start({ agentId: large.id, input: 'A plan streamed over a flaky network' });
    const events: RunEvent[] = [];
    try {
      for await (const event of viaRelay.runs.stream(run.id)) {
        events.push(event);
        if (event.type === 'TOKEN' && events.filter((e) => e.type === 'TOKEN').length === 1) relay.blackHole();
      }
    } finally {
      await viaRelay.close();
      relay.close();
    }
    expect(seqs(events)).toEqual(oneTo(events.length));
    expect(events.at(-1)).toMatchObject({ type: 'STATUS', status: 'SUCCEEDED' });
    expect(tokenText(events)).toBe((await client.runs.get(run.id)).output);
  });

  it('resumes from a seq the caller saved, e.g. after a restart', async () => {
    const run = await client.runs.start({ agentId: large.id, input: 'Another long plan' });
    const before: RunEvent[] = [];
    for await (const event of client.runs.stream(run.id)) {
      before.push(event);
      if (event.type === 'TOKEN') break;
    }
    const after: RunEvent[] = [];
    for await (const event of client.runs.stream(run.id, { afterSeq: before.at(-1)!.seq })) after.push(event);

    const all = [...before, ...after];
    expect(seqs(all)).toEqual(oneTo(all.length));
    expect(tokenText(all)).toBe((await client.runs.get(run.id)).output);

    // Resuming after the final event of a finished run ends at once.
    const nothingLeft: RunEvent[] = [];
    for await (const event of client.runs.stream(run.id, { afterSeq: all.length })) nothingLeft.push(event);
    expect(nothingLeft).toEqual([]);
  });

  it('an afterSeq past the end of a running run ends the stream when the run ends, without an error', async () => {
    const run = await client.runs.start({ agentId: large.id, input: 'A plan resumed from a seq it never reaches' });
    const seen: RunEvent[] = [];
    // Quick reconnects, so that taking the API's end of the subscription for a lost connection fails fast.
    const options = { afterSeq: 1_000_000, reconnect: { attempts: 2, minDelayMs: 10, maxDelayMs: 10 }, signal: AbortSignal.timeout(20_000) };
    for await (const event of client.runs.stream(run.id, options)) seen.push(event);
    expect(seen).toEqual([]);
    expect((await client.runs.get(run.id)).status).toBe('SUCCEEDED');
  });

  it('breaking out of a stream closes its WebSocket and leaves nothing running: a program that does so exits without close()', async () => {
    // A run that stays RUNNING for the whole test (its claim's lease is far off, its worker elsewhere): the
    // API never ends its subscription, so only the stream's own cleanup closes the socket.
    const endless = async () => {
      const [agent, project] = [fromGlobalId(large.id, 'Agent'), fromGlobalId(projectId, 'Project')];
      const run = await app.rt.prisma.agentRun.create({
        data: {
          organizationId: org.id,
          projectId: project,
          agentId: agent,
          input: 'A run streamed by a reader who stops early',
          status: 'RUNNING',
          attempts: 1,
          lastSeq: 1,
          leaseOwner: 'a-worker-elsewhere',
          leaseExpiresAt: new Date(Date.now() + 3_600_000),
        },
      });
      await app.rt.prisma.runEvent.create({ data: { runId: run.id, seq: 1, type: 'TOKEN', payload: { text: 'Hello' } } });
      return toGlobalId('Run', run.id);
    };
    const sockets = socketCutter(app);
    try {
      for await (const event of client.runs.stream(await endless())) if (event.type === 'TOKEN') break;
      await expect.poll(() => sockets.open).toBe(0);
    } finally {
      sockets.stop();
    }

    // The same as a program of its own: Node exits once nothing (socket, ping or reconnect timer) is left.
    const program = `
      import { createClient } from '@hub/sdk';
      import WebSocket from '${pathToFileURL(apiRequire.resolve('ws')).href}';
      const client = createClient({ url: process.env.HUB_URL, token: process.env.HUB_TOKEN, webSocketImpl: WebSocket });
      for await (const event of client.runs.stream(process.env.RUN_ID)) if (event.type === 'TOKEN') break;
      console.log('broke out');
    `;
    const runId = await endless();
    const output = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--input-type=module', '-e', program],
        // Run from the package's folder, where `@hub/sdk` resolves to its own build; killed if it has not exited in 15 s.
        { cwd: fileURLToPath(new URL('..', import.meta.url)), env: { ...process.env, HUB_URL: app.graphqlUrl, HUB_TOKEN: ownerToken, RUN_ID: runId }, timeout: 15_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}${stderr}`)) : resolve(stdout)),
      ),
    );
    expect(output).toBe('broke out\n');
  });

  it('a negative afterSeq is the start of the log, as the API takes it, not a gap to reconnect over', async () => {
    const run = await client.runs.start({ agentId: small.id, input: 'From before the first event' });
    const done = await client.runs.wait(run.id);
    const events: RunEvent[] = [];
    for await (const event of client.runs.stream(run.id, { afterSeq: -1, reconnect: { attempts: 0 } })) events.push(event);
    expect(seqs(events)).toEqual(oneTo(done.lastSeq));
  });

  it('the same idempotencyKey returns the same run', async () => {
    const input = { agentId: small.id, input: 'only once', idempotencyKey: 'nightly-2026-11-24' };
    const [a, b] = await Promise.all([client.runs.start(input), client.runs.start(input)]);
    const c = await client.runs.start(input);
    expect(new Set([a.id, b.id, c.id]).size).toBe(1);
    // The key is the organization's: reused with another agent or input it is a conflict, and starts nothing.
    for (const other of [{ agentId: large.id }, { input: 'something else' }]) {
      const refused = await client.runs.start({ ...input, ...other }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ConflictError);
      expect(refused).toMatchObject({ field: 'idempotencyKey' });
    }
    const runs = await client.runs.list(projectId, { agentId: small.id }).toArray();
    expect(runs.filter((r) => r.input === 'only once')).toHaveLength(1);
  });

  it('wait() resolves with the finished run, also when it already finished', async () => {
    const run = await client.runs.start({ agentId: small.id, input: 'quick one' });
    const done = await client.runs.wait(run.id);
    expect(done).toMatchObject({ id: run.id, status: 'SUCCEEDED' });
    expect(done.output!.length).toBeGreaterThan(0);
    expect(await client.runs.wait(run.id)).toEqual(done);
  });

  it('cancels a running run, and retries it as a new run linked to the original', async () => {
    const run = await client.runs.start({ agentId: large.id, input: 'A very long plan' });
    const events = client.runs.stream(run.id);
    for await (const event of events) if (event.type === 'TOKEN') break;

    const cancelling = await client.runs.cancel(run.id);
    expect(['RUNNING', 'CANCELLED']).toContain(cancelling.status);
    const cancelled = await client.runs.wait(run.id);
    expect(cancelled).toMatchObject({ status: 'CANCELLED', viewerCanRetry: true, viewerCanCancel: false });

    const retried = await client.runs.retry(run.id);
    expect(retried.id).not.toBe(run.id);
    expect(retried).toMatchObject({ input: 'A very long plan', retryOf: { id: run.id, status: 'CANCELLED' }, retriedAs: null });
    expect((await client.runs.wait(retried.id)).status).toBe('SUCCEEDED');
    expect((await client.runs.get(run.id)).retriedAs).toEqual({ __typename: 'Run', id: retried.id, status: 'SUCCEEDED' });
  });

  it('startsOver() marks where a run taken over by another claim streams its output again from the start', async () => {
    const run = await client.runs.start({ agentId: large.id, input: 'A plan that outlives its worker' });
    const runId = fromGlobalId(run.id, 'Run');
    let output = '';
    let restarts = 0;
    let tookOver = false;
    for await (const event of client.runs.stream(run.id)) {
      if (startsOver(event)) {
        restarts++;
        output = '';
      }
      if (event.type === 'TOKEN') {
        output += event.text;
        // At its first token (the run streams for about half a second more), once: the worker goes silent
        // past its lease and the sweep queues the run again.
        if (restarts === 0 && !tookOver) {
          tookOver = true;
          await app.rt.prisma.agentRun.update({ where: { id: runId }, data: { leaseOwner: 'worker-gone', leaseExpiresAt: new Date(Date.now() - 1_000) } });
          await app.rt.orchestrator.recover();
        }
      }
    }
    const finished = await client.runs.get(run.id);
    expect(finished).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    expect(restarts).toBe(1);
    expect(output).toBe(finished.output);

    // The same story afterwards, from the stored events: only the types asked for.
    const story: RunEvent[] = [];
    for await (const event of client.runs.events(run.id, { types: ['STATUS'] })) story.push(event);
    expect(story.map((e) => e.status)).toEqual(['QUEUED', 'RUNNING', 'QUEUED', 'RUNNING', 'SUCCEEDED']);
    expect(story.filter(startsOver).map((e) => (e.payload as { attempt: number }).attempt)).toEqual([2]);
  });

  it('each event carries the fields its type declares (RunEvent narrowed by type)', async () => {
    // Every field of each payload the types declare, no more and no fewer (checked by `satisfies`).
    const usage = { provider: 1, model: 1, inputTokens: 1, cachedInputTokens: 1, outputTokens: 1, costMicros: 1, attempts: 1, estimated: 1 } satisfies Record<
      keyof RunUsageEvent['payload'],
      1
    >;
    type Log<K> = Extract<RunLogEvent['payload'], { kind: K }>;
    const attempt = { kind: 1, message: 1, provider: 1, model: 1, chainIndex: 1, attempt: 1, attemptForEntry: 1 } satisfies Record<keyof Log<'attempt'>, 1>;
    const skip = { kind: 1, message: 1, provider: 1, model: 1, chainIndex: 1, reason: 1, detail: 1 } satisfies Record<keyof Log<'skip'>, 1>;
    const fields = (o: object) => Object.keys(o).sort();

    // An unconfigured provider first: its skip is logged before the fallback's attempt.
    const unconfigured = (await client.providers.list().toArray()).find((p) => !p.configured && p.models.length > 0)!;
    const agent = await client.agents.create({
      projectId,
      name: 'Falls back',
      provider: unconfigured.id,
      model: unconfigured.models[0]!.id,
      fallbackChain: [{ provider: 'OFFLINE', model: 'offline-small' }],
    });
    const run = await client.runs.start({ agentId: agent.id, input: 'Which fields?' });
    const seen = new Set<string>();
    for await (const event of client.runs.stream(run.id)) {
      switch (event.type) {
        case 'TOKEN':
          expect(event.payload).toEqual({ text: event.text });
          seen.add('TOKEN');
          break;
        case 'STATUS':
          expect(event.payload.status).toBe(event.status);
          if (event.status === 'RUNNING') expect(event.payload.attempt).toBe(1);
          seen.add(event.status);
          break;
        case 'USAGE':
          expect(fields(event.payload)).toEqual(fields(usage));
          expect(event.payload).toMatchObject({ provider: 'OFFLINE', costMicros: '0', estimated: false });
          seen.add('USAGE');
          break;
        case 'LOG':
          expect(fields(event.payload)).toEqual(fields(event.payload.kind === 'skip' ? skip : attempt));
          if (event.payload.kind === 'skip') expect(event.payload).toMatchObject({ provider: unconfigured.id, reason: 'unconfigured', chainIndex: 0 });
          else expect(event.payload).toMatchObject({ provider: 'OFFLINE', attempt: 1, chainIndex: 1 });
          seen.add(`LOG ${event.payload.kind}`);
          break;
        default:
          expect.fail(`unexpected ${event.type} event: ${JSON.stringify(event.payload)}`);
      }
    }
    expect([...seen].sort()).toEqual(['LOG attempt', 'LOG skip', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'TOKEN', 'USAGE']);
  });

  it('events() reads every stored event of a long run, page after page, from any seq', async () => {
    const run = await client.runs.start({ agentId: small.id, input: 'Short, then padded' });
    await client.runs.wait(run.id);
    const runId = fromGlobalId(run.id, 'Run');
    // Pad the log past two pages of 500 (as a long run's tokens would).
    const { lastSeq } = await app.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: runId } });
    const extra = Array.from({ length: 1_100 }, (_, i) => ({ runId, seq: lastSeq + 1 + i, type: 'LOG' as const, payload: { n: i } }));
    await app.rt.prisma.runEvent.createMany({ data: extra });
    await app.rt.prisma.agentRun.update({ where: { id: runId }, data: { lastSeq: lastSeq + extra.length } });

    const all: RunEvent[] = [];
    for await (const event of client.runs.events(run.id)) all.push(event);
    expect(seqs(all)).toEqual(oneTo(lastSeq + extra.length));
    const logs: RunEvent[] = [];
    for await (const event of client.runs.events(run.id, { afterSeq: lastSeq + 400, types: ['LOG'] })) logs.push(event);
    expect(logs.map((e) => (e.payload as { n: number }).n)).toEqual(Array.from({ length: 700 }, (_, i) => 400 + i));
  });

  it('updates() reports every status change in a project until aborted', async () => {
    const controller = new AbortController();
    const updates: RunUpdate[] = [];
    const watching = (async () => {
      for await (const update of client.runs.updates(projectId, { signal: controller.signal })) {
        updates.push(update);
        if (update.status === 'SUCCEEDED') controller.abort();
      }
    })();
    // Let the subscription open before the run starts.
    await new Promise((r) => setTimeout(r, 300));
    const run = await client.runs.start({ agentId: small.id, input: 'watched' });
    await expect(watching).rejects.toMatchObject({ name: 'AbortError' });
    expect(updates.filter((u) => u.run?.id === run.id).map((u) => u.status)).toEqual(['QUEUED', 'RUNNING', 'SUCCEEDED']);
  });
});

describe('when reconnecting is not the answer', () => {
  it('stops a stream when its signal aborts', async () => {
    const run = await client.runs.start({ agentId: large.id, input: 'long again' });
    const controller = new AbortController();
    const seen: RunEvent[] = [];
    const consuming = (async () => {
      for await (const event of client.runs.stream(run.id, { signal: controller.signal })) {
        seen.push(event);
        if (event.type === 'TOKEN') controller.abort();
      }
    })();
    await expect(consuming).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen.at(-1)!.type).toBe('TOKEN');
    await client.runs.cancel(run.id);
  });

  it('close() ends a stream in progress, which then opens no new connection', async () => {
    const closing = clientFor(app, ownerToken);
    const run = await client.runs.start({ agentId: large.id, input: 'long, for a client that closes' });
    const sockets = socketCutter(app);
    const seen: RunEvent[] = [];
    const err = await (async () => {
      for await (const event of closing.runs.stream(run.id)) {
        seen.push(event);
        if (event.type === 'TOKEN') await closing.close();
      }
    })().catch((e: unknown) => e);
    sockets.stop();
    expect(err).toMatchObject({ code: 'CLIENT_CLOSED' });
    expect(seen.at(-1)!.type).toBe('TOKEN');
    expect(sockets.opened).toBe(1);
    await expect(closing.runs.stream(run.id).next()).rejects.toMatchObject({ code: 'CLIENT_CLOSED' });
    await client.runs.cancel(run.id);
  });

  it('waits out a rate limit met on reconnecting, as the API asks, and resumes', { timeout: 60_000 }, async () => {
    // A budget of two requests per user every 3 s: starting the run and subscribing spend it.
    const limited = await startTestServer({
      env: { OFFLINE_TOKEN_DELAY_MS: '5' },
      runtime: { rateLimits: { namespace: `stream-limit-${Date.now()}`, rules: { apiUser: { points: 2, duration: 3 } } } },
    });
    const someone = await given(limited).anOrganization();
    const agent = await given(limited).anOfflineAgent(await given(limited).aProject(someone), { maxOutputTokens: 2000 });
    const streaming = clientFor(limited, someone.owner.token);
    const sockets = socketCutter(limited);
    try {
      const run = await streaming.runs.start({ agentId: agent.gid, input: 'A plan for a busy client' });
      const events: RunEvent[] = [];
      for await (const event of streaming.runs.stream(run.id)) {
        events.push(event);
        if (event.type === 'TOKEN' && sockets.opened === 1) sockets.cutAll();
      }
      expect(sockets.opened).toBeGreaterThan(1);
      expect(seqs(events)).toEqual(oneTo(events.length));
      const stored = await limited.rt.prisma.agentRun.findUniqueOrThrow({ where: { id: fromGlobalId(run.id, 'Run') } });
      expect(stored).toMatchObject({ status: 'SUCCEEDED', lastSeq: events.length, output: tokenText(events) });
    } finally {
      sockets.stop();
      await streaming.close();
      await limited.close();
    }
  });

  it('a token revoked mid-stream ends it with an UnauthorizedError at once, without reconnecting', async () => {
    const member = await given(app).aMemberOf(org, 'MEMBER');
    const revoking = clientFor(app, member.token);
    const run = await client.runs.start({ agentId: large.id, input: 'A plan for a token about to be revoked' });
    const sockets = socketCutter(app);
    const seen: RunEvent[] = [];
    try {
      const err = await (async () => {
        for await (const event of revoking.runs.stream(run.id)) {
          seen.push(event);
          // The API closes the token's connections with 4401.
          if (seen.length === 1) await revoking.tokens.revoke((await revoking.tokens.list().toArray())[0]!.id);
        }
      })().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnauthorizedError);
      expect(err).toMatchObject({ code: 'UNAUTHENTICATED', message: 'API token revoked' });
      // The stream's own connection, and none after it.
      expect(sockets.opened).toBe(1);
      expect(seen.at(-1)).not.toMatchObject({ type: 'STATUS', status: 'SUCCEEDED' });
    } finally {
      sockets.stop();
      await revoking.close();
      await client.runs.cancel(run.id);
    }
  });

  it('gives up with a NetworkError after the configured number of failed reconnects', async () => {
    const run = await client.runs.start({ agentId: large.id, input: 'unreachable' });
    const cutter = socketCutter(app);
    const seen: RunEvent[] = [];
    const err = await (async () => {
      for await (const event of client.runs.stream(run.id, { reconnect: { attempts: 3, minDelayMs: 10, maxDelayMs: 40 } })) {
        seen.push(event);
        if (event.type === 'TOKEN') cutter.cutEverything();
      }
    })().catch((e: unknown) => e);
    cutter.stop();
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).message).toContain('3 reconnect attempts');
    // The first connection plus three attempts, none of which got an event through.
    expect(cutter.opened).toBe(4);
    await client.runs.cancel(run.id);
  });

  it('a socket refused for too many bad credentials from this address (4429) is a RateLimitedError with the API\'s own delay', { timeout: 60_000 }, async () => {
    const limited = await startTestServer({
      worker: false,
      runtime: { rateLimits: { namespace: `sdk-ws-${randomUUID()}`, rules: { apiAnonymous: { points: 3 } } } },
    });
    const guessing = clientFor(limited, 'hub_pat_guess');
    const attempt = async () => {
      for await (const event of guessing.runs.stream('UnVuOng=', { reconnect: { attempts: 0 } })) expect.fail(`got ${event.type}`);
    };
    try {
      for (let i = 0; i < 3; i++) await expect(attempt()).rejects.toBeInstanceOf(UnauthorizedError);
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RateLimitedError);
      expect(err).not.toBeInstanceOf(TooManyConnectionsError);
      const refused = err as RateLimitedError;
      expect(refused.message).toMatch(/^Too many requests; retry in \d+ s$/);
      // The delay the close gave, not the SDK's 5 s guess for a connection cap.
      expect(refused.retryAfterSeconds).toBe(Number(/retry in (\d+) s/.exec(refused.message)![1]));
      expect(refused.retryAfterSeconds).toBeGreaterThan(5);
    } finally {
      await guessing.close();
      await limited.close();
    }
  });

  it('a socket refused for one connection too many (4429) is a TooManyConnectionsError, waited out like a rate limit', { timeout: 60_000 }, async () => {
    const capped = await startTestServer({ worker: false, env: { WS_CONNECTIONS_PER_USER: '1' } });
    const someone = await given(capped).anOrganization();
    const project = await given(capped).aProject(someone);
    // Holds the user's one connection with a subscription; a call over the same socket shows the server counted it.
    const holder = clientFor(capped, someone.owner.token, 'websocket');
    const feed = new AbortController();
    const holding = holder.runs.updates(project.gid, { signal: feed.signal }).next();
    const streaming = clientFor(capped, someone.owner.token);
    let sockets: ReturnType<typeof socketCutter> | undefined;
    try {
      expect((await holder.viewer()).user.email).toBe(someone.owner.email);
      sockets = socketCutter(capped);
      const started = Date.now();
      const err = await (async () => {
        for await (const event of streaming.runs.stream('UnVuOng=', { reconnect: { attempts: 1, minDelayMs: 10, maxDelayMs: 10 } })) expect.fail(`got ${event.type}`);
      })().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TooManyConnectionsError);
      expect(err).toBeInstanceOf(RateLimitedError);
      const refused = err as TooManyConnectionsError;
      expect(refused).toMatchObject({ code: 'RATE_LIMITED', closeCode: 4429 });
      expect(refused.message).toBe('Too many open connections: at most 1 per user');
      // One retry, after the refusal's retryAfterSeconds, not after the 10 ms backoff.
      expect(sockets.opened).toBe(2);
      expect(Date.now() - started).toBeGreaterThanOrEqual(refused.retryAfterSeconds * 1000);
    } finally {
      sockets?.stop();
      feed.abort();
      await holding.catch(() => {});
      await holder.close();
      await streaming.close();
      await capped.close();
    }
  });
});
