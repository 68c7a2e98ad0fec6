import { z } from 'zod';
import type { Prisma } from '../../_generated/prisma/client.js';
import type { Context } from '../../context.js';
import { NotFoundError } from '../../lib/errors.js';
import { parseInput } from '../../lib/validate.js';
import { PROVIDER_IDS, type ProviderId, type ProviderRegistry } from '../../providers/index.js';
import { audit } from '../audit/audit.service.js';
import { authorize, requireViewer } from '../authorize.js';
import { loadProject } from '../projects/projects.service.js';

const providerId = z.enum(PROVIDER_IDS as [ProviderId, ...ProviderId[]]);

/** Provider + model must name a model the hub knows (and can price). */
function modelRef(registry: ProviderRegistry) {
  return z.object({ provider: providerId, model: z.string().trim().min(1).max(100) }).superRefine((v, ctx) => {
    const models = registry.get(v.provider).models.map((m) => m.id);
    if (!models.includes(v.model)) {
      ctx.addIssue({ code: 'custom', path: ['model'], message: `Unknown ${v.provider} model; choose one of: ${models.join(', ')}` });
    }
  });
}

const fields = (registry: ProviderRegistry) => ({
  name: z.string().trim().min(1, 'Enter a name').max(100),
  description: z.string().trim().max(2000),
  systemPrompt: z.string().max(50_000, 'Keep the system prompt under 50,000 characters'),
  temperature: z.number().min(0).max(2).nullable(),
  maxOutputTokens: z.number().int().min(1).max(200_000),
  fallbackChain: z.array(modelRef(registry)).max(5, 'At most 5 fallbacks'),
});

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
  const input = parseInput(
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
  return ctx.prisma.$transaction(async (tx) => {
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
        maxOutputTokens: input.maxOutputTokens ?? 1024,
        fallbackChain: (input.fallbackChain ?? []) as Prisma.InputJsonValue,
      },
    });
    await audit(tx, { organizationId: project.organizationId, actorId: ctx.viewer!.userId, action: 'agent.created', targetType: 'Agent', targetId: agent.id, metadata: { name: agent.name, provider: agent.provider, model: agent.model }, ip: ctx.ip });
    return agent;
  });
}

export async function updateAgent(ctx: Context, agentId: string, raw: unknown) {
  const agent = await loadAgent(ctx, agentId);
  await authorize(ctx, agent.organizationId, 'agent.update', 'Agent');
  const f = fields(ctx.providers);
  const partial = (raw ?? {}) as { primary?: { provider?: string; model?: string } };
  // Changing only the model keeps the provider (and vice versa); the pair is validated together.
  if (partial.primary) partial.primary = { provider: partial.primary.provider ?? agent.provider, model: partial.primary.model ?? agent.model };
  const input = parseInput(
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
  const data: Prisma.AgentUpdateInput = {};
  if (input.name != null) data.name = input.name;
  if (input.description != null) data.description = input.description;
  if (input.systemPrompt != null) data.systemPrompt = input.systemPrompt;
  if (input.temperature !== undefined) data.temperature = input.temperature;
  if (input.maxOutputTokens != null) data.maxOutputTokens = input.maxOutputTokens;
  if (input.fallbackChain != null) data.fallbackChain = input.fallbackChain as Prisma.InputJsonValue;
  if (input.primary) {
    data.provider = input.primary.provider;
    data.model = input.primary.model;
  }
  return ctx.prisma.agent.update({ where: { id: agent.id }, data });
}

export async function archiveAgent(ctx: Context, agentId: string) {
  const agent = await loadAgent(ctx, agentId);
  await authorize(ctx, agent.organizationId, 'agent.archive', 'Agent');
  return ctx.prisma.$transaction(async (tx) => {
    const archived = await tx.agent.update({ where: { id: agent.id }, data: { archivedAt: agent.archivedAt ?? new Date() } });
    await audit(tx, { organizationId: agent.organizationId, actorId: ctx.viewer!.userId, action: 'agent.archived', targetType: 'Agent', targetId: agent.id, ip: ctx.ip });
    return archived;
  });
}
