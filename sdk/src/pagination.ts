/** The API caps connections at 100 items per page. */
export const MAX_PAGE_SIZE = 100;

/** Every item, fetched as needed: iterate with `for await`, or collect with `toArray()`. */
export interface List<T> extends AsyncIterable<T> {
  toArray(): Promise<T[]>;
}

export interface Page<T> {
  items: T[];
  /** Pass as `after` to fetch the next page. */
  endCursor: string | null;
  hasNextPage: boolean;
  /** How many items match across all pages, when the API reports it. */
  totalCount?: number;
}

export interface PageArgs {
  /** Page size, 1 to 100. */
  first?: number | undefined;
  after?: string | null | undefined;
}

/** A cursor-paginated list: iterating walks every page; `page()` fetches one. */
export interface Paginated<T> extends List<T> {
  page(args?: PageArgs): Promise<Page<T>>;
}

interface Connection<T> {
  edges: { node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor?: string | null };
  totalCount?: number;
}

export function toPage<T>(connection: Connection<T>): Page<T> {
  return {
    items: connection.edges.map((e) => e.node),
    endCursor: connection.pageInfo.endCursor ?? null,
    hasNextPage: connection.pageInfo.hasNextPage,
    ...(connection.totalCount === undefined ? {} : { totalCount: connection.totalCount }),
  };
}

/**
 * `iterate`'s items, and once `signal` aborts none after: the next one throws the signal's reason, whether
 * it would have come from a page already fetched or from a request still to make.
 */
export function list<T>(iterate: () => AsyncIterator<T>, signal?: AbortSignal): List<T> {
  const items = signal
    ? async function* () {
        for await (const item of { [Symbol.asyncIterator]: iterate }) {
          signal.throwIfAborted();
          yield item;
        }
      }
    : iterate;
  return {
    [Symbol.asyncIterator]: items,
    async toArray() {
      const all: T[] = [];
      for await (const item of { [Symbol.asyncIterator]: items }) all.push(item);
      return all;
    },
  };
}

/** Every page in turn; `signal` (the list's RequestOptions signal) stops it between items too, as for `list`. */
export function paginate<T>(fetchPage: (args: { first: number; after: string | null }) => Promise<Page<T>>, signal?: AbortSignal): Paginated<T> {
  return {
    ...list(async function* () {
      let after: string | null = null;
      for (;;) {
        const page: Page<T> = await fetchPage({ first: MAX_PAGE_SIZE, after });
        yield* page.items;
        if (!page.hasNextPage || !page.endCursor) return;
        after = page.endCursor;
      }
    }, signal),
    page: ({ first = MAX_PAGE_SIZE, after = null } = {}) => fetchPage({ first, after }),
  };
}
