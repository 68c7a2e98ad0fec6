/** Positional parameters for a raw statement: `add` returns the `$n` placeholder of the value it appends. */
export class SqlParams {
  readonly values: unknown[] = [];

  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** Prisma stores DateTime as UTC wall-clock `timestamp(3)`; raw SQL must write the same, whatever the session zone. */
export const utcWall = (d: Date) => d.toISOString().slice(0, 23);
