import * as fs from "node:fs"
import * as path from "node:path"

/**
 * `command` as an absolute, symlink-free path of an executable file: looked up
 * on PATH when it has no slash, else resolved from the working directory.
 * null when there is no such executable.
 */
export const findExecutable = (command: string): string | null => {
  const candidates = command.includes("/")
    ? [path.resolve(command)]
    : (process.env.PATH ?? "").split(path.delimiter).filter((d) => d !== "").map((d) => path.join(d, command))
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK)
      return fs.realpathSync(c)
    } catch {
      // not this one
    }
  }
  return null
}
