import { z } from 'zod';
import type { Agent, Prisma } from '../../_generated/prisma/client.js';
import type { Context } from '../../context.js';
import { NotFoundError, ValidationError, type FieldIssue } from '../../lib/errors.js';
import { nameText, parseInput } from '../../lib/validate.js';
import { PROVIDER_IDS, type ModelInfo, type ProviderId, type ProviderRegistry } from '../../providers/index.js';
import { audit } from '../audit/audit.service.js';
import { authorize, requireViewer } from '../authorize.js';
import { ARCHIVED_PROJECT, loadProject } from '../projects/projects.service.js';

const providerId = z.enum(PROVIDER_IDS as [ProviderId, ...ProviderId[]], 'Choose a provider');

/** An agent's limits; the web form checks the same ones before sending (web/src/routes/agents/limits.ts). */
export const AGENT_LIMITS = {
  name: 100,
  description: 2000,
  systemPrompt: 50_000,
  temperature: { min: 0, max: 2 },
  maxOutputTokens: { min: 1, max: 200_000 },
  fallbacks: 5,
} as const;

/** An agent created without maxOutputTokens gets this (the column's @default in schema.prisma). */
export const DEFAULT_MAX_OUTPUT_TOKENS = 1024;

const TEMPERATURE_RANGE = `Temperature must be between ${AGENT_LIMITS.temperature.min} and ${AGENT_LIMITS.temperature.max}`;
const MAX_OUTPUT_TOKENS_RANGE = `Max output tokens must be between ${AGENT_LIMITS.maxOutputTokens.min} and ${AGENT_LIMITS.maxOutputTokens.max.toLocaleString('en-US')}`;

/** Provider + model must name a model the hub knows (and can price). */
function modelRef(registry: ProviderRegistry) {
  return z.object({ provider: providerId, model: z.string().trim().min(1, 'Choose a model').max(100, 'Keep the model name to 100 characters') }).superRefine((v, ctx) => {
    const models = registry.get(v.provider).models.map((m) => m.id);
    if (!models.includes(v.model)) {
      ctx.addIssue({ code: 'custom', path: ['model'], message: `Unknown ${v.provider} model; choose one of: ${models.join(', ')}` });
    }
  });
}

const fields = (registry: ProviderRegistry) => ({
  name: nameText({ blank: 'Enter a name', max: AGENT_LIMITS.name, tooLong: 'Keep the name to 100 characters' }),
  description: z.string().trim().max(AGENT_LIMITS.description, 'Keep the description to 2,000 characters'),
  systemPrompt: z.string().max(AGENT_LIMITS.systemPrompt, 'Keep the system prompt to 50,000 characters'),
  temperature: z.number().min(AGENT_LIMITS.temperature.min, TEMPERATURE_RANGE).max(AGENT_LIMITS.temperature.max, TEMPERATURE_RANGE).nullable(),
  maxOutputTokens: z
    .number()
    .int('Max output tokens must be a whole number')
    .min(AGENT_LIMITS.maxOutputTokens.min, MAX_OUTPUT_TOKENS_RANGE)
    .max(AGENT_LIMITS.maxOutputTokens.max, MAX_OUTPUT_TOKENS_RANGE),
  fallbackChain: z.array(modelRef(registry)).max(AGENT_LIMITS.fallbacks, 'Use at most 5 fallbacks'),
});

/**
 * parseInput for an agent's settings: the service holds the primary model as `primary`, while the
 * mutations take `provider` and `model` at the top of their input, so issues name those.
 */
function parseAgentInput<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  try {
    return parseInput(schema, raw);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new ValidationError(err.issues.map((i) => (i.path[0] === 'primary' ? { ...i, path: i.path.slice(1) } : i)));
  }
}

/**
 * A fallback that repeats the agent's own model or an earlier fallback would only retry what just
 * failed, with its retries and its cost again: each entry of the chain must be a model not tried before it.
 */
function chainIssues(registry: ProviderRegistry, primary: ModelChoice, chain: ModelChoice[]): FieldIssue[] {
  const tried = [`${primary.provider} ${primary.model}`];
  const issues = chain.flatMap(({ provider, model }, i) => {
    const key = `${provider} ${model}`;
    const earlier = tried.indexOf(key);
    tried.push(key);
    if (earlier < 0) return [];
    const name = modelName(registry, { provider, model });
    const message = earlier === 0 ? `${name} is the agent's own model: a fallback must be another model` : `${name} is already earlier in the fallback chain`;
    return [{ path: ['fallbackChain', String(i)], message }];
  });
  return issues;
}

const catalogEntry = (registry: ProviderRegistry, { provider, model }: ModelChoice) => registry.get(provider as ProviderId).models.find((m) => m.id === model);

/** A model as people see it named (GPT-4o, Claude Haiku 4.5, Offline small…, as the form's pickers): its label, else its id. */
function modelName(registry: ProviderRegistry, choice: ModelChoice): string {
  return catalogEntry(registry, choice)?.label ?? choice.model;
}

/** The most output tokens an agent may ask of a model: the model's own ceiling (ModelInfo), within the hub's. */
export function outputLimitOf(model: Pick<ModelInfo, 'maxOutputTokens'> | undefined): number {
  const ceiling = AGENT_LIMITS.maxOutputTokens.max;
  return Math.min(model?.maxOutputTokens ?? ceiling, ceiling);
}

/**
 * maxOutputTokens must fit every model a run may ask: the agent's own and each fallback, which is asked for as
 * many (a provider refuses a request above its model's limit, so the fallback would fail just when needed). The
 * tightest limit exceeded is the one named.
 */
function outputLimitIssues(registry: ProviderRegistry, maxOutputTokens: number, primary: ModelChoice, chain: ModelChoice[]): FieldIssue[] {
  let worst: (ModelChoice & { fallback: number; limit: number }) | undefined;
  [primary, ...chain].forEach((choice, fallback) => {
    const limit = outputLimitOf(catalogEntry(registry, choice));
    if (maxOutputTokens > limit && (!worst || limit < worst.limit)) worst = { ...choice, fallback, limit };
  });
  if (!worst) return [];
  const model = modelName(registry, worst);
  const n = worst.limit.toLocaleString('en-US');
  const message = worst.fallback
    ? `Fallback ${worst.fallback}, ${model}, writes at most ${n} output tokens: set max output tokens to ${n} or less, or choose another fallback`
    : `${model} writes at most ${n} output tokens: set max output tokens to ${n} or less`;
  return [{ path: ['maxOutputTokens'], message }];
}

/** The chain and output-limit rules together, so a save that breaks both hears of both at once. */
function checkModels(registry: ProviderRegistry, settings: { maxOutputTokens: number; primary: ModelChoice; chain: ModelChoice[] }, judge: { chain: boolean; limit: boolean }) {
  const issues = [
    ...(judge.chain ? chainIssues(registry, settings.primary, settings.chain) : []),
    ...(judge.limit ? outputLimitIssues(registry, settings.maxOutputTokens, settings.primary, settings.chain) : []),
  ];
  if (issues.length) throw new ValidationError(issues);
}

/**
 * Whether the project is archived, read in the caller's transaction under a share lock on its row: an archive
 * (or restore) of the project waits for that transaction, so what was judged still holds when its write commits.
 */
async function projectArchived(tx: Prisma.TransactionClient, projectId: string) {
  const [row] = await tx.$queryRaw<{ archivedAt: Date | null }[]>`SELECT "archivedAt" FROM "Project" WHERE id = ${projectId}::uuid FOR SHARE`;
  return Boolean(row?.archivedAt);
}

export async function loadAgent(ctx: Context, agentId: string) {
  const viewer = requireViewer(ctx);
  const agent = await ctx.prisma.agent.findFirst({
    where: { id: agentId, organization: { memberships: { some: { userId: viewer.userId } } } },
  });
  if (!agent) throw new NotFoundError('Agent');
  return agent;
}

export async function createAgent(ctx: Context, projectId: string, raw: unknown) {
  const project = await loadProject(ctx, projectId);
  await authorize(ctx, project.organizationId, 'agent.create', 'Project');
  const f = fields(ctx.providers);
  const input = parseAgentInput(
    z.object({
      ...f,
      description: f.description.nullish(),
      systemPrompt: f.systemPrompt.nullish(),
      temperature: f.temperature.optional(),
      maxOutputTokens: f.maxOutputTokens.nullish(),
      fallbackChain: f.fallbackChain.nullish(),
      primary: modelRef(ctx.providers),
    }),
    raw,
  );
  const maxOutputTokens = input.maxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS;
  checkModels(ctx.providers, { maxOutputTokens, primary: input.primary, chain: input.fallbackChain ?? [] }, { chain: true, limit: true });
  return ctx.prisma.$transaction(async (tx) => {
    // Judged with the write: a project archived since it was loaded (or at this moment) gets no new agent.
    if (await projectArchived(tx, project.id)) throw ValidationError.field('projectId', ARCHIVED_PROJECT.addAgent);
    const agent = await tx.agent.create({
      data: {
        organizationId: project.organizationId,
        projectId: project.id,
        name: input.name,
        description: input.description ?? '',
        provider: input.primary.provider,
        model: input.primary.model,
        systemPrompt: input.systemPrompt ?? '',
        temperature: input.temperature ?? null,
        maxOutputTokens,
        fallbackChain: (input.fallbackChain ?? []) as Prisma.InputJsonValue,
      },
    });
    await audit(tx, { organizationId: project.organizationId, actorId: ctx.viewer!.userId, action: 'agent.created', targetType: 'Agent', targetId: agent.id, metadata: { name: agent.name, provider: agent.provider, model: agent.model }, ip: ctx.ip });
    return agent;
  });
}

export async function updateAgent(ctx: Context, agentId: string, raw: unknown) {
  const found = await loadAgent(ctx, agentId);
  await authorize(ctx, found.organizationId, 'agent.update', 'Agent');
  return ctx.prisma.$transaction(async (tx) => {
    // Judged against the agent as stored, under its row lock: two saves that each pass alone (one moves the
    // agent onto a model, the other makes that model its fallback) must not both land, and the audit row's
    // `from` is what this save replaced, not what another save changed meanwhile.
    await tx.$executeRaw`SELECT 1 FROM "Agent" WHERE id = ${found.id}::uuid FOR UPDATE`;
    const agent = await tx.agent.findUniqueOrThrow({ where: { id: found.id } });
    // Archived means retired as it was: its runs keep showing the settings they ran with.
    if (agent.archivedAt) throw new ValidationError([{ path: ['id'], message: 'This agent is archived: restore it to edit it' }]);
    if (await projectArchived(tx, agent.projectId)) throw ValidationError.field('id', ARCHIVED_PROJECT.editAgent);
    const f = fields(ctx.providers);
    const partial = (raw ?? {}) as { primary?: { provider?: string; model?: string } };
    // Changing only the model keeps the provider (and vice versa); the pair is validated together.
    if (partial.primary) partial.primary = { provider: partial.primary.provider ?? agent.provider, model: partial.primary.model ?? agent.model };
    const input = parseAgentInput(
      z.object({
        name: f.name.nullish(),
        description: f.description.nullish(),
        systemPrompt: f.systemPrompt.nullish(),
        temperature: f.temperature.optional(),
        maxOutputTokens: f.maxOutputTokens.nullish(),
        fallbackChain: f.fallbackChain.nullish(),
        primary: modelRef(ctx.providers).nullish(),
      }),
      raw,
    );
    const next = {
      name: input.name ?? agent.name,
      description: input.description ?? agent.description,
      provider: input.primary?.provider ?? agent.provider,
      model: input.primary?.model ?? agent.model,
      systemPrompt: input.systemPrompt ?? agent.systemPrompt,
      temperature: input.temperature !== undefined ? input.temperature : agent.temperature,
      maxOutputTokens: input.maxOutputTokens ?? agent.maxOutputTokens,
      fallbackChain: input.fallbackChain ?? (agent.fallbackChain as ModelChoice[]),
    };
    const changes = agentChanges(agent, next);
    // Checked when the model or the chain is set, the output limit when it or a model it must fit changes (a
    // stored agent is not re-judged on a rename, nor when the form sends its settings unchanged).
    const limitMoved = ['maxOutputTokens', 'provider', 'model', 'fallbackChain'].some((key) => key in changes);
    checkModels(ctx.providers, { maxOutputTokens: next.maxOutputTokens, primary: next, chain: next.fallbackChain }, { chain: Boolean(input.primary || input.fallbackChain), limit: limitMoved });
    if (Object.keys(changes).length === 0) return agent;
    const data = Object.fromEntries(Object.keys(changes).map((key) => [key, next[key as keyof typeof next]])) as Prisma.AgentUpdateInput;
    const updated = await tx.agent.update({ where: { id: agent.id }, data });
    await audit(tx, { organizationId: agent.organizationId, actorId: ctx.viewer!.userId, action: 'agent.updated', targetType: 'Agent', targetId: agent.id, metadata: { name: updated.name, changes }, ip: ctx.ip });
    return updated;
  });
}

type ModelChoice = { provider: string; model: string };
type AgentSettings = Pick<Agent, 'name' | 'description' | 'provider' | 'model' | 'systemPrompt' | 'temperature' | 'maxOutputTokens'> & {
  fallbackChain: ModelChoice[];
};

/**
 * What an update changes, for the audit log: `{ from, to }` per changed setting; the system prompt and
 * the description only say that they changed, so their text never lands in the log.
 */
function agentChanges(before: Agent, after: AgentSettings): Record<string, unknown> {
  const changes: Record<string, unknown> = {};
  for (const key of ['name', 'provider', 'model', 'temperature', 'maxOutputTokens'] as const) {
    if (before[key] !== after[key]) changes[key] = { from: before[key], to: after[key] };
  }
  for (const key of ['description', 'systemPrompt'] as const) {
    if (before[key] !== after[key]) changes[key] = { changed: true };
  }
  const chain = (c: ModelChoice[]) => c.map(({ provider, model }) => ({ provider, model }));
  const from = chain(before.fallbackChain as ModelChoice[]);
  const to = chain(after.fallbackChain);
  if (JSON.stringify(from) !== JSON.stringify(to)) changes.fallbackChain = { from, to };
  return changes;
}

/** Brings an archived agent back: it can be run and edited again (same permission as archiving). */
export async function restoreAgent(ctx: Context, agentId: string) {
  const agent = await loadAgent(ctx, agentId);
  await authorize(ctx, agent.organizationId, 'agent.archive', 'Agent');
  if (!agent.archivedAt) return agent;
  return ctx.prisma.$transaction(async (tx) => {
    // Only while still archived: of two restores at once, the second changes and audits nothing.
    const { count } = await tx.agent.updateMany({ where: { id: agent.id, archivedAt: { not: null } }, data: { archivedAt: null } });
    const restored = await tx.agent.findUniqueOrThrow({ where: { id: agent.id } });
    if (count === 0) return restored;
    await audit(tx, { organizationId: agent.organizationId, actorId: ctx.viewer!.userId, action: 'agent.restored', targetType: 'Agent', targetId: agent.id, metadata: { name: agent.name }, ip: ctx.ip });
    return restored;
  });
}

export async function archiveAgent(ctx: Context, agentId: string) {
  const agent = await loadAgent(ctx, agentId);
  await authorize(ctx, agent.organizationId, 'agent.archive', 'Agent');
  // Archiving an archived agent changes nothing and audits nothing (as restoring one that is not).
  if (agent.archivedAt) return agent;
  return ctx.prisma.$transaction(async (tx) => {
    // Only while not archived yet: of two archives at once, the second changes and audits nothing.
    const { count } = await tx.agent.updateMany({ where: { id: agent.id, archivedAt: null }, data: { archivedAt: new Date() } });
    const archived = await tx.agent.findUniqueOrThrow({ where: { id: agent.id } });
    if (count === 0) return archived;
    await audit(tx, { organizationId: agent.organizationId, actorId: ctx.viewer!.userId, action: 'agent.archived', targetType: 'Agent', targetId: agent.id, metadata: { name: agent.name }, ip: ctx.ip });
    return archived;
  });
}
