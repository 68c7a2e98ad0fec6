import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer, HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import cors from 'cors';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { GraphQLError, type ExecutionArgs, type GraphQLFormattedError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import helmet from 'helmet';
import { WebSocketServer, type WebSocket } from 'ws';
import { graphqlOverHttp } from './graphql-http.js';
import { contextFor, createContext, credentialsFrom, type Context } from './context.js';
import { AppError, ForbiddenError, isUnstorableText, NotFoundError, RateLimitedError, UnauthenticatedError, ValidationError } from './lib/errors.js';
import { NUL_MESSAGE } from './lib/validate.js';
import { auditLogExport } from './modules/audit/audit.export.js';
import {
  ACCESS_CHANGED_CLOSE,
  ACCESS_CHANNEL,
  accessEnds,
  InvalidCredentialsError,
  resolveViewer,
  type AccessChange,
  type Credentials,
  type Viewer,
} from './modules/auth/viewer.js';
import { checkHealth } from './modules/system/system.service.js';
import type { Runtime } from './runtime.js';
import { schema } from './schema/index.js';
import { LIMIT_RULES, PARSE_OPTIONS, prepareOperation, queryCostPlugin } from './schema/limits.js';
import { subscribeShared, type MessageSink } from './schema/shared-subscribe.js';

export interface HubServer {
  httpServer: Server;
  /** Base URL once listening, e.g. http://127.0.0.1:3000 */
  url: string;
  listen(port: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

const BODY_LIMIT = '1mb';
const BODY_LIMIT_BYTES = 1024 * 1024;
/** The same 1 MB bound for one graphql-ws message as for one HTTP body. */
const WS_MAX_PAYLOAD = 1024 * 1024;
/** Bytes a socket may have waiting to be sent before a subscription waits for it to drain. */
const WS_HIGH_WATER = 64 * 1024;
const SUGGESTION = / ?Did you mean(.+?)\?$/;
/**
 * Operations one WebSocket connection may have in progress at once: each running subscription holds its
 * resources and executes its selection again for every event, so one connection must not open thousands.
 */
export const MAX_OPERATIONS_PER_CONNECTION = 100;
/** Close code for a connection refused for being one too many (graphql-ws clients do not retry it). */
const TOO_MANY_CLOSE = 4429;
/** setTimeout's longest delay (about 24.8 days): a later expiry is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** An open WebSocket connection: who it acts for, and with what, checked again on every operation. */
interface Connection {
  creds: Credentials;
  viewer: Viewer | null;
  ip: string | null;
  /** Checks the credential again when it expires (see watchExpiry). */
  expiry?: NodeJS.Timeout;
}

/**
 * A page of another site may open a WebSocket to this server, and the browser sends the session cookie
 * with the handshake (cross-site WebSocket hijacking: the page would then act as the user). A connection
 * that would be authenticated by the cookie must come from a page of this server or of APP_ORIGIN; one
 * whose credentials include a token (which is then used instead) may come from anywhere, and one without
 * an Origin header is not from a browser page. `creds` are the ones the connection will be authenticated
 * with, so no shape of connection parameters can pass here and still be authenticated by the cookie.
 */
function cookieFromForeignPage(headers: Record<string, string | string[] | undefined>, creds: Credentials, appOrigin: string | undefined): boolean {
  const origin = headers.origin;
  if (typeof origin !== 'string' || !creds.sessionToken || creds.bearer) return false;
  let page: URL;
  try {
    page = new URL(origin);
  } catch {
    return true;
  }
  if (page.host === headers.host) return false;
  return !appOrigin || page.origin !== new URL(appOrigin).origin;
}

/** The errors of the HTTP edge, as the GraphQL error the client will read (status and headers in `http`). */
function edgeGraphQLError(err: unknown): unknown {
  if (err instanceof InvalidCredentialsError) {
    return new GraphQLError(err.message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
  }
  if (err instanceof RateLimitedError) {
    return new GraphQLError(err.message, {
      extensions: {
        code: err.code,
        retryAfterSeconds: err.retryAfterSeconds,
        http: { status: 429, headers: new HeaderMap([['retry-after', String(err.retryAfterSeconds)]]) },
      },
    });
  }
  return err;
}

/** Status, code and message for an error that ends a non-GraphQL request (body parsing, the export). */
function describeHttpError(err: unknown): { status: number; code: string; message: string; extra?: Record<string, unknown> } | null {
  const parserError = err as { type?: string; status?: number; expose?: boolean; message?: string };
  if (parserError.type === 'entity.parse.failed') {
    return { status: 400, code: 'BAD_REQUEST', message: `The request body is not valid JSON: ${parserError.message}` };
  }
  if (parserError.type === 'entity.too.large') {
    return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: `The request body is larger than the ${BODY_LIMIT} limit` };
  }
  if (parserError.expose && parserError.status && parserError.status >= 400 && parserError.status < 500) {
    return { status: parserError.status, code: 'BAD_REQUEST', message: parserError.message ?? 'Bad request' };
  }
  if (err instanceof InvalidCredentialsError || err instanceof UnauthenticatedError) return { status: 401, code: 'UNAUTHENTICATED', message: err.message };
  if (err instanceof ForbiddenError) return { status: 403, code: err.code, message: err.message };
  if (err instanceof NotFoundError) return { status: 404, code: err.code, message: err.message };
  if (err instanceof ValidationError) return { status: 400, code: err.code, message: err.message, extra: { issues: err.issues } };
  if (err instanceof RateLimitedError) {
    return { status: 429, code: err.code, message: err.message, extra: { retryAfterSeconds: err.retryAfterSeconds } };
  }
  return null;
}

/**
 * The caller's address as Express gives it for an HTTP request (`req.ip`) with the same `trust proxy`
 * setting, for a WebSocket upgrade, which Express never sees: the nearest address, in the order socket,
 * then X-Forwarded-For from right to left, that is not a trusted proxy. Behind a proxy, anonymous and
 * bad-credential budgets then fall on each client rather than on the proxy.
 */
function clientAddress(request: IncomingMessage, trusted: (addr: string, i: number) => boolean): string | null {
  const socketAddr = request.socket.remoteAddress;
  if (!socketAddr) return null;
  const header = request.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
    .reverse();
  const chain = [socketAddr, ...forwarded];
  for (let i = 0; i < chain.length - 1; i++) if (!trusted(chain[i]!, i)) return chain[i]!;
  return chain.at(-1)!;
}

/** Wires HTTP, Apollo and graphql-ws around the runtime; holds no business logic. */
export async function createServer(rt: Runtime, opts: { webHandler?: RequestHandler } = {}): Promise<HubServer> {
  const production = rt.config.NODE_ENV === 'production';
  const app = express();
  app.disable('x-powered-by');
  // GraphQL answers are POSTed and the caller's own, never revalidated: Express's default ETag would only
  // hash every response body (the UI's static files get theirs from their own handler).
  app.set('etag', false);
  app.set('trust proxy', 'loopback');
  // GraphQL's POSTs of JSON are answered before Express's router (see graphqlOverHttp); everything else goes through it.
  const httpServer = createHttpServer((req, res) => {
    if (!graphqlHttp(req, res)) app(req, res);
  });
  // Outlive the idle timeouts of load balancers and HTTP clients, so a reused keep-alive socket is never
  // closed by us at the moment a client sends on it (which surfaces as ECONNRESET).
  httpServer.keepAliveTimeout = 65_000;
  httpServer.headersTimeout = 66_000;

  /** One formatting for both transports: typed codes for domain errors; in production no internals and no schema hints. */
  const formatError = (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrapResolverError(error);
    // A validation failure thrown outside a typed union (e.g. a query's filter) still names its fields.
    if (original instanceof ValidationError) return { ...formatted, extensions: { ...formatted.extensions, issues: original.issues } };
    // Mutations refuse such text on its field (parseInput); this is any other argument that reached the database.
    if (isUnstorableText(original)) {
      return { message: NUL_MESSAGE, path: formatted.path, extensions: { code: 'VALIDATION_FAILED', issues: [{ path: [], message: NUL_MESSAGE }] } };
    }
    if (!production || original instanceof AppError) return formatted;
    const code = formatted.extensions?.code;
    if (code === 'INTERNAL_SERVER_ERROR' || code === undefined) {
      rt.logger.error({ err: original }, 'unhandled error');
      return { message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } };
    }
    return { ...formatted, message: formatted.message.replace(SUGGESTION, '') };
  };
  const formatWsError = (err: GraphQLError) => formatError(err.toJSON(), err);

  /**
   * Each HTTP request's charge to the caller's request budget, started with its context and awaited once
   * the operation is parsed and validated, before anything runs: the counter's round trip overlaps
   * Apollo's own work instead of preceding it.
   */
  const ADMISSION = Symbol('admission');
  type Admitted = Context & { [ADMISSION]?: Promise<void> };

  /** Authenticates an HTTP request and starts charging it to the caller's request budget. */
  async function httpContext(req: Request, res: Response): Promise<Context> {
    const ip = req.ip ?? null;
    let ctx: Context;
    try {
      ctx = await createContext(rt, { transport: 'http', headers: req.headers, ip, requestId: res.getHeader('x-request-id') as string, res });
    } catch (err) {
      // Guessing credentials draws on the anonymous budget of the caller's IP.
      if (err instanceof InvalidCredentialsError) await rt.limits.consume('apiAnonymous', ip ?? 'unknown');
      throw err;
    }
    const admission = rt.limits.consumeRequest(ctx.viewer, ip);
    admission.catch(() => {}); // reported by the plugin below; a request that never gets there spent its point all the same
    (ctx as Admitted)[ADMISSION] = admission;
    return ctx;
  }

  const requestAdmission: ApolloServerPlugin<Context> = {
    async requestDidStart({ contextValue }) {
      return {
        async didResolveOperation() {
          await (contextValue as Admitted)[ADMISSION]?.catch((err: unknown) => {
            throw edgeGraphQLError(err);
          });
        },
      };
    },
  };

  // No per-message compression: it costs a zlib context per socket and CPU per message, for messages of a few hundred bytes.
  const wss = new WebSocketServer({ server: httpServer, path: '/graphql', perMessageDeflate: false, maxPayload: WS_MAX_PAYLOAD });
  // Each prepared operation's socket and id, so results shared by many subscribers are written straight to it.
  const sinks = new WeakMap<ExecutionArgs, MessageSink>();
  // Open signed-in connections: a change of access (revoked token, sign-out, removed membership or changed
  // role) closes the ones it affects, in every process, so no subscription outlives the access it was granted on.
  const connections = new Map<WebSocket, Connection>();
  const connectionsPerUser = new Map<string, number>();
  const unsubscribeAccess = await rt.bus.subscribe(ACCESS_CHANNEL, (message) => {
    for (const [socket, { viewer }] of connections) {
      // `null`: the bus reconnected and may have missed changes; every connection is authorized afresh.
      const end = message === null ? { code: ACCESS_CHANGED_CLOSE, reason: 'Access changed; reconnect' } : accessEnds(viewer!, message as AccessChange);
      if (end) socket.close(end.code, end.reason);
    }
  });

  /**
   * The connection's viewer, its credentials verified again as for an HTTP request (an API token's for at
   * most the token cache's seconds), so that an expired or ended one is refused. Throws InvalidCredentialsError.
   */
  async function reverify(connection: Connection): Promise<Viewer | null> {
    if (!connection.viewer) return null;
    connection.viewer = await resolveViewer(rt.prisma, connection.creds, new Date(), rt.tokens);
    return connection.viewer;
  }

  /** Closes the connection when its credential expires: a running subscription is no operation to refuse. */
  function watchExpiry(socket: WebSocket, connection: Connection) {
    const at = connection.viewer?.expiresAt?.getTime();
    if (at === undefined || socket.readyState !== socket.OPEN) return;
    connection.expiry = setTimeout(async () => {
      if (socket.readyState !== socket.OPEN) return;
      try {
        // A session may have been extended meanwhile (it slides with use over HTTP): then wait for the new expiry.
        await reverify(connection);
        watchExpiry(socket, connection);
      } catch (err) {
        if (err instanceof InvalidCredentialsError) return socket.close(4401, err.message);
        // Unverifiable past its expiry: the client reconnects and is authenticated afresh.
        rt.logger.warn({ err }, 'could not verify an expiring WebSocket credential');
        socket.close(ACCESS_CHANGED_CLOSE, 'Access changed; reconnect');
      }
    }, Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())));
    connection.expiry.unref();
  }

  const wsCleanup = useServer<Record<string, unknown>, { connection?: Connection }>(
    {
      schema,
      // Events that every subscriber of a run receives alike are executed and serialized once for all of them.
      subscribe: (args) => subscribeShared(args, sinks.get(args)),
      onConnect: async (ctx) => {
        const { request, socket } = ctx.extra;
        const ip = clientAddress(request, app.get('trust proxy fn'));
        let creds: Credentials;
        let viewer: Viewer | null;
        try {
          creds = credentialsFrom({ headers: request.headers, connectionParams: ctx.connectionParams });
          // graphql-ws answers `false` with close code 4403.
          if (cookieFromForeignPage(request.headers, creds, rt.config.APP_ORIGIN)) return false;
          viewer = await resolveViewer(rt.prisma, creds, new Date(), rt.tokens);
        } catch (err) {
          if (!(err instanceof InvalidCredentialsError)) throw err;
          // Guessing credentials draws on the anonymous budget of the caller's IP, as over HTTP.
          const limited = await rt.limits.consume('apiAnonymous', ip ?? 'unknown').then(
            () => null,
            (e: unknown) => (e instanceof RateLimitedError ? e : Promise.reject(e)),
          );
          socket.close(limited ? TOO_MANY_CLOSE : 4401, limited ? limited.message : 'Unauthorized');
          return false;
        }
        const connection: Connection = { creds, viewer, ip };
        ctx.extra.connection = connection;
        if (!viewer) return true;
        if (socket.readyState !== socket.OPEN) return false;
        const open = connectionsPerUser.get(viewer.userId) ?? 0;
        if (open >= rt.config.WS_CONNECTIONS_PER_USER) {
          socket.close(TOO_MANY_CLOSE, `Too many open connections: at most ${rt.config.WS_CONNECTIONS_PER_USER} per user`);
          return false;
        }
        connections.set(socket, connection);
        connectionsPerUser.set(viewer.userId, open + 1);
        socket.once('close', () => {
          clearTimeout(connection.expiry);
          connections.delete(socket);
          const left = connectionsPerUser.get(viewer.userId)! - 1;
          if (left > 0) connectionsPerUser.set(viewer.userId, left);
          else connectionsPerUser.delete(viewer.userId);
        });
        watchExpiry(socket, connection);
        return true;
      },
      // Each operation gets a fresh context (its own role cache) for the connection's viewer, verified again,
      // the same limits as HTTP, and counts against the same request budget.
      onSubscribe: async (ctx, id, payload) => {
        const connection = ctx.extra.connection!;
        const socket = ctx.extra.socket;
        // graphql-ws holds every operation in progress here, this one included.
        if (Object.keys(ctx.subscriptions).length > MAX_OPERATIONS_PER_CONNECTION) {
          return [
            new GraphQLError(`A connection may have at most ${MAX_OPERATIONS_PER_CONNECTION} operations in progress at once; complete one first`, {
              extensions: { code: 'TOO_MANY_OPERATIONS', limit: MAX_OPERATIONS_PER_CONNECTION },
            }),
          ];
        }
        let viewer: Viewer | null;
        try {
          viewer = await reverify(connection);
        } catch (err) {
          if (!(err instanceof InvalidCredentialsError)) throw err;
          // As a revocation does: the connection ends for good, and this operation never runs.
          socket.close(4401, err.message);
          return [new GraphQLError(err.message, { extensions: { code: 'UNAUTHENTICATED' } })];
        }
        const contextValue = contextFor(rt, viewer, { transport: 'ws', ip: connection.ip });
        try {
          await rt.limits.consumeRequest(contextValue.viewer, contextValue.ip);
        } catch (err) {
          if (!(err instanceof RateLimitedError)) throw err;
          return [new GraphQLError(err.message, { extensions: { code: err.code, retryAfterSeconds: err.retryAfterSeconds } })];
        }
        const prepared = prepareOperation(schema, payload, contextValue, { introspection: !production });
        if (!Array.isArray(prepared)) {
          sinks.set(prepared as ExecutionArgs, {
            id,
            write(message) {
              if (socket.readyState !== socket.OPEN) return;
              if (socket.bufferedAmount < WS_HIGH_WATER) return void socket.send(message);
              return new Promise<void>((resolve) => socket.send(message, () => resolve()));
            },
          });
        }
        return prepared;
      },
      onNext: (_ctx, _id, _payload, _args, result) => (result.errors ? { ...result, errors: result.errors.map(formatWsError) } : undefined),
      onError: (_ctx, _id, _payload, errors) => errors.map(formatWsError),
    },
    wss,
  );

  // GraphQL over HTTP: a client that only understands application/json gets 200 for a request error
  // (parse, validation, variables, cost) and reads the errors from the body; application/graphql-response+json keeps the 4xx.
  const legacyJsonStatus: ApolloServerPlugin<Context> = {
    async requestDidStart({ contextValue }) {
      return {
        async willSendResponse({ response }) {
          const req = contextValue.res?.req;
          if (response.http.status === 400 && req?.accepts(['application/json', 'application/graphql-response+json']) === 'application/json') {
            response.http.status = 200;
          }
        },
      };
    },
  };

  const apollo = new ApolloServer<Context>({
    schema,
    introspection: !production,
    hideSchemaDetailsFromClientErrors: production,
    includeStacktraceInErrorResponses: !production,
    csrfPrevention: true,
    // One operation per HTTP request, so one request is one unit of the rate limit and of the cost limit.
    allowBatchedHttpRequests: false,
    // The process's own SIGTERM/SIGINT handling (main.ts) drains and stops everything in order; Apollo's
    // handler, on by default outside tests, stopped the server first and left that drain waiting for good.
    stopOnTerminationSignals: false,
    parseOptions: PARSE_OPTIONS,
    validationRules: LIMIT_RULES,
    maxRecursiveSelections: true,
    formatError,
    plugins: [
      // No cache hints: every answer is the viewer's own, never cached. Apollo's default cache-control
      // plugin would otherwise wrap every resolver and work out a policy for each field of every request.
      ApolloServerPluginCacheControlDisabled(),
      ApolloServerPluginDrainHttpServer({ httpServer }),
      { async serverWillStart() { return { async drainServer() { await wsCleanup.dispose(); } }; } },
      requestAdmission,
      queryCostPlugin<Context>(),
      legacyJsonStatus,
    ],
  });
  await apollo.start();

  const requestId: RequestHandler = (req, res, next) => {
    const id = (req.headers['x-request-id'] as string | undefined)?.slice(0, 100) || randomUUID();
    res.setHeader('x-request-id', id);
    next();
  };
  const securityHeaders: RequestHandler = helmet({ contentSecurityPolicy: false, crossOriginEmbedderPolicy: false });
  app.use(requestId);
  app.use(securityHeaders);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const h = await checkHealth(rt);
    res.status(h.ok ? 200 : 503).json({ status: h.ok ? 'ready' : 'unavailable', database: h.database });
  });

  // The UI is served from this origin; only APP_ORIGIN (when set) may call from another one, with credentials.
  // A list (not a string) so that other origins get no Access-Control-Allow-Origin header at all.
  const appCors = cors({ origin: rt.config.APP_ORIGIN ? [new URL(rt.config.APP_ORIGIN).origin] : false, credentials: true });

  const graphqlContext = async ({ req, res }: { req: Request; res: Response }) => {
    try {
      return await httpContext(req, res);
    } catch (err) {
      throw edgeGraphQLError(err);
    }
  };
  app.use('/graphql', appCors, express.json({ limit: BODY_LIMIT }), expressMiddleware(apollo, { context: graphqlContext }));

  app.use('/api', appCors);
  // A download is a request like any other: it waits for its charge to the request budget (429 past it).
  app.get(
    '/api/organizations/:slug/audit-logs.:format',
    auditLogExport(async (req, res) => {
      const ctx = await httpContext(req, res);
      await (ctx as Admitted)[ADMISSION];
      return ctx;
    }),
  );

  if (opts.webHandler) app.use(withFileStreamErrors(opts.webHandler, rt.logger));

  const answerError = (err: unknown, res: Response) => {
    if (res.headersSent) {
      // A stream that failed half-way (e.g. the client went away): nothing sensible can be appended.
      rt.logger.warn({ err }, 'response ended early');
      res.destroy();
      return;
    }
    const known = describeHttpError(err);
    if (!known) rt.logger.error({ err }, 'unhandled error');
    const { status, code, message, extra } = known ?? { status: 500, code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' };
    if (err instanceof RateLimitedError) res.setHeader('retry-after', String(err.retryAfterSeconds));
    res.status(status).json({ errors: [{ message, extensions: { code, ...extra } }] });
  };
  const errorHandler: ErrorRequestHandler = (err, _req, res, _next) => answerError(err, res);
  app.use(errorHandler);

  // The same steps as Express's for the same requests: request id, security headers, CORS, then Apollo.
  const graphqlHttp = graphqlOverHttp({
    apollo,
    app,
    path: '/graphql',
    limitBytes: BODY_LIMIT_BYTES,
    steps: [requestId, securityHeaders, appCors],
    context: (req, res) => graphqlContext({ req, res }),
    fail: (err, _req, res) => answerError(err, res),
  });

  const server: HubServer = {
    httpServer,
    url: '',
    listen(port, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          const addr = httpServer.address() as AddressInfo;
          const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
          server.url = `http://${shownHost}:${addr.port}`;
          resolve(server.url);
        });
      });
    },
    async close() {
      await unsubscribeAccess();
      await apollo.stop();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
  return server;
}

/**
 * The web UI's static files are served by adapter-node's handler (sirv), which pipes a file's read stream
 * into the response without an 'error' listener: a file that cannot be read (deleted by a rebuild while
 * the product runs, out of file descriptors) would throw from that stream and end the whole process, API
 * and worker with it. The response's 'pipe' event hands over each stream as it is piped, before it can
 * fail; a failed one ends only its own response (its headers are already sent).
 */
export function withFileStreamErrors(handler: RequestHandler, logger: Runtime['logger']): RequestHandler {
  return (req, res, next) => {
    res.on('pipe', (source: NodeJS.ReadableStream) => {
      source.once('error', (err) => {
        logger.warn({ err, path: req.path }, 'a static file could not be read');
        res.destroy();
      });
    });
    handler(req, res, next);
  };
}
