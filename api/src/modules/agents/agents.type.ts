import { builder, MAX_PAGE_SIZE } from '../../schema/builder.js';
import { resumeRelatedCursor } from '../../schema/resume-cursor.js';
import { fromGlobalId } from '../../lib/ids.js';
import { PROVIDER_IDS, hasPrice, priceFor, shownEndpoint, type ModelInfo, type ProviderAdapter, type ProviderId } from '../../providers/index.js';
import type { LongContextPrice } from '../../providers/pricing.js';
import '../projects/projects.type.js';
import { can } from '../permissions.js';
import * as agents from './agents.service.js';

export const ProviderEnum = builder.enumType('Provider', {
  values: PROVIDER_IDS as ProviderId[],
  description: 'An AI provider. OFFLINE is the local, deterministic, zero-cost provider that always works.',
});

const LongContextPricing = builder.objectRef<LongContextPrice>('LongContextPricing').implement({
  description:
    "A model's higher rates for a long request: from `fromTokens` tokens on, the whole request (not only what is past the threshold) is billed at these rates.",
  fields: (t) => ({
    fromTokens: t.exposeInt('fromTokens', { description: 'The smallest count the rates apply at.' }),
    countsOutput: t.boolean({
      description: "Whether the count is the prompt and the output together (xAI); false: the prompt alone, cached tokens included (Anthropic).",
      resolve: (p) => p.counts === 'prompt_and_output',
    }),
    inputPricePerMillionTokens: t.field({ type: 'Money', resolve: (p) => p.inputPerMTok }),
    cachedInputPricePerMillionTokens: t.field({ type: 'Money', resolve: (p) => p.cachedInputPerMTok }),
    outputPricePerMillionTokens: t.field({ type: 'Money', resolve: (p) => p.outputPerMTok }),
  }),
});

const ModelRef = builder.objectRef<ModelInfo & { provider: ProviderId }>('Model').implement({
  fields: (t) => ({
    id: t.exposeString('id'),
    label: t.exposeString('label'),
    contextWindow: t.exposeInt('contextWindow'),
    maxOutputTokens: t.int({
      description: "The most output tokens an agent on this model may ask for (its provider's limit per request, within the hub's 200,000). An agent's maxOutputTokens must fit its model and each of its fallbacks.",
      resolve: (m) => agents.outputLimitOf(m),
    }),
    inputPricePerMillionTokens: t.field({
      type: 'Money',
      nullable: true,
      resolve: (m) => (hasPrice(m.provider, m.id) ? priceFor(m.provider, m.id).inputPerMTok : null),
    }),
    outputPricePerMillionTokens: t.field({
      type: 'Money',
      nullable: true,
      resolve: (m) => (hasPrice(m.provider, m.id) ? priceFor(m.provider, m.id).outputPerMTok : null),
    }),
    longContextPricing: t.field({
      type: LongContextPricing,
      nullable: true,
      description: 'Higher rates for a long request, where the provider has them (null: the same rates at any length).',
      resolve: (m) => (hasPrice(m.provider, m.id) ? (priceFor(m.provider, m.id).longContext ?? null) : null),
    }),
  }),
});

const ProviderStatus = builder.objectRef<ProviderAdapter>('ProviderStatus').implement({
  description: 'A provider and whether this deployment can use it.',
  fields: (t) => ({
    id: t.field({ type: ProviderEnum, resolve: (p) => p.id }),
    label: t.exposeString('label'),
    configured: t.exposeBoolean('configured', { description: 'False when no API key is set; agents on it fail fast or fall back.' }),
    offline: t.boolean({ resolve: (p) => p.id === 'OFFLINE' }),
    baseUrl: t.string({
      nullable: true,
      description: "Where the provider's requests go (its *_BASE_URL), without any credentials or query it holds; null for the offline provider.",
      resolve: (p) => (p.baseUrl === null ? null : shownEndpoint(p.baseUrl)),
    }),
    models: t.field({ type: [ModelRef], resolve: (p) => p.models.map((m) => ({ ...m, provider: p.id })) }),
  }),
});

builder.queryField('providers', (t) =>
  t.field({
    type: [ProviderStatus],
    authScopes: { loggedIn: true },
    description: 'Every provider with its configuration status and models.',
    resolve: (_r, _a, ctx) => ctx.providers.list(),
  }),
);

const ModelRefObject = builder.objectRef<{ provider: ProviderId; model: string }>('ModelChoice').implement({
  fields: (t) => ({ provider: t.field({ type: ProviderEnum, resolve: (m) => m.provider }), model: t.exposeString('model') }),
});

export const AgentRef = builder.prismaNode('Agent', {
  id: { field: 'id' },
  authScopes: (a) => ({ orgRole: { organizationId: a.organizationId, role: 'VIEWER' } }),
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description'),
    provider: t.field({ type: ProviderEnum, resolve: (a) => a.provider }),
    model: t.exposeString('model'),
    systemPrompt: t.exposeString('systemPrompt'),
    temperature: t.exposeFloat('temperature', { nullable: true }),
    maxOutputTokens: t.exposeInt('maxOutputTokens'),
    fallbackChain: t.field({
      type: [ModelRefObject],
      resolve: (a) => (Array.isArray(a.fallbackChain) ? (a.fallbackChain as { provider: ProviderId; model: string }[]) : []),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    archivedAt: t.expose('archivedAt', { type: 'DateTime', nullable: true }),
    project: t.relation('project'),
    viewerCanUpdate: t.boolean({
      description: 'The agent and its project are not archived (restore them first), and the viewer may edit agents.',
      select: { project: { select: { archivedAt: true } } },
      resolve: async (a, _x, ctx) => !a.archivedAt && !a.project.archivedAt && can(await ctx.roleIn(a.organizationId), 'agent.update'),
    }),
    viewerCanArchive: t.boolean({ resolve: async (a, _x, ctx) => can(await ctx.roleIn(a.organizationId), 'agent.archive') }),
    viewerCanRun: t.boolean({
      description: 'The agent and its project are not archived, and the viewer may start runs.',
      select: { project: { select: { archivedAt: true } } },
      resolve: async (a, _x, ctx) => !a.archivedAt && !a.project.archivedAt && can(await ctx.roleIn(a.organizationId), 'run.start'),
    }),
  }),
});

builder.prismaObjectField('Project', 'agents', (t) =>
  t.relatedConnection('agents', {
    cursor: 'id',
    maxSize: MAX_PAGE_SIZE,
    defaultSize: 50,
    totalCount: true,
    args: { includeArchived: t.arg.boolean({ defaultValue: false }) },
    // An agent archived since its page was read would end the list there (see resumeRelatedCursor).
    query: async ({ includeArchived, ...page }, ctx) => {
      const where = includeArchived ? undefined : { archivedAt: null };
      const orderBy = [{ createdAt: 'asc' as const }, { id: 'asc' as const }];
      return { where: where ?? {}, orderBy, ...(await resumeRelatedCursor(ctx.prisma.agent, { page, where, orderBy, scope: ['projectId'] })) };
    },
  }),
);

builder.queryField('agent', (t) =>
  t.prismaField({
    type: 'Agent',
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _r, { id }, ctx) => {
      if (!ctx.viewer) return null;
      try {
        return await ctx.prisma.agent.findFirst({
          ...query,
          where: { id: fromGlobalId(String(id), 'Agent'), organization: { memberships: { some: { userId: ctx.viewer.userId } } } },
        });
      } catch {
        return null;
      }
    },
  }),
);

const ModelChoiceInput = builder.inputType('ModelChoiceInput', {
  fields: (t) => ({ provider: t.field({ type: ProviderEnum, required: true }), model: t.string({ required: true }) }),
});

const agentPayload = (name: string) =>
  builder.objectRef<{ id: string }>(name).implement({
    fields: (t) => ({
      agent: t.prismaField({
        type: 'Agent',
        resolve: (query, p, _a, ctx) => ctx.prisma.agent.findUniqueOrThrow({ ...query, where: { id: p.id } }),
      }),
    }),
  });

const CreateAgentInput = builder.inputType('CreateAgentInput', {
  fields: (t) => ({
    projectId: t.id({ required: true }),
    name: t.string({ required: true }),
    description: t.string(),
    provider: t.field({ type: ProviderEnum, required: true }),
    model: t.string({ required: true }),
    systemPrompt: t.string(),
    temperature: t.float(),
    maxOutputTokens: t.int({ description: `Upper bound on output tokens per run (default ${agents.DEFAULT_MAX_OUTPUT_TOKENS}); also sizes budget reservations.` }),
    fallbackChain: t.field({ type: [ModelChoiceInput], description: 'Tried in order when the primary fails.' }),
  }),
});

builder.mutationField('createAgent', (t) =>
  t.field({
    type: agentPayload('CreateAgentPayload'),
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: CreateAgentInput, required: true }) },
    resolve: (_r, { input: { projectId, provider, model, ...rest } }, ctx) =>
      agents.createAgent(ctx, fromGlobalId(String(projectId), 'Project'), { ...rest, primary: { provider, model } }),
  }),
);

const UpdateAgentInput = builder.inputType('UpdateAgentInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string(),
    description: t.string(),
    provider: t.field({ type: ProviderEnum }),
    model: t.string(),
    systemPrompt: t.string(),
    temperature: t.float(),
    maxOutputTokens: t.int(),
    fallbackChain: t.field({ type: [ModelChoiceInput] }),
  }),
});

builder.mutationField('updateAgent', (t) =>
  t.field({
    type: agentPayload('UpdateAgentPayload'),
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: UpdateAgentInput, required: true }) },
    resolve: (_r, { input: { id, provider, model, ...rest } }, ctx) =>
      agents.updateAgent(ctx, fromGlobalId(String(id), 'Agent'), {
        ...rest,
        primary: provider || model ? { provider, model } : undefined,
      }),
  }),
);

const ArchiveAgentInput = builder.inputType('ArchiveAgentInput', { fields: (t) => ({ id: t.id({ required: true }) }) });

builder.mutationField('archiveAgent', (t) =>
  t.field({
    type: agentPayload('ArchiveAgentPayload'),
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: ArchiveAgentInput, required: true }) },
    resolve: (_r, { input }, ctx) => agents.archiveAgent(ctx, fromGlobalId(String(input.id), 'Agent')),
  }),
);

builder.mutationField('restoreAgent', (t) =>
  t.field({
    type: agentPayload('RestoreAgentPayload'),
    description: 'Brings an archived agent back, to be run and edited again (MEMBER and above, as archiving; audited).',
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: ArchiveAgentInput, required: true }) },
    resolve: (_r, { input }, ctx) => agents.restoreAgent(ctx, fromGlobalId(String(input.id), 'Agent')),
  }),
);
