/** GraphQL over HTTP (fetch, keep-alive) and graphql-ws subscriptions, as an integrator's client does. */
import type { Client } from 'graphql-ws';
import { graphqlWs, WebSocket } from './deps.js';

export interface GqlResponse<T> {
  data?: T;
  errors?: { message: string }[];
}

export async function gql<T = Record<string, any>>(graphqlUrl: string, token: string, query: string, variables: Record<string, unknown> = {}) {
  const res = await fetch(graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as GqlResponse<T>;
  if (body.errors?.length) throw new Error(`GraphQL error: ${body.errors.map((e) => e.message).join('; ')}`);
  return body.data as T;
}

export const CREATE_AGENT = `mutation($input: CreateAgentInput!) { createAgent(input: $input) {
  __typename ... on CreateAgentPayload { agent { id } } ... on Error { message } } }`;
export const START_RUN = `mutation($input: StartRunInput!) { startRun(input: $input) {
  __typename ... on StartRunPayload { run { id } } ... on Error { message } } }`;
export const RUN_TIMES = `query($id: ID!) { run(id: $id) { status createdAt startedAt firstTokenAt finishedAt } }`;
export const RUN_EVENTS = `subscription($runId: ID!, $afterSeq: Int) {
  runEvents(runId: $runId, afterSeq: $afterSeq) { seq type text status createdAt } }`;

export interface WireEvent {
  seq: number;
  type: string;
  text: string | null;
  status: string | null;
  createdAt: string;
}

export async function createAgent(graphqlUrl: string, token: string, projectGid: string, model = 'gpt-4o-mini') {
  const data = await gql<{ createAgent: { __typename: string; agent?: { id: string }; message?: string } }>(graphqlUrl, token, CREATE_AGENT, {
    input: { projectId: projectGid, name: 'Bench agent', provider: 'OPENAI', model, maxOutputTokens: 1000 },
  });
  if (!data.createAgent.agent) throw new Error(`createAgent: ${data.createAgent.__typename} ${data.createAgent.message ?? ''}`);
  return data.createAgent.agent.id;
}

export async function startRun(graphqlUrl: string, token: string, agentId: string, input: string) {
  const data = await gql<{ startRun: { __typename: string; run?: { id: string }; message?: string } }>(graphqlUrl, token, START_RUN, {
    input: { agentId, input },
  });
  if (!data.startRun.run) throw new Error(`startRun: ${data.startRun.__typename} ${data.startRun.message ?? ''}`);
  return data.startRun.run.id;
}

/** startRun sent over an open graphql-ws connection (graphql-ws carries queries and mutations too). */
export function startRunOverSocket(ws: Client, agentId: string, input: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let done = false;
    ws.subscribe<{ startRun: { __typename: string; run?: { id: string }; message?: string } }>(
      { query: START_RUN, variables: { input: { agentId, input } } },
      {
        next: (msg) => {
          done = true;
          const run = msg.data?.startRun.run;
          if (run) resolve(run.id);
          else reject(new Error(`startRun: ${msg.errors?.map((e) => e.message).join('; ') ?? msg.data?.startRun.__typename}`));
        },
        error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
        complete: () => done || reject(new Error('startRun: no result')),
      },
    );
  });
}

/** A connected graphql-ws client (the socket is open and acknowledged before this resolves). */
export async function connectWs(wsUrl: string, token: string, timeoutMs = 30_000): Promise<Client> {
  let connected!: () => void;
  let failed!: (e: unknown) => void;
  const ready = new Promise<void>((res, rej) => {
    connected = res;
    failed = rej;
  });
  const client = graphqlWs.createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${token}` },
    on: { connected: () => connected(), closed: (e) => failed(e), error: (e) => failed(e) },
    onNonLazyError: (e) => failed(e),
  });
  const timer = setTimeout(() => failed(new Error('graphql-ws connection timed out')), timeoutMs);
  try {
    await ready;
  } finally {
    clearTimeout(timer);
  }
  return client;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return out;
}
