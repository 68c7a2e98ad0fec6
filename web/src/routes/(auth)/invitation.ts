import type { Client } from '@urql/svelte';
import { AuthInvitationDocument, type AuthInvitationQuery } from '$lib/graphql/_generated/graphql';

/** The invitation token when the auth page was reached from an invitation link (`?next=/invitations/<token>`). */
export function invitationToken(url: URL): string | undefined {
  const next = url.searchParams.get('next') ?? '';
  return /^\/invitations\/([^/?#]+)$/.exec(next)?.[1];
}

/** The pending invitation an auth page was reached from, as its link shows it; null without one (or a dead link). */
export async function invitationFrom(client: Client, url: URL): Promise<NonNullable<AuthInvitationQuery['invitation']> | null> {
  const token = invitationToken(url);
  if (!token) return null;
  const result = await client.query(AuthInvitationDocument, { token }).toPromise();
  return result.data?.invitation ?? null;
}
