/**
 * Third-party packages the benchmarks need but the root package does not declare: they are resolved from
 * the API package (api/node_modules), exactly the versions the API itself runs with. Types come from
 * bench/tsconfig.json's `paths`.
 */
import { createRequire } from 'node:module';

const requireFromApi = createRequire(new URL('../../api/package.json', import.meta.url));

export const pg = requireFromApi('pg') as typeof import('pg');
export const WebSocket = requireFromApi('ws') as typeof import('ws').WebSocket;
export const graphqlWs = requireFromApi('graphql-ws') as typeof import('graphql-ws');
