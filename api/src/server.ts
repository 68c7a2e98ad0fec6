import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import cors from 'cors';
import express, { type RequestHandler } from 'express';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import helmet from 'helmet';
import { WebSocketServer } from 'ws';
import { createContext, type Context } from './context.js';
import { InvalidCredentialsError } from './modules/auth/viewer.js';
import { checkHealth } from './modules/system/system.service.js';
import type { Runtime } from './runtime.js';
import { schema } from './schema/index.js';

export interface HubServer {
  httpServer: Server;
  /** Base URL once listening, e.g. http://127.0.0.1:3000 */
  url: string;
  listen(port: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

const BODY_LIMIT = '1mb';

function unauthenticated(err: InvalidCredentialsError) {
  return new GraphQLError(err.message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
}

/** Wires HTTP, Apollo and graphql-ws around the runtime; holds no business logic. */
export async function createServer(rt: Runtime, opts: { webHandler?: RequestHandler } = {}): Promise<HubServer> {
  const production = rt.config.NODE_ENV === 'production';
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');
  const httpServer = createHttpServer(app);

  const wss = new WebSocketServer({ server: httpServer, path: '/graphql' });
  const wsCleanup = useServer<Record<string, unknown>, { ctxInput?: Awaited<ReturnType<typeof createContext>> }>(
    {
      schema,
      onConnect: async (ctx) => {
        try {
          ctx.extra.ctxInput = await createContext(rt, {
            transport: 'ws',
            headers: ctx.extra.request.headers,
            ip: ctx.extra.request.socket.remoteAddress ?? null,
            connectionParams: ctx.connectionParams,
          });
          return true;
        } catch (err) {
          if (err instanceof InvalidCredentialsError) {
            ctx.extra.socket.close(4401, 'Unauthorized');
            return false;
          }
          throw err;
        }
      },
      // A fresh context per operation, reusing the viewer authenticated at connection time.
      context: (ctx) => ({ ...ctx.extra.ctxInput!, requestId: randomUUID() }) satisfies Context,
    },
    wss,
  );

  const apollo = new ApolloServer<Context>({
    schema,
    introspection: !production,
    hideSchemaDetailsFromClientErrors: production,
    includeStacktraceInErrorResponses: !production,
    csrfPrevention: true,
    formatError: (formatted: GraphQLFormattedError, error: unknown) => {
      const code = formatted.extensions?.code;
      if (production && (code === 'INTERNAL_SERVER_ERROR' || code === undefined)) {
        rt.logger.error({ err: error }, 'unhandled error');
        return { message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } };
      }
      return formatted;
    },
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      { async serverWillStart() { return { async drainServer() { await wsCleanup.dispose(); } }; } },
    ],
  });
  await apollo.start();

  app.use((req, res, next) => {
    const id = (req.headers['x-request-id'] as string | undefined)?.slice(0, 100) || randomUUID();
    res.setHeader('x-request-id', id);
    (req as unknown as { id: string }).id = id;
    next();
  });
  app.use(helmet({ contentSecurityPolicy: false, crossOriginEmbedderPolicy: false }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const h = await checkHealth(rt);
    res.status(h.ok ? 200 : 503).json({ status: h.ok ? 'ready' : 'unavailable', database: h.database });
  });

  app.use(
    '/graphql',
    cors({ origin: rt.config.APP_ORIGIN ?? false, credentials: true }),
    express.json({ limit: BODY_LIMIT }),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => {
        try {
          return await createContext(rt, {
            transport: 'http',
            headers: req.headers,
            ip: req.ip ?? null,
            requestId: (req as unknown as { id: string }).id,
            res,
          });
        } catch (err) {
          if (err instanceof InvalidCredentialsError) throw unauthenticated(err);
          throw err;
        }
      },
    }),
  );

  if (opts.webHandler) app.use(opts.webHandler);

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
      await apollo.stop();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      if (httpServer.listening) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
  return server;
}
