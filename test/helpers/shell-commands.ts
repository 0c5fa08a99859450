/**
 * The commands a POSIX shell script runs, found statically: the first word of
 * every simple command (after `;`, `|`, `&&`, `$(`, a quote, `then`, `do` …),
 * and the command a wrapper runs (`nsenter -t $pid -n nc`, `/bin/busybox nc`,
 * `unshare -n sleep`). Quoted text is scanned too, so `sh -c '…'` and heredoc
 * bodies count; a word that only looks like a command there (a message) is
 * harmless, since callers keep only words that are busybox applets.
 */

/** Words that start a command but are not one: the next word is the command. */
const KEYWORDS = new Set(['if', 'then', 'else', 'elif', 'do', 'while', 'until', '!', 'exec', 'command', 'time']);
/** Commands that run another command: the first later word that is not an option or its argument. */
const WRAPPERS = new Set(['nsenter', 'unshare', 'chroot', 'env', 'setsid', 'timeout', 'nohup', 'xargs', 'busybox', 'nice']);

export interface CommandWord {
  word: string;
  line: number;
}

/** The command words of SCRIPT, with their 1-based lines, in order of appearance. */
export function commandWords(script: string): CommandWord[] {
  const out: CommandWord[] = [];
  script.split('\n').forEach((raw, i) => {
    // A comment starts at a # at the line start or after a blank ($# and x#y are not comments).
    const line = raw.replace(/(^|\s)#.*$/, '');
    for (const segment of line.split(/;|&&|\|\||\||&|\$\(|`|\(|\)|\{|\}|'|"/)) {
      const words = segment.trim().split(/\s+/).filter((w) => w !== '');
      let k = 0;
      const next = (): string | undefined => {
        while (k < words.length) {
          const w = words[k++]!;
          if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w) || KEYWORDS.has(w)) continue;
          return w;
        }
        return undefined;
      };
      let w = next();
      while (w !== undefined) {
        const name = w.replace(/^\/(usr\/)?s?bin\//, '');
        if (!/^[a-z][a-z0-9_.-]*$/.test(name) && name !== '[') break;
        out.push({ word: name, line: i + 1 });
        if (!WRAPPERS.has(name)) break;
        // The wrapped command: skip options, their $arguments and numbers (timeout 5 …).
        w = undefined;
        while (k < words.length) {
          const c = words[k++]!;
          if (c.startsWith('-') || c.startsWith('$') || /^[0-9]+$/.test(c)) continue;
          w = c;
          break;
        }
      }
    }
  });
  return out;
}
