import { createHash, randomBytes } from 'node:crypto';

/** Secrets are stored only as their SHA-256; lookups go by hash so no plaintext ever reaches the database. */
export const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

export const randomToken = (bytes = 32) => randomBytes(bytes).toString('base64url');

export const API_TOKEN_PREFIX = 'hub_pat_';
export const newApiToken = () => `${API_TOKEN_PREFIX}${randomToken(30)}`;
