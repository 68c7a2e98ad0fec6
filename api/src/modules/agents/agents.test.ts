import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTestDatabase, usingPostgres } from '../../../test/db.js';
import { given, type TestProject, type TestUser } from '../../../test/factories.js';
import { startTestServer, type TestServer } from '../../../test/harness.js';
import { fromGlobalId } from '../../lib/ids.js';

// The first file on a test worker boots the shared database: slow on a busy machine, so allow it time.
const BOOT_TIMEOUT = 180_000;
let app: TestServer;
let project: TestProject;
let owner: TestUser;

beforeAll(async () => {
  app = await startTestServer({ worker: false });
  const org = await given(app).anOrganization();
  owner = org.owner;
  project = await given(app).aProject(org);
}, BOOT_TIMEOUT);
afterAll(() => app?.close());

const ISSUES = `... on ValidationError { issues { path message } } ... on Error { message }`;
const CREATE = `mutation($input: CreateAgentInput!) { createAgent(input: $input) {
  __typename ... on CreateAgentPayload { agent { id } } ${ISSUES} } }`;
const UPDATE = `mutation($input: UpdateAgentInput!) { updateAgent(input: $input) {
  __typename ... on UpdateAgentPayload { agent { id model temperature maxOutputTokens } } ${ISSUES} } }`;

type Issue = { path: string[]; message: string };

const issuesOf = (res: { data?: Record<string, any> }, field: 'createAgent' | 'updateAgent' | 'startRun'): Issue[] => {
  expect(res.data![field].__typename).toBe('ValidationError');
  return res.data![field].issues;
};

async function anAgent(name = 'Planner') {
  const res = await owner.gql(CREATE, {
    input: { projectId: project.gid, name, provider: 'OFFLINE', model: 'offline-small', systemPrompt: 'Be brief.', maxOutputTokens: 1024 },
  });
  expect(res.data!.createAgent.__typename).toBe('CreateAgentPayload');
  return res.data!.createAgent.agent.id as string;
}

describe('editing an agent', () => {
  it('audits agent.updated with each changed setting, before and after, and the system prompt only as changed', async () => {
    const id = await anAgent();
    const before = await app.rt.prisma.auditLog.count({ where: { action: 'agent.updated' } });
    const res = await owner.gql(UPDATE, {
      input: {
        id,
        model: 'offline-large',
        temperature: 0.7,
        maxOutputTokens: 2048,
        systemPrompt: 'A secret playbook nobody should read in the log.',
        fallbackChain: [{ provider: 'OFFLINE', model: 'offline-small' }],
      },
    });
    expect(res.data!.updateAgent).toEqual({
      __typename: 'UpdateAgentPayload',
      agent: { id, model: 'offline-large', temperature: 0.7, maxOutputTokens: 2048 },
    });

    const rows = await app.rt.prisma.auditLog.findMany({ where: { action: 'agent.updated' }, orderBy: { createdAt: 'desc' } });
    expect(rows.length).toBe(before + 1);
    const [row] = rows;
    expect(row!.actorId).toBe(owner.id);
    expect(row!.targetType).toBe('Agent');
    expect(row!.targetId).toBe(fromGlobalId(id, 'Agent'));
    expect(row!.metadata).toEqual({
      name: 'Planner',
      changes: {
        model: { from: 'offline-small', to: 'offline-large' },
        temperature: { from: null, to: 0.7 },
        maxOutputTokens: { from: 1024, to: 2048 },
        systemPrompt: { changed: true },
        fallbackChain: { from: [], to: [{ provider: 'OFFLINE', model: 'offline-small' }] },
      },
    });
    expect(JSON.stringify(row!.metadata)).not.toContain('secret playbook');
  });

  it('audits nothing when a save changes nothing, as the form sends every field each time', async () => {
    const id = await anAgent('Unchanged');
    const before = await app.rt.prisma.auditLog.count({ where: { action: 'agent.updated' } });
    const same = { id, name: 'Unchanged', description: '', provider: 'OFFLINE', model: 'offline-small', systemPrompt: 'Be brief.', temperature: null, maxOutputTokens: 1024, fallbackChain: [] };
    const res = await owner.gql(UPDATE, { input: same });
    expect(res.data!.updateAgent.__typename).toBe('UpdateAgentPayload');
    expect(await app.rt.prisma.auditLog.count({ where: { action: 'agent.updated' } })).toBe(before);

    // Renaming alone is one entry naming only the name.
    await owner.gql(UPDATE, { input: { ...same, name: 'Renamed' } });
    expect(await app.rt.prisma.auditLog.count({ where: { action: 'agent.updated' } })).toBe(before + 1);
    const row = await app.rt.prisma.auditLog.findFirstOrThrow({ where: { action: 'agent.updated' }, orderBy: { createdAt: 'desc' } });
    expect(row.metadata).toEqual({ name: 'Renamed', changes: { name: { from: 'Unchanged', to: 'Renamed' } } });
  });
});

describe('agent settings out of range', () => {
  it('explains temperature and max output tokens in words, naming the allowed range', async () => {
    const id = await anAgent('Ranges');
    const cases: [Record<string, unknown>, Issue][] = [
      [{ temperature: 2.5 }, { path: ['temperature'], message: 'Temperature must be between 0 and 2' }],
      [{ temperature: -0.1 }, { path: ['temperature'], message: 'Temperature must be between 0 and 2' }],
      [{ maxOutputTokens: 0 }, { path: ['maxOutputTokens'], message: 'Max output tokens must be between 1 and 200,000' }],
      [{ maxOutputTokens: 200_001 }, { path: ['maxOutputTokens'], message: 'Max output tokens must be between 1 and 200,000' }],
      [{ name: 'n'.repeat(101) }, { path: ['name'], message: 'Keep the name to 100 characters' }],
      [{ description: 'd'.repeat(2001) }, { path: ['description'], message: 'Keep the description to 2,000 characters' }],
      [{ systemPrompt: 's'.repeat(50_001) }, { path: ['systemPrompt'], message: 'Keep the system prompt to 50,000 characters' }],
      // Paths name the fields of the mutation's input: `model`, not where the service keeps it.
      [{ model: 'm'.repeat(101) }, { path: ['model'], message: 'Keep the model name to 100 characters' }],
      [{ model: 'gpt-4o' }, { path: ['model'], message: 'Unknown OFFLINE model; choose one of: offline-small, offline-large' }],
    ];
    for (const [change, issue] of cases) {
      const issues = issuesOf(await owner.gql(UPDATE, { input: { id, ...change } }), 'updateAgent');
      expect(issues, JSON.stringify(change).slice(0, 40)).toContainEqual(issue);
      // zod's own wording ("Too big: expected number to be <=2") never reaches a person.
      for (const { message } of issues) expect(message).not.toMatch(/^(Too (big|small)|Invalid)/);
    }
    const created = await owner.gql(CREATE, {
      input: { projectId: project.gid, name: 'Too hot', provider: 'OFFLINE', model: 'offline-small', temperature: 3, maxOutputTokens: 0 },
    });
    expect(issuesOf(created, 'createAgent')).toEqual([
      { path: ['temperature'], message: 'Temperature must be between 0 and 2' },
      { path: ['maxOutputTokens'], message: 'Max output tokens must be between 1 and 200,000' },
    ]);
    const unknownModel = await owner.gql(CREATE, { input: { projectId: project.gid, name: 'Lost', provider: 'OFFLINE', model: 'offline-huge' } });
    expect(issuesOf(unknownModel, 'createAgent')).toEqual([
      { path: ['model'], message: 'Unknown OFFLINE model; choose one of: offline-small, offline-large' },
    ]);
  });
});

describe('fallback chains', () => {
  it("refuses a fallback that repeats the agent's own model or an earlier fallback, writing nothing", async () => {
    const create = (fallbackChain: { provider: string; model: string }[]) =>
      owner.gql(CREATE, { input: { projectId: project.gid, name: 'Chained', provider: 'OFFLINE', model: 'offline-small', fallbackChain } });
    const agentsBefore = await app.rt.prisma.agent.count();
    expect(issuesOf(await create([{ provider: 'OFFLINE', model: 'offline-small' }]), 'createAgent')).toEqual([
      { path: ['fallbackChain', '0'], message: "Offline small (echo + outline) is the agent's own model: a fallback must be another model" },
    ]);
    expect(issuesOf(await create([{ provider: 'OFFLINE', model: 'offline-large' }, { provider: 'OFFLINE', model: 'offline-large' }]), 'createAgent')).toEqual([
      { path: ['fallbackChain', '1'], message: 'Offline large (echo + outline + risks) is already earlier in the fallback chain' },
    ]);
    expect(await app.rt.prisma.agent.count()).toBe(agentsBefore);

    // Moving the agent onto its fallback's model is refused the same way.
    const created = await create([{ provider: 'OFFLINE', model: 'offline-large' }]);
    const id = created.data!.createAgent.agent.id as string;
    expect(issuesOf(await owner.gql(UPDATE, { input: { id, model: 'offline-large' } }), 'updateAgent')).toEqual([
      { path: ['fallbackChain', '0'], message: "Offline large (echo + outline + risks) is the agent's own model: a fallback must be another model" },
    ]);
    expect((await app.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(id, 'Agent') } })).model).toBe('offline-small');
  });
});

describe('concurrent edits', () => {
  it('are judged against each other: two saves that each pass alone cannot together break the fallback rule', async () => {
    for (let i = 0; i < 5; i++) {
      const id = await anAgent(`Contended ${i}`);
      // One person moves the agent onto offline-large while another makes offline-large its fallback.
      const [moved, chained] = await Promise.all([
        owner.gql(UPDATE, { input: { id, model: 'offline-large' } }),
        owner.gql(UPDATE, { input: { id, fallbackChain: [{ provider: 'OFFLINE', model: 'offline-large' }] } }),
      ]);
      const outcomes = [moved.data!.updateAgent.__typename, chained.data!.updateAgent.__typename].sort();
      expect(outcomes).toEqual(['UpdateAgentPayload', 'ValidationError']);
      const stored = await app.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(id, 'Agent') } });
      expect((stored.fallbackChain as { model: string }[]).map((f) => f.model)).not.toContain(stored.model);
      // The audit row of the save that won says what it changed from, as stored before it.
      const rows = await app.rt.prisma.auditLog.findMany({ where: { targetId: stored.id, action: 'agent.updated' } });
      expect(rows.map((r) => r.metadata)).toEqual([
        moved.data!.updateAgent.__typename === 'UpdateAgentPayload'
          ? { name: `Contended ${i}`, changes: { model: { from: 'offline-small', to: 'offline-large' } } }
          : { name: `Contended ${i}`, changes: { fallbackChain: { from: [], to: [{ provider: 'OFFLINE', model: 'offline-large' }] } } },
      ]);
    }
  });
});

describe('archiving and restoring at once', () => {
  it('two archives (or two restores) of one agent at once change it once and audit it once', async () => {
    const ARCHIVE = `mutation($id: ID!) { archiveAgent(input: { id: $id }) { __typename } }`;
    const RESTORE = `mutation($id: ID!) { restoreAgent(input: { id: $id }) { __typename } }`;
    for (let i = 0; i < 3; i++) {
      const id = await anAgent(`Twice ${i}`);
      const targetId = fromGlobalId(id, 'Agent');
      const archived = await Promise.all([owner.gql(ARCHIVE, { id }), owner.gql(ARCHIVE, { id })]);
      expect(archived.map((r) => r.data!.archiveAgent.__typename)).toEqual(['ArchiveAgentPayload', 'ArchiveAgentPayload']);
      expect(await app.rt.prisma.auditLog.count({ where: { targetId, action: 'agent.archived' } })).toBe(1);
      const restored = await Promise.all([owner.gql(RESTORE, { id }), owner.gql(RESTORE, { id })]);
      expect(restored.map((r) => r.data!.restoreAgent.__typename)).toEqual(['RestoreAgentPayload', 'RestoreAgentPayload']);
      expect(await app.rt.prisma.auditLog.count({ where: { targetId, action: 'agent.restored' } })).toBe(1);
    }
  });
});

describe('restoring an archived agent', () => {
  const ARCHIVE = `mutation($id: ID!) { archiveAgent(input: { id: $id }) { __typename } }`;
  const RESTORE = `mutation($id: ID!) { restoreAgent(input: { id: $id }) {
    __typename ... on RestoreAgentPayload { agent { id archivedAt viewerCanRun } } ... on Error { message } } }`;
  const START = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename ... on Error { message } } }`;

  it('cannot be edited until restored: refused with nothing written, and viewerCanUpdate says so', async () => {
    const id = await anAgent('Retired');
    expect((await owner.gql(ARCHIVE, { id })).data!.archiveAgent.__typename).toBe('ArchiveAgentPayload');
    const refused = await owner.gql(UPDATE, { input: { id, name: 'Edited', temperature: 1 } });
    expect(refused.data!.updateAgent).toEqual({
      __typename: 'ValidationError',
      message: 'id: This agent is archived: restore it to edit it',
      issues: [{ path: ['id'], message: 'This agent is archived: restore it to edit it' }],
    });
    const stored = await app.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(id, 'Agent') } });
    expect([stored.name, stored.temperature]).toEqual(['Retired', null]);
    expect(await app.rt.prisma.auditLog.count({ where: { targetId: stored.id, action: 'agent.updated' } })).toBe(0);
    const CAN = `query($id: ID!) { agent(id: $id) { viewerCanUpdate } }`;
    expect((await owner.gql(CAN, { id })).data!.agent).toEqual({ viewerCanUpdate: false });
    await owner.gql(RESTORE, { id });
    expect((await owner.gql(CAN, { id })).data!.agent).toEqual({ viewerCanUpdate: true });
    expect((await owner.gql(UPDATE, { input: { id, name: 'Edited' } })).data!.updateAgent.__typename).toBe('UpdateAgentPayload');
  });

  it('brings it back to be run again, audited once; a VIEWER may not', async () => {
    const id = await anAgent('Archivist');
    expect((await owner.gql(ARCHIVE, { id })).data!.archiveAgent.__typename).toBe('ArchiveAgentPayload');
    expect((await owner.gql(START, { input: { agentId: id, input: 'hello' } })).data!.startRun.__typename).toBe('ValidationError');

    const viewer = await given(app).aMemberOf(project.org, 'VIEWER');
    expect((await viewer.gql(RESTORE, { id })).data!.restoreAgent.__typename).toBe('ForbiddenError');
    expect((await app.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(id, 'Agent') } })).archivedAt).not.toBeNull();

    const restored = await owner.gql(RESTORE, { id });
    expect(restored.data!.restoreAgent).toEqual({ __typename: 'RestoreAgentPayload', agent: { id, archivedAt: null, viewerCanRun: true } });
    // Restoring an agent that is not archived changes nothing and audits nothing.
    expect((await owner.gql(RESTORE, { id })).data!.restoreAgent.__typename).toBe('RestoreAgentPayload');
    const rows = await app.rt.prisma.auditLog.findMany({ where: { targetId: fromGlobalId(id, 'Agent'), action: 'agent.restored' } });
    expect(rows.map((r) => [r.actorId, r.metadata])).toEqual([[owner.id, { name: 'Archivist' }]]);
    expect((await owner.gql(START, { input: { agentId: id, input: 'hello' } })).data!.startRun.__typename).toBe('StartRunPayload');

    // Archiving an archived agent changes nothing and audits nothing, either.
    expect((await owner.gql(ARCHIVE, { id })).data!.archiveAgent.__typename).toBe('ArchiveAgentPayload');
    const first = (await app.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(id, 'Agent') } })).archivedAt;
    expect((await owner.gql(ARCHIVE, { id })).data!.archiveAgent.__typename).toBe('ArchiveAgentPayload');
    expect((await app.rt.prisma.agent.findUniqueOrThrow({ where: { id: fromGlobalId(id, 'Agent') } })).archivedAt).toEqual(first);
    const archivals = await app.rt.prisma.auditLog.findMany({ where: { targetId: fromGlobalId(id, 'Agent'), action: 'agent.archived' } });
    expect(archivals.map((r) => [r.actorId, r.metadata])).toEqual([[owner.id, { name: 'Archivist' }], [owner.id, { name: 'Archivist' }]]);
  });
});

describe('an archived project is read-only', () => {
  const ARCHIVE = `mutation($id: ID!) { archiveProject(input: { id: $id }) { __typename ... on Error { message } } }`;
  const RESTORE = `mutation($id: ID!) { restoreProject(input: { id: $id }) { __typename ... on Error { message } } }`;
  const START = `mutation($input: StartRunInput!) { startRun(input: $input) { __typename ${ISSUES} } }`;
  const CAN = `query($id: ID!) { agent(id: $id) { viewerCanRun viewerCanUpdate project { viewerCanCreateAgent } } }`;

  it('refuses running, editing and adding its agents until restored, with nothing written', async () => {
    const id = await anAgent('Shelved');
    const runsBefore = await app.rt.prisma.agentRun.count();
    expect((await owner.gql(ARCHIVE, { id: project.gid })).data!.archiveProject.__typename).toBe('ArchiveProjectPayload');
    try {
      expect((await owner.gql(CAN, { id })).data!.agent).toEqual({ viewerCanRun: false, viewerCanUpdate: false, project: { viewerCanCreateAgent: false } });
      expect(issuesOf(await owner.gql(START, { input: { agentId: id, input: 'hello' } }), 'startRun')).toEqual([
        { path: ['agentId'], message: 'This agent’s project is archived: restore the project to run its agents' },
      ]);
      expect(issuesOf(await owner.gql(UPDATE, { input: { id, name: 'Edited while archived' } }), 'updateAgent')).toEqual([
        { path: ['id'], message: 'This agent’s project is archived: restore the project to edit its agents' },
      ]);
      const added = await owner.gql(CREATE, { input: { projectId: project.gid, name: 'Added while archived', provider: 'OFFLINE', model: 'offline-small' } });
      expect(issuesOf(added, 'createAgent')).toEqual([{ path: ['projectId'], message: 'This project is archived: restore it to add agents' }]);
      expect(await app.rt.prisma.agentRun.count()).toBe(runsBefore);
      expect(await app.rt.prisma.agent.count({ where: { projectId: project.id, name: { in: ['Added while archived', 'Edited while archived'] } } })).toBe(0);
    } finally {
      expect((await owner.gql(RESTORE, { id: project.gid })).data!.restoreProject.__typename).toBe('RestoreProjectPayload');
    }
    expect((await owner.gql(CAN, { id })).data!.agent).toEqual({ viewerCanRun: true, viewerCanUpdate: true, project: { viewerCanCreateAgent: true } });
    expect((await owner.gql(START, { input: { agentId: id, input: 'hello' } })).data!.startRun.__typename).toBe('StartRunPayload');
  });
});

describe('the providers query', () => {
  it("shows each provider's endpoint without the credentials or query its *_BASE_URL may hold", async () => {
    const proxied = await startTestServer({
      worker: false,
      env: {
        OPENAI_BASE_URL: 'https://hub:s3cret@proxy.internal:8443/openai/v1?api-key=abc#frag',
        ANTHROPIC_BASE_URL: 'http://gateway.internal',
      },
    });
    try {
      const someone = (await given(proxied).anOrganization()).owner;
      const res = await someone.gql(`{ providers { id baseUrl } }`);
      expect(JSON.stringify(res)).not.toMatch(/s3cret|api-key|frag/);
      expect(res.data!.providers).toEqual([
        { id: 'OPENAI', baseUrl: 'https://proxy.internal:8443/openai/v1' },
        { id: 'ANTHROPIC', baseUrl: 'http://gateway.internal' },
        { id: 'XAI', baseUrl: 'https://api.x.ai/v1' },
        { id: 'PERPLEXITY', baseUrl: 'https://api.perplexity.ai' },
        { id: 'OFFLINE', baseUrl: null },
      ]);
    } finally {
      await proxied.close();
    }
  });
});

describe('adding an agent while its project is being archived', () => {
  const ARCHIVE = `mutation($id: ID!) { archiveProject(input: { id: $id }) { __typename } }`;

  // On PostgreSQL, with a second connection: the test holds the Agent table so the creation stops right before its
  // write, archives the project meanwhile, then lets the creation go on.
  it.runIf(usingPostgres())('the archive waits for a creation that found the project open, or the creation is refused: never both', async () => {
    const db = await getTestDatabase();
    const shelf = await given(app).aProject(project.org);
    const waiting = async () => Number((await db.pool!.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())`)).rows[0]!.n);
    const until = async (done: () => Promise<boolean> | boolean) => {
      for (const end = Date.now() + 5000; !(await done()); ) {
        if (Date.now() > end) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const blocker = await db.pool!.connect();
    const order: string[] = [];
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE "Agent" IN SHARE MODE');
      const create = owner
        .gql(CREATE, { input: { projectId: shelf.gid, name: 'Late', provider: 'OFFLINE', model: 'offline-small' } })
        .finally(() => order.push('create answered'));
      await until(async () => (await waiting()) >= 1);
      const archive = owner.gql(ARCHIVE, { id: shelf.gid }).finally(() => order.push('archive answered'));
      // The archive either completes now, or waits for the creation (a second lock waiting).
      await until(async () => order.includes('archive answered') || (await waiting()) >= 2);
      const archivedWhileCreating = order.includes('archive answered');
      await blocker.query('COMMIT');
      const [created, archived] = await Promise.all([create, archive]);
      expect(archived.data!.archiveProject.__typename).toBe('ArchiveProjectPayload');
      const agents = await app.rt.prisma.agent.count({ where: { projectId: shelf.id } });
      if (created.data!.createAgent.__typename === 'CreateAgentPayload') {
        // Created on a project that was open: the archive waited for the creation to commit.
        expect(archivedWhileCreating).toBe(false);
        expect(agents).toBe(1);
      } else {
        expect(issuesOf(created, 'createAgent')).toEqual([{ path: ['projectId'], message: 'This project is archived: restore it to add agents' }]);
        expect(agents).toBe(0);
      }
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      blocker.release();
    }
  });
});

describe("each model's own output limit", () => {
  const PROVIDERS = `{ providers { id label models { id label maxOutputTokens } } }`;
  const gpt = (input: Record<string, unknown>) =>
    owner.gql(CREATE, { input: { projectId: project.gid, name: 'Writer', provider: 'OPENAI', model: 'gpt-4o', ...input } });

  it('is in the providers query for every model, offline ones included', async () => {
    const res = await owner.gql(PROVIDERS);
    const limits = Object.fromEntries(
      res.data!.providers.flatMap((p: { models: { id: string; maxOutputTokens: number }[] }) => p.models.map((m) => [m.id, m.maxOutputTokens])),
    );
    expect(limits).toMatchObject({
      'gpt-5': 128_000,
      'gpt-5-mini': 128_000,
      'gpt-4.1': 32_768,
      'gpt-4o': 16_384,
      'gpt-4o-mini': 16_384,
      'claude-opus-4-5': 64_000,
      'claude-sonnet-4-6': 64_000,
      'claude-haiku-4-5': 64_000,
      'sonar-pro': 8_000,
      'offline-small': 8_192,
      'offline-large': 32_768,
    });
    // None above the hub's own ceiling, which also bounds a model whose provider publishes no separate cap.
    for (const [id, limit] of Object.entries(limits)) expect(limit, id).toBeGreaterThan(0);
    for (const [id, limit] of Object.entries(limits)) expect(limit, id).toBeLessThanOrEqual(200_000);
  });

  it('shows the long-context rates of the models that have them, as the settlement charges them', async () => {
    const res = await owner.gql(
      `{ providers { models { id longContextPricing { fromTokens countsOutput inputPricePerMillionTokens cachedInputPricePerMillionTokens outputPricePerMillionTokens } } } }`,
    );
    const tiers = Object.fromEntries(
      res.data!.providers.flatMap((p: { models: { id: string; longContextPricing: unknown }[] }) => p.models.map((m) => [m.id, m.longContextPricing])),
    );
    expect(tiers['claude-sonnet-4-6']).toEqual({
      fromTokens: 200_001,
      countsOutput: false,
      inputPricePerMillionTokens: '6000000',
      cachedInputPricePerMillionTokens: '600000',
      outputPricePerMillionTokens: '22500000',
    });
    expect(tiers['grok-4']).toMatchObject({ fromTokens: 128_000, countsOutput: true, inputPricePerMillionTokens: '6000000', outputPricePerMillionTokens: '30000000' });
    for (const id of ['gpt-4o', 'gpt-5', 'claude-haiku-4-5', 'sonar', 'offline-small']) expect(tiers[id], id).toBeNull();
  });

  it("refuses max output tokens above the agent's model's limit, naming the model and its limit", async () => {
    expect(issuesOf(await gpt({ maxOutputTokens: 16_385 }), 'createAgent')).toEqual([
      { path: ['maxOutputTokens'], message: 'GPT-4o writes at most 16,384 output tokens: set max output tokens to 16,384 or less' },
    ]);
    expect((await gpt({ maxOutputTokens: 16_384 })).data!.createAgent.__typename).toBe('CreateAgentPayload');
  });

  it('refuses them above a fallback’s limit too, as the fallback is asked for as many', async () => {
    const res = await gpt({
      model: 'gpt-5',
      maxOutputTokens: 40_000,
      fallbackChain: [
        { provider: 'ANTHROPIC', model: 'claude-haiku-4-5' },
        { provider: 'OPENAI', model: 'gpt-4.1' },
        { provider: 'OPENAI', model: 'gpt-4o' },
      ],
    });
    // The tightest limit is the one to meet.
    expect(issuesOf(res, 'createAgent')).toEqual([
      {
        path: ['maxOutputTokens'],
        message: 'Fallback 3, GPT-4o, writes at most 16,384 output tokens: set max output tokens to 16,384 or less, or choose another fallback',
      },
    ]);
  });

  it('is checked on update when the model, the chain or the number changes, and not on a rename', async () => {
    const created = await gpt({ model: 'gpt-5', maxOutputTokens: 50_000 });
    const id = created.data!.createAgent.agent.id as string;
    expect(issuesOf(await owner.gql(UPDATE, { input: { id, model: 'gpt-4.1' } }), 'updateAgent')).toEqual([
      { path: ['maxOutputTokens'], message: 'GPT-4.1 writes at most 32,768 output tokens: set max output tokens to 32,768 or less' },
    ]);
    expect(issuesOf(await owner.gql(UPDATE, { input: { id, maxOutputTokens: 128_001 } }), 'updateAgent')).toEqual([
      { path: ['maxOutputTokens'], message: 'GPT-5 writes at most 128,000 output tokens: set max output tokens to 128,000 or less' },
    ]);
    expect(issuesOf(await owner.gql(UPDATE, { input: { id, fallbackChain: [{ provider: 'OPENAI', model: 'gpt-4o-mini' }] } }), 'updateAgent')).toEqual([
      {
        path: ['maxOutputTokens'],
        message: 'Fallback 1, GPT-4o mini, writes at most 16,384 output tokens: set max output tokens to 16,384 or less, or choose another fallback',
      },
    ]);
    expect((await owner.gql(UPDATE, { input: { id, model: 'gpt-4.1', maxOutputTokens: 32_768 } })).data!.updateAgent.agent).toMatchObject({ model: 'gpt-4.1', maxOutputTokens: 32_768 });
    // An agent stored above its model's limit (saved before limits were per model) can still be renamed.
    await app.rt.prisma.agent.update({ where: { id: fromGlobalId(id, 'Agent') }, data: { maxOutputTokens: 100_000 } });
    expect((await owner.gql(UPDATE, { input: { id, name: 'Renamed' } })).data!.updateAgent.__typename).toBe('UpdateAgentPayload');
  });
});
