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

/** A `timestamp(3)` column as text a raw statement can return (inside json too) and `fromUtcWall` reads back, whatever the session's DateStyle. */
export const utcWallText = (column: string) => `to_char(${column}, 'YYYY-MM-DD"T"HH24:MI:SS.MS')`;

/** The instant a `utcWallText` value names (UTC wall time, millisecond precision). */
export const fromUtcWall = (text: string) => new Date(`${text}Z`);
