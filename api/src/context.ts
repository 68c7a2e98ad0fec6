import { randomUUID } from 'node:crypto';
import type { Response } from 'express';
import type { Role } from './_generated/prisma/enums.js';
import type { Runtime } from './runtime.js';
import { bearerFrom, cookieValue, resolveViewer, SESSION_COOKIE, type Credentials, type Viewer } from './modules/auth/viewer.js';

export interface Context extends Runtime {
  requestId: string;
  ip: string | null;
  transport: 'http' | 'ws';
  viewer: Viewer | null;
  /** The viewer's role in an organization, or null when not a member (memoised per request). */
  roleIn(organizationId: string): Promise<Role | null>;
  /** Remembers a role read by a query of its own (so `roleIn` does not ask the database again). */
  knowRole(organizationId: string, role: Role | null): void;
  /** HTTP only: lets auth mutations set and clear the session cookie. */
  res?: Response;
}

export interface ContextInput {
  transport: 'http' | 'ws';
  headers: Record<string, string | string[] | undefined>;
  ip: string | null;
  /** graphql-ws connectionParams; `authorization` or `token` there authenticates a socket. */
  connectionParams?: Record<string, unknown>;
  requestId?: string;
  res?: Response;
}

const header = (h: ContextInput['headers'], name: string) => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * The credentials a request or connection presents, the one place that decides it (the WebSocket Origin
 * check asks it whether the cookie would be used). An empty connection parameter counts as absent; a
 * malformed credential throws InvalidCredentialsError.
 */
export function credentialsFrom(input: Pick<ContextInput, 'headers' | 'connectionParams'>): Credentials {
  const params = input.connectionParams ?? {};
  const paramAuth =
    typeof params.authorization === 'string' && params.authorization !== ''
      ? params.authorization
      : typeof params.token === 'string' && params.token !== ''
        ? `Bearer ${params.token}`
        : undefined;
  return {
    bearer: bearerFrom(paramAuth ?? header(input.headers, 'authorization')),
    sessionToken: cookieValue(header(input.headers, 'cookie'), SESSION_COOKIE),
  };
}

/** ONE context factory for HTTP and WebSocket: same viewer resolution, fresh per-request caches. */
export async function createContext(runtime: Runtime, input: ContextInput): Promise<Context> {
  const viewer = await resolveViewer(runtime.prisma, credentialsFrom(input), new Date(), runtime.tokens);
  return contextFor(runtime, viewer, input);
}

/**
 * A context for one operation of an already authenticated caller, with its own role cache: each operation
 * of a WebSocket gets one, so a role changed meanwhile (a demotion) applies to the socket's next operation
 * (a running subscription keeps its context: the change closes its connection, see accessEnds).
 */
export function contextFor(runtime: Runtime, viewer: Viewer | null, input: Pick<ContextInput, 'transport' | 'ip' | 'requestId' | 'res'>): Context {
  const roles = new Map<string, Promise<Role | null>>();
  return {
    ...runtime,
    requestId: input.requestId ?? randomUUID(),
    ip: input.ip,
    transport: input.transport,
    viewer,
    res: input.res,
    knowRole(organizationId, role) {
      if (viewer) roles.set(organizationId, Promise.resolve(role));
    },
    roleIn(organizationId) {
      if (!viewer) return Promise.resolve(null);
      let role = roles.get(organizationId);
      if (!role) {
        role = runtime.prisma.membership
          .findUnique({ where: { organizationId_userId: { organizationId, userId: viewer.userId } } })
          .then((m) => m?.role ?? null);
        roles.set(organizationId, role);
      }
      return role;
    },
  };
}
