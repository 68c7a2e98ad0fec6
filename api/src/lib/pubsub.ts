import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from './logger.js';
import type { SqlParams } from './sql.js';

/**
 * Cross-process notifications. Payloads are small JSON hints ("run X has events up to seq N"), never the
 * source of truth: subscribers read what they missed from the database, so a lost or late message costs
 * latency, never data.
 */
export interface EventBus {
  publish(channel: string, payload: unknown): Promise<void>;
  /**
   * Returns an unsubscribe function. Handlers run in the order messages arrive; a `null` payload means
   * "you may have missed messages" (the PostgreSQL bus reconnected): re-read from the database.
   * Every local handler of a channel receives the SAME payload object (decoded once per message): the
   * run-event fan-out relies on it to execute and serialize an event once for all its subscribers, so
   * handlers must treat payloads as read-only.
   */
  subscribe(channel: string, handler: (payload: unknown) => void): Promise<() => Promise<void>>;
  /**
   * PostgreSQL only: the message as the text of a `pg_notify(NOTIFY_CHANNEL, text)` call, so a statement
   * can announce its own writes in the same round trip (PostgreSQL delivers it when the statement commits,
   * never before) to the OTHER processes: the sender delivers to its own subscribers with `deliverLocally`
   * once the statement has committed. Absent on the in-process bus, where the writer publishes after the statement.
   */
  encode?(channel: string, payload: unknown): string;
  /** PostgreSQL only: hands a message to this process's subscribers without a round trip (see encode). */
  deliverLocally?(channel: string, payload: unknown): void;
  close(): Promise<void>;
}

/** Messages that ride inside one SQL statement (PostgreSQL) or are published right after it (in process). */
export interface StatementNotifications {
  /**
   * One SQL expression to select in the statement: it sends every message, in order, when it is evaluated
   * (PostgreSQL delivers them at commit). Its text does not depend on how many messages there are, so the
   * statement stays one prepared statement. `0` on the in-process bus.
   */
  sql: string;
  /**
   * Call once the statement has committed: delivers the messages to this process's own subscribers at
   * once (PostgreSQL delivers the notifications to the other processes; this one does not wait for them).
   */
  publishAfter(kept?: ReadonlySet<string>): Promise<void>;
}

/**
 * Sends each message only if its key is among the rows the statement kept: `keys[i]` is message i's key
 * (say, its run's id; null: sent whatever the statement kept) and `kept` a SQL subquery of the keys the
 * statement kept (say, the runs it updated). The statement's caller then passes the kept keys to `publishAfter`.
 */
export interface NotificationGuard {
  keys: (string | null)[];
  kept: string;
}

/** Builds the notifications for a statement with parameters `params` (their texts are appended to it). */
export function statementNotifications(
  bus: EventBus,
  messages: [channel: string, payload: unknown][],
  params: SqlParams,
  guard?: NotificationGuard,
): StatementNotifications {
  const sent = (kept?: ReadonlySet<string>) => {
    if (!guard || !kept) return messages;
    return messages.filter((_, i) => guard.keys[i] === null || kept.has(guard.keys[i]!));
  };
  if (!bus.encode) {
    return {
      sql: '0',
      publishAfter: async (kept) => {
        for (const [c, p] of sent(kept)) await bus.publish(c, p);
      },
    };
  }
  // The messages (JSON objects) go as one JSON array, whose elements PostgreSQL's json type gives back as
  // their exact text: unlike a text[] parameter, nothing is escaped on the way (the `pg` client quotes
  // every element of an array, and the messages are mostly quotes).
  const texts = params.add(`[${messages.map(([c, p]) => bus.encode!(c, p)).join(',')}]`);
  return {
    sql: guard
      ? `(SELECT count(pg_notify('${NOTIFY_CHANNEL}', n.t::text)) FROM ROWS FROM (json_array_elements(${texts}::json), unnest(${params.add(guard.keys)}::text[])) AS n(t, k)
          WHERE n.k IS NULL OR n.k IN (${guard.kept}))`
      : `(SELECT count(pg_notify('${NOTIFY_CHANNEL}', n.t::text)) FROM json_array_elements(${texts}::json) AS n(t))`,
    publishAfter: async (kept) => {
      for (const [c, p] of sent(kept)) bus.deliverLocally!(c, p);
    },
  };
}

/** One process (embedded database): an in-memory emitter. */
export function createLocalBus(): EventBus {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    async publish(channel, payload) {
      emitter.emit(channel, payload);
    },
    async subscribe(channel, handler) {
      emitter.on(channel, handler);
      return async () => {
        emitter.off(channel, handler);
      };
    },
    async close() {
      emitter.removeAllListeners();
    },
  };
}

// PostgreSQL channel names are identifiers (max 63 bytes); ours are hashed into one shared channel and
// demultiplexed here, so thousands of subscribed runs cost one LISTEN, not thousands.
export const NOTIFY_CHANNEL = 'hub_events';
const MAX_NOTIFY_BYTES = 7_900;

/**
 * Many processes (PostgreSQL): LISTEN/NOTIFY on one dedicated connection, local fan-out per channel.
 * A process delivers its own messages to its own subscribers directly (after the write that they announce
 * has committed) and skips their echo from PostgreSQL: one hop less for a run's subscribers on the API
 * process whose worker executes it. A message is `{"o": sender id, "c": channel, "p": payload}` with the
 * sender's id first, so the echo is recognised without parsing it.
 */
/** The bus listens again this long after losing its connection, then twice as long after each failure, up to the max. */
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 5_000;

export async function createPgBus(connectionString: string, publisher: pg.Pool, logger: Logger): Promise<EventBus> {
  const local = new EventEmitter();
  local.setMaxListeners(0);
  const origin = randomUUID();
  /** How every message this process sends begins (see encode). */
  const ownPrefix = `{"o":"${origin}",`;
  let listener: pg.Client | undefined;
  let closed = false;
  /** The last publish: the next one waits for it (see publish). */
  let published: Promise<void> = Promise.resolve();

  /** Listens again after `delay` ms, and again with a longer delay until it can (a restart may take a while). */
  const reconnect = (delay: number) => {
    if (closed) return;
    setTimeout(() => {
      connect().catch((err: unknown) => {
        logger.error({ err, retryInMs: Math.min(delay * 2, RECONNECT_MAX_MS) }, 'event bus reconnect failed');
        reconnect(Math.min(delay * 2, RECONNECT_MAX_MS));
      });
    }, delay).unref();
  };

  const connect = async () => {
    if (closed) return;
    const client = new pg.Client({ connectionString });
    // An ended connection may report more than one error (the server's, then the socket's end): one reconnect.
    let lost = false;
    client.on('notification', (msg) => {
      // This process's own messages were delivered locally when sent: dropped unparsed.
      if (!msg.payload || msg.payload.startsWith(ownPrefix)) return;
      try {
        const { c, p, o } = JSON.parse(msg.payload) as { c: string; p: unknown; o?: string };
        if (o !== origin) local.emit(c, p);
      } catch (err) {
        logger.warn({ err }, 'ignoring malformed notification');
      }
    });
    client.on('error', (err) => {
      if (lost) return;
      lost = true;
      client.end().catch(() => {});
      // Failing while connecting: connect() rejects, and its caller decides when to try again.
      if (listener !== client) return;
      listener = undefined;
      logger.error({ err }, 'event bus connection lost; reconnecting');
      reconnect(RECONNECT_FIRST_MS);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    } catch (err) {
      lost = true;
      await client.end().catch(() => {});
      throw err;
    }
    if (closed) return void (await client.end().catch(() => {}));
    listener = client;
    // Subscribers may have missed messages while disconnected: tell them to re-read from the database.
    local.emit('*reconnected', null);
  };
  await connect();

  function encode(channel: string, payload: unknown) {
    // The sender's id first, so that its own echo is recognised by its first characters; still one JSON
    // object, which any process reads, whatever the order of its keys.
    const text = ownPrefix + JSON.stringify({ c: channel, p: payload }).slice(1);
    if (Buffer.byteLength(text) > MAX_NOTIFY_BYTES) throw new Error(`notification on ${channel} too large`);
    return text;
  }

  return {
    encode,
    // One after the other: on the pool, two publishes would take two connections and could commit, and
    // be delivered here, in either order (a budget's 80 % alert after its 100 % one).
    publish(channel, payload) {
      const text = encode(channel, payload);
      const sent = published.then(() => publisher.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, text])).then(() => void local.emit(channel, payload));
      published = sent.catch(() => {});
      return sent;
    },
    deliverLocally(channel, payload) {
      local.emit(channel, payload);
    },
    async subscribe(channel, handler) {
      local.on(channel, handler);
      local.on('*reconnected', handler);
      return async () => {
        local.off(channel, handler);
        local.off('*reconnected', handler);
      };
    },
    async close() {
      closed = true;
      local.removeAllListeners();
      await listener?.end().catch(() => {});
    },
  };
}

/** Every message published on `channel` from now on, as an async iterator; `null` reconnect hints are skipped. */
export async function* channelMessages<T>(bus: EventBus, channel: string): AsyncGenerator<T> {
  const pending: T[] = [];
  let wake: (() => void) | null = null;
  const unsubscribe = await bus.subscribe(channel, (message) => {
    if (message !== null) pending.push(message as T);
    wake?.();
  });
  try {
    for (;;) {
      while (pending.length > 0) yield pending.shift()!;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  } finally {
    await unsubscribe();
  }
}
