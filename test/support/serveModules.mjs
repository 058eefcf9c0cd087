// The compiled modules (paths under dist/, as regular expressions) that `autotune serve` may load
// (issue 14: it starts through src/serveBin.ts, not the whole CLI): its entry, the serve command and
// its options, serve/, and the few domain/ and system/ modules serve uses; and the serve bundle's
// files (bin/bundle-serve.js), whose inputs the tests check against the same list.
// Shared by test/support/noTuner.mjs (the import hook) and test/serve/Serve.test.ts.
export const serveOnlyModules = [
  "serveBin\\.js",
  "serve-bundle/[^/]+\\.js",
  "serve-bundle/serve/LlamaBoot\\.js",
  "cli/(Root|RunProcess|ServeCommand|CliOptions)\\.js",
  "serve/[^/]+\\.js",
  "domain/(AutotuneError|ExitReason|Knobs|Limits|StreamInterval)\\.js",
  "system/(HoldSignals|Pids|RunOutcome|Versions)\\.js"
]
