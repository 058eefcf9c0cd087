import { shellQuote } from "../providers/ProviderAdapter.js"
import type { ServiceManagerKind } from "../services/ServiceManager.js"

/**
 * What to tell the operator after `--apply` so the provider reads the new
 * config.yaml (SPEC F-3 "then print how to restart the provider"). Two
 * lines, LF-separated, no trailing newline: a sentence, then one indented
 * command to paste:
 * - launchd: `launchctl kickstart -k gui/<uid>/<label>` (restarts the job in place);
 * - systemd: `systemctl --user restart <label>`;
 * - none: the provider is not a service job: restart it by hand, e.g. `serveCommand`.
 * `label` is the launchd label or systemd user unit (`--service-label`), quoted
 * for a POSIX shell when needed; `uid` is the operator's numeric user id
 * (`process.getuid()`); `serveCommand` is the F-1 serve command line, as is.
 */
export const restartInstructions = (
  manager: ServiceManagerKind,
  label: string,
  serveCommand: string,
  uid: number
): string => {
  switch (manager) {
    case "launchd":
      return `restart the provider so it reads the new config:\n  launchctl kickstart -k ${shellQuote(`gui/${uid}/${label}`)}`
    case "systemd":
      return `restart the provider so it reads the new config:\n  systemctl --user restart ${shellQuote(label)}`
    case "none":
      return `restart your provider so it reads the new config, e.g.:\n  ${serveCommand}`
  }
}
