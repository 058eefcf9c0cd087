// The compiled modules (paths under dist/, as regular expressions) that `autotune serve` may load
// (issue 14: it starts through src/serveBin.ts, not the whole CLI): its entry, the serve command and
// its options, serve/, and the few domain/ and system/ modules serve uses; also what the serve bundle
// (bin/bundle.js) may be made of, checked against its metafile. Not the bundle's own files: the
// import-hook test serves from dist/ (AUTOTUNE_SERVE_BUNDLE=off), and must fail if the switch did not.
// Shared by test/support/noTuner.mjs (the import hook) and test/serve/Serve.test.ts.
export const serveOnlyModules = [
  "serveBin\\.js",
  "cli/(Root|RunProcess|ServeCommand|CliOptions|PlainText)\\.js",
  "serve/[^/]+\\.js",
  "domain/(AutotuneError|ExitReason|Knobs|Limits|StreamInterval)\\.js",
  "system/(HoldSignals|Pids|RunOutcome|Versions)\\.js"
]
