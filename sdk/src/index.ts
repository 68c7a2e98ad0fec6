export { createClient, unwrap, type ClientOptions, type HubClient } from './client.js';
export * from './errors.js';
export * from './_generated/graphql.js';
