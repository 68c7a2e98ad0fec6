import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase } from '../../../test/db.js';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import type { Database, SqlQuery } from '../../lib/db.js';
import { toGlobalId } from '../../lib/ids.js';

// Someone outside an organization who holds one of its agent ids must not learn, from startRun, that the
// agent exists: not from the answer, and not from the time it takes, i.e. from the work the server does.

const START = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename ... on Error { message code } } }`;

let app: TestServer;
let outsider: TestUser;
let project: TestProject;
/** The statements the server sent while `recording`: raw SQL by its text, Prisma calls by model and operation. */
let statements: string[] = [];
let recording = false;

beforeAll(async () => {
  const db = await getTestDatabase();
  const query: SqlQuery = (text, params) => {
    if (recording) statements.push(text.replace(/\s+/g, ' ').trim());
    return db.query(text, params);
  };
  const prisma = db.prisma.$extends({
    query: {
      $allOperations: ({ model, operation, args, query: run }) => {
        if (recording) statements.push(`${model ?? ''}.${operation}`);
        return run(args);
      },
    },
  });
  app = await startTestServer({ worker: false, runtime: { database: { ...db, query, prisma } as unknown as Database } });
  const org = await given(app).anOrganization();
  project = await given(app).aProject(org);
  outsider = (await given(app).anOrganization()).owner;
});
afterAll(async () => {
  await app?.close();
});

async function startAsOutsider(agentId: string, extra: Record<string, unknown> = {}) {
  statements = [];
  recording = true;
  try {
    const res = await outsider.gql(START, { input: { agentId, input: 'Summarise the plan', ...extra } });
    return { answer: res.data!.startRun, statements: [...statements] };
  } finally {
    recording = false;
  }
}

describe('startRun by someone outside the organization', () => {
  it("does the same work for another organization's agent as for an id that exists nowhere", async () => {
    const agent = await given(app).anOfflineAgent(project);
    // A member starts it first, as happens all day: whatever the server remembers about the agent then.
    const member = await given(app).aMemberOf(project.org, 'MEMBER');
    expect((await member.gql(START, { input: { agentId: agent.gid, input: 'go' } })).data!.startRun.__typename).toBe('StartRunPayload');

    // The outsider's token is verified, and remembered, before anything is compared.
    expect((await outsider.gql(`{ viewer { __typename } }`)).data!.viewer).toEqual({ __typename: 'Viewer' });
    for (const extra of [{}, { idempotencyKey: 'probe' }, { input: '' }]) {
      const theirs = await startAsOutsider(agent.gid, extra);
      const nowhere = await startAsOutsider(toGlobalId('Agent', randomUUID()), extra);
      expect(theirs.answer, JSON.stringify(extra)).toEqual({ __typename: 'NotFoundError', message: 'Agent not found', code: 'NOT_FOUND' });
      expect(nowhere.answer).toEqual(theirs.answer);
      expect(theirs.statements, JSON.stringify(extra)).toEqual(nowhere.statements);
    }
    expect(await app.rt.prisma.agentRun.count({ where: { createdById: outsider.id } })).toBe(0);
  });
});
