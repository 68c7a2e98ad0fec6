// Writes docs/permissions.md from the permission table and the mutation map in
// api/src/modules/permissions.ts, so the written-down table can never drift from the enforced one.
//
//   node --import tsx scripts/permissions-doc.ts
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Role } from '../api/src/_generated/prisma/enums.js';
import { MAX_PENDING_INVITATIONS } from '../api/src/modules/orgs/invitations.service.js';
import {
  ACTION_WORDS,
  MUTATION_PERMISSIONS,
  PERMISSIONS,
  can,
  isAccountRule,
  type AccountRule,
  type Action,
  type MutationName,
} from '../api/src/modules/permissions.js';
import { ROLE_RANK } from '../api/src/schema/auth.js';

export const docPath = resolve(fileURLToPath(new URL('..', import.meta.url)), 'docs/permissions.md');

const ROLES = (Object.keys(ROLE_RANK) as Role[]).sort((a, b) => ROLE_RANK[b] - ROLE_RANK[a]);

const ACCOUNT_RULES: Record<AccountRule, string> = {
  anyone: 'anyone, signed in or not',
  signedIn: 'any signed-in account, whatever its organizations',
};

const code = (s: string) => `\`${s}\``;
const row = (cells: string[]) => `| ${cells.join(' | ')} |`;

function mutationsFor(action: Action) {
  return (Object.keys(MUTATION_PERMISSIONS) as MutationName[]).filter((m) => MUTATION_PERMISSIONS[m] === action);
}

function actionTable() {
  const lines = [
    row(['Action', 'Allows', 'Mutations', ...ROLES]),
    row(['---', '---', '---', ...ROLES.map(() => ':-:')]),
  ];
  for (const action of Object.keys(PERMISSIONS) as Action[]) {
    const mutations = mutationsFor(action).map(code).join(', ');
    lines.push(row([code(action), ACTION_WORDS[action], mutations, ...ROLES.map((r) => (can(r, action) ? '✓' : '—'))]));
  }
  return lines.join('\n');
}

function accountTable() {
  const lines = [row(['Mutation', 'Who may call it']), row(['---', '---'])];
  for (const [mutation, rule] of Object.entries(MUTATION_PERMISSIONS)) {
    if (isAccountRule(rule)) lines.push(row([code(mutation), ACCOUNT_RULES[rule]]));
  }
  return lines.join('\n');
}

export function renderPermissionsDoc() {
  return `# Permissions

<!-- Generated from api/src/modules/permissions.ts by \`node --import tsx scripts/permissions-doc.ts\`. Do not edit by hand: a test fails when this file is stale. -->

Every person has one role in each organization they belong to: ${ROLES.join(' > ')}.
A role may do everything the roles after it may do. The table below is the single source of truth:
the services enforce it, the \`viewerCan…\` fields on Organization, Project, Agent, Membership and Run
report it to the UI, and \`api/src/modules/permissions.test.ts\` runs every mutation as every role against it.

## Organization actions

${actionTable()}

Actions with no mutation listed guard queries (a non-member never sees the organization's objects) or
features whose mutations do not exist yet.

## Account mutations

These act on the caller's own account and need no role in any organization.

${accountTable()}

## How a refusal looks

- Not signed in: \`UnauthenticatedError\`, whatever the input (queries that look up one object return null).
- Signed in but not a member of the organization the input points into: \`NotFoundError\`, exactly as if
  the id or slug did not exist (same type, same message), so ids cannot be probed across organizations.
  Malformed ids and ids of another type are \`NotFoundError\` too; queries such as \`project(id)\` return null.
  A list's filter is the exception: a malformed id there (\`project.runs(filter: { agentId })\`,
  \`auditLogs(filter: { actorId })\`) is a \`ValidationError\` naming \`filter.<field>\`, and a well-formed id of
  something missing or of another organization matches nothing (an empty page), alike.
- A member whose role is too low: \`ForbiddenError\`, and an \`access.denied\` row in the organization's audit
  log naming the attempted action and the role.
- Subscriptions (\`runEvents\`, \`projectRunUpdates\`) need \`run.read\` and answer a non-member's or a
  malformed id with the same "not found" error as a missing one.

## Special rules

- **Nobody raises anyone above their own role.** \`inviteMember\` and \`updateMemberRole\` may only grant a role
  at most the caller's own, and \`revokeInvitation\`, \`updateMemberRole\` and \`removeMember\` may only touch an
  invitation or a member whose role is at most the caller's own. An ADMIN can therefore grant ADMIN but not OWNER, and cannot change or remove
  an OWNER. A refusal is a \`ForbiddenError\` with an \`access.denied\` audit row.
- **An organization always keeps at least one OWNER.** The last OWNER can neither demote nor remove
  themselves (\`ValidationError\`); with two owners, either may step down or leave. The check runs inside the
  change's transaction with the organization row locked, so two owners leaving at once cannot both succeed.
- **Invitations tell nobody who has an account.** \`inviteMember\` answers alike whatever the email; the
  invitation is accepted through its secret link (stored hashed, one use, 7 days) by an account signed in
  with the invited email, whatever its role elsewhere (\`acceptInvitation\` needs only a signed-in account).
  An organization holds at most ${MAX_PENDING_INVITATIONS} pending invitations; the next \`inviteMember\` is a \`ConflictError\`
  until one is accepted, revoked or expires (inviting an email that is already pending replaces its
  invitation and is always allowed).
- **An invitation offers only what its sender may still grant.** When its sender leaves, is removed or
  gets a lower role, their pending invitations they could no longer send are revoked in the same
  transaction (an audit row \`member.invitation_revoked\` each, with the reason); \`acceptInvitation\` checks
  the sender again under the organization's lock and refuses with a \`ForbiddenError\`, changing nothing.
  Otherwise a removed admin could come back as an admin through a link sent before.
- **Anyone may leave.** \`removeMember\` on one's own membership needs no role, whatever the table says
  about \`member.remove\` (except for the last OWNER, above).
- **Deleting an organization needs its slug typed again** (\`deleteOrganization(input: { id, confirmSlug })\`);
  a wrong slug is a \`ValidationError\` and deletes nothing.
- **API tokens are personal.** \`revokeApiToken\` only finds the caller's own tokens; another person's token
  is a \`NotFoundError\`.
- **A cancel is audited once.** The \`cancelRun\` that changes the run (it ends a queued run, or is the first to
  ask a running one to stop, the run's \`cancelledBy\`) writes one \`run.cancelled\` row, with the run, its agent
  and the status it was in; asking again, several people at once, or cancelling a finished run writes none.
`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(docPath, renderPermissionsDoc());
  console.log('docs/permissions.md written');
}
