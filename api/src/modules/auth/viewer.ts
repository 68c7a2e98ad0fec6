import type { PrismaClient } from '../../lib/db.js';
import { API_TOKEN_PREFIX, sha256 } from '../../lib/tokens.js';

export const SESSION_COOKIE = 'hub_session';
/** Sessions slide: each use extends them by this much, never past the absolute limit. */
export const SESSION_IDLE_MS = 7 * 24 * 3600_000;
export const SESSION_ABSOLUTE_MS = 30 * 24 * 3600_000;

export interface Viewer {
  userId: string;
  email: string;
  name: string;
  via: 'session' | 'token';
  sessionId?: string;
  tokenId?: string;
}

/** Credentials were presented but are not valid: the transport answers 401 / close 4401, never anonymous. */
export class InvalidCredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCredentialsError';
  }
}

export function bearerFrom(header: string | undefined | null): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw new InvalidCredentialsError('Authorization header must be "Bearer <token>"');
  return m[1]!;
}

export function cookieValue(cookieHeader: string | undefined | null, name: string): string | null {
  if (!cookieHeader) return null;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return null;
}

/** Resolves who is calling from a bearer token or a session cookie. Bad credentials throw; none gives null. */
export async function resolveViewer(
  prisma: PrismaClient,
  creds: { bearer: string | null; sessionToken: string | null },
  now = new Date(),
): Promise<Viewer | null> {
  if (creds.bearer) {
    if (!creds.bearer.startsWith(API_TOKEN_PREFIX)) throw new InvalidCredentialsError('Invalid API token');
    // One round trip for the token and its user (this runs on every API request).
    const [token] = await prisma.$queryRaw<
      { id: string; userId: string; email: string; name: string; lastUsedAt: Date | null; expiresAt: Date | null; revokedAt: Date | null }[]
    >`SELECT t.id, t."userId", u.email, u.name, t."lastUsedAt", t."expiresAt", t."revokedAt"
      FROM "ApiToken" t JOIN "User" u ON u.id = t."userId"
      WHERE t."tokenHash" = ${sha256(creds.bearer)}`;
    if (!token || token.revokedAt || (token.expiresAt && token.expiresAt <= now)) {
      throw new InvalidCredentialsError('Invalid, expired or revoked API token');
    }
    // Writing last-used at most once a minute keeps hot tokens from turning every read into a write.
    if (!token.lastUsedAt || now.getTime() - token.lastUsedAt.getTime() > 60_000) {
      await prisma.apiToken.update({ where: { id: token.id }, data: { lastUsedAt: now } });
    }
    return { userId: token.userId, email: token.email, name: token.name, via: 'token', tokenId: token.id };
  }
  if (creds.sessionToken) {
    const session = await prisma.session.findUnique({
      where: { tokenHash: sha256(creds.sessionToken) },
      include: { user: true },
    });
    if (!session || session.expiresAt <= now) throw new InvalidCredentialsError('Session expired; sign in again');
    const absoluteEnd = session.createdAt.getTime() + SESSION_ABSOLUTE_MS;
    const slid = new Date(Math.min(now.getTime() + SESSION_IDLE_MS, absoluteEnd));
    if (slid.getTime() - session.expiresAt.getTime() > 3600_000) {
      await prisma.session.update({ where: { id: session.id }, data: { expiresAt: slid, lastSeenAt: now } });
    }
    return {
      userId: session.userId,
      email: session.user.email,
      name: session.user.name,
      via: 'session',
      sessionId: session.id,
    };
  }
  return null;
}
