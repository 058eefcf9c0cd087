/** Reads a real SQLite file written by the CLI, read-only. */
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect } from "effect"

/** Rows of `query` against the SQLite file `filename`. */
export const readRows = <A = Record<string, unknown>>(filename: string, query: string): Promise<ReadonlyArray<A>> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return (yield* sql.unsafe(query)) as unknown as ReadonlyArray<A>
  }).pipe(Effect.provide(SqliteClient.layer({ filename, readonly: true })), Effect.runPromise)
