/** SPEC P-1: a probe prompt must be the target context within 5 % (as a fraction). */
export const PROMPT_TOLERANCE = 0.05
