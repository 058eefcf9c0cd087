/** vitest global setup: make sure the cached synthetic test models exist (test/support/models.ts). */
import { Effect } from "effect"
import { ensureTestModels } from "./support/models.js"

export default async function setup(): Promise<void> {
  await Effect.runPromise(ensureTestModels())
}
