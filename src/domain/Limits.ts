/**
 * Upper bounds of every number an operator or a provider hands the tool
 * (issue "lifecycle round 2", item 3): above them a flag is a usage error
 * (exit 64), never a silently infinite timeout or a multi-gigabyte prompt.
 */

/** The largest target context or context cap, in tokens (2^20: beyond any context a model serves today). */
export const MAX_TARGET_CONTEXT = 2 ** 20

/** The longest wait a timer holds, ms (2^31 − 1, Node's setTimeout; about 24.8 days): a longer one would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** The most replicates per trial. */
export const MAX_REPLICATES = 1000

/** The most parallel slots (`--max-batch-axis`) or CPU threads (`--threads-axis`) of a cell. */
export const MAX_SLOTS_OR_THREADS = 1024

/** The most runs `--keep-runs` keeps (0 keeps all). */
export const MAX_KEEP_RUNS = 1_000_000
