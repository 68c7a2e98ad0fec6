import type { PrismaClient } from '../../lib/db.js';
import type { EventBus } from '../../lib/pubsub.js';
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
  /** When the credential stops being valid (null: never); a WebSocket connection is checked again then. */
  expiresAt?: Date | null;
}

/** What a request or connection presents: a bearer token, when there is one, is used instead of the cookie. */
export interface Credentials {
  bearer: string | null;
  sessionToken: string | null;
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

/**
 * Where changes of access are announced, so that every process acts on them at once: its token cache
 * forgets a revoked token, and open WebSocket connections the change affects are closed (see accessEnds).
 */
export const ACCESS_CHANNEL = 'auth:access';
export type AccessChange =
  /** An API token was revoked. */
  | { token: string }
  /** Sessions ended (sign-out). */
  | { sessions: string[] }
  /** Every session of a user ended (sign-out everywhere). */
  | { userSessions: string }
  /** A user left or was removed from an organization, or their role in it changed. */
  | { member: string; organization: string };

/** Close code for a connection whose access changed: not fatal, so clients reconnect and are authorized afresh. */
export const ACCESS_CHANGED_CLOSE = 4205;

/**
 * How a connection acting for `viewer` must end after `change`, or null when it is unaffected. Revoked
 * credentials end it for good (4401, as a bad token at connection time); a removed or changed membership
 * makes it reconnect, so that every subscription it re-opens is authorized, and renders, with the new role
 * (after a removal, the ones in that organization fail).
 */
export function accessEnds(viewer: Viewer, change: AccessChange): { code: number; reason: string } | null {
  if ('token' in change) return viewer.tokenId === change.token ? { code: 4401, reason: 'API token revoked' } : null;
  if ('sessions' in change) return viewer.sessionId && change.sessions.includes(viewer.sessionId) ? { code: 4401, reason: 'Signed out' } : null;
  if ('userSessions' in change) return viewer.via === 'session' && viewer.userId === change.userSessions ? { code: 4401, reason: 'Signed out' } : null;
  return viewer.userId === change.member ? { code: ACCESS_CHANGED_CLOSE, reason: 'Access changed; reconnect' } : null;
}

/**
 * API tokens verified recently, by hash: integrators send one with every request, and looking it up was
 * the largest part of a request's own time. A revoked token leaves every process's cache at once (it is
 * announced on the bus; a bus that reconnected may have missed announcements, so it empties the cache),
 * an entry never outlives its token's expiry, and `ttlMs` bounds everything else (e.g. a renamed user).
 */
export class TokenCache {
  private readonly byHash = new Map<string, { viewer: Viewer; until: number }>();
  /** Bumped by every revocation: a lookup that started before one does not fill the cache. */
  private generation = 0;
  private readonly subscription: Promise<() => Promise<void>>;

  constructor(
    bus: EventBus,
    private readonly ttlMs = 10_000,
    private readonly max = 10_000,
  ) {
    this.subscription = bus.subscribe(ACCESS_CHANNEL, (m) => {
      const change = m as AccessChange | null;
      if (change === null) this.forget(null);
      else if ('token' in change) this.forget(change.token);
    });
  }

  get(hash: string, now: number): Viewer | null {
    const entry = this.byHash.get(hash);
    if (!entry) return null;
    if (entry.until > now) return entry.viewer;
    this.byHash.delete(hash);
    return null;
  }

  /** A ticket to `set` with, taken before the lookup. */
  ticket(): number {
    return this.generation;
  }

  set(ticket: number, hash: string, viewer: Viewer, tokenExpiresAt: Date | null, now: number) {
    if (ticket !== this.generation) return;
    if (this.byHash.size >= this.max) this.byHash.delete(this.byHash.keys().next().value!);
    this.byHash.set(hash, { viewer, until: Math.min(now + this.ttlMs, tokenExpiresAt?.getTime() ?? Infinity) });
  }

  /** Drops a revoked token, or everything (null). */
  forget(tokenId: string | null) {
    this.generation++;
    if (tokenId === null) return this.byHash.clear();
    for (const [hash, entry] of this.byHash) if (entry.viewer.tokenId === tokenId) this.byHash.delete(hash);
  }

  async close() {
    await (await this.subscription)();
  }
}

/** Resolves who is calling from a bearer token or a session cookie. Bad credentials throw; none gives null. */
export async function resolveViewer(
  prisma: PrismaClient,
  creds: Credentials,
  now = new Date(),
  tokens?: TokenCache,
): Promise<Viewer | null> {
  if (creds.bearer) {
    if (!creds.bearer.startsWith(API_TOKEN_PREFIX)) throw new InvalidCredentialsError('Invalid API token');
    const hash = sha256(creds.bearer);
    const cached = tokens?.get(hash, now.getTime());
    if (cached) return cached;
    const ticket = tokens?.ticket();
    // One round trip for the token and its user (this runs on every API request).
    const [token] = await prisma.$queryRaw<
      { id: string; userId: string; email: string; name: string; lastUsedAt: Date | null; expiresAt: Date | null; revokedAt: Date | null }[]
    >`SELECT t.id, t."userId", u.email, u.name, t."lastUsedAt", t."expiresAt", t."revokedAt"
      FROM "ApiToken" t JOIN "User" u ON u.id = t."userId"
      WHERE t."tokenHash" = ${hash}`;
    if (!token || token.revokedAt || (token.expiresAt && token.expiresAt <= now)) {
      throw new InvalidCredentialsError('Invalid, expired or revoked API token');
    }
    // Writing last-used at most once a minute keeps hot tokens from turning every read into a write.
    if (!token.lastUsedAt || now.getTime() - token.lastUsedAt.getTime() > 60_000) {
      await prisma.apiToken.update({ where: { id: token.id }, data: { lastUsedAt: now } });
    }
    const viewer: Viewer = { userId: token.userId, email: token.email, name: token.name, via: 'token', tokenId: token.id, expiresAt: token.expiresAt };
    tokens?.set(ticket!, hash, viewer, token.expiresAt, now.getTime());
    return viewer;
  }
  if (creds.sessionToken) {
    const session = await prisma.session.findUnique({
      where: { tokenHash: sha256(creds.sessionToken) },
      include: { user: true },
    });
    if (!session || session.expiresAt <= now) throw new InvalidCredentialsError('Session expired; sign in again');
    const absoluteEnd = session.createdAt.getTime() + SESSION_ABSOLUTE_MS;
    const slid = new Date(Math.min(now.getTime() + SESSION_IDLE_MS, absoluteEnd));
    const extended = slid.getTime() - session.expiresAt.getTime() > 3600_000;
    if (extended) {
      await prisma.session.update({ where: { id: session.id }, data: { expiresAt: slid, lastSeenAt: now } });
    }
    return {
      userId: session.userId,
      email: session.user.email,
      name: session.user.name,
      via: 'session',
      sessionId: session.id,
      expiresAt: extended ? slid : session.expiresAt,
    };
  }
  return null;
}
