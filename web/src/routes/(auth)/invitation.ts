/** The invitation token when the auth page was reached from an invitation link (`?next=/invitations/<token>`). */
export function invitationToken(url: URL): string | undefined {
  const next = url.searchParams.get('next') ?? '';
  return /^\/invitations\/([^/?#]+)$/.exec(next)?.[1];
}
