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

export function list<T>(iterate: () => AsyncIterator<T>): List<T> {
  return {
    [Symbol.asyncIterator]: iterate,
    async toArray() {
      const items: T[] = [];
      for await (const item of { [Symbol.asyncIterator]: iterate }) items.push(item);
      return items;
    },
  };
}

export function paginate<T>(fetchPage: (args: { first: number; after: string | null }) => Promise<Page<T>>): Paginated<T> {
  return {
    ...list(async function* () {
      let after: string | null = null;
      for (;;) {
        const page: Page<T> = await fetchPage({ first: MAX_PAGE_SIZE, after });
        yield* page.items;
        if (!page.hasNextPage || !page.endCursor) return;
        after = page.endCursor;
      }
    }),
    page: ({ first = MAX_PAGE_SIZE, after = null } = {}) => fetchPage({ first, after }),
  };
}
