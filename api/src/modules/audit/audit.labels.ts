import type { AuditLog, Prisma } from '../../_generated/prisma/client.js';
import type { PrismaClient } from '../../lib/db.js';
import { isUuid } from '../../lib/ids.js';

type Row = Pick<AuditLog, 'organizationId' | 'targetType' | 'targetId' | 'metadata'>;
type Db = Pick<PrismaClient, 'project' | 'agent' | 'agentRun' | 'membership' | 'user' | 'organization'>;

const fields = (metadata: Prisma.JsonValue): Record<string, unknown> =>
  metadata && typeof metadata === 'object' && !Array.isArray(metadata) ? metadata : {};
const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
const person = (u: { name: string; email: string }) => `${u.name} (${u.email})`;

/**
 * What each row's target is called, for a person reading the log: the member's name and email, the
 * invitee's email, the project's or agent's name, the budget's period and scope, the run's agent. Current
 * names where the object is still there (looked up within the row's organization), else what the row's
 * metadata recorded; null when neither says. One query per kind of target, whatever the number of rows.
 */
export async function labelTargets(db: Db, rows: Row[]): Promise<(string | null)[]> {
  const ids = { project: new Set<string>(), agent: new Set<string>(), run: new Set<string>(), membership: new Set<string>(), user: new Set<string>(), org: new Set<string>() };
  const want = (set: Set<string>, id: unknown) => isUuid(id) && set.add(id);
  for (const row of rows) {
    const meta = fields(row.metadata);
    switch (row.targetType) {
      case 'Project':
        want(ids.project, row.targetId);
        break;
      case 'Agent':
        want(ids.agent, row.targetId);
        break;
      case 'Run':
        want(ids.run, row.targetId);
        break;
      case 'Budget':
        want(ids.project, meta.projectId);
        break;
      case 'Membership':
        if (!want(ids.user, meta.userId)) want(ids.membership, row.targetId);
        break;
      case 'User':
        want(ids.user, row.targetId);
        break;
      case 'Organization':
        if (row.targetId === row.organizationId) want(ids.org, row.targetId);
        break;
    }
  }
  const orgs = [...new Set(rows.map((r) => r.organizationId).filter((id): id is string => id !== null))];
  const inOrgs = (set: Set<string>) => ({ id: { in: [...set] }, organizationId: { in: orgs } });
  const none = Promise.resolve([]);
  const [projects, agents, runs, memberships, users, organizations] = await Promise.all([
    ids.project.size ? db.project.findMany({ where: inOrgs(ids.project), select: { id: true, organizationId: true, name: true } }) : none,
    ids.agent.size ? db.agent.findMany({ where: inOrgs(ids.agent), select: { id: true, organizationId: true, name: true } }) : none,
    ids.run.size ? db.agentRun.findMany({ where: inOrgs(ids.run), select: { id: true, organizationId: true, agent: { select: { name: true } } } }) : none,
    ids.membership.size
      ? db.membership.findMany({ where: inOrgs(ids.membership), select: { id: true, organizationId: true, user: { select: { name: true, email: true } } } })
      : none,
    ids.user.size ? db.user.findMany({ where: { id: { in: [...ids.user] } }, select: { id: true, name: true, email: true } }) : none,
    ids.org.size ? db.organization.findMany({ where: { id: { in: [...ids.org] } }, select: { id: true, name: true } }) : none,
  ]);
  // Keyed by organization too: a row only ever names what belongs to its own organization.
  const scoped = <T extends { id: string; organizationId: string }>(list: T[]) => new Map(list.map((x) => [`${x.organizationId}/${x.id}`, x]));
  const byProject = scoped(projects);
  const byAgent = scoped(agents);
  const byRun = scoped(runs);
  const byMembership = scoped(memberships);
  const byUser = new Map(users.map((u) => [u.id, u]));
  const byOrg = new Map(organizations.map((o) => [o.id, o]));

  return rows.map((row) => {
    const meta = fields(row.metadata);
    const key = `${row.organizationId}/${row.targetId}`;
    switch (row.targetType) {
      case 'Project':
        return byProject.get(key)?.name ?? text(meta.name) ?? null;
      case 'Agent':
        return byAgent.get(key)?.name ?? text(meta.name) ?? null;
      case 'Run': {
        const agent = byRun.get(key)?.agent.name ?? text(meta.agentName);
        return agent ? `Run of ${agent}` : null;
      }
      case 'Budget': {
        const period = meta.period === 'DAILY' ? 'Daily' : meta.period === 'MONTHLY' ? 'Monthly' : undefined;
        if (!period) return null;
        const projectId = text(meta.projectId);
        if (!projectId) return `${period} budget, Organization-wide`;
        const project = byProject.get(`${row.organizationId}/${projectId}`)?.name;
        return project ? `${period} budget, ${project}` : `${period} budget of a project`;
      }
      case 'Membership': {
        const user = byUser.get(text(meta.userId) ?? '') ?? byMembership.get(key)?.user;
        return user ? person(user) : (text(meta.email) ?? null);
      }
      case 'Invitation':
        return text(meta.email) ?? null;
      case 'User': {
        const user = byUser.get(row.targetId ?? '');
        return user ? person(user) : null;
      }
      case 'Organization':
        return byOrg.get(row.targetId ?? '')?.name ?? text(meta.name) ?? null;
      case 'ApiToken':
        return text(meta.name) ?? null;
      default:
        return null;
    }
  });
}

/**
 * `labelTargets` for rows resolved one field at a time: the rows asked for while a response is being
 * built are labelled together, once the resolvers running now have all asked.
 */
export class TargetLabels {
  private queue: { row: Row; resolve(label: string | null): void; reject(err: unknown): void }[] = [];

  constructor(private readonly db: Db) {}

  label(row: Row): Promise<string | null> {
    return new Promise((resolve, reject) => {
      if (this.queue.push({ row, resolve, reject }) === 1) setImmediate(() => void this.flush());
    });
  }

  private async flush() {
    const batch = this.queue;
    this.queue = [];
    try {
      const labels = await labelTargets(this.db, batch.map((b) => b.row));
      batch.forEach((b, i) => b.resolve(labels[i]!));
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  }
}
