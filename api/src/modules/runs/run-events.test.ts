import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { wsClient } from '../../../test/subscribe.js';

let app: TestServer;
let owner: TestUser;
let viewer: TestUser;
let outsider: TestUser;
let project: TestProject;

const START = `mutation($input: StartRunInput!) { startRun(input: $input) { ... on StartRunPayload { run { id } } ... on Error { message } } }`;
const EVENTS = `query($id: ID!) { run(id: $id) { status output events { seq type text status } } }`;

interface Outcome {
  events: Record<string, unknown>[];
  completed: boolean;
  errors?: { message: string; code?: unknown }[];
}

/** Subscribes with `query`; resolves with everything received once the subscription ends. */
function subscribe(client: Client, query: string, variables: Record<string, unknown>): Promise<Outcome> {
  const events: Record<string, unknown>[] = [];
  return new Promise((resolve) => {
    client.subscribe<Record<string, Record<string, unknown>>>(
      { query, variables },
      {
        next: (msg) => {
          if (msg.errors) resolve({ events, completed: false, errors: msg.errors.map((e) => ({ message: e.message, code: e.extensions?.code })) });
          // The root field's value, under whatever name (alias) the subscriber gave it.
          else events.push(...Object.values(msg.data!));
        },
        error: (err) =>
          resolve({
            events,
            completed: false,
            errors: Array.isArray(err) ? err.map((e: { message: string; extensions?: { code?: unknown } }) => ({ message: e.message, code: e.extensions?.code })) : [{ message: String(err) }],
          }),
        complete: () => resolve({ events, completed: true }),
      },
    );
  });
}

beforeAll(async () => {
  app = await startTestServer({ env: { OFFLINE_TOKEN_DELAY_MS: '10' } });
  const org = await given(app).anOrganization();
  owner = org.owner;
  viewer = await given(app).aMemberOf(org, 'VIEWER');
  outsider = (await given(app).anOrganization()).owner;
  project = await given(app).aProject(org);
});
afterAll(async () => {
  await app.close();
});

describe('runEvents: many subscribers on one run', () => {
  it('gives each subscriber every event once, in order, in the shape it asked for; an outsider is refused', async () => {
    const agent = await owner.gql(`mutation($input: CreateAgentInput!) { createAgent(input: $input) { ... on CreateAgentPayload { agent { id } } } }`, {
      input: { projectId: project.gid, name: 'Streamer', provider: 'OFFLINE', model: 'offline-large', maxOutputTokens: 400 },
    });
    const started = await owner.gql(START, { input: { agentId: agent.data!.createAgent.agent.id, input: 'Write a long plan with many steps' } });
    const runId = started.data!.startRun.run.id as string;
    const clients = [owner, owner, owner, viewer, viewer, outsider].map((u) => wsClient(app.wsUrl, u.token));
    try {
      const [full, again, noText, asViewer, aliased, refused] = await Promise.all([
        subscribe(clients[0]!, `subscription($runId: ID!) { runEvents(runId: $runId) { seq type text status } }`, { runId }),
        subscribe(clients[1]!, `subscription($runId: ID!) { runEvents(runId: $runId) { seq type text status } }`, { runId }),
        subscribe(clients[2]!, `subscription($runId: ID!, $withText: Boolean!) { runEvents(runId: $runId) { seq text @include(if: $withText) } }`, {
          runId,
          withText: false,
        }),
        subscribe(clients[3]!, `subscription($runId: ID!, $withText: Boolean!) { runEvents(runId: $runId) { seq text @include(if: $withText) } }`, {
          runId,
          withText: true,
        }),
        subscribe(clients[4]!, `subscription($runId: ID!) { e: runEvents(runId: $runId) { n: seq } }`, { runId }),
        subscribe(clients[5]!, `subscription($runId: ID!) { runEvents(runId: $runId) { seq type text status } }`, { runId }),
      ]);
      const stored = (await owner.gql(EVENTS, { id: runId })).data!.run;
      expect(stored.status).toBe('SUCCEEDED');
      expect(stored.events.length).toBeGreaterThan(10);
      const seqs = stored.events.map((e: { seq: number }) => e.seq);

      for (const o of [full, again, noText, asViewer]) {
        expect(o.completed).toBe(true);
        expect(o.events.map((e) => e.seq)).toEqual(seqs);
      }
      expect(full.events).toEqual(stored.events);
      expect(again.events).toEqual(stored.events);
      expect(noText.events).toEqual(seqs.map((seq: number) => ({ seq })));
      expect(asViewer.events).toEqual(stored.events.map((e: { seq: number; text: string | null }) => ({ seq: e.seq, text: e.text })));
      expect(asViewer.events.map((e) => e.text ?? '').join('')).toBe(stored.output);
      expect(aliased.completed).toBe(true);
      expect(aliased.events).toEqual(seqs.map((seq: number) => ({ n: seq })));
      expect(refused).toMatchObject({ completed: false, events: [], errors: [{ code: 'NOT_FOUND' }] });
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });
});
