import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer, type BaseContext } from '@apollo/server';
import type { Express, Request, Response } from 'express';

/** Why a body was refused, with its HTTP status: described to the client like Express's body-parser errors. */
export class BodyError extends Error {
  constructor(
    readonly type: 'entity.parse.failed' | 'entity.too.large',
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A connect-style step that sets headers and calls `next` (helmet, cors, the request id). */
type HeaderStep = (req: Request, res: Response, next: (err?: unknown) => void) => void;

export interface GraphQLHttpOptions<C extends BaseContext> {
  apollo: ApolloServer<C>;
  /** Where GraphQL is served, e.g. `/graphql`. */
  path: string;
  limitBytes: number;
  /** The headers every response of the server carries, in order; each must call `next` before returning. */
  steps: HeaderStep[];
  /**
   * The Express application whose request and response prototypes (`app.request`, `app.response`) the
   * request is given, as Express gives them before its router: `req.ip`, `req.accepts`, `res.cookie` work as
   * on any of its requests.
   */
  app: Express;
  context(req: Request, res: Response): Promise<C>;
  /** Answers an error that ends the request before GraphQL (a refused body, or a failure of ours); headers not sent yet. */
  fail(err: unknown, req: Request, res: Response): void;
}

/** `application/json`, with no parameter but a UTF-8 charset: what this path reads; anything else goes the general way. */
function isPlainJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const [type, ...params] = contentType.split(';');
  if (type!.trim().toLowerCase() !== 'application/json') return false;
  return params.every((p) => /^\s*charset\s*=\s*"?utf-8"?\s*$/i.test(p));
}

/** The body as JSON, read up to `limit` bytes; rejects with a BodyError the way express.json() would. */
function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) return reject(new BodyError('entity.too.large', 413, 'request entity too large'));
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        return reject(new BodyError('entity.too.large', 413, 'request entity too large'));
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('error', reject);
    req.once('end', () => {
      if (size > limit) return;
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8');
      // As express.json's strict mode: an empty body is an empty object; only an object or an array is a body.
      if (text.trim() === '') return resolve({});
      const first = /^[\s\uFEFF]*(.)/.exec(text)?.[1];
      if (first !== '{' && first !== '[') return reject(new BodyError('entity.parse.failed', 400, `Unexpected token '${first}', expected an object or an array`));
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new BodyError('entity.parse.failed', 400, (err as Error).message));
      }
    });
  });
}

/**
 * GraphQL over HTTP straight on node:http: the POSTs of JSON that every client sends, without Express's router,
 * request and response wrappers and body parser in front of Apollo (about 0.3 ms of CPU a request on a 2-core
 * machine, on the path of every `startRun`). Everything else (other methods and paths, other bodies, compressed
 * ones) is left to Express: the handler returns false without having touched the request.
 */
export function graphqlOverHttp<C extends BaseContext>(opts: GraphQLHttpOptions<C>) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.method !== 'POST' || req.headers['content-encoding'] || !isPlainJson(req.headers['content-type'])) return false;
    const q = req.url!.indexOf('?');
    if ((q === -1 ? req.url : req.url!.slice(0, q)) !== opts.path) return false;
    void answer(req, res, q === -1 ? '' : req.url!.slice(q));
    return true;
  };

  function answer(req: IncomingMessage, res: ServerResponse, search: string) {
    Object.setPrototypeOf(req, opts.app.request);
    Object.setPrototypeOf(res, opts.app.response);
    const request = req as Request;
    const response = res as Response;
    request.res = response;
    response.req = request;
    return execute(request, response, search).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      opts.fail(err, request, response);
    });
  }

  async function execute(req: Request, res: Response, search: string) {
    for (const step of opts.steps) {
      await new Promise<void>((resolve, reject) => step(req, res, (err) => (err ? reject(err) : resolve())));
    }
    const body = await readJson(req, opts.limitBytes);
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }
    const result = await opts.apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: 'POST', headers, search, body },
      context: () => opts.context(req, res),
    });
    for (const [key, value] of result.headers) res.setHeader(key, value);
    res.statusCode = result.status ?? 200;
    if (result.body.kind === 'complete') {
      res.setHeader('content-length', Buffer.byteLength(result.body.string));
      res.end(result.body.string);
      return;
    }
    for await (const chunk of result.body.asyncIterator) res.write(chunk);
    res.end();
  }
}
