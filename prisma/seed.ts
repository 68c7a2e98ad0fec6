// Demo data for `pnpm start` only: one user, one organization, one project, two offline agents.
import type { PrismaClient } from '../api/src/lib/db.js';
import { hashPassword } from '../api/src/modules/auth/password.js';

export const DEMO = { email: 'demo@example.com', password: 'demo-password', orgSlug: 'demo' } as const;

/** Seeds once: does nothing when any user exists, so a restart never duplicates or overwrites data. */
export async function seedDemo(prisma: PrismaClient): Promise<boolean> {
  if ((await prisma.user.count()) > 0) return false;
  const passwordHash = await hashPassword(DEMO.password);
  await prisma.$transaction(async (tx) => {
    const user = await tx.user.create({ data: { email: DEMO.email, name: 'Demo User', passwordHash } });
    const org = await tx.organization.create({
      data: { slug: DEMO.orgSlug, name: 'Demo Organization', memberships: { create: { userId: user.id, role: 'OWNER' } } },
    });
    const project = await tx.project.create({
      data: { organizationId: org.id, slug: 'playground', name: 'Playground', description: 'Try agents without any API key.' },
    });
    await tx.agent.createMany({
      data: [
        {
          organizationId: org.id,
          projectId: project.id,
          name: 'Researcher',
          description: 'Breaks a question down and lists what to find out.',
          provider: 'OFFLINE',
          model: 'offline-large',
          systemPrompt: 'You are a careful researcher. Outline the key questions and findings.',
          maxOutputTokens: 400,
        },
        {
          organizationId: org.id,
          projectId: project.id,
          name: 'Writer',
          description: 'Turns notes into a short, clear summary.',
          provider: 'OFFLINE',
          model: 'offline-small',
          systemPrompt: 'You are a concise technical writer.',
          maxOutputTokens: 300,
        },
      ],
    });
    await tx.auditLog.create({
      data: { organizationId: org.id, actorId: user.id, action: 'org.created', targetType: 'Organization', targetId: org.id, metadata: { seed: true } },
    });
  });
  return true;
}
